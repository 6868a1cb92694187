"""``ape-nas worker``: join a study as one more Optuna worker, or spawn ``--workers N`` of them on this machine.

Scale-out uses what the engines already do: Optuna shares the study through its storage (PostgreSQL or any
SQLAlchemy server URL; a journal file on a shared file system), every worker asks the study for its next trial,
and Optuna's heartbeat fails the trials of workers that died (each retried once with the same parameters).
There is no scheduler here: start workers however you like (shell, Slurm array, ``--workers N``).

MLflow parent run: workers starting at once agree on ONE parent through the study's mutex (see
``sweep.open_sweep``). Every worker, when it leaves, writes the study's counts, best trial, plots and
``trials.json`` to the parent; it ends the parent FINISHED (KILLED after Ctrl+C, FAILED after an error) only when
no trial of the study is running any more, so the last worker to leave writes the final state. A worker starting
a trial marks the parent RUNNING again.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import IO, Any

from ape_nas import interrupts
from ape_nas.errors import UserError
from ape_nas.interrupts import Interrupted
from ape_nas.progress import best_of, fmt

SEVERAL_WORKERS_HINT = (
    "use a database server (--storage postgresql://user:pass@host/db) or a journal file on a shared file system "
    "(--storage journal:///path/study.log)"
)


def cli_worker(args: argparse.Namespace) -> int:
    """Entry point of ``ape-nas worker`` (see ``ape_nas.cli``)."""
    from ape_nas.sweep import prepare_from_args

    if args.workers < 1:
        raise UserError(f"--workers {args.workers}: expected 1 or more")
    if args.trials is not None and args.trials < 1:
        raise UserError(f"--trials {args.trials}: expected 1 or more")
    plan = prepare_from_args(args)
    if plan.experiment.protocol["kind"] == "nested" or getattr(args, "outer_fold", None) is not None:
        from ape_nas.nested import is_nested, plan_for_fold

        if not is_nested(plan.experiment) or args.outer_fold is None:
            raise UserError(
                f"{plan.experiment.name!r}: a worker joins one study; nested experiments need --outer-fold K "
                "and --outer-fold needs a nested experiment"
            )
        plan = plan_for_fold(plan, args.outer_fold)
    backend = plan.backend
    kind = getattr(backend, "storage_kind", None)
    if kind is None:
        raise UserError(f"backend {backend.name!r} has no shared study: `ape-nas worker` needs backend.name=optuna")
    if args.workers > 1 and kind == "sqlite":
        raise UserError(
            f"--workers {args.workers} cannot share the SQLite study {backend.storage_url}: {SEVERAL_WORKERS_HINT}"
        )
    if args.workers == 1:
        return run_worker(plan)
    return spawn_workers(args, plan)


def _label() -> str:
    return os.environ.get("APE_NAS_WORKER_LABEL") or f"{socket.gethostname()}:{os.getpid()}"


def _say(text: str) -> None:
    print(f"[{_label()}] {text}", flush=True)


def _sqlite_guard(backend: Any) -> AbstractContextManager[Any]:
    """One worker at a time on a SQLite study: an exclusive lock beside the database file, else a clear refusal."""
    from ape_nas.dburl import sqlite_path

    path = sqlite_path(backend.storage_url)
    if path is None:
        return nullcontext()
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = open(path.with_name(path.name + ".worker-lock"), "w")  # noqa: SIM115 (closed below)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UserError(
            f"another worker uses the SQLite study {backend.storage_url}; SQLite cannot serve several workers: "
            f"{SEVERAL_WORKERS_HINT}"
        ) from None

    class _Held(AbstractContextManager[None]):
        def __exit__(self, *exc: Any) -> None:
            handle.close()  # releases the lock

    return _Held()


def run_worker(plan: Any) -> int:
    """This process as one worker: open the shared study and parent run, run budget.trials trials, summarise."""
    from ape_nas.console import make_console
    from ape_nas.sweep import open_sweep, run_trials

    exp, backend = plan.experiment, plan.backend
    n_trials, timeout_s = exp.budget["trials"], exp.budget["timeout_s"]
    metric = exp.objective["metric"]
    with _sqlite_guard(backend):
        backend.use_parallel()
        session = open_sweep(plan, make_console(stderr=True), join=True)
        parent = session.parent
        storage = backend.storage_label
        _say(f"joined study {exp.name} ({storage}) · MLflow parent run {parent.run_id} · {n_trials} trials")
        mine: list[Any] = []

        def finished(record: Any) -> None:
            mine.append(record)
            retry = record.attrs.get("retry_of")
            note = f"  (retry of trial {retry})" if retry is not None else ""
            if record.state == "failed" and record.attrs.get("error"):
                note += f"  {record.attrs['error'][:120]}"
            _say(
                f"trial {record.number:>4}  {record.state:<8} {metric} {fmt(record.value)}  "
                f"{fmt(record.duration_s, 1)} s  {record.model}{note}"
            )

        done = run_trials(session, n_trials, timeout_s, on_trial_end=finished, shared=True)
    records, best, interrupted = done.records, done.best, done.interrupted
    running = [r.number for r in records if r.state == "running"]
    counts = {s: sum(r.state == s for r in mine) for s in ("complete", "pruned", "failed")}
    study = {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "failed", "running", "waiting")}
    mine_text = ", ".join(f"{v} {k}" for k, v in counts.items() if v) or "none"
    study_text = ", ".join(f"{v} {k}" for k, v in study.items() if v) or "no trials"
    best_text = f"best trial {best.number} {metric} {fmt(best.value)}" if best else "no complete trial yet"
    parent_text = f"parent run {parent.run_id} " + (
        f"left RUNNING (trials {', '.join(map(str, running))} still running)"
        if running
        else ("KILLED" if interrupted else "FINISHED")
    )
    _say(
        f"done in {done.elapsed_s:.0f} s: {len(mine)} trials ({mine_text}) · study {exp.name} now "
        f"{len(records)} trials ({study_text}) · {best_text} · {parent_text}"
    )
    if interrupted:
        _say(interrupts.LINE)
        return interrupts.exit_code()
    return 0


def _gpu_ids() -> list[str]:
    """GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (the visible subset when already set).

    A CUDA build that cannot reach its GPUs (driver error, busy device) is a UserError, never a silent CPU
    run: ``CUDA_VISIBLE_DEVICES=`` (empty) runs the workers on CPU on purpose."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
    import warnings

    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            count = torch.cuda.device_count()
        except RuntimeError as exc:  # torch raises or warns, depending on where CUDA initialisation fails
            caught.append(warnings.WarningMessage(str(exc), RuntimeWarning, "", 0))
            count = 0
    cuda_problems = [str(w.message) for w in caught if "cuda" in str(w.message).lower()]
    if torch.version.cuda is not None and count == 0 and cuda_problems:
        first = " ".join(cuda_problems[0].split())[:200]
        raise UserError(
            f"CUDA is installed but no GPU can be used ({first}); fix the driver/device, "
            "or set CUDA_VISIBLE_DEVICES= (empty) to run the workers on CPU"
        )
    return [str(i) for i in range(count)]


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _shares(total: int, n: int) -> list[int]:
    """``total`` trials over ``n`` workers, as even as possible (the first ones take the remainder)."""
    return [total // n + (i < total % n) for i in range(n)]


def worker_commands(
    args: argparse.Namespace, plan: Any, gpus: list[str], cpus: int
) -> tuple[list[tuple[list[str], dict[str, str]]], int | None]:
    """The N ``ape-nas worker`` command lines and environments of ``--workers N``, and torch threads per worker.

    Each gets its share of the trials, GPU ``gpus[i % len(gpus)]`` (CUDA_VISIBLE_DEVICES) when there are GPUs,
    and ``cpus // N`` torch threads unless the experiment sets training.num_threads."""
    exp, backend, n = plan.experiment, plan.backend, args.workers
    threads = None if exp.training.get("num_threads") else max(1, cpus // n)
    common = ["--workdir", str(plan.workdir), "--storage", backend.storage_url, "--tracking-uri", plan.tracking_uri]
    if args.timeout is not None:
        common += ["--timeout", str(args.timeout)]
    if getattr(args, "outer_fold", None) is not None:
        common += ["--outer-fold", str(args.outer_fold)]
    for item in args.overrides:
        common += ["--set", item]
    if threads is not None:
        common += ["--set", f"training.num_threads={threads}"]
    out = []
    for i, share in enumerate(_shares(exp.budget["trials"], n)):
        env = dict(os.environ, APE_NAS_WORKER_LABEL=f"w{i + 1}/{n}")
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        if threads is not None:
            env.setdefault("OMP_NUM_THREADS", str(threads))
            env.setdefault("MKL_NUM_THREADS", str(threads))
        cmd = [sys.executable, "-m", "ape_nas", "worker", str(Path(args.experiment)), "--trials", str(share), *common]
        out.append((cmd, env))
    return out, threads


def spawn_workers(args: argparse.Namespace, plan: Any) -> int:
    """``--workers N``: N worker processes on this machine sharing the study; --trials is their total."""
    from ape_nas.data.prepare import prepare_windows

    exp, backend = plan.experiment, plan.backend
    n = args.workers
    total = exp.budget["trials"]
    if total < n:
        raise UserError(f"--workers {n} with {total} trials: some workers would have nothing to do")
    from ape_nas.sweep import check_data

    # once here, not N times at once in the workers; checked against the protocol before it is cached
    prepare_windows(exp.data, plan.workdir / "cache", check=lambda ws: check_data(exp, ws))
    gpus = _gpu_ids()
    commands, threads = worker_commands(args, plan, gpus, _cpus())
    print(
        f"ape-nas worker: {n} workers on {socket.gethostname()} for study {exp.name} ({backend.storage_label}), "
        f"{total} trials in all"
        + (f", {threads} torch threads each" if threads else "")
        + (f", GPUs {', '.join(gpus)} round robin" if gpus else ""),
        flush=True,
    )
    procs = [subprocess.Popen(cmd, env=env) for cmd, env in commands]
    codes: list[int] = []
    try:
        codes = [p.wait() for p in procs]
    except (KeyboardInterrupt, Interrupted):  # pass it on (a terminal's Ctrl+C reached them already: ignored
        signum = interrupts.received() or signal.SIGINT  # as a second signal), let them close their trials
        for p in procs:
            with suppress(ProcessLookupError):
                p.send_signal(signum)
        codes = [p.wait() for p in procs]
    from ape_nas.backends import make_backend
    from ape_nas.sweep import comparable

    study = make_backend(exp.backend["name"], experiment=exp, workdir=plan.workdir, storage=backend.storage_url)
    study.open(create=False)  # the plan's study (an outer fold's, for nested experiments)
    records = study.records()
    counts = {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "failed", "running", "waiting")}
    best = best_of(comparable(records, study.attrs()), exp.direction)
    print(
        f"ape-nas worker: {n} workers exited ({', '.join(map(str, codes))}) · study {exp.name}: {len(records)} trials "
        f"({', '.join(f'{v} {k}' for k, v in counts.items() if v)})"
        + (f" · best trial {best.number} {exp.objective['metric']} {fmt(best.value)}" if best else ""),
        flush=True,
    )
    bad = [c for c in codes if c != 0]
    if interrupts.received() is not None:
        print(f"ape-nas worker: {interrupts.LINE}", flush=True)
        return interrupts.exit_code()
    return next((c for c in bad if c in (130, 143)), bad[0] if bad else 0)


__all__ = ["cli_worker", "run_worker", "spawn_workers", "worker_commands"]
