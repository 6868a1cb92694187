"""ape-nas sweep vs the Optuna + Lightning script a researcher writes in an afternoon, vs a plain PyTorch loop.

    python benchmarks/peer_speed.py [--trials 12] [--epochs 10] [--repeat 1]

Three sides, measured in one run on the same trials and the same windows, each as a whole command (a
subprocess, wall time measured outside it, imports included), on a warm window cache:

1. ``ape-nas sweep experiments/quickstart.yaml`` in a fresh work directory (random sampler, no pruner, patience =
   epochs: every trial trains every epoch), its window cache built beforehand by ``ape-nas data prepare``;
2. ``benchmarks/peer/optuna_lightning_script.py``: the hand-written peer (own LightningModule, Optuna study with the
   sweep's trials enqueued, one MLflow run per trial in SQLite), on the sweep's specs (read from its study) and its
   training / validation windows (saved by this harness to an .npz);
3. ``benchmarks/peer/raw_loop.py``: the same trials in a plain PyTorch loop: the compute floor.

``--repeat R`` alternates the three sides R times (sweeps in fresh work directories); wall times are medians.
Reported: each side's wall time, ``sweep_over_script`` and ``raw_over_script``; per-epoch throughput (training +
validation windows of an epoch over its wall time, median over every epoch of every trial) of each side and
``sweep_over_raw``; each trial's best validation macro-F1 on each side (the same work: Lightning sides share
seeded loaders and may agree to the last digit; the raw loop should be close).

The sweep's epoch times are its trials' MLflow metric ``epoch_s`` (step = epoch); where ape-nas does not log it,
its throughput is null and ``sweep_epoch_gap_windows_per_s`` estimates it from the gaps between consecutive
``val_f1_macro`` timestamps (one epoch plus what ape-nas does between epochs; epochs >= 1).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import report

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "quickstart.yaml"
PEER = Path(__file__).resolve().parent / "peer"
SIDES = ("sweep", "script", "raw")
LABELS = {"sweep": "ape-nas sweep", "script": "Optuna + Lightning script", "raw": "plain PyTorch loop"}


def overrides(epochs: int) -> list[str]:
    return [
        "backend.sampler=random",
        "backend.sampler_options={}",
        "backend.pruner=none",
        "backend.pruner_options={}",
        f"training.max_epochs={epochs}",
        f"training.patience={epochs}",
        "budget.timeout_s=null",  # a slow machine must not end the sweep with fewer trials than the peers run
    ]


def _sets(epochs: int) -> list[str]:
    return [a for o in overrides(epochs) for a in ("--set", o)]


SPANS: dict[Path, tuple[float, float]] = {}  # log -> (start, end) of its command, time.time() (MLflow's clock)


def timed(cmd: list[str], log: Path) -> float:
    """Wall time of a whole command; its output goes to ``log`` (shown if it fails)."""
    start, t0 = time.time(), time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    SPANS[log] = (start, time.time())
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} ... failed ({done.returncode}); its output ends:\n{log.read_text()[-4000:]}")
    return wall


def sweep_trials(workdir: Path) -> list[dict[str, Any]]:
    """The sweep's complete trials in order: spec, Optuna params, score, and from MLflow each epoch's validation
    F1, ``epoch_s`` (empty if not logged), the gaps between validation timestamps and the window counts."""
    import optuna
    from mlflow.tracking import MlflowClient

    from ape_nas.backends.optuna_backend import default_storage
    from ape_nas.experiments import load_experiment
    from ape_nas.tracking import default_tracking_uri

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = load_experiment(EXPERIMENT, overrides(1)).name
    study = optuna.load_study(study_name=name, storage=default_storage(workdir))
    client = MlflowClient(default_tracking_uri(workdir))
    out = []
    for t in sorted(study.get_trials(states=[optuna.trial.TrialState.COMPLETE]), key=lambda t: t.number):
        run_id = t.user_attrs["mlflow_run_id"]
        val = sorted(client.get_metric_history(run_id, "val_f1_macro"), key=lambda m: m.step)
        epoch_s = sorted(client.get_metric_history(run_id, "epoch_s"), key=lambda m: m.step)
        run_info = client.get_run(run_id).info
        run = client.get_run(run_id).data.metrics
        out.append(
            {
                "number": t.number,
                "spec": t.user_attrs["spec"],
                "params": t.params,
                "best_val_f1": t.value,
                "val_f1": [m.value for m in val],
                "epoch_s": [m.value for m in epoch_s],
                "epoch_gap_s": [(b.timestamp - a.timestamp) / 1000 for a, b in itertools.pairwise(val)],
                "run_span": (run_info.start_time / 1000, run_info.end_time / 1000),
                "windows_train": run.get("windows_train"),
                "windows_val": run.get("windows_val"),
            }
        )
    return out


def check_peer_supports(spec: dict[str, Any]) -> None:
    """The peers implement what the quickstart's trials use; anything else would make them do other work."""
    problems = []
    if spec["optim"]["optimizer"] != "adamw":
        problems.append(f"optimizer {spec['optim']['optimizer']}")
    if spec["optim"]["label_smoothing"]:
        problems.append("label smoothing")
    if spec.get("augment"):
        problems.append("augmentations")
    if spec["arch"].get("hrv_fusion", "none") != "none":
        problems.append("HRV feature fusion")
    if spec["protocol"]["kind"] != "holdout":
        problems.append(f"protocol {spec['protocol']['kind']}")
    if spec["training"]["accelerator"] != "cpu" or spec["training"]["precision"] != "32-true":
        problems.append("accelerator/precision other than cpu/32-true")
    if problems:
        sys.exit(f"trial spec uses {', '.join(problems)}: the peers implement AdamW on one CPU holdout only")


def write_inputs(trials: list[dict[str, Any]], cache: Path, epochs: int, folder: Path) -> tuple[Path, Path]:
    """``specs.json`` (what the peers train) and ``windows.npz`` (the sweep's training and validation windows)."""
    from ape_nas.data.prepare import prepare_windows
    from ape_nas.data.splits import make_splits

    for t in trials:
        check_peer_supports(t["spec"])
    first = trials[0]["spec"]
    ws = prepare_windows(first["data"], cache)
    (split,) = make_splits(first["protocol"], ws.subjects)
    train, val = ws.indices(split.train), ws.indices(split.val)
    data = folder / "windows.npz"
    np.savez(
        data,
        X_train=np.ascontiguousarray(ws.X[train], dtype=np.float32),  # (n, channels, time)
        y_train=np.asarray(ws.y[train], dtype=np.int64),
        X_val=np.ascontiguousarray(ws.X[val], dtype=np.float32),
        y_val=np.asarray(ws.y[val], dtype=np.int64),
        num_classes=np.int64(len(ws.class_names)),
    )
    keep = ("model", "arch", "optim", "seed")
    plan = {
        "epochs": epochs,
        "trials": [{"number": t["number"], "params": t["params"], **{k: t["spec"][k] for k in keep}} for t in trials],
    }
    specs = folder / "specs.json"
    specs.write_text(json.dumps(plan, indent=2))
    return specs, data


def same_specs(sweep: list[dict[str, Any]], script: list[dict[str, Any]]) -> list[str]:
    """Differences between what the sweep and the script trained (empty: the same networks and optimiser)."""
    from ape_nas.models import arch_defaults

    defaults = arch_defaults()
    diffs = []
    for a, b in zip(sweep, script, strict=True):
        s = a["spec"]
        arch_a = {**defaults[s["model"]], **s["arch"]}
        arch_b = {**defaults.get(b["model"], {}), **b["arch"]}
        optim_a = {k: s["optim"][k] for k in ("lr", "weight_decay", "batch_size", "optimizer")}
        if (s["model"], arch_a, optim_a, s["seed"]) != (b["model"], arch_b, b["optim"], b["seed"]):
            diffs.append(f"trial {a['number']}: sweep {s['model']} {arch_a} {optim_a} vs script {b}")
    return diffs


def sweep_phases(trials: list[dict[str, Any]], command: tuple[float, float]) -> dict[str, float]:
    """Where the sweep command's time goes: before its first trial's MLflow run (imports, cache load, study,
    parent run, HRV baseline), in trial runs outside their epochs (cost measurement, test evaluation,
    checkpoints, logging), between trial runs (sampling, storage), after the last (plots, summary)."""
    spans = sorted(t["run_span"] for t in trials)
    in_runs = sum(end - start for start, end in spans)
    epochs = sum(sum(t["epoch_s"]) for t in trials)
    return {
        "before_first_trial": spans[0][0] - command[0],
        "in_trials_outside_epochs": in_runs - epochs if epochs else float("nan"),
        "between_trials": sum(b[0] - a[1] for a, b in itertools.pairwise(spans)),
        "after_last_trial": command[1] - spans[-1][1],
    }


def throughput(trials: list[dict[str, Any]], key: str, windows: int) -> float | None:
    times = [t for trial in trials for t in trial[key]]
    return round(windows / statistics.median(times), 1) if times else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=1, help="alternate the three sides this many times")
    ap.add_argument("--keep", type=Path, help="work in this (new) folder and keep it: logs, stores, specs")
    args = ap.parse_args()

    if args.keep is not None:
        args.keep.mkdir(parents=True)
        tmp, root = None, args.keep.resolve()
    else:
        tmp = tempfile.TemporaryDirectory(prefix="peer-speed-")
        root = Path(tmp.name)
    py = sys.executable
    base = root / "base"
    # the window cache, once; every sweep's fresh work directory gets it hard-linked: no side pays preprocessing
    timed(
        [py, "-m", "ape_nas", "data", "prepare", str(EXPERIMENT), "--workdir", str(base), *_sets(args.epochs)],
        root / "prepare.log",
    )

    walls: dict[str, list[float]] = {s: [] for s in SIDES}
    runs: dict[str, list[list[dict[str, Any]]]] = {s: [] for s in SIDES}
    specs = data = None
    spec_digests: list[list[str]] = []
    phases: list[dict[str, float]] = []
    for r in range(args.repeat):
        rep = root / f"r{r}"
        rep.mkdir()
        workdir = rep / "sweep"
        workdir.mkdir()
        shutil.copytree(base / "cache", workdir / "cache", copy_function=os.link)
        sweep_cmd = [py, "-m", "ape_nas", "sweep", str(EXPERIMENT), "--trials", str(args.trials)]
        walls["sweep"].append(timed([*sweep_cmd, "--workdir", str(workdir), *_sets(args.epochs)], rep / "sweep.log"))
        trials = sweep_trials(workdir)
        if len(trials) != args.trials:
            sys.exit(f"the sweep completed {len(trials)} of {args.trials} trials; see {rep / 'sweep.log'}")
        runs["sweep"].append(trials)
        phases.append(sweep_phases(trials, SPANS[rep / "sweep.log"]))
        spec_digests.append([json.dumps(t["spec"], sort_keys=True) for t in trials])
        if specs is None:
            specs, data = write_inputs(trials, base / "cache", args.epochs, root)
        script_timings, raw_timings = rep / "script.json", rep / "raw.json"
        walls["script"].append(
            timed(
                [
                    py,
                    str(PEER / "optuna_lightning_script.py"),
                    "--specs",
                    str(specs),
                    "--data",
                    str(data),
                    "--tracking-uri",
                    f"sqlite:///{rep / 'script-mlflow.db'}",
                    "--timings",
                    str(script_timings),
                ],
                rep / "script.log",
            )
        )
        walls["raw"].append(
            timed(
                [
                    py,
                    str(PEER / "raw_loop.py"),
                    "--specs",
                    str(specs),
                    "--data",
                    str(data),
                    "--timings",
                    str(raw_timings),
                ],
                rep / "raw.log",
            )
        )
        script_out, raw_out = json.loads(script_timings.read_text()), json.loads(raw_timings.read_text())
        runs["script"].append(script_out["trials"])
        runs["raw"].append(raw_out["trials"])

    first = runs["sweep"][0]
    diffs = same_specs(first, runs["script"][0])
    if diffs:
        sys.exit("the script did not train the sweep's trials:\n" + "\n".join(diffs))
    n_train, n_val = script_out["windows_train"], script_out["windows_val"]
    if (first[0]["windows_train"], first[0]["windows_val"]) != (n_train, n_val):
        sys.exit(
            f"windows differ: sweep {first[0]['windows_train']}/{first[0]['windows_val']}, peers {n_train}/{n_val}"
        )
    windows = n_train + n_val

    def all_trials(side: str) -> list[dict[str, Any]]:
        return [t for rep in runs[side] for t in rep]

    wall = {s: round(statistics.median(walls[s]), 2) for s in SIDES}
    rate = {s: throughput(all_trials(s), "epoch_s", windows) for s in SIDES}
    gap_rate = throughput([t for t in all_trials("sweep") if t["epoch_gap_s"]], "epoch_gap_s", windows)

    def outside_epochs(side: str) -> float | None:
        """Median over repeats of the command's wall time minus its epochs' (None: epoch times not logged)."""
        if not all(t["epoch_s"] for t in all_trials(side)):
            return None
        spent = [w - sum(sum(t["epoch_s"]) for t in rep) for w, rep in zip(walls[side], runs[side], strict=True)]
        return round(statistics.median(spent), 2)

    outside = {s: outside_epochs(s) for s in SIDES}
    scores = [
        {
            "trial": a["number"],
            "model": a["spec"]["model"],
            **{s: round(runs[s][0][i]["best_val_f1"], 4) for s in SIDES},
        }
        for i, a in enumerate(first)
    ]
    result: dict[str, Any] = {
        "trials": args.trials,
        "epochs": args.epochs,
        "repeats": args.repeat,
        "windows_per_epoch": {"train": n_train, "val": n_val},
        "torch_threads": script_out["torch_threads"],
        "wall_s": wall,
        "wall_s_each_repeat": {s: [round(w, 2) for w in walls[s]] for s in SIDES},
        "sweep_over_script": round(wall["sweep"] / wall["script"], 3),
        "raw_over_script": round(wall["raw"] / wall["script"], 3),
        "outside_epochs_s": outside,
        "sweep_phases_s": {k: round(statistics.median(p[k] for p in phases), 2) for k in phases[0]},
        "epoch_windows_per_s": rate,
        "sweep_over_raw": round(rate["sweep"] / rate["raw"], 3) if rate["sweep"] else None,
        "script_over_raw": round(rate["script"] / rate["raw"], 3),
        "sweep_epoch_gap_windows_per_s": gap_rate,
        "same_specs_every_repeat": all(d == spec_digests[0] for d in spec_digests),
        "best_val_f1": scores,
        "max_f1_diff": {
            "sweep_vs_script": max(abs(x["sweep"] - x["script"]) for x in scores),
            "sweep_vs_raw": max(abs(x["sweep"] - x["raw"]) for x in scores),
        },
    }
    if rate["sweep"] is None:
        result["note"] = (
            "ape-nas logs no epoch_s metric in its trial runs: sweep throughput is null; "
            "sweep_epoch_gap_windows_per_s estimates it from consecutive val_f1_macro timestamps"
        )
    print_table(result)
    report("peer_speed", result)
    if tmp is not None:
        tmp.cleanup()
    else:
        print(f"kept: {root}")


def print_table(result: dict[str, Any]) -> None:
    wall, rate = result["wall_s"], result["epoch_windows_per_s"]
    print(
        f"\n{result['trials']} trials x {result['epochs']} epochs, {result['repeats']} repeat(s); "
        f"{result['windows_per_epoch']['train']} + {result['windows_per_epoch']['val']} windows per epoch"
    )
    outside = result["outside_epochs_s"]
    print(f"{'side':<27} {'wall s':>9} {'/ script':>9} {'outside epochs s':>17} {'epoch windows/s':>16} {'/ raw':>7}")
    for s in SIDES:
        r, o = rate[s], outside[s]
        ratio = f"{r / rate['raw']:.3f}" if r else "-"
        print(
            f"{LABELS[s]:<27} {wall[s]:>9.2f} {wall[s] / wall['script']:>9.3f} {o if o is not None else '-':>17} "
            f"{r if r else 'null':>16} {ratio:>7}"
        )
    phases = ", ".join(f"{k.replace('_', ' ')} {v} s" for k, v in result["sweep_phases_s"].items())
    print(f"  sweep outside epochs: {phases}")
    if rate["sweep"] is None and result["sweep_epoch_gap_windows_per_s"]:
        print(f"  (sweep, from val_f1_macro timestamp gaps: {result['sweep_epoch_gap_windows_per_s']} windows/s)")
    print(f"\n{'trial':>5} {'model':<9} {'sweep F1':>9} {'script F1':>10} {'raw F1':>8}")
    for x in result["best_val_f1"]:
        print(f"{x['trial']:>5} {x['model']:<9} {x['sweep']:>9.4f} {x['script']:>10.4f} {x['raw']:>8.4f}")
    print()


if __name__ == "__main__":
    main()
