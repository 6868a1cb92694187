"""`ape-nas ui` starts a real MLflow server on 127.0.0.1 and owns it; sweeps can log to it with --tracking-uri.

Also: a pruned or failed trial's MLflow run name shows its state (the runs table shows both as finished)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _servers import alive, descendants, free_port, mlflow_servers_on, port_is_free, wait_for_text, wait_http
from mlflow.tracking import MlflowClient

from ape_nas.cli import main
from ape_nas.reporting import TrialPruned
from ape_nas.spec import TrialSpec
from ape_nas.tracking import SweepTracker, TrialRun, default_tracking_uri

ROOT = Path(__file__).resolve().parents[1]
SPEC = TrialSpec(model="cnn1d", arch={}, optim={}, data={}, protocol={}, training={}, seed=0)


def _store(workdir: Path, name: str = "ui-check") -> tuple[SweepTracker, str]:
    """A SQLite MLflow store in ``workdir`` with one finished parent run; returns the tracker and its run id."""
    tracker = SweepTracker(default_tracking_uri(workdir), name, artifact_root=workdir / "artifacts")
    parent = tracker.open_parent(None, f"sweep-{name}", tags={}, params={"x": 1})
    tracker.finish_parent()
    return tracker, parent.run_id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str]]:
    """A real `mlflow server` started through `ape-nas ui`, over a store holding one finished parent run."""
    workdir = tmp_path_factory.mktemp("ui")
    _, parent_id = _store(workdir)
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
        yield url, workdir, parent_id
    finally:
        proc.send_signal(signal.SIGTERM)  # ape-nas ui stops its own server (another process group)
        proc.wait(timeout=60)


@pytest.mark.slow
def test_ui_serves_the_workdir_store(server: tuple[str, Path, str]):
    url, _, parent_id = server
    body = json.dumps({"experiment_ids": ["1"]}).encode()
    req = urllib.request.Request(
        f"{url}/api/2.0/mlflow/runs/search", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        runs = json.load(r)["runs"]
    assert [run["info"]["run_id"] for run in runs] == [parent_id]


@pytest.mark.slow
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


def test_ui_on_a_busy_port_is_a_one_line_error(tmp_path: Path):
    (tmp_path / "mlflow.db").touch()  # the port is checked before the store is opened
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "ape_nas", "ui", "--workdir", str(tmp_path), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert out.stderr == (
        f"ape-nas: error: port {port} on 127.0.0.1 is in use (another `ape-nas ui` or MLflow server?); "
        "pick another with --port\n"
    )
    assert out.stdout == ""
    assert not (tmp_path / "mlflow-ui.log").exists()  # no server was started


@pytest.mark.slow
def test_a_server_that_dies_at_start_shows_why(tmp_path: Path):
    (tmp_path / "mlflow.db").write_text("not a database")
    out = subprocess.run(
        [sys.executable, "-m", "ape_nas", "ui", "--workdir", str(tmp_path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("ape-nas: error: the MLflow server exited with 1 before answering; last lines of")
    assert "file is not a database" in out.stderr  # the server's own reason, not only "it failed"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_ui_stops_its_server(tmp_path: Path, sig: signal.Signals):
    """`kill <pid>` or Ctrl+C of `ape-nas ui`: it exits 0 and nothing of its server is left on the port."""
    workdir = tmp_path / "w"
    workdir.mkdir()
    tracker, _ = _store(workdir)
    port = free_port()
    out_path = tmp_path / "out.txt"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ape_nas", "ui", "--workdir", str(workdir), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # like a terminal: the signal goes to ape-nas only, not to its server
        )
    try:
        text = wait_for_text(out_path, "/runs", proc)
        assert f"http://127.0.0.1:{port}/#/experiments/{tracker.experiment_id}/runs" in text
        server = descendants(proc.pid)
        assert server and mlflow_servers_on(port), (server, text)
        assert not port_is_free(port)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0, out_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [pid for pid in server if alive(pid)] == []
    assert mlflow_servers_on(port) == []
    assert port_is_free(port)


def test_pruned_and_failed_trials_show_their_state_in_the_run_name(tmp_path: Path):
    tracker, _ = _store(tmp_path, "names")
    with pytest.raises(TrialPruned), tracker.trial(3, SPEC):
        raise TrialPruned(2, 0.5)
    with pytest.raises(RuntimeError), tracker.trial(4, SPEC):
        raise RuntimeError("boom")
    with tracker.trial(5, SPEC):
        pass
    # a run closed by another process (stale-trial cleanup, Ray): the name is read from the store, once suffixed
    stale = tracker.start_trial(6, SPEC)
    TrialRun(tracker.tracking_uri, stale.run_id).close("failed", "worker died")
    TrialRun(tracker.tracking_uri, stale.run_id).close("failed", "worker died")
    runs = {r.data.tags["ape_nas.trial_number"]: r for r in tracker.trial_runs()}
    shown = {n: (r.info.run_name, r.info.status, r.data.tags["ape_nas.state"]) for n, r in runs.items()}
    assert shown == {
        "3": ("trial-0003 (pruned)", "FINISHED", "pruned"),
        "4": ("trial-0004 (failed)", "FAILED", "failed"),
        "5": ("trial-0005", "FINISHED", "complete"),
        "6": ("trial-0006 (failed)", "FAILED", "failed"),
    }
    # the name is MLflow's own run name (the tag mlflow.runName follows it), so the UI's table shows it
    assert runs["3"].data.tags["mlflow.runName"] == "trial-0003 (pruned)"
