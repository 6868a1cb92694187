"""Constants shared by test modules (not a test module: no test_ prefix)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"  # real recordings for development (not in the repository)
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


def data_required() -> bool:
    """In CI (``CI`` set, or ``APE_NAS_REQUIRE_DATA=1`` as ``.ci/run`` sets) a missing data folder is a failure."""
    return os.environ.get("APE_NAS_REQUIRE_DATA") == "1" or os.environ.get("CI", "").lower() not in ("", "0", "false")


def require_shared(path: str | Path) -> None:
    """Skip the running test when ``path`` does not exist, or fail it when :func:`data_required`."""
    if Path(path).exists():
        return
    reason = f"shared data absent: {path} (real recordings)"
    if data_required():
        pytest.fail(f"{reason}; CI / APE_NAS_REQUIRE_DATA=1 require it", pytrace=False)
    pytest.skip(reason)


def needs_shared(path: str | Path) -> pytest.MarkDecorator:
    """Mark a test (or a module: ``pytestmark``) that needs ``path`` under ``../shared/data``: skipped when it is
    absent, failed instead in CI. ``tests/conftest.py`` applies the mark (:func:`check_shared_data`)."""
    return pytest.mark.shared_data(path=Path(path))


def check_shared_data(item: pytest.Item) -> None:
    """The ``pytest_runtest_setup`` step behind :func:`needs_shared`: every path a test's marks name must exist."""
    for mark in item.iter_markers("shared_data"):
        if "path" in mark.kwargs:
            require_shared(mark.kwargs["path"])


def cli(argv: list[str]) -> int:
    """``ape-nas ARGV`` in this process; its exit code."""
    from ape_nas.cli import main

    return main(argv)


def one_line_error(capsys: Any, rc: int, *needles: str) -> str:
    """A user error: exit 2, one line on stderr (no traceback) naming every one of ``needles``."""
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err
