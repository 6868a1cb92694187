"""How repeatable is a trial's latency figure? One session's median against the fastest of several sessions'.

    python benchmarks/latency_repeatability.py [--repeats 20] [--rounds 4]

For a few networks of the Stress-Predict front (searched1d genomes, one 960-sample BVP window) and a quickstart
CNN, the ONNX graph is measured ``--repeats`` times with each method, all runs interleaved in one process:
``one_session`` (what ``ape_nas.cost.ort_latency_ms`` does: the median of 30 runs of one session) and
``min_of_sessions`` (a candidate: the fastest of 5 fresh sessions' medians of 10 runs each, 50 runs).
Reported per round, network and method: the coefficient of variation over repeats and max/min (the spread a
Pareto front's latency ordering inherits), and over all rounds how often each method was the steadier one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch
from _report import report

from ape_nas import cost
from ape_nas.models import build_model

STEM = {"stem_width": 8, "stem_kernel": 15, "stem_stride": 2, "head": "gap", "dropout": 0.0}
NETWORKS: dict[str, tuple[str, int, int, dict[str, Any]]] = {
    "searched1d, no block (314 params)": (
        "searched1d",
        1,
        960,
        {**STEM, "stages": [{"width": 16, "down": "pool", "blocks": []}]},
    ),
    "searched1d, inception + basic (3.6k params)": (
        "searched1d",
        1,
        960,
        {
            **STEM,
            "stages": [
                {
                    "width": 16,
                    "down": "pool",
                    "blocks": [{"op": "inception", "kernel": 9}, {"op": "basic", "kernel": 5, "se": True}],
                }
            ],
        },
    ),
    "searched1d, attention (stride-4 stem)": (
        "searched1d",
        1,
        960,
        {
            **STEM,
            "stem_stride": 4,
            "stages": [{"width": 16, "down": "stride", "blocks": [{"op": "attention", "kernel": 3}]}],
        },
    ),
    "cnn1d quickstart (width 16, depth 4)": ("cnn1d", 1, 1280, {"width": 16, "depth": 4, "pool": 4}),
}
METHODS = {"one_session": {"runs": 30, "sessions": 1}, "min_of_sessions": {"runs": 50, "sessions": 5}}


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean_ms": round(statistics.fmean(values), 4),
        "cv": round(statistics.stdev(values) / statistics.fmean(values), 3),
        "max_over_min": round(max(values) / min(values), 2),
    }


def one_round(repeats: int) -> dict[str, dict[str, dict[str, float]]]:
    out = {}
    for label, (family, channels, length, arch) in NETWORKS.items():
        net = build_model(family, channels, 2, **arch).eval()
        inputs = cost.example_inputs(net, channels, length, 0)
        values: dict[str, list[float]] = {m: [] for m in METHODS}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "net.onnx"
            cost.export_fixed(net, inputs, path)
            for _ in range(repeats):  # interleaved: both methods see the same machine states
                for method, kw in METHODS.items():
                    values[method].append(cost.ort_latency_ms(path, inputs, kw["runs"], 5, kw["sessions"]))
        out[label] = {m: spread(v) for m, v in values.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rounds = [one_round(args.repeats) for _ in range(args.rounds)]
    pairs = [(r[n]["one_session"]["cv"], r[n]["min_of_sessions"]["cv"]) for r in rounds for n in NETWORKS]
    result: dict[str, Any] = {
        "repeats": args.repeats,
        "methods": METHODS,
        "steadier": {
            "one_session": sum(a < b for a, b in pairs),
            "min_of_sessions": sum(b < a for a, b in pairs),
            "of": len(pairs),
        },
        "median_cv": {
            "one_session": round(statistics.median(a for a, _ in pairs), 3),
            "min_of_sessions": round(statistics.median(b for _, b in pairs), 3),
        },
        "rounds": rounds,
    }
    report("latency_repeatability", result)


if __name__ == "__main__":
    main()
