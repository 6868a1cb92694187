"""Constants shared by test modules (not a test module: no test_ prefix)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "experiments" / "quickstart.yaml")
# A smaller, faster variant of the quickstart for tests (same files, overridden from the command line).
SMALL_SETS = [
    "data.params.subjects=8",
    "data.params.minutes_per_state=1.0",
    "training.max_epochs=3",
    "protocol.test_subjects=2",
    "protocol.val_subjects=2",
]


def set_args(sets: list[str]) -> list[str]:
    """``["a=1", "b=2"]`` → ``["--set", "a=1", "--set", "b=2"]``."""
    return [arg for kv in sets for arg in ("--set", kv)]


SMALL = set_args(SMALL_SETS)


def status_json(workdir: Path, capsys: Any, *args: str) -> dict:
    """``ape-nas status QUICKSTART --workdir W --json *args`` parsed (``capsys``: pytest's capture fixture)."""
    from ape_nas.cli import main

    capsys.readouterr()
    assert main(["status", QUICKSTART, "--workdir", str(workdir), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def sweep_runs(status: dict) -> tuple[Any, list, list]:
    """The MLflow client, parent runs and trial runs of the sweep that ``status`` describes."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(status["tracking_uri"])
    runs = client.search_runs([status["mlflow_experiment_id"]], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("ape_nas.role") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("ape_nas.role") == "trial"]
    return client, parents, trials
