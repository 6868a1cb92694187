"""Adaptation time per subject for each transfer method (issue 12) on this machine's cores.

    python benchmarks/transfer_time.py [--shots 1,5,20] [--repeats 3] [--threads N]

The source network is the transfer experiments' CNN (``search_spaces/transfer_source.yaml``: ``cnn1d``, 29k
parameters) on one BVP channel of 30-s windows at 32 Hz (960 samples): what ``ape-nas transfer`` adapts in
``docs/results/transfer``. Per method and K (labelled windows per class, 2 classes): the time of
:func:`ape_nas.transfer.methods.adapt` + :func:`~ape_nas.transfer.methods.fit` with the method's default steps, the
median of ``--repeats`` runs (seconds per subject: personalise adapts once per subject), and its ratio to ``head``
(the linear probe, the cheapest method) measured in the same run. Timing does not depend on the weights, so the
network is freshly initialised and the windows are seeded noise shaped like z-scored BVP.
The issue's target: ``weighting`` with K = 20 under 10 s per subject on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from _report import report

from ape_nas.models import build_model
from ape_nas.transfer.methods import METHODS, adapt, fit

ARCH = {"depth": 4, "width": 16, "growth": 1.5, "kernel_size": 9, "pool": 2, "dropout": 0.2, "hrv_fusion": "none"}
LENGTH = 960
TARGET_S = 10.0


def build(num_classes: int) -> torch.nn.Module:
    return build_model("cnn1d", 1, num_classes, **ARCH)


def windows(k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH) / 32.0
    y = np.repeat(np.arange(2), k)
    pulse = np.sin(2 * np.pi * (1.1 + 0.3 * y[:, None]) * t[None, :])  # a pulse-like wave per class
    X = (pulse + 0.3 * rng.standard_normal((2 * k, LENGTH)))[:, None, :].astype(np.float32)
    return X, y


def time_method(method: str, k: int, repeats: int) -> float:
    source = build(2).eval()
    X, y = windows(k, 0)
    runs = []
    for r in range(repeats):
        t0 = time.perf_counter()
        adapted = adapt(method, source, 2, build=build, seed=r)
        fit(adapted, X, y, seed=r)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shots", default="1,5,20")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = the cores)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shots = [int(v) for v in args.shots.split(",")]
    seconds: dict[str, dict[str, float]] = {}
    for method in METHODS:
        seconds[method] = {f"k{k}": round(time_method(method, k, args.repeats), 3) for k in shots}
        print(f"{method:>16}: " + ", ".join(f"K={k} {seconds[method][f'k{k}']:.2f} s" for k in shots), flush=True)
    top = f"k{max(shots)}"
    report(
        "transfer_time",
        {
            "network": f"cnn1d {ARCH}, {sum(p.numel() for p in build(2).parameters())} parameters",
            "window_samples": LENGTH,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "steps": {m: METHODS[m].steps for m in METHODS},
            "seconds_per_subject": seconds,
            "ratio_to_head": {m: round(seconds[m][top] / seconds["head"][top], 2) for m in METHODS},
            "target": f"weighting with K={max(shots)} under {TARGET_S:g} s per subject",
            "weighting_meets_target": seconds["weighting"][top] < TARGET_S,
            "repeats": args.repeats,
        },
    )


if __name__ == "__main__":
    main()
