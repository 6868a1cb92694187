"""Shared by the benchmark scripts: print a result and keep it in benchmarks/results/<name>.json."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
RESULT_DIRS = (":(top,exclude)docs/results", ":(top,exclude)benchmarks/results")


def provenance() -> dict[str, Any]:
    """Date, commit and machine of a measurement, kept beside its numbers."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=RESULTS.parent, capture_output=True, text=True
    ).stdout.strip()
    # tracked files outside the results folders (the results being rewritten, and untracked files, do not count)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", *RESULT_DIRS],
        cwd=RESULTS.parent,
        capture_output=True,
        text=True,
    )
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit + ("+uncommitted" if dirty.stdout.strip() else ""),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }


def report(name: str, result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({**result, "measured": provenance()}, indent=2))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:>{width}}: {value}")
