"""New SQLite MLflow stores are copies of an empty migrated template (ape_nas.tracking.template)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ape_nas.dburl import sqlite_path
from ape_nas.tracking.client import make_client
from ape_nas.tracking.template import cache_dir, seed_store


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return cache_dir()


def test_a_new_store_is_a_working_copy_of_the_template(tmp_path: Path, cache: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = tmp_path / "a" / "mlflow.db"
    first.parent.mkdir()
    assert seed_store(f"sqlite:///{first}")  # makes the template, then copies it
    (template,) = cache.glob("mlflow-*-empty.db")
    with sqlite3.connect(template) as db:  # the template holds no experiment: each store gets its own Default
        assert db.execute("SELECT count(*) FROM experiments").fetchone() == (0,)
        db.execute("CREATE TABLE marker (x INTEGER)")  # to see that the next store is a copy of it
    second = tmp_path / "b" / "mlflow.db"
    second.parent.mkdir()
    client = make_client(f"sqlite:///{second}")
    with sqlite3.connect(second) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'marker'").fetchone() == ("marker",)
    (default,) = client.search_experiments()
    assert default.name == "Default" and default.artifact_location == str(tmp_path / "mlruns" / "0")
    run = client.create_run(client.create_experiment("e"))
    client.log_metric(run.info.run_id, "score", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"score": 0.5}
    assert sorted(p.name for p in second.parent.iterdir()) == ["mlflow.db"]  # no staged copy left behind


def test_existing_stores_and_other_uris_are_left_alone(tmp_path: Path, cache: Path):
    existing = tmp_path / "mlflow.db"
    existing.write_bytes(b"")
    assert not seed_store(f"sqlite:///{existing}") and existing.read_bytes() == b""
    for uri in ("postgresql://u:p@127.0.0.1/db", "http://127.0.0.1:5000", "sqlite:///:memory:"):
        assert not seed_store(uri)
    assert not seed_store(f"sqlite:///{tmp_path / 'no-such-folder' / 'mlflow.db'}")  # MLflow's own error follows
    assert not cache.exists()  # nothing was made for them
    assert sqlite_path("sqlite:///runs/mlflow.db") == Path("runs/mlflow.db")
    assert sqlite_path("sqlite:////abs/mlflow.db") == Path("/abs/mlflow.db")


def test_a_store_created_meanwhile_by_another_process_wins(tmp_path: Path, cache: Path, monkeypatch):
    import ape_nas.tracking.template as template

    target = tmp_path / "mlflow.db"
    original = template.shutil.copyfile

    def racing_copy(src, dst):  # another process creates the store between our check and our link
        target.write_bytes(b"theirs")
        return original(src, dst)

    monkeypatch.setattr(template.shutil, "copyfile", racing_copy)
    assert not seed_store(f"sqlite:///{target}")
    assert target.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "mlflow.db"]
