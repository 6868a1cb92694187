"""Shared by the benchmark scripts: print a result and keep it in benchmarks/results/<name>.json."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def provenance() -> dict[str, Any]:
    """Date, commit and machine of a measurement, kept beside its numbers."""
    from ape_nas.tracking import commit_state

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit_state(RESULTS.parent, short=True) or "",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }


def report(name: str, result: dict[str, Any]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({**result, "measured": provenance()}, indent=2))
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:>{width}}: {value}")
