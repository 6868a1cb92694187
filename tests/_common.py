"""Constants shared by test modules (not a test module: no test_ prefix)."""

from __future__ import annotations

from pathlib import Path

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
