"""`ape-nas ui` starts a real MLflow server on 127.0.0.1; sweeps can log to it with --tracking-uri."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _servers import free_port, wait_http
from mlflow.tracking import MlflowClient

from ape_nas.cli import main
from ape_nas.tracking import SweepTracker, default_tracking_uri

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """A real `mlflow server` started through `ape-nas ui`, over a store holding one finished parent run."""
    workdir = tmp_path_factory.mktemp("ui")
    tracker = SweepTracker(default_tracking_uri(workdir), "ui-check", artifact_root=workdir / "artifacts")
    parent = tracker.open_parent(None, "sweep-ui-check", tags={}, params={"x": 1})
    tracker.finish_parent()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ape_nas", "ui", "--workdir", str(workdir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        assert url in proc.stdout.readline()
        wait_http(f"{url}/health", proc, timeout_s=60)
        yield url, workdir, parent.run_id
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_ui_serves_the_workdir_store(server: tuple[str, Path, str]):
    url, _, parent_id = server
    body = json.dumps({"experiment_ids": ["1"]}).encode()
    req = urllib.request.Request(
        f"{url}/api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        runs = json.load(r)["runs"]
    assert [run["info"]["run_id"] for run in runs] == [parent_id]


def test_sweep_logs_to_a_tracking_server(
    server: tuple[str, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    url, server_dir, _ = server
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
    exp = str(ROOT / "experiments" / "quickstart.yaml")
    assert (
        main(
            ["sweep", exp, "--workdir", str(tmp_path), "--trials", "2", "--no-progress", "--tracking-uri", url, *small]
        )
        == 0
    )
    assert not (tmp_path / "mlflow.db").exists()  # nothing tracked locally
    capsys.readouterr()
    assert main(["status", exp, "--workdir", str(tmp_path), "--json", *small]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["tracking_uri"] == url
    client = MlflowClient(url)
    runs = client.search_runs([status["mlflow_experiment_id"]])
    trials = [r for r in runs if r.data.tags.get("ape_nas.role") == "trial"]
    assert len(trials) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {status["parent_run_id"]}
    # artifacts went through the server's proxy into its work directory
    for run in trials:
        assert "spec.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    assert list((server_dir / "artifacts").rglob("spec.yaml"))


def test_ui_without_a_store_is_a_one_line_error(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "ape_nas", "ui", "--workdir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no MLflow store" in out.stderr
    assert not (tmp_path / "none").exists()
