"""What measuring a network's cost adds to a quickstart trial: ``run_trial`` vs ``cost.measure`` of the same spec.

    python benchmarks/cost_overhead.py [--specs 3] [--seed 0]

Specs are sampled from the quickstart experiment's space (Optuna RandomSampler); the window cache is warmed first.
Per spec: ``trial_s`` (``objective.run_trial``, MemoryTracker, a reporter that never stops; where run_trial
measures the cost itself, ``in_trial_cost_s`` is the time it spends in ``objective.network_cost``), ``measure_s``
(``cost.measure`` of the spec's untrained network, built as ``objective`` builds it, at the window length
``window_s × rate``) with its parts, ``latency_s`` (ONNX export + onnxruntime), and the ratios to the trial.
Per-spec numbers are warm (this process has measured once before); ``cold_measure_s`` is the first ``measure`` in a
fresh process, which imports torch._dynamo (the dispatch modes; Lightning imports it too, so a trial pays it anyway)
and onnx (the exporter): once per worker process. The issue's target: latency measurement adds < 5% to a trial.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _report import report

from ape_nas import objective
from ape_nas.cost import measure_timed
from ape_nas.data.prepare import prepare_windows
from ape_nas.experiments import load_experiment
from ape_nas.models import arch_defaults, build_model
from ape_nas.reporting import MemoryTracker, NullReporter
from ape_nas.space import load_space
from ape_nas.spec import TrialSpec

ROOT = Path(__file__).resolve().parents[1]

COLD = """
import time, torch
from ape_nas.cost import measure_timed
from ape_nas.models import build_model
net = build_model({model!r}, {channels}, {classes}, **{arch!r})
cost, parts = measure_timed(net, {channels}, {length})
print(parts["total"], parts["macs"], parts["export"])
"""


def sample_specs(n: int, seed: int) -> list[TrialSpec]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    experiment = load_experiment(ROOT / "experiments" / "quickstart.yaml")
    space = load_space(experiment.space_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize")
    return [space.sample(study.ask(), experiment.base(), arch_defaults()) for _ in range(n)]


def network(spec: TrialSpec, cache: Path) -> tuple[Any, int, int, int, float]:
    """The spec's untrained network as ``objective.fit`` builds it, its input size and window length."""
    ws = prepare_windows(spec.data, cache)
    channels, length, classes = int(ws.X.shape[1]), int(ws.X.shape[2]), len(ws.class_names)
    assert length == round(float(spec.data["window_s"]) * float(ws.rate_hz)), "window length is window_s × rate"
    return build_model(spec.model, channels, classes, **spec.arch), channels, classes, length, float(ws.rate_hz)


def cold_measure(spec: TrialSpec, channels: int, classes: int, length: int) -> list[float]:
    code = COLD.format(model=spec.model, arch=spec.arch, channels=channels, classes=classes, length=length)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return [round(float(v), 3) for v in out.stdout.split()]


def timed_network_cost(spent: list[float]) -> Any:
    original = getattr(objective, "network_cost", None)
    if original is None:
        return None

    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            spent.append(time.perf_counter() - t)

    objective.network_cost = wrapper
    return original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--specs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    specs = sample_specs(args.specs, args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for spec in specs:
            prepare_windows(spec.data, cache)  # warm cache for both sides
        first = network(specs[0], cache)
        cold = cold_measure(specs[0], first[1], first[2], first[3])
        measure_timed(first[0], first[1], first[3])  # this process's one-time imports, out of the per-spec numbers
        for spec in specs:
            net, channels, _, length, rate = network(spec, cache)
            cost, parts = measure_timed(net, channels, length)
            spent: list[float] = []
            original = timed_network_cost(spent)
            t = time.perf_counter()
            try:
                objective.run_trial(spec, NullReporter(), MemoryTracker(), cache_dir=cache)
            finally:
                if original is not None:
                    objective.network_cost = original
            trial_s = time.perf_counter() - t
            rows.append(
                {
                    "model": spec.model,
                    "arch": {k: v for k, v in spec.arch.items() if k != "hrv_fusion"},
                    "window": f"{spec.data['window_s']} s × {rate:g} Hz = {length} samples, {channels} channel(s)",
                    "cost": cost.to_dict(),
                    "trial_s": round(trial_s, 2),
                    "in_trial_cost_s": round(sum(spent), 3) if original is not None else None,
                    "measure_s": round(parts["total"], 3),
                    "measure_parts_s": {k: round(v, 4) for k, v in parts.items() if k != "total"},
                    "latency_s": round(parts["latency"], 3),
                    "measure_ratio": round(parts["total"] / trial_s, 4),
                    "latency_ratio": round(parts["latency"] / trial_s, 4),
                }
            )
    worst = max(r["latency_ratio"] for r in rows)
    result = {
        "experiment": "experiments/quickstart.yaml",
        "specs": rows,
        "cold_measure_s": {"total": cold[0], "macs": cold[1], "export": cold[2], "spec": 0},
        "cold_over_mean_trial": round(cold[0] / (sum(r["trial_s"] for r in rows) / len(rows)), 4),
        "max_measure_ratio": max(r["measure_ratio"] for r in rows),
        "max_latency_ratio": worst,
        "target_latency_ratio": 0.05,
        "meets_target": worst < 0.05,
    }
    report("cost_overhead", result)


if __name__ == "__main__":
    main()
