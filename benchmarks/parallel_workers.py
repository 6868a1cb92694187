"""Trials per hour with 1 vs 2 parallel Optuna workers on this machine, on a journal-file storage.

    python benchmarks/parallel_workers.py [--trials 8]

Both runs do the same number of tiny quickstart trials (same overrides; random sampler, no pruning) from a warm
window cache; the ratio tells what a second worker buys on this many cores (each worker gets cpus // N
torch threads).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import report

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = [
    "backend.sampler=random",
    "backend.sampler_options={}",
    "backend.pruner=none",
    "backend.pruner_options={}",
    "training.max_epochs=3",
    "training.patience=3",
]


def _run(workers: int, trials: int, workdir: Path) -> float:
    sets = [a for o in OVERRIDES for a in ("--set", o)]
    cmd = [
        sys.executable,
        "-m",
        "ape_nas",
        "worker",
        str(ROOT / "experiments" / "quickstart.yaml"),
        "--workers",
        str(workers),
        "--trials",
        str(trials),
        "--workdir",
        str(workdir),
        "--storage",
        f"journal://{workdir / f'study-{workers}.log'}",
        *sets,
        "--set",
        f"name=bench-workers-{workers}",
    ]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ape_nas",
                "data",
                "prepare",
                str(ROOT / "experiments" / "quickstart.yaml"),
                "--workdir",
                str(workdir),
            ],
            check=True,
            capture_output=True,
        )
        one = _run(1, args.trials, workdir)
        two = _run(2, args.trials, workdir)
    result = {
        "trials": args.trials,
        "one_worker_s": round(one, 1),
        "two_workers_s": round(two, 1),
        "trials_per_hour_1": round(args.trials / one * 3600),
        "trials_per_hour_2": round(args.trials / two * 3600),
        "speedup_2_over_1": round(one / two, 2),
    }
    report("parallel_workers", result)


if __name__ == "__main__":
    main()
