"""Parallel efficiency of ``ape-nas worker``: trials/hour with 1 and 2 workers at one torch thread each and with one
worker at 2 threads, on the same tiny trials, and where the time goes.

    python benchmarks/parallel_efficiency.py [--trials 12] [--epochs 3] [--repeat 2] [--space fixed|quickstart]

Configurations, each a fresh study (one journal file per command) on the same warm window cache and MLflow store:
``1w1t`` = ``--workers 1 --set training.num_threads=1``, ``2w1t`` = ``--workers 2 --set training.num_threads=1``,
``1w2t`` = ``--workers 1 --set training.num_threads=2``; run in that order, ``--repeat`` times (medians reported).
Trials: the quickstart experiment (data, protocol), random sampler, no pruning, ``--epochs`` epochs. The default
space holds ONE network (the quickstart's cnn1d at its middle size; dropout, lr and weight decay sampled), so every
trial costs the same whichever worker draws it; ``--space quickstart`` uses the quickstart's own space (cnn1d or
resnet1d of several sizes: trials differ in cost, and each worker samples with its own seed).

Throughput, three ways:
- ``wall``: trials / the command's wall time (start, imports, study and MLflow setup, trials, plots, exit);
- ``steady``: per worker process, its trials / (its last trial's end - its first trial's start), summed over the
  workers: the rate while trials run;
- ``warm``: the same from each worker's second trial on (the first one imports Lightning, onnx ...: ~5 s more).
Efficiency = throughput(2 workers) / (2 × throughput(1 worker)), each way. ``per_trial_s``: a trial's mean duration
in the storage (Optuna's start to complete), in Optuna's ``_run_trial`` (ask, objective, tell), inside ``run_trial``
and in training (Lightning's ``fit``, with its per-epoch validation).

Where the time goes: every Python process of the command is traced (``_phase_trace.py``, loaded through a generated
``sitecustomize`` on PYTHONPATH; ape-nas itself is unchanged): ``timeline_s`` cuts each command's wall time into
spawn (the ``--workers N`` parent before its workers exist), start to first trial, trials (first start to last end,
any worker), after the last trial, after the workers exited; ``excess_2w_s`` is, per part, 2w1t's time minus half
of 1w1t's (their sum, ``total``: 2w1t's wall time beyond perfect scaling). ``per_worker_s`` breaks one worker's
time down (mean over the workers of a command): before the first trial (interpreter, CLI and experiment checks,
windows, study, MLflow store, parent-run mutex wait, parent run, HRV baseline), trials (inside ``run_trial``,
training, test evaluation and checkpoint, cost measurement, MLflow writes, storage calls, the first trial's extra
time and the imports inside trials), gaps between trials, after the last trial (plots), garbage collection, CPU
seconds per wall second in trials. ``imports_s``: first imports of heavy packages per worker; ``idle_tail_s``: how
long one worker had finished its trials while another still ran one.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _phase_trace import ENV as TRACE_ENV
from _phase_trace import site_dir
from _report import report

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "quickstart.yaml"
CONFIGS = {"1w1t": (1, 1), "2w1t": (2, 1), "1w2t": (1, 2)}  # name -> (workers, torch threads per worker)
FIXED_SPACE = """\
description: the quickstart's cnn1d at its middle size, the only network (parallel_efficiency benchmark)
models:
  cnn1d: {depth: 4, width: 16, kernel_size: 7, pool: 4, dropout: {type: float, low: 0.0, high: 0.3}}
optim:
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  weight_decay: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
  batch_size: 64
"""


def _ape(*args: str) -> list[str]:
    return [sys.executable, "-m", "ape_nas", *args]


def _worker_command(workers: int, threads: int, args: argparse.Namespace, workdir: Path, storage: str, name: str):
    sets = [
        "backend.sampler=random",
        "backend.sampler_options={}",
        "backend.pruner=none",
        "backend.pruner_options={}",
        f"training.max_epochs={args.epochs}",
        f"training.patience={args.epochs}",
        f"training.num_threads={threads}",
        f"name={name}",
    ]
    if args.space_file is not None:
        sets.append(f"space={args.space_file}")
    return _ape(
        "worker",
        str(EXPERIMENT),
        "--workers",
        str(workers),
        "--trials",
        str(args.trials),
        "--workdir",
        str(workdir),
        "--storage",
        storage,
        *[a for s in sets for a in ("--set", s)],
    )


def _run(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    t0 = time.time()
    with log.open("w") as out:
        code = subprocess.run(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode
    t1 = time.time()
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-20:])
        raise SystemExit(f"{' '.join(cmd)}\nexited {code}:\n{tail}")
    return t0, t1


def _storage_trials(storage: str, name: str) -> list[tuple[str, float, float]]:
    """(state, start, end) of the study's trials, as the storage recorded them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    store: Any = storage
    if storage.startswith("journal://"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        store = JournalStorage(JournalFileBackend(storage[len("journal://") :]))
    else:
        from ape_nas.dburl import with_pg_driver

        store = with_pg_driver(storage, "--storage")
    study = optuna.load_study(study_name=name, storage=store)
    return [
        (t.state.name, t.datetime_start.timestamp(), t.datetime_complete.timestamp())
        for t in study.get_trials(deepcopy=False)
        if t.datetime_start is not None and t.datetime_complete is not None
    ]


# ---------------------------------------------------------------------------------------------------------------
# reading the traces
# ---------------------------------------------------------------------------------------------------------------


def _spans(proc: dict[str, Any], name: str, lo: float = float("-inf"), hi: float = float("inf")) -> list[list[Any]]:
    return sorted((s for s in proc["spans"] if s[0] == name and s[1] >= lo and s[2] <= hi), key=lambda s: s[1])


def _sum(proc: dict[str, Any], name: str, lo: float = float("-inf"), hi: float = float("inf")) -> float:
    return sum(s[2] - s[1] for s in _spans(proc, name, lo, hi))


def _union(p: dict[str, Any], prefixes: tuple[str, ...], windows: list[list[Any]]) -> float:
    """Seconds covered by spans whose name starts with one of ``prefixes``, inside the windows (nested calls and
    overlaps counted once)."""
    total = 0.0
    for w in windows:
        cut = sorted((max(s[1], w[1]), min(s[2], w[2])) for s in p["spans"] if s[0].startswith(prefixes))
        end = w[1]
        for a, b in cut:
            if b > max(a, end):
                total += b - max(a, end)
                end = b
    return total


MLFLOW = ("TrialRun.", "SweepTracker.start_trial")
STORAGE = ("_Handle.",)


def _worker_phases(p: dict[str, Any]) -> dict[str, float]:
    """One worker process's time, cut at: experiment checked, study and parent run open, first trial start, last
    trial end, exit; with the parts inside each."""
    runs = _spans(p, "_run_trial")
    checked = _spans(p, "prepare_sweep")[0][2]
    opened = _spans(p, "open_sweep")[0]
    o0, o1 = opened[1], opened[2]
    first, last = runs[0][1], runs[-1][2]
    windows = _sum(p, "prepare_windows", o0, o1)
    bind = _sum(p, "_bind_study", o0, o1)
    store = _sum(p, "SweepTracker.__init__", o0, o1)
    wait = _sum(p, "OptunaBackend.exclusive.wait", o0, o1)
    parent = _sum(p, "SweepTracker.open_parent", o0, o1) + _sum(p, "TrialRun.log_text", o0, o1)
    hrv = _sum(p, "hrv_baseline", o0, o1)
    whole = [s[2] - s[1] for s in runs]
    inner = sum(_sum(p, "run_trial", s[1], s[2]) for s in runs)
    fit = sum(_sum(p, "fit", s[1], s[2]) for s in runs)
    folds = sum(_sum(p, "_fit_fold", s[1], s[2]) for s in runs)
    test = folds - fit + sum(_sum(p, "_test_uncertainty", s[1], s[2]) for s in runs)
    cost = sum(_sum(p, "network_cost", s[1], s[2]) for s in runs)
    mlflow, storage = _union(p, MLFLOW, runs), _union(p, STORAGE, runs)
    known = _union(p, ("fit", "_fit_fold", "_test_uncertainty", "network_cost", *MLFLOW, *STORAGE), runs)
    return {
        "start_to_first_trial": first - p["start"],
        "  python_cli_checks": checked - p["start"],
        "  windows_cache": windows - bind,
        "  study_bind": bind,
        "  mlflow_store": store,
        "  mutex_wait": wait,
        "  parent_run": parent,
        "  hrv_baseline": hrv,
        "  open_other": (o1 - o0) - (windows + store + wait + parent + hrv),
        "  rest": (o0 - checked) + (first - o1),
        "trials": sum(whole),
        "  in_run_trial": inner,
        "  training_fit": fit,
        "  test_eval_checkpoint": test,
        "  cost_measure": cost,
        "  mlflow_writes": mlflow,
        "  storage_calls": storage,
        "  other": sum(whole) - known,
        "  first_trial_extra": whole[0] - statistics.median(whole[1:]) if len(whole) > 1 else 0.0,
        "  imports_in_trials": sum(v[1] for v in p["imports"].values() if first <= v[0] <= last),
        "between_trials": sum(b[1] - a[2] for a, b in itertools.pairwise(runs)),
        "after_last_trial": p["exit"] - last,
        "  finish_parent": _sum(p, "_finish_parent", last),
        "  plots": _sum(p, "OptunaBackend.figures", last) + _sum(p, "TrialRun.log_figure", last),
        "imports_before_first_trial": sum(v[1] for v in p["imports"].values() if v[0] < first),
        "garbage_collection": p.get("gc", {}).get("seconds", 0.0),
        "cpu_per_wall_in_trials": sum(s[4] - s[3] for s in runs) / sum(whole),  # < threads: waited for a core
        "lifetime": p["exit"] - p["start"],
        "n_trials": float(len(runs)),
    }


def _analyse(traces: list[dict[str, Any]], t0: float, t1: float, trials: list[tuple[str, float, float]]):
    workers = [p for p in traces if _spans(p, "run_trials") and _spans(p, "_run_trial")]
    if not workers:
        raise SystemExit("no traced worker ran a trial (is the tracer loaded? see _phase_trace.py)")
    phases = [_worker_phases(p) for p in workers]
    firsts = [_spans(p, "_run_trial")[0][1] for p in workers]
    lasts = [_spans(p, "_run_trial")[-1][2] for p in workers]
    start, exit_ = min(p["start"] for p in workers), max(p["exit"] for p in workers)
    complete = [t for t in trials if t[0] == "COMPLETE"]
    training = sum(ph["  training_fit"] for ph in phases)
    missing = sorted({m for p in traces for m in p.get("missing", [])})
    if missing:
        print(f"warning: not traced (renamed?): {', '.join(missing)}", file=sys.stderr)
    steady = sum(ph["n_trials"] / (last - first) for ph, first, last in zip(phases, firsts, lasts, strict=True))
    # after each worker's first trial (its imports of Lightning, onnx...): the rate of the trial loop itself
    seconds = [_spans(p, "_run_trial")[1:] for p in workers]
    warm = sum(len(s) / (s[-1][2] - s[0][1]) for s in seconds if s)
    flat: dict[str, float] = {
        "wall_s": t1 - t0,
        "complete": float(len(complete)),
        "trials_per_hour_wall": len(complete) / (t1 - t0) * 3600,
        "trials_per_hour_steady": steady * 3600,
        "trials_per_hour_warm": warm * 3600,
        "training_share_of_trial": training / sum(t[2] - t[1] for t in trials),
        "training_share_of_wall": training / (len(workers) * (t1 - t0)),
        "per_trial.in_storage": statistics.fmean(t[2] - t[1] for t in trials),
        "per_trial.in_optuna_trial": sum(ph["trials"] for ph in phases) / sum(ph["n_trials"] for ph in phases),
        "per_trial.in_run_trial": sum(ph["  in_run_trial"] for ph in phases) / sum(ph["n_trials"] for ph in phases),
        "per_trial.training_fit": training / sum(ph["n_trials"] for ph in phases),
        "timeline.spawn": start - t0,
        "timeline.start_to_first_trial": min(firsts) - start,
        "timeline.trials": max(lasts) - min(firsts),
        "timeline.after_last_trial": exit_ - max(lasts),
        "timeline.after_workers": t1 - exit_,
        "idle_tail_s": max(lasts) - min(lasts),  # a worker done with its trials while another still trains
    }
    for key in phases[0]:
        flat[f"worker.{key}"] = statistics.fmean(ph[key] for ph in phases)
    for name in sorted({n for p in workers for n in p["imports"]}):
        flat[f"imports.{name}"] = statistics.fmean(p["imports"].get(name, [0, 0.0])[1] for p in workers)
    parents = [p for p in traces if _spans(p, "spawn_workers")]
    if parents:  # --workers N: the parent process before and after its workers
        p = parents[0]
        flat["parent.checks"] = _sum(p, "prepare_sweep")
        flat["parent.windows"] = _sum(p, "prepare_windows")
        flat["parent.after_workers_study"] = _sum(p, "OptunaBackend.open", exit_) + _sum(p, "OptunaBackend.records")
    return flat


# ---------------------------------------------------------------------------------------------------------------


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = [k for k in runs[0] if all(k in r for r in runs)]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def _group(flat: dict[str, float], prefix: str, digits: int = 2) -> dict[str, float]:
    return {k[len(prefix) :].strip(): round(v, digits) for k, v in flat.items() if k.startswith(prefix)}


def _table(res: dict[str, dict[str, float]], prefix: str, title: str) -> None:
    keys = [k[len(prefix) :] for k in next(iter(res.values())) if k.startswith(prefix)]
    print(f"\n{title}")
    print(f"{'':<30}" + "".join(f"{c:>10}" for c in res))
    for key in keys:
        print(f"{key:<30}" + "".join(f"{res[c].get(prefix + key, float('nan')):>10.2f}" for c in res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=12, help="trials per command (2 workers: half each)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2, help="rounds of the three configurations (medians reported)")
    ap.add_argument("--space", choices=("fixed", "quickstart"), default="fixed")
    ap.add_argument("--storage", default="journal", help="journal (a file per command) or a database server URL")
    ap.add_argument("--configs", default=",".join(CONFIGS), help="which configurations, comma-separated")
    ap.add_argument("--keep", type=Path, help="keep the work directory (logs, traces, stores) here")
    args = ap.parse_args()
    configs = [c.strip() for c in args.configs.split(",")]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        ap.error(f"--configs: unknown {unknown}; known: {', '.join(CONFIGS)}")
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        workdir = base / "work"
        args.space_file = None
        if args.space == "fixed":
            args.space_file = base / "fixed_space.yaml"
            args.space_file.write_text(FIXED_SPACE)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site_dir(base / "site")), env.get("PYTHONPATH", "")) if p)
        (base / "logs").mkdir(exist_ok=True)
        _run(_ape("data", "prepare", str(EXPERIMENT), "--workdir", str(workdir)), env, base / "logs" / "prepare.log")
        tag = uuid.uuid4().hex[:6]

        def storage_of(name: str) -> str:
            if args.storage == "journal":
                return f"journal://{base / 'studies' / (name + '.log')}"
            return args.storage

        # untimed: creates the MLflow store and warms the page cache, as a second sweep in a work directory finds
        warm = argparse.Namespace(**{**vars(args), "trials": 1})
        name = f"bench-warmup-{tag}"
        _run(_worker_command(1, 1, warm, workdir, storage_of(name), name), env, base / "logs" / "warmup.log")
        runs: dict[str, list[dict[str, float]]] = {c: [] for c in configs}
        for rep in range(args.repeat):
            for config in configs:
                workers, threads = CONFIGS[config]
                name = f"bench-{config}-{rep}-{tag}"
                trace = base / "traces" / name
                trace.mkdir(parents=True)
                cmd = _worker_command(workers, threads, args, workdir, storage_of(name), name)
                t0, t1 = _run(cmd, {**env, TRACE_ENV: str(trace)}, base / "logs" / f"{name}.log")
                traces = [json.loads(f.read_text()) for f in sorted(trace.glob("*.json"))]
                flat = _analyse(traces, t0, t1, _storage_trials(storage_of(name), name))
                runs[config].append(flat)
                print(
                    f"{config} round {rep + 1}: {flat['wall_s']:.1f} s, {flat['complete']:.0f} trials, "
                    f"{flat['trials_per_hour_wall']:.0f}/h wall, {flat['trials_per_hour_steady']:.0f}/h steady, "
                    f"{flat['trials_per_hour_warm']:.0f}/h warm",
                    flush=True,
                )
    res = {c: _median(r) for c, r in runs.items()}
    _table(res, "per_trial.", "one trial (mean; s)")
    _table(res, "timeline.", "timeline of a command (s)")
    _table(res, "worker.", "one worker (mean over a command's workers; s)")
    _table(res, "imports.", "first imports per worker (s, without the timed imports inside)")

    def ratio(a: str, b: str, key: str, times: float = 1.0) -> float | None:
        if a in res and b in res:
            return round(res[a][key] / (times * res[b][key]), 3)
        return None

    result: dict[str, Any] = {
        "trials": args.trials,
        "epochs": args.epochs,
        "space": args.space,
        "storage": args.storage,
        "repeats": args.repeat,
        "wall_s": {c: round(r["wall_s"], 1) for c, r in res.items()},
        "trials_per_hour_wall": {c: round(r["trials_per_hour_wall"]) for c, r in res.items()},
        "trials_per_hour_steady": {c: round(r["trials_per_hour_steady"]) for c, r in res.items()},
        "trials_per_hour_warm": {c: round(r["trials_per_hour_warm"]) for c, r in res.items()},
        "training_share_of_trial": {c: round(r["training_share_of_trial"], 3) for c, r in res.items()},
        "training_share_of_wall": {c: round(r["training_share_of_wall"], 3) for c, r in res.items()},
        "efficiency_2w_wall": ratio("2w1t", "1w1t", "trials_per_hour_wall", 2),
        "efficiency_2w_steady": ratio("2w1t", "1w1t", "trials_per_hour_steady", 2),
        "efficiency_2w_warm": ratio("2w1t", "1w1t", "trials_per_hour_warm", 2),
        "training_per_trial_2w_over_1w": ratio("2w1t", "1w1t", "per_trial.training_fit"),
        "speedup_1w2t_over_1w1t_wall": ratio("1w2t", "1w1t", "trials_per_hour_wall"),
        "speedup_1w2t_over_1w1t_steady": ratio("1w2t", "1w1t", "trials_per_hour_steady"),
        "speedup_1w2t_over_1w1t_warm": ratio("1w2t", "1w1t", "trials_per_hour_warm"),
        "2w1t_over_1w2t_wall": ratio("2w1t", "1w2t", "trials_per_hour_wall"),
        "2w1t_over_1w2t_steady": ratio("2w1t", "1w2t", "trials_per_hour_steady"),
        "2w1t_over_1w2t_warm": ratio("2w1t", "1w2t", "trials_per_hour_warm"),
        "per_trial_s": {c: _group(r, "per_trial.") for c, r in res.items()},
        "timeline_s": {c: _group(r, "timeline.") for c, r in res.items()},
        "per_worker_s": {c: _group(r, "worker.") for c, r in res.items()},
        "parent_s": {c: _group(r, "parent.") for c, r in res.items() if any(k.startswith("parent.") for k in r)},
        "imports_s": {c: _group(r, "imports.") for c, r in res.items()},
        "idle_tail_s": {c: round(r["idle_tail_s"], 2) for c, r in res.items()},
    }
    if "1w1t" in res and "2w1t" in res:
        one, two = res["1w1t"], res["2w1t"]
        result["excess_2w_s"] = {
            k[len("timeline.") :]: round(two[k] - one[k] / 2, 2) for k in one if k.startswith("timeline.")
        } | {"total": round(two["wall_s"] - one["wall_s"] / 2, 2)}
    keys = ("wall_s", "trials_per_hour_wall", "trials_per_hour_steady", "trials_per_hour_warm")
    # each round's wall time and trials/hour (wall, steady, warm): how much the medians hide
    result["rounds"] = {c: [[round(r[k], 1) for k in keys] for r in rs] for c, rs in runs.items()}
    print()
    report("parallel_efficiency", result)


if __name__ == "__main__":
    main()
