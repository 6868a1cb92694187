"""Per-trial overhead of a sweep: the same trials through the full sweep vs `run_trial` alone.

    python benchmarks/trial_overhead.py [--trials 6]

Both sides use the same specs (recorded by the sweep) and the same warm window cache. Reported:
- ``loop_overhead_per_trial_s``: per trial, Optuna's trial duration minus the time spent inside ``run_trial``
  (sampling, Optuna storage, the MLflow run with params, spec and checkpoint artifacts);
- ``fixed_overhead_s``: once per sweep command (MLflow store/experiment/parent run, final plots and summary);
- ``overhead_ratio``: all orchestration time over the time the same trials take with ``run_trial`` alone.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _report import report

from ape_nas import objective
from ape_nas.spec import TrialSpec
from ape_nas.sweep import prepare_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=6)
    args = ap.parse_args()
    overrides = [
        "backend.sampler=random",
        "backend.sampler_options={}",
        "backend.pruner=none",
        "backend.pruner_options={}",
        "training.max_epochs=3",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        plan = prepare_sweep(ROOT / "experiments" / "quickstart.yaml", overrides=overrides, workdir=workdir)
        from ape_nas.data.prepare import prepare_windows

        prepare_windows(plan.experiment.data, workdir / "cache")  # warm cache and memory for both sides
        inside: list[float] = []
        original = objective.run_trial

        def timed(*a, **k):  # the sweep imports run_trial at call time, so this wrapper is what it calls
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                inside.append(time.perf_counter() - t)

        objective.run_trial = timed
        t0 = time.perf_counter()
        outcome = run_sweep(plan, n_trials=args.trials, progress=False)
        sweep_s = time.perf_counter() - t0
        objective.run_trial = original
        trial_s = sum(r.duration_s or 0.0 for r in outcome.records)
        specs = [TrialSpec.from_dict(r.attrs["spec"]) for r in outcome.records if r.state == "complete"]
        t0 = time.perf_counter()
        for spec in specs:
            original(spec, cache_dir=workdir / "cache")
        direct_s = time.perf_counter() - t0
    n = len(specs)
    result = {
        "trials": n,
        "sweep_s": round(sweep_s, 2),
        "run_trial_only_s": round(direct_s, 2),
        "training_in_sweep_s": round(sum(inside), 2),
        "loop_overhead_per_trial_s": round((trial_s - sum(inside)) / n, 3),
        "fixed_overhead_s": round(sweep_s - trial_s, 2),
        "overhead_ratio": round((sweep_s - sum(inside)) / direct_s, 3),
    }
    report("trial_overhead", result)


if __name__ == "__main__":
    main()
