"""The cost of a nested search against a plain sweep with the same trial budget per study.

    python benchmarks/nested_cost.py [--trials 3] [--outer 2]

Both run on the embedded synthetic benchmark, warm window cache, random sampler, no pruner, inner grouped 2-fold
CV. The plain sweep holds out as many test subjects as one outer fold has and runs ``--trials`` trials; the
nested run makes ``--outer`` outer folds, each with the same ``--trials`` trials, plus one refit per fold.
Reported:
- ``ratio``: nested wall time over plain wall time (≈ ``outer`` when nothing beyond the trials and the refits
  costs anything);
- ``fixed_per_fold_s``: per outer fold, wall time not spent inside trials or refits (study, MLflow parent,
  HRV baseline, summary), against ``plain_fixed_s`` of the plain sweep;
- ``refit_per_fold_s``: the refit of each fold's best trial on all its non-test subjects.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _report import report

from ape_nas import objective
from ape_nas.nested import run_nested
from ape_nas.sweep import prepare_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
COMMON = [
    "data.params.subjects=8",
    "data.params.minutes_per_state=1.0",
    "training.max_epochs=3",
    "training.patience=3",
    "backend.sampler=random",
    "backend.sampler_options={}",
    "backend.pruner=none",
    "backend.pruner_options={}",
]


def _timed(name: str, spent: dict[str, float]):  # objective functions the sweep and the nested run call lazily
    original = getattr(objective, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t

    return original, wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--outer", type=int, default=2)
    args = ap.parse_args()
    qs = ROOT / "experiments" / "quickstart.yaml"
    per_fold_test = 8 // args.outer
    plain_sets = [
        *COMMON,
        "protocol.kind=kfold",
        "protocol.val_subjects=null",
        "protocol.folds=2",
        f"protocol.test_subjects={per_fold_test}",
    ]
    nested_sets = [
        *COMMON,
        "protocol.kind=nested",
        "protocol.val_subjects=null",
        "protocol.test_subjects=null",
        f"protocol.outer_folds={args.outer}",
        "protocol.inner={kind: kfold, folds: 2}",
    ]
    results = {}
    for label, sets in (("plain", plain_sets), ("nested", nested_sets)):
        spent: dict[str, float] = {}
        originals = {n: _timed(n, spent) for n in ("run_trial", "train_final")}
        with tempfile.TemporaryDirectory() as tmp:
            plan = prepare_sweep(qs, overrides=[*sets, f"budget.trials={args.trials}"], workdir=Path(tmp))
            from ape_nas.data.prepare import prepare_windows

            prepare_windows(plan.experiment.data, Path(tmp) / "cache")  # warm cache for both
            for name, (_, wrapper) in originals.items():
                setattr(objective, name, wrapper)
            t0 = time.perf_counter()
            if label == "plain":
                run_sweep(plan, progress=False)
            else:
                run_nested(plan, progress=False)
            wall = time.perf_counter() - t0
            for name, (original, _) in originals.items():
                setattr(objective, name, original)
        results[label] = (wall, spent.get("run_trial", 0.0), spent.get("train_final", 0.0))
    plain_s, plain_trials, _ = results["plain"]
    nested_s, nested_trials, refits = results["nested"]
    report(
        "nested_cost",
        {
            "trials_per_study": args.trials,
            "outer_folds": args.outer,
            "plain_s": round(plain_s, 1),
            "nested_s": round(nested_s, 1),
            "ratio": round(nested_s / plain_s, 2),
            "plain_fixed_s": round(plain_s - plain_trials, 1),
            "fixed_per_fold_s": round((nested_s - nested_trials - refits) / args.outer, 1),
            "refit_per_fold_s": round(refits / args.outer, 1),
            "trial_s_plain": round(plain_trials / args.trials, 1),
            "trial_s_nested": round(nested_trials / (args.trials * args.outer), 1),
        },
    )


if __name__ == "__main__":
    main()
