"""Per-trial overhead of a sweep: the same trials through the full sweep vs `run_trial` alone.

    python benchmarks/trial_overhead.py [--trials 6]

Both sides use the same specs (recorded by the sweep) and the same warm window cache, so the difference is what
orchestration costs: Optuna storage, MLflow runs/params/metrics/artifacts, progress output, final plots.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ape_nas.objective import run_trial
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
        t0 = time.perf_counter()
        outcome = run_sweep(plan, n_trials=args.trials, progress=False)
        sweep_s = time.perf_counter() - t0
        specs = [TrialSpec.from_dict(r.attrs["spec"]) for r in outcome.records if r.state == "complete"]
        t0 = time.perf_counter()
        for spec in specs:
            run_trial(spec, cache_dir=workdir / "cache")
        direct_s = time.perf_counter() - t0
    n = len(specs)
    result = {
        "trials": n,
        "sweep_s": round(sweep_s, 2),
        "run_trial_only_s": round(direct_s, 2),
        "overhead_per_trial_s": round((sweep_s - direct_s) / n, 3),
        "overhead_ratio": round((sweep_s - direct_s) / direct_s, 3),
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "trial_overhead.json").write_text(json.dumps(result, indent=2))
    for k, v in result.items():
        print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
