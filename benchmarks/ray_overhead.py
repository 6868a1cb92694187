"""Per-trial overhead of the Ray Tune backend vs the Optuna backend, on the same tiny trials.

    python benchmarks/ray_overhead.py [--trials 6]

Each variant runs the quickstart (3 epochs, random sampler with the same seed, no pruning: the same specs) as
one ``run_sweep`` in a shared work directory (the window cache is warm for all). Training time is noisy on
shared machines, so the overhead is read between the trials' MLflow runs (each run spans the trial's
``run_trial`` plus its spec/params/checkpoint logging), not from differences of total times:

- ``gap_per_trial_s`` (one trial at a time): from one trial's run ending to the next one's starting, averaged:
  the backend's own cost per trial (Optuna: tell + ask + storage; Ray: result processing, study writes,
  scheduling the next trial on the reused actor, the next point from OptunaSearch);
- ``before_first_trial_s`` / ``after_last_trial_s``: the fixed cost of one command around the trials (for Ray:
  starting the local cluster and the trial actors; stopping them);
- ``in_trials_s``: the sum of the trials' run durations (``first_trial_s``: the first one, which in a fresh Ray
  actor also imports torch, Lightning and MLflow; ``median_trial_s``); ``sweep_s``: the whole ``run_sweep``.
Variants: ``optuna``; ``ray`` one trial at a time (2 CPUs: as many torch threads as the Optuna trials);
``ray x2`` two at a time (one CPU each), where the gap is not defined and ``sweep_s`` vs ``ray`` shows what
concurrency buys on this machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

from ape_nas.sweep import prepare_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
COMMON = [
    "backend.sampler=random",
    "backend.sampler_options={}",
    "backend.pruner=none",
    "backend.pruner_options={}",
    "backend.scheduler=fifo",
    "training.max_epochs=3",
    "budget.timeout_s=null",
]
VARIANTS = {
    "optuna": ["backend.name=optuna"],
    # one trial at a time with both CPUs: the same torch threads as the Optuna backend's trials
    "ray": ["backend.name=ray", "backend.max_concurrent=1", "backend.cpus_per_trial=2"],
    "ray x2": ["backend.name=ray", "backend.max_concurrent=2", "backend.cpus_per_trial=1"],
}


def measure(workdir: Path, name: str, overrides: list[str], n: int) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    experiment = ROOT / "experiments" / "quickstart.yaml"
    plan = prepare_sweep(experiment, overrides=[*COMMON, *overrides, f"name={name}"], workdir=workdir)
    t0 = time.time()
    outcome = run_sweep(plan, n_trials=n, progress=False)
    t1 = time.time()
    client = MlflowClient(outcome.tracking_uri)
    exp_id = client.get_experiment_by_name(name).experiment_id
    runs = client.search_runs([exp_id], "tags.`ape_nas.role` = 'trial'", max_results=1000)
    spans = sorted((r.info.start_time / 1000, r.info.end_time / 1000) for r in runs)
    in_trials = sum(end - start for start, end in spans)
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    return {
        "trials": len(spans),
        "sweep_s": round(t1 - t0, 2),
        "in_trials_s": round(in_trials, 2),
        "first_trial_s": round(spans[0][1] - spans[0][0], 2),
        "median_trial_s": round(statistics.median(end - start for start, end in spans), 2),
        "gap_per_trial_s": round(sum(gaps) / len(gaps), 3) if gaps and min(gaps) >= 0 else float("nan"),
        "before_first_trial_s": round(spans[0][0] - t0, 2),
        "after_last_trial_s": round(t1 - max(end for _, end in spans), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=6)
    args = ap.parse_args()
    result: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        from ape_nas.data.prepare import prepare_windows

        plan = prepare_sweep(ROOT / "experiments" / "quickstart.yaml", overrides=COMMON, workdir=workdir)
        prepare_windows(plan.experiment.data, workdir / "cache")  # warm cache for every variant
        for label, overrides in VARIANTS.items():
            result[label] = measure(workdir, f"bench-{label.replace(' ', '')}", overrides, args.trials)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "ray_overhead.json").write_text(json.dumps(result, indent=2))
    print(f"{'':>22} " + " ".join(f"{k:>10}" for k in result))
    for key in next(iter(result.values())):
        print(f"{key:>22} " + " ".join(f"{result[v][key]:>10}" for v in result))


if __name__ == "__main__":
    main()
