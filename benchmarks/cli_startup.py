"""`ape-nas --help` must stay fast: compare its wall time with a bare interpreter start.

python benchmarks/cli_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _report import report

ROOT = Path(__file__).resolve().parents[1]


def _time(cmd: list[str], repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    bare = _time([sys.executable, "-c", "pass"], args.repeat)
    help_s = _time([sys.executable, "-m", "ape_nas", "--help"], args.repeat)
    sweep_help = _time([sys.executable, "-m", "ape_nas", "sweep", "--help"], args.repeat)
    heavy = _time([sys.executable, "-c", "import torch, lightning, optuna, mlflow"], 1)
    result = {
        "python_bare_s": round(bare, 3),
        "help_s": round(help_s, 3),
        "sweep_help_s": round(sweep_help, 3),
        "heavy_imports_s": round(heavy, 3),
        "help_over_bare": round(help_s / bare, 2),
        "help_over_heavy": round(help_s / heavy, 3),
    }
    report("cli_startup", result)


if __name__ == "__main__":
    main()
