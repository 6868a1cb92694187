"""`ape-nas ui` starts a real MLflow server on 127.0.0.1 that serves the work directory's runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ape_nas.tracking import SweepTracker, default_tracking_uri

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_workdir_store(tmp_path: Path):
    tracker = SweepTracker(default_tracking_uri(tmp_path), "ui-check", artifact_root=tmp_path / "artifacts")
    parent = tracker.open_parent(None, "sweep-ui-check", tags={}, params={"x": 1})
    tracker.finish_parent()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ape_nas", "ui", "--workdir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, "mlflow server exited"
                assert time.time() < deadline, "mlflow server did not answer within 60 s"
                time.sleep(0.5)
        body = json.dumps({"experiment_ids": [tracker.experiment_id]}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            runs = json.load(r)["runs"]
        assert [run["info"]["run_id"] for run in runs] == [parent.run_id]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


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
