"""``training.compile: true`` against eager training: the same quickstart specs, 10 epochs, in one run.

    python benchmarks/compile_speed.py [--epochs 10] [--specs 2]

Reported per spec: the median epoch wall time (``epoch_s`` of epochs 2..N) eager and compiled, their ratio, the
compile cost (``compile_s``: the first epoch's extra seconds) and the epochs it takes to win that back (null when the
compiled epochs are not faster). Same seed, warm window cache; scores of both are shown (compiled kernels may
round differently).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import optuna
from _report import report

from ape_nas.data.prepare import prepare_windows
from ape_nas.experiments import load_experiment
from ape_nas.objective import run_trial
from ape_nas.reporting import MemoryTracker
from ape_nas.space import load_space
from ape_nas.spec import TrialSpec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--specs", type=int, default=2)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sets = [f"training.max_epochs={args.epochs}", f"training.patience={args.epochs}"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        exp = load_experiment(ROOT / "experiments" / "quickstart.yaml", sets)
        prepare_windows(exp.data, cache)
        space, study = load_space(exp.space_path), optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(args.specs):
            eager_spec = space.sample(study.ask(), exp.base())
            compiled_spec = TrialSpec.from_dict(
                {**eager_spec.to_dict(), "training": {**eager_spec.training, "compile": True}}
            )
            sides = {}
            for compiled, spec in ((False, eager_spec), (True, compiled_spec)):
                tracker = MemoryTracker()
                result = run_trial(spec, tracker=tracker, cache_dir=cache)
                epochs = tracker.history("epoch_s")
                sides[compiled] = {
                    "median_epoch_s": round(statistics.median(epochs[1:]), 3),
                    "first_epoch_s": round(epochs[0], 3),
                    "compile_s": round(tracker.history("compile_s")[0], 2) if compiled else None,
                    "score": round(result.score, 4),
                }
            spec = eager_spec
            eager, comp = sides[False], sides[True]
            gain = eager["median_epoch_s"] - comp["median_epoch_s"]
            rows.append(
                {
                    "model": spec.model,
                    "arch": {k: v for k, v in spec.arch.items() if k != "hrv_fusion"},
                    "eager": eager,
                    "compiled": comp,
                    "compiled_over_eager_epoch": round(comp["median_epoch_s"] / eager["median_epoch_s"], 3),
                    "epochs_to_win_back": round(comp["compile_s"] / gain, 1) if gain > 0 else None,
                }
            )
    report("compile_speed", {"epochs": args.epochs, "specs": rows})


if __name__ == "__main__":
    main()
