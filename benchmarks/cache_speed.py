"""Warm vs cold loading of an experiment's windows (the on-disk cache), measured in one run.

    python benchmarks/cache_speed.py [experiments/stress_predict.yaml] [--repeat 5]

Cold: readers parse the raw files, preprocessing builds the windows and the HRV features, the cache is written.
Warm: a new load of the same windows from the cache (content fingerprint by file stat + memory-mapped arrays),
with the in-process memo cleared so nothing is reused from memory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import report

from ape_nas.data.prepare import clear_memo, prepare_windows
from ape_nas.experiments import load_experiment

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("experiment", nargs="?", default=str(ROOT / "experiments" / "stress_predict.yaml"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    exp = load_experiment(args.experiment)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        clear_memo()
        t0 = time.perf_counter()
        cold_ws = prepare_windows(exp.data, cache)
        cold = time.perf_counter() - t0
        warm_runs = []
        for _ in range(args.repeat):
            clear_memo()
            t0 = time.perf_counter()
            ws = prepare_windows(exp.data, cache)
            float(np.asarray(ws.X[-1]).sum())  # touch the data so the mapping is real
            warm_runs.append(time.perf_counter() - t0)
        same = ws.fingerprint == cold_ws.fingerprint and np.array_equal(np.asarray(ws.X), np.asarray(cold_ws.X))
    warm = statistics.median(warm_runs)
    result = {
        "experiment": exp.name,
        "windows": len(ws.y),
        "cold_s": round(cold, 3),
        "warm_s": round(warm, 4),
        "speedup": round(cold / warm, 1),
        "identical": bool(same),
    }
    report("cache_speed", result)


if __name__ == "__main__":
    main()
