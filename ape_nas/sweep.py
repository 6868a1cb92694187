"""Orchestration above the TrialSpec line: validate everything, open study and parent run, run trials.

``prepare_sweep`` does every check that can fail on user input before anything is written (no study, no MLflow
run, no work directory); ``run_sweep`` then creates them and drives the backend.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ape_nas.backends import Backend, TrialRecord, make_backend
from ape_nas.baseline import BaselineResult, hrv_baseline
from ape_nas.config.experiment import ExperimentConfig
from ape_nas.console import make_console
from ape_nas.errors import KeyedError, UserError
from ape_nas.experiments import load_experiment, located
from ape_nas.interrupts import Interrupted
from ape_nas.progress import SweepProgress, best_of
from ape_nas.space import Space, load_space
from ape_nas.tracking import (
    BEST_RUN_TAG,
    EXPERIMENT_ATTR,
    PARENT_RUN_ATTR,
    SweepTracker,
    TrialRun,
    TrialStore,
    default_tracking_uri,
    preload,
)

STALE_NOTE = "worker died (no heartbeat)"
IDENTITY_ATTR = "ape_nas.identity"  # study user attr: what makes the study's trials comparable
TRAINING_IDENTITY = ("max_epochs", "patience", "precision")  # training keys that change a trial's score


@dataclass
class SweepPlan:
    """A fully validated sweep: nothing has been written yet."""

    experiment: ExperimentConfig
    space: Space
    backend: Backend
    workdir: Path
    tracking_uri: str
    new_study: bool = False  # the experiment differs from its study: continue under a derived name
    tracking_experiment: str | None = None  # default: the study's name (outer folds of a nested run: the nested name)
    parent_tags: dict[str, str] = field(default_factory=dict)  # extra tags of the parent run (nesting)

    @property
    def tracking_name(self) -> str:
        return self.tracking_experiment or self.experiment.name


@dataclass
class SweepOutcome:
    records: list[TrialRecord]
    best: TrialRecord | None
    parent_run_id: str
    tracking_uri: str
    storage: str
    new_trials: list[int] = field(default_factory=list)
    interrupted: bool = False
    baseline: BaselineResult | None = None


def prepare_sweep(
    experiment_path: str | Path,
    *,
    overrides: list[str] | None = None,
    workdir: str | Path = "runs",
    tracking_uri: str | None = None,
    storage: str | None = None,
    backend: str | None = None,
    new_study: bool = False,
) -> SweepPlan:
    """Load and check experiment, space, models and backend options. Raises UserError; writes nothing."""
    overrides = list(overrides or [])
    if backend is not None:
        overrides.append(f"backend.name={backend}")
    experiment = load_experiment(experiment_path, overrides)
    space = load_space(experiment.space_path)
    from ape_nas.models import arch_defaults

    space.check_families(arch_defaults())
    space.check_inputs(experiment.data)
    workdir = Path(workdir)
    engine = make_backend(experiment.backend["name"], experiment=experiment, workdir=workdir, storage=storage)
    engine.validate()
    return SweepPlan(
        experiment=experiment,
        space=space,
        backend=engine,
        workdir=workdir,
        tracking_uri=tracking_uri or default_tracking_uri(workdir),
        new_study=new_study,
    )


def prepare_from_args(args: Any, **extra: Any) -> SweepPlan:
    """:func:`prepare_sweep` for a command's arguments (experiment, typed flags, workdir, tracking URI, storage)."""
    from ape_nas.config.flags import flag_overrides

    return prepare_sweep(
        args.experiment,
        overrides=flag_overrides(args),
        workdir=args.workdir,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        **extra,
    )


def data_line(windows: Any) -> str:
    """One line on the data a sweep trains on: subjects, windows, class balance, rejections, skipped subjects."""
    counts = [int((windows.y == k).sum()) for k in range(len(windows.class_names))]
    balance = ", ".join(f"{c} {n}" for c, n in zip(windows.class_names, counts, strict=True))
    dropped = ", ".join(f"{r} {n}" for r, n in windows.stats.get("dropped_total", {}).items() if n)
    skipped = windows.stats.get("skipped", {})
    text = (
        f"data: {len(windows.subjects)} subjects, {len(windows.y)} windows ({balance}) of "
        f"{windows.X.shape[2]} samples at {windows.rate_hz:g} Hz"
    )
    if dropped:
        text += f"; windows dropped: {dropped}"
    if skipped:
        from ape_nas.data.prepare import skip_summary

        text += f"; {skip_summary(skipped, len(skipped) + len(windows.subjects))}"
    notes = windows.stats.get("warnings") or []
    if notes:
        text += f"; {len(notes)} reader warning{'s' if len(notes) > 1 else ''}: {notes[0]}" + (
            " …" if len(notes) > 1 else ""
        )
    return text


def baseline_line(baseline: BaselineResult, metric: str) -> str:
    if metric not in baseline.val:
        return f"HRV baseline ({baseline.n_features} features, same splits): see hrv_baseline.json"
    return (
        f"HRV baseline (logistic regression on {baseline.n_features} HRV features, same splits): "
        f"val {metric} {baseline.val[metric]:.4f}, test {baseline.test[metric]:.4f}"
    )


def _parent_params(experiment: ExperimentConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {"space": experiment.space_path.name, "seed": experiment.seed}
    for section in ("data", "protocol", "objective", "training", "backend"):
        for key, value in getattr(experiment, section).items():
            if key != "storage":
                flat[f"{section}.{key}"] = json.dumps(value) if isinstance(value, dict | list) else value
    return flat


@dataclass
class SweepSession:
    """A sweep's opened resources: windows prepared, study opened, MLflow parent run open, runner ready."""

    plan: SweepPlan
    windows: Any
    tracker: SweepTracker
    parent: Any
    runner: Any
    baseline: BaselineResult | None
    console: Console


# ---------------------------------------------------------------------------------------------------------------
# study identity: what makes the trials of one study comparable
# ---------------------------------------------------------------------------------------------------------------


def study_identity(exp: ExperimentConfig, fingerprint: str, splits: list[Any]) -> dict[str, Any]:
    """Data fingerprint, protocol and its subject split, objective, score-changing training keys and seed."""
    return {
        "data_fingerprint": fingerprint,
        "protocol": {k: v for k, v in exp.protocol.items()},
        "split": [s.to_dict() for s in splits],
        "objective": {
            "metric": exp.objective["metric"],
            "direction": exp.direction,
            **({"costs": exp.objective["costs"]} if exp.objective["costs"] else {}),  # older studies keep theirs
            **({"constraints": exp.objective["constraints"]} if exp.objective["constraints"] else {}),
        },
        "training": {k: exp.training[k] for k in TRAINING_IDENTITY},
        "seed": exp.seed,
    }


def _flat(identity: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in identity.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": json.dumps(v, sort_keys=True) for k, v in value.items()})
        else:
            out[key] = json.dumps(value, sort_keys=True)
    return out


def identity_diff(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``["data_fingerprint", "protocol.test_subjects", ...]``: keys whose values differ (the split last)."""
    a, b = _flat(recorded), _flat(current)
    return [k for k in sorted(set(a) | set(b), key=lambda k: (k == "split", k)) if a.get(k) != b.get(k)]


def _describe_diff(recorded: dict[str, Any], current: dict[str, Any], keys: list[str]) -> str:
    a, b = _flat(recorded), _flat(current)
    parts = []
    for key in keys:
        if key == "split":
            parts.append("split (other subjects)")
        elif key == "data_fingerprint":
            was, now = (json.loads(d[key]) if key in d else "-" for d in (a, b))
            parts.append(f"data fingerprint ({was} → {now})")
        else:
            parts.append(f"{key} ({a.get(key, '-')} → {b.get(key, '-')})")
    return ", ".join(parts)


def comparable(records: list[TrialRecord], attrs: dict[str, Any]) -> list[TrialRecord]:
    """Trials made on the study's data: never compare trials across data fingerprints.

    The study's fingerprint is its recorded identity's, else (a study from before identities) the latest
    trial's. Trials without a recorded fingerprint are kept (nothing says they differ). A trial's
    ``data_fingerprint`` attr is the fingerprint of the study it ran in (the experiment's windows), also when
    the space chose its inputs (its own windows: attr ``input_fingerprint``), so input choices of one study are
    compared with each other, while a study whose data changed is not.
    """
    fp = (attrs.get(IDENTITY_ATTR) or {}).get("data_fingerprint")
    if fp is None:
        marked = [r for r in records if r.attrs.get("data_fingerprint")]
        fp = marked[-1].attrs["data_fingerprint"] if marked else None
    return [r for r in records if fp is None or r.attrs.get("data_fingerprint", fp) == fp]


def subject_classes(windows: Any) -> dict[str, set[int]]:
    """Subject id → the classes of its windows (what the partition checks of every protocol look at)."""
    import numpy as np

    return {s: set(np.unique(windows.y[windows.groups == i]).tolist()) for i, s in enumerate(windows.subjects)}


def check_data(exp: ExperimentConfig, windows: Any) -> list[Any]:
    """The protocol against the windows: subject counts, every partition's classes. Returns the splits."""
    from ape_nas.data.splits import check_balance, make_splits

    try:
        splits = make_splits(exp.protocol, windows.subjects)
        check_balance(splits, subject_classes(windows), windows.class_names, exp.protocol["kind"])
    except KeyedError as err:
        raise located(exp, err) from None
    return splits


def _bind_study(plan: SweepPlan, identity: dict[str, Any], console: Console) -> bool:
    """Refuse (or, with ``--new-study``, step aside from) a study whose trials were made on something else.

    ``--new-study``: the first of ``<name>-2``, ``<name>-3`` ... that is free or has this identity (so the
    same command resumes it); the plan's experiment and backend take that name (study and MLflow experiment).
    Returns whether the bound study exists already.
    """
    exp, backend = plan.experiment, plan.backend
    base, k = exp.name, 1
    while True:
        exists = backend.exists()
        recorded = backend.attrs().get(IDENTITY_ATTR) if exists else None
        diff = identity_diff(recorded, identity) if recorded else []
        if not diff:
            break
        if not plan.new_study:
            raise UserError(
                f"study {exp.name!r} in {backend.storage_label} holds trials made on other data or protocol: "
                f"{_describe_diff(recorded, identity, diff)}; their scores cannot be compared with new ones. "
                f"Give this experiment another name (--set name={exp.name}-2) or pass --new-study"
            )
        k += 1
        exp = dataclasses.replace(plan.experiment, name=f"{base}-{k}")
        backend.rename(exp)
        backend.study = None
    if exp.name != base:
        plan.experiment = exp
        console.print(
            f"[yellow]--new-study: study {base!r} was made on other data or protocol; this sweep uses study "
            f"{exp.name!r} (pass --set name={exp.name} to status, best, reproduce and export)[/yellow]"
        )
    return exists


# ---------------------------------------------------------------------------------------------------------------
# nothing half-written: what a failed or interrupted start must undo
# ---------------------------------------------------------------------------------------------------------------


class _Undo:
    """Remembers what the work directory held before a sweep started writing, and removes what it added.

    Undone on any error (or interrupt) before the first trial: a study this command created (deleted), the
    MLflow parent run (a new one deleted, a resumed one set back to its status), a new MLflow experiment, and
    files and folders new in the work directory or its cache. ``shared=True`` (workers of one study: another
    worker may be using what this one just created) only closes the parent run.
    """

    def __init__(self, workdir: Path, shared: bool) -> None:
        self.workdir, self.shared = workdir, shared
        self.existed = workdir.exists()
        self.entries = self._entries()
        self.study_created = False
        self.tracker: SweepTracker | None = None

    def _entries(self) -> set[str]:
        if not self.workdir.is_dir():
            return set()
        found = set(os.listdir(self.workdir))
        cache = self.workdir / "cache"
        if cache.is_dir():
            found |= {f"cache/{name}" for name in os.listdir(cache)}
        return found

    def __call__(self, backend: Backend) -> None:
        tracker = self.tracker
        if tracker is not None:
            with suppress(Exception):
                tracker.undo_parent(delete=not self.shared)
        if self.shared:
            return
        if self.study_created and backend.study is not None:
            with suppress(Exception):
                if not backend.records():
                    backend.delete()
        if not self.existed:
            shutil.rmtree(self.workdir, ignore_errors=True)
            return
        for name in sorted(self._entries() - self.entries, reverse=True):
            path = self.workdir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with suppress(OSError):
                    path.unlink()


def open_sweep(plan: SweepPlan, console: Console | None = None, *, join: bool = False) -> SweepSession:
    """Prepare and check the data, bind the study, open it and the MLflow parent run.

    Everything that can be checked is checked before anything is written: the protocol against the data's
    subjects and classes, and the study's identity (:func:`study_identity`) against a study of that name. If
    anything fails later (or the user interrupts) before the first trial, what this call wrote is undone.

    The parent run is the one recorded in the study if it exists in this tracking store; otherwise a new one
    is created and recorded. Workers of the same study call this too and share the recorded parent: the
    check-and-create runs under the study's mutex (``backend.exclusive``), so workers starting at once end up
    with ONE parent. ``join=True`` (workers): a study that records another MLflow tracking store is an error.
    """
    console = console or make_console(stderr=True)
    undo = _Undo(plan.workdir, shared=join)
    try:
        return _open(plan, console, join, undo)
    except BaseException:
        undo(plan.backend)
        raise


def _open(plan: SweepPlan, console: Console, join: bool, undo: _Undo) -> SweepSession:
    from ape_nas.dashboard import dashboard_command
    from ape_nas.data.prepare import prepare_windows
    from ape_nas.trial_runner import TrialRunner

    space, backend = plan.space, plan.backend
    cache_dir = plan.workdir / "cache"
    identity: dict[str, Any] = {}

    def check(ws: Any) -> None:  # before the cache entry, the study or any run is written
        splits = check_data(plan.experiment, ws)
        identity.update(study_identity(plan.experiment, ws.fingerprint, splits))
        undo.study_created = not _bind_study(plan, identity, console)

    exp = plan.experiment
    with console.status(f"preparing windows of {exp.data['benchmark']} (cached after the first run)") as status:
        try:
            windows = prepare_windows(
                exp.data,
                cache_dir,
                progress=lambda s: status.update(f"windows of {exp.data['benchmark']}: {s}"),
                check=check,
            )
        except KeyedError as err:
            raise located(exp, err) from None
    exp = plan.experiment  # --new-study may have renamed it
    console.print(data_line(windows))

    backend.open(create=True)
    if hasattr(backend, "use_subjects"):  # Ray: the scheduler's steps per trial are folds (loso: one per subject)
        backend.use_subjects(windows.subjects)
    recorded = backend.attrs().get("tracking_uri")
    if join and recorded not in (None, plan.tracking_uri):
        raise UserError(
            f"study {exp.name!r} logs to MLflow at {recorded}, this worker would log to {plan.tracking_uri}: "
            f"pass --tracking-uri {recorded}"
        )
    if not backend.attrs().get(IDENTITY_ATTR):
        backend.set_attrs({IDENTITY_ATTR: identity})
    if hasattr(backend, "on_stale_trial"):  # a trial whose worker died: its MLflow run ends FAILED
        backend.on_stale_trial = lambda record: _close_stale_run(plan.tracking_uri, record)

    def tracker_() -> SweepTracker:
        tracker = SweepTracker(plan.tracking_uri, plan.tracking_name, artifact_root=plan.workdir / "artifacts")
        undo.tracker = tracker
        return tracker

    # A store the study already records exists: open it outside the mutex. A new one (first run) is opened inside
    # it, so that concurrent workers do not initialise the same MLflow database at once; what can safely happen
    # before (imports; a new SQLite file, copied from the template and linked into place) does, so that workers
    # starting together do not queue behind each other's imports.
    tracker = tracker_() if recorded == plan.tracking_uri else None
    if tracker is None:
        preload(plan.tracking_uri)  # imports and a new store's file: outside the mutex, workers do them at once
    exclusive = getattr(backend, "exclusive", None)
    with exclusive("tracking-parent") if exclusive is not None else nullcontext():
        tracker = tracker or tracker_()
        attrs = backend.attrs()
        same_store = attrs.get("tracking_uri") == plan.tracking_uri
        parent = tracker.open_parent(
            attrs.get(PARENT_RUN_ATTR) if same_store else None,
            name=f"sweep-{exp.name}",
            tags={
                "ape_nas.study": exp.name,
                "ape_nas.backend": backend.name,
                "ape_nas.storage": getattr(backend, "storage_label", backend.storage_url),
                "ape_nas.dashboard": dashboard_command(exp, plan.workdir, backend.storage_url),
                "data_fingerprint": windows.fingerprint,
                **plan.parent_tags,
            },
            params=_parent_params(exp),
        )
        backend.set_attrs(
            {
                PARENT_RUN_ATTR: parent.run_id,
                "tracking_uri": plan.tracking_uri,
                EXPERIMENT_ATTR: tracker.experiment_id,
            }
        )
    parent.log_text(json.dumps(exp.to_dict(), indent=2, default=str), "experiment.json")
    parent.log_text(Path(space.path).read_text(), f"space/{Path(space.path).name}")
    summary = {
        "subjects": windows.subjects,
        "class_names": windows.class_names,
        "rate_hz": windows.rate_hz,
        "windows": len(windows.y),
        **windows.stats,
    }
    parent.log_text(json.dumps(summary, indent=2), "data_summary.json")
    baseline = hrv_baseline(windows, exp.protocol, exp.seed)
    if baseline is not None:
        parent.log_metrics(baseline.metrics())
        parent.log_text(json.dumps(asdict(baseline), indent=2, default=float), "hrv_baseline.json")
        console.print(baseline_line(baseline, exp.objective["metric"]))
    runner = TrialRunner(
        space_path=str(space.path),
        base=exp.base(),
        experiment_name=plan.tracking_name,
        study=exp.name,
        tracking_uri=plan.tracking_uri,
        parent_run_id=parent.run_id,
        cache_dir=str(cache_dir),
        data_fingerprint=windows.fingerprint,
        costs=list(exp.objective["costs"]),
        constraints=dict(exp.objective["constraints"]),
    )
    runner._space, runner._tracker = space, tracker  # this process already has them
    return SweepSession(
        plan=plan, windows=windows, tracker=tracker, parent=parent, runner=runner, baseline=baseline, console=console
    )


def run_sweep(
    plan: SweepPlan, *, n_trials: int | None = None, timeout_s: float | None = None, progress: bool = True
) -> SweepOutcome:
    """Run a validated sweep: prepare data once, open study + MLflow parent run, add ``n_trials`` trials.

    An interrupt (SIGINT/SIGTERM, see :mod:`ape_nas.interrupts`) during the trials fails the running trial in
    the study and in MLflow (note ``interrupted (SIGINT)``), ends the parent run KILLED and returns with
    ``interrupted=True``; before the first trial it undoes the start (see :func:`open_sweep`) and propagates.
    """
    n_trials = n_trials if n_trials is not None else plan.experiment.budget["trials"]
    timeout_s = timeout_s if timeout_s is not None else plan.experiment.budget["timeout_s"]
    session = open_sweep(plan)
    exp, backend = plan.experiment, plan.backend
    before = {r.number for r in backend.records()}
    display = SweepProgress(n_trials, exp.direction, exp.objective["metric"], enabled=progress)
    with display:
        done = run_trials(
            session, n_trials, timeout_s, on_trial_end=display.trial_finished, on_trial_start=display.trial_started
        )
    records, best, interrupted = done.records, done.best, done.interrupted
    parent = session.parent
    return SweepOutcome(
        records=records,
        best=best,
        parent_run_id=parent.run_id,
        tracking_uri=plan.tracking_uri,
        storage=getattr(backend, "storage_label", backend.storage_url),
        new_trials=sorted({r.number for r in records} - before),
        interrupted=interrupted,
        baseline=session.baseline,
    )


@dataclass
class TrialsDone:
    """What :func:`run_trials` leaves: the study's records after it, its best comparable trial, what happened."""

    records: list[TrialRecord]
    best: TrialRecord | None
    started: set[int]  # trial numbers this process started
    interrupted: bool
    elapsed_s: float


def run_trials(
    session: SweepSession,
    n_trials: int,
    timeout_s: float | None,
    *,
    on_trial_end: Callable[[TrialRecord], None] | None = None,
    on_trial_start: Callable[[int, str], None] | None = None,
    shared: bool = False,
) -> TrialsDone:
    """Run ``n_trials`` trials of an opened sweep and write the parent run's summary: the one loop behind
    ``ape-nas sweep`` and ``ape-nas worker``.

    An interrupt fails the trials this process started that still run (study and MLflow) and ends the parent
    KILLED; any other error ends it FAILED and is raised after the summary is written. ``shared`` (workers
    on one study): a trial start marks the parent RUNNING again, trials of dead workers are failed first and
    last, and the parent is ended only when no trial of the study still runs (the last worker ends it).
    """
    exp, backend, tracker = session.plan.experiment, session.plan.backend, session.tracker
    mine: set[int] = set()

    def started(number: int, model: str) -> None:
        mine.add(number)
        if shared:  # a worker that left while no trial was running may have ended the parent: it runs again
            with suppress(Exception):  # bookkeeping only: never fail a trial for it
                session.parent.mark_running()
        if on_trial_start is not None:
            on_trial_start(number, model)

    if shared:
        backend.fail_stale_trials()  # trials of workers that died: failed and queued again before we start
    t0 = time.time()
    interrupted, error = False, None
    try:
        backend.run(session.runner, n_trials, timeout_s, on_trial_end=on_trial_end, on_trial_start=started)
    except (KeyboardInterrupt, Interrupted) as exc:
        interrupted = True
        close_interrupted(backend, tracker, mine, str(exc) or "interrupted")
    except BaseException as exc:
        error = exc
    try:
        if shared:
            backend.fail_stale_trials()
        records = backend.records()
        best = best_of(comparable(records, backend.attrs()), exp.direction)
        running = shared and any(r.state == "running" for r in records)
        status = None if running else ("FAILED" if error is not None else "")
        if exp.multi_objective and tracker.parent is not None:  # before the parent run ends
            log_front(tracker.parent, exp, comparable(records, backend.attrs()), session.baseline)
        _finish_parent(tracker, backend, records, best, exp.objective["metric"], time.time() - t0, interrupted, status)
    except BaseException:
        if error is None:
            raise
        tracker.finish_parent("FAILED")  # never leave the parent run RUNNING; the first error is the one to see
    if error is not None:
        raise error
    return TrialsDone(records, best, mine, interrupted, time.time() - t0)


def log_front(parent: Any, exp: ExperimentConfig, records: list[TrialRecord], baseline: Any) -> None:
    """A multi-objective sweep's Pareto front on its parent run: ``pareto.json`` and ``plots/pareto.png`` (every
    trial, the front, the HRV baseline's validation score as the reference line)."""
    from ape_nas import pareto

    metric = exp.objective["metric"]
    points = pareto.front(records, exp.directions)
    doc = {"objectives": exp.objectives, "directions": exp.directions, "constraints": exp.objective["constraints"]}
    doc["front"] = pareto.payload(points, exp.objectives, metric)
    ref = baseline.val.get(metric) if baseline is not None else None
    doc["hrv_baseline_val"] = ref
    parent.log_metrics({"pareto_size": float(len(points))})
    parent.log_text(json.dumps(doc, indent=2, default=str), "pareto.json")
    if points:
        import matplotlib.pyplot as plt

        fig = pareto.figure(records, exp.objectives, exp.directions, baseline=ref, title=exp.name)
        parent.log_figure(fig, "plots/pareto.png")
        plt.close(fig)


def close_interrupted(backend: Backend, tracker: SweepTracker, mine: set[int], note: str) -> None:
    """Trials this process started that still run after an interrupt: failed in the study and in MLflow.

    (Optuna fails the trial it was running itself; this covers an interrupt that came between its
    bookkeeping steps. Ray's interrupted trials stay resumable and are left to the Ray backend.)
    """
    fail = getattr(backend, "fail_trials", None)
    running = [r.number for r in backend.records() if r.state == "running" and r.number in mine]
    if fail is not None and running:
        fail(running, note)
    if tracker.parent is not None:
        TrialStore(tracker.tracking_uri).repair_running(tracker.parent.run_id, lambda r: r.number not in mine, note)


def _finish_parent(
    tracker: SweepTracker,
    backend: Backend,
    records: list[TrialRecord],
    best: TrialRecord | None,
    metric: str,
    elapsed: float,
    interrupted: bool,
    status: str | None = "",
) -> None:
    """Write counts and the best trial to the parent run; then plots and trials.json, and end it.

    ``status``: the MLflow status to end with ("" = FINISHED, or KILLED when interrupted); None leaves the
    status, plots and trials.json as they are (a worker leaving while other workers' trials still run: the last
    worker to leave writes them, once).
    """
    parent = tracker.parent
    assert parent is not None
    counts = {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "rejected", "failed")}
    parent.log_metrics({f"trials_{k}": float(v) for k, v in counts.items()} | {"last_run_seconds": elapsed})
    if best is not None:
        parent.log_metrics({f"best_val_{metric}": float(best.value)})
        parent.set_tags({"best_trial_number": best.number, BEST_RUN_TAG: best.run_id or "", "best_value": best.value})
        test = best.attrs.get("test_metrics") or {}
        if test:
            parent.log_metrics({f"best_trial_{k}": float(v) for k, v in test.items()})
    if status is None:  # other workers' trials still run: the last worker to leave draws the plots
        return
    import matplotlib.pyplot as plt

    for name, fig in backend.figures().items():
        parent.log_figure(fig, f"plots/{name}")
        plt.close(fig)
    parent.log_text(json.dumps([r.to_dict() for r in records], indent=2, default=str), "trials.json")
    tracker.finish_parent(status or ("KILLED" if interrupted else "FINISHED"))


def _close_stale_run(tracking_uri: str, record: TrialRecord) -> None:
    """The MLflow run of a trial that Optuna failed because its worker stopped beating: end it FAILED."""
    if record.run_id:
        TrialRun(tracking_uri, record.run_id).close("failed", STALE_NOTE)


def load_status(
    experiment_path: str | Path,
    *,
    workdir: str | Path = "runs",
    storage: str | None = None,
    overrides: list[str] | None = None,
) -> tuple[ExperimentConfig, Backend]:
    """Open an existing study for reading (``status`` / ``best``); a missing study is a UserError.

    Unless ``--storage``, ``backend.storage`` or ``backend.name`` (``--backend``) says where the study is, every
    backend's default store in the work directory is looked at: the one that holds the study is used (a sweep
    run with ``--backend ray`` is found without repeating it); if several hold it, that is a UserError listing
    them, so that ``status`` never silently shows one of two sweeps.
    """
    from ape_nas.backends import BACKENDS

    experiment = load_experiment(experiment_path, overrides)
    explicit = (
        storage is not None
        or experiment.backend["storage"] is not None
        or any(o.split("=", 1)[0].strip() == "backend.name" for o in overrides or [])
    )
    own = make_backend(experiment.backend["name"], experiment=experiment, workdir=Path(workdir), storage=storage)
    if explicit:
        own.open(create=False)
        return experiment, own
    found: list[tuple[ExperimentConfig, Backend]] = []
    first_error: UserError | None = None
    for name in sorted(BACKENDS, key=lambda n: n != experiment.backend["name"]):
        try:
            exp = (
                experiment
                if name == experiment.backend["name"]
                else load_experiment(experiment_path, [*(overrides or []), f"backend.name={name}"])
            )
            backend = own if exp is experiment else make_backend(name, experiment=exp, workdir=Path(workdir))
            backend.open(create=False)
        except UserError as err:
            first_error = first_error or err
            continue
        found.append((exp, backend))
    if not found:
        assert first_error is not None
        raise first_error
    if len(found) > 1:
        where = ", ".join(f"{b.name} ({b.storage_label}, {len(b.records())} trials)" for _, b in found)
        raise UserError(
            f"study {experiment.name!r} exists in {len(found)} stores of {workdir}: {where}; choose one with "
            + " or ".join(f"--backend {b.name}" for _, b in found)
        )
    return found[0]
