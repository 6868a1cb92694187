"""Search efficiency: does a model-based sampler find good networks sooner than random search on the same budget?

    python benchmarks/search_efficiency.py [--trials 24] [--repeats 5]

Every search is a real ``ape-nas`` sweep of the quickstart experiment, made small
(64 simulated subjects: 32 train, 16 validation, 16 test; 4 epochs at most) in its own work directory, seeded,
repeated ``--repeats`` times with different seeds; time is wall-clock seconds
since the search's first trial started (sequential trials on this machine).

1. One objective (val f1_macro): TPE with the median pruner against random search without pruning. Per repeat,
   the target is the best value random search reaches in the budget; reported: the seconds each sampler needs to
   reach it (``null`` = never within the budget), and their mean and spread over repeats.
2. Two objectives (val f1_macro vs parameter count, a deterministic cost): NSGA-II and multi-objective TPE against
   random search. Reported: the hypervolume of the front so far after each trial (2-D, f1 against log10 parameters,
   reference point f1 0 and the space's largest network), and at fixed times, mean and spread over repeats.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path
from typing import Any

import optuna
from _report import report

from ape_nas.sweep import prepare_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "data.params.subjects=64",
    "protocol.test_subjects=16",
    "protocol.val_subjects=16",
    "training.max_epochs=4",
    "training.patience=2",
    "budget.timeout_s=null",
]
SINGLE = {
    "tpe+median": ["backend.sampler=tpe", "backend.sampler_options={n_startup_trials: 4}", "backend.pruner=median"],
    "random": [
        "backend.sampler=random",
        "backend.sampler_options={}",
        "backend.pruner=none",
        "backend.pruner_options={}",
    ],
}
MULTI = {
    "nsga2": ["backend.sampler=nsga2", "backend.sampler_options={population_size: 6}"],
    "tpe": ["backend.sampler=tpe", "backend.sampler_options={n_startup_trials: 4}"],
    "random": ["backend.sampler=random", "backend.sampler_options={}"],
}
TWO_OBJECTIVES = ["objective.metrics=[f1_macro, params]", "backend.pruner=none", "backend.pruner_options={}"]


def search(overrides: list[str], seed: int, trials: int, cache: Path) -> list[optuna.trial.FrozenTrial]:
    """One seeded sweep in a fresh work directory (windows from a shared cache): its trials, in order."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "cache").symlink_to(cache, target_is_directory=True)
        sets = [*SMALL, *overrides, f"seed={seed}", f"budget.trials={trials}"]
        plan = prepare_sweep(ROOT / "experiments" / "quickstart.yaml", overrides=sets, workdir=workdir)
        run_sweep(plan, progress=False)
        study = optuna.load_study(study_name=plan.experiment.name, storage=f"sqlite:///{workdir / 'optuna.db'}")
        return sorted(study.trials, key=lambda t: t.number)


def timeline(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[float, optuna.trial.FrozenTrial]]:
    """(seconds since the first trial started, trial) for every finished trial, in order of completion."""
    t0 = min(t.datetime_start for t in trials if t.datetime_start).timestamp()
    done = [t for t in trials if t.datetime_complete is not None]
    return sorted(((t.datetime_complete.timestamp() - t0, t) for t in done), key=lambda p: p[0])


def time_to_reach(trials: list[optuna.trial.FrozenTrial], target: float) -> float | None:
    for elapsed, t in timeline(trials):
        if t.state.name == "COMPLETE" and t.value is not None and t.value >= target - 1e-12:
            return round(elapsed, 1)
    return None


def hypervolume(points: list[tuple[float, float]], ref_cost: float) -> float:
    """2-D hypervolume of (f1, log10 params) points, maximising f1 from 0, minimising log-cost up to ``ref_cost``."""
    pts = sorted((math.log10(max(c, 1.0)), f) for f, c in points if f > 0 and math.log10(max(c, 1.0)) < ref_cost)
    volume, best_f = 0.0, 0.0
    # sweep from the cheapest: each point adds the area its f1 adds above the best f1 of cheaper points
    for cost, f1 in pts:
        if f1 > best_f:
            volume += (ref_cost - cost) * (f1 - best_f)
            best_f = f1
    return volume


def hv_history(trials: list[optuna.trial.FrozenTrial], ref_cost: float) -> list[tuple[float, float]]:
    points: list[tuple[float, float]] = []
    out = []
    for elapsed, t in timeline(trials):
        if t.state.name == "COMPLETE" and t.values is not None:
            points.append((t.values[0], t.values[1]))
        out.append((round(elapsed, 1), round(hypervolume(points, ref_cost), 4)))
    return out


def at(history: list[tuple[float, float]], seconds: float) -> float:
    return max([hv for t, hv in history if t <= seconds], default=0.0)


def spread(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "sd": None, "reached": 0}
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return {"mean": round(statistics.fmean(vals), 4), "sd": round(sd, 4), "reached": len(vals)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    seeds = [101 + 17 * r for r in range(args.repeats)]
    with tempfile.TemporaryDirectory() as cache_tmp:
        cache = Path(cache_tmp)
        single: dict[str, list[list[optuna.trial.FrozenTrial]]] = {name: [] for name in SINGLE}
        for seed in seeds:
            for name, sets in SINGLE.items():
                single[name].append(search(sets, seed, args.trials, cache))
        multi: dict[str, list[list[optuna.trial.FrozenTrial]]] = {name: [] for name in MULTI}
        for seed in seeds:
            for name, sets in MULTI.items():
                multi[name].append(search([*TWO_OBJECTIVES, *sets], seed, args.trials, cache))
    targets = [max(t.value for t in run if t.state.name == "COMPLETE") for run in single["random"]]
    reach = {
        name: [time_to_reach(run, target) for run, target in zip(runs, targets, strict=True)]
        for name, runs in single.items()
    }
    total = {name: [round(timeline(run)[-1][0], 1) for run in runs] for name, runs in single.items()}
    all_costs = [t.values[1] for runs in multi.values() for run in runs for t in run if t.values is not None]
    ref_cost = math.log10(max(all_costs)) + 0.1
    histories = {name: [hv_history(run, ref_cost) for run in runs] for name, runs in multi.items()}
    horizon = min(h[-1][0] for runs in histories.values() for h in runs)
    checkpoints = [round(horizon * k / 4, 1) for k in (1, 2, 3, 4)]
    result = {
        "budget_trials": args.trials,
        "repeats": args.repeats,
        "seeds": seeds,
        "single_objective": {
            "metric": "val f1_macro",
            "target_per_repeat (best of random search)": [round(v, 4) for v in targets],
            "seconds_to_reach_target": {name: {"per_repeat": v, **spread(v)} for name, v in reach.items()},
            "seconds_for_whole_budget": {name: {"per_repeat": v, **spread(v)} for name, v in total.items()},
            "pruned_trials": {
                name: [sum(t.state.name == "PRUNED" for t in run) for run in runs] for name, runs in single.items()
            },
        },
        "multi_objective": {
            "objectives": "val f1_macro (max) vs parameters (min); hypervolume in (f1, log10 params)",
            "reference_point": {"f1_macro": 0.0, "log10_params": round(ref_cost, 3)},
            "hypervolume_at_seconds": {
                name: {str(s): spread([at(h, s) for h in hs]) for s in checkpoints} for name, hs in histories.items()
            },
            "final_hypervolume": {name: spread([h[-1][1] for h in hs]) for name, hs in histories.items()},
            "history_per_repeat": histories,
        },
    }
    report("search_efficiency", result)


if __name__ == "__main__":
    main()
