"""mlflow/serve.sh: a real team tracking server on a real PostgreSQL store, used by a sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _servers import free_port, wait_http
from mlflow.tracking import MlflowClient

from ape_nas.cli import main

ROOT = Path(__file__).resolve().parents[1]
PG = os.environ.get("APE_NAS_TEST_PG_URL")
pytestmark = pytest.mark.slow


def _require_pg() -> str:
    if not PG:
        if os.environ.get("APE_NAS_REQUIRE_SERVICES") == "1":
            pytest.fail("APE_NAS_TEST_PG_URL is not set but CI requires PostgreSQL (.ci/install_postgres.sh)")
        pytest.skip("no PostgreSQL for tests: set APE_NAS_TEST_PG_URL (CI installs one with .ci/install_postgres.sh)")
    return PG


@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the MLflow store (MLflow and Optuna must not share one: both use alembic)."""
    import psycopg2

    url = _require_pg()
    name = f"mlflow_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    yield url.rsplit("/", 1)[0] + f"/{name}"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


@pytest.fixture(scope="module")
def server(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    artifacts = tmp_path_factory.mktemp("artifacts")
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": pg_database,
        "MLFLOW_ARTIFACTS_DESTINATION": str(artifacts),
        "MLFLOW_PORT": str(port),
        "MLFLOW_WORKERS": "1",
        "PYTHON": sys.executable,
    }
    proc = subprocess.Popen(
        ["bash", str(ROOT / "mlflow" / "serve.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert url in proc.stdout.readline()
        try:
            wait_http(f"{url}/health", proc, timeout_s=90)
        except AssertionError as exc:  # show why the server stopped, not only that it did
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            tail = proc.communicate(timeout=30)[0][-3000:]
            raise AssertionError(f"{exc}\n--- server output (tail) ---\n{tail}") from None
        yield url, artifacts
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def test_serve_sh_refuses_without_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = subprocess.run(
        ["bash", str(ROOT / "mlflow" / "serve.sh")], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0 and "MLFLOW_BACKEND_STORE_URI" in out.stderr


def test_team_server_on_postgres_records_a_sweep(
    server: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    url, artifacts = server
    exp = str(ROOT / "experiments" / "quickstart.yaml")
    small = [
        "--set",
        "data.params.subjects=6",
        "--set",
        "data.params.minutes_per_state=1.0",
        "--set",
        "training.max_epochs=2",
        "--set",
        "protocol.test_subjects=2",
        "--set",
        "protocol.val_subjects=2",
    ]
    assert (
        main(
            ["sweep", exp, "--workdir", str(tmp_path), "--trials", "2", "--no-progress", "--tracking-uri", url, *small]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["status", exp, "--workdir", str(tmp_path), "--json", *small]) == 0
    status = json.loads(capsys.readouterr().out)
    client = MlflowClient(url)
    runs = client.search_runs([status["mlflow_experiment_id"]])
    assert len([r for r in runs if r.data.tags.get("ape_nas.role") == "trial"]) == 2
    assert list(artifacts.rglob("spec.yaml"))  # artifacts went through the server into its directory
    assert not (tmp_path / "mlflow.db").exists()
