"""Orchestration above the TrialSpec line: validate everything, open study and parent run, run trials.

``prepare_sweep`` does every check that can fail on user input before anything is written (no study, no MLflow
run, no work directory); ``run_sweep`` then creates them and drives the backend.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ape_nas.backends import Backend, TrialRecord, make_backend
from ape_nas.baseline import BaselineResult, hrv_baseline
from ape_nas.config.experiment import ExperimentConfig, load_experiment
from ape_nas.console import make_console
from ape_nas.errors import UserError
from ape_nas.progress import SweepProgress, best_of
from ape_nas.space import Space, load_space
from ape_nas.tracking import SweepTracker, TrialRun, default_tracking_uri

STALE_NOTE = "worker died (no heartbeat)"


@dataclass
class SweepPlan:
    """A fully validated sweep: nothing has been written yet."""

    experiment: ExperimentConfig
    space: Space
    backend: Backend
    workdir: Path
    tracking_uri: str


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
) -> SweepPlan:
    """Load and check experiment, space, models and backend options. Raises UserError; writes nothing."""
    overrides = list(overrides or [])
    if backend is not None:
        overrides.append(f"backend.name={backend}")
    experiment = load_experiment(experiment_path, overrides)
    space = load_space(experiment.space_path)
    from ape_nas.models import get_family, list_models

    space.check_families({name: get_family(name).arch_defaults for name in list_models()})
    workdir = Path(workdir)
    engine = make_backend(experiment.backend["name"], experiment=experiment, workdir=workdir, storage=storage)
    engine.validate()
    return SweepPlan(
        experiment=experiment,
        space=space,
        backend=engine,
        workdir=workdir,
        tracking_uri=tracking_uri or default_tracking_uri(workdir),
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
        text += f"; skipped subjects: {', '.join(f'{k} ({v})' for k, v in skipped.items())}"
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


def open_sweep(plan: SweepPlan, console: Console | None = None, *, join: bool = False) -> SweepSession:
    """Prepare data (before anything else is written), open the study and the MLflow parent run.

    The parent run is the one recorded in the study if it exists in this tracking store; otherwise a new one
    is created and recorded. Workers of the same study call this too and share the recorded parent: the
    check-and-create runs under the study's mutex (``backend.exclusive``), so workers starting at once end up
    with ONE parent. ``join=True`` (workers): a study that records another MLflow tracking store is an error.
    """
    from ape_nas.data.prepare import prepare_windows
    from ape_nas.trial_runner import TrialRunner

    exp, space, backend = plan.experiment, plan.space, plan.backend
    cache_dir = plan.workdir / "cache"
    console = console or make_console(stderr=True)
    with console.status(f"preparing windows of {exp.data['benchmark']} (cached after the first run)") as status:
        windows = prepare_windows(  # data problems surface before any study or run exists
            exp.data, cache_dir, progress=lambda s: status.update(f"windows of {exp.data['benchmark']}: {s}")
        )
    console.print(data_line(windows))

    backend.open(create=True)
    recorded = backend.attrs().get("tracking_uri")
    if join and recorded not in (None, plan.tracking_uri):
        raise UserError(
            f"study {exp.name!r} logs to MLflow at {recorded}, this worker would log to {plan.tracking_uri}: "
            f"pass --tracking-uri {recorded}"
        )
    if hasattr(backend, "on_stale_trial"):  # a trial whose worker died: its MLflow run ends FAILED
        backend.on_stale_trial = lambda record: _close_stale_run(plan.tracking_uri, record)

    def tracker_() -> SweepTracker:
        return SweepTracker(plan.tracking_uri, exp.name, artifact_root=plan.workdir / "artifacts")

    # A store the study already records exists: open it outside the mutex. A new one (first run) is created
    # inside it, so that concurrent workers do not initialise the same MLflow database at once.
    tracker = tracker_() if recorded == plan.tracking_uri else None
    exclusive = getattr(backend, "exclusive", None)
    with exclusive("mlflow-parent") if exclusive is not None else nullcontext():
        tracker = tracker or tracker_()
        attrs = backend.attrs()
        same_store = attrs.get("tracking_uri") == plan.tracking_uri
        parent = tracker.open_parent(
            attrs.get("mlflow_parent_run_id") if same_store else None,
            name=f"sweep-{exp.name}",
            tags={
                "ape_nas.study": exp.name,
                "ape_nas.backend": backend.name,
                "ape_nas.storage": getattr(backend, "storage_label", backend.storage_url),
                "data_fingerprint": windows.fingerprint,
            },
            params=_parent_params(exp),
        )
        backend.set_attrs(
            {
                "mlflow_parent_run_id": parent.run_id,
                "tracking_uri": plan.tracking_uri,
                "mlflow_experiment_id": tracker.experiment_id,
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
        experiment_name=exp.name,
        tracking_uri=plan.tracking_uri,
        parent_run_id=parent.run_id,
        cache_dir=str(cache_dir),
    )
    runner._space, runner._tracker = space, tracker  # this process already has them
    return SweepSession(
        plan=plan, windows=windows, tracker=tracker, parent=parent, runner=runner, baseline=baseline, console=console
    )


def run_sweep(
    plan: SweepPlan, *, n_trials: int | None = None, timeout_s: float | None = None, progress: bool = True
) -> SweepOutcome:
    """Run a validated sweep: prepare data once, open study + MLflow parent run, add ``n_trials`` trials."""
    exp, backend = plan.experiment, plan.backend
    n_trials = n_trials if n_trials is not None else exp.budget["trials"]
    timeout_s = timeout_s if timeout_s is not None else exp.budget["timeout_s"]
    session = open_sweep(plan)
    tracker, parent, runner = session.tracker, session.parent, session.runner
    before = {r.number for r in backend.records()}
    metric = exp.objective["metric"]
    display = SweepProgress(n_trials, exp.direction, metric, enabled=progress)

    interrupted = False
    started = time.time()
    try:
        with display:
            backend.run(
                runner, n_trials, timeout_s, on_trial_end=display.trial_finished, on_trial_start=display.trial_started
            )
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        tracker.finish_parent("FAILED")  # never leave the parent run RUNNING
        raise
    records = backend.records()
    best = best_of(records, exp.direction)
    _finish_parent(tracker, backend, records, best, metric, time.time() - started, interrupted)
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
    """Write counts, best trial, plots and trials.json to the parent run and end it.

    ``status``: the MLflow status to end with ("" = FINISHED, or KILLED when interrupted); None leaves the
    status as it is (a worker leaving while other workers' trials still run).
    """
    parent = tracker.parent
    assert parent is not None
    counts = {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "failed")}
    parent.log_metrics({f"trials_{k}": float(v) for k, v in counts.items()} | {"last_run_seconds": elapsed})
    if best is not None:
        parent.log_metrics({f"best_val_{metric}": float(best.value)})
        parent.set_tags({"best_trial_number": best.number, "best_run_id": best.run_id or "", "best_value": best.value})
        test = best.attrs.get("test_metrics") or {}
        if test:
            parent.log_metrics({f"best_trial_{k}": float(v) for k, v in test.items()})
    import matplotlib.pyplot as plt

    for name, fig in backend.figures().items():
        parent.log_figure(fig, f"plots/{name}")
        plt.close(fig)
    parent.log_text(json.dumps([r.to_dict() for r in records], indent=2, default=str), "trials.json")
    if status is not None:
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

    A sweep run with ``--backend ray`` keeps its study in the Ray backend's store: when the experiment file's
    backend has no such study in the work directory (and neither ``--storage`` nor ``backend.name`` was given),
    the other backends' default stores are tried, so ``status`` finds the sweep without repeating ``--backend``.
    """
    experiment = load_experiment(experiment_path, overrides)
    backend = make_backend(experiment.backend["name"], experiment=experiment, workdir=Path(workdir), storage=storage)
    try:
        backend.open(create=False)
    except UserError:
        explicit = storage is not None or any(o.split("=", 1)[0].strip() == "backend.name" for o in overrides or [])
        found = None if explicit else _study_of_other_backend(experiment_path, experiment, workdir, overrides)
        if found is None:
            raise
        return found
    return experiment, backend


def _study_of_other_backend(
    experiment_path: str | Path, experiment: ExperimentConfig, workdir: str | Path, overrides: list[str] | None
) -> tuple[ExperimentConfig, Backend] | None:
    from ape_nas.backends import BACKENDS

    for name in BACKENDS:
        if name == experiment.backend["name"]:
            continue
        try:
            other = load_experiment(experiment_path, [*(overrides or []), f"backend.name={name}"])
            backend = make_backend(name, experiment=other, workdir=Path(workdir), storage=None)
            backend.open(create=False)
        except UserError:
            continue
        return other, backend
    return None
