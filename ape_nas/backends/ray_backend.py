"""Ray Tune backend: the experiment's space searched by OptunaSearch (define-by-run), trials run concurrently as
Ray actors, stopped early by an ASHA / Hyperband scheduler, resumed with ``Tuner.restore``.

What lives where (``<workdir>`` is ``--workdir``):

- ``<workdir>/ray.db`` (or ``backend.storage`` / ``--storage``): an Optuna study named after the experiment. It
  is OptunaSearch's own study (the sampler sees every earlier trial, so a re-run warm-starts the search) and the
  sweep's record: trial numbers (Optuna's, assigned when Ray asks for a point: stable across resume), states,
  values, intermediate values, user attributes. ``status`` / ``best`` read only this study (no Ray import).
- ``<workdir>/ray/<experiment>/run-NNN/``: Ray's experiment folder of each ``ape-nas sweep`` command, for
  ``Tuner.restore``. The study attribute ``ray_runs`` lists them with the trials each was asked for.

Trials: ``backend.max_concurrent`` at a time (``reuse_actors``: one trial actor serves trial after trial), each
with ``cpus_per_trial`` CPUs (torch threads follow; ``training.num_threads`` overrides) and ``gpus_per_trial``
GPUs (fractions pack several trials on one GPU). Each epoch's validation value goes to Ray (``tune.report``,
``step`` = epoch + 1, or fold + 1 for kfold/loso); the scheduler (``backend.scheduler``) is ASHA (``asha``),
asynchronous Hyperband (``hyperband``: ASHA over 3 brackets) or none (``fifo``), with ``max_t`` = last epoch - 1
so that every rung comes before the last epoch (a trial that trained all its epochs always completes) and
``grace_period`` 2; ``backend.scheduler_options`` override them (checked against the scheduler's signature).
``backend.pruner`` is not used by this backend.

States are written from the driver (a Tune callback) because only there is it known why a trial ended: its
final result arrived (complete), Ray's scheduler stopped it (pruned: the training thread sees Ray's own stop
signal, ``SystemExit`` out of ``tune.report``, ends its MLflow run pruned, and the driver closes the run pruned
too in case the actor is gone first), or it raised (failed; the MLflow run is closed failed by the trial).

Interrupt (Ctrl+C) and resume: Ray catches SIGINT in the driver, stops the running trials and saves its
experiment state; trial workers are in their own process groups and never see the signal. This backend closes
the interrupted trials' MLflow runs as KILLED (tag ``ape_nas.state=interrupted``; the study keeps them running)
and raises ``KeyboardInterrupt`` (the sweep ends "interrupted").
Re-running the same command restores that Ray experiment: finished trials are kept, interrupted ones restart
from scratch under their own trial numbers (their partial MLflow runs are deleted, so each trial keeps one
run), and only the trials still missing from that command's ``--trials`` run. Once a command has finished,
the next one adds ``--trials`` new trials in a new Ray experiment (trial numbers continue).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from ape_nas.backends.base import Backend, TrialFunction, TrialRecord
from ape_nas.backends.optuna_backend import OptunaBackend, trial_record
from ape_nas.config.experiment import ExperimentConfig
from ape_nas.dburl import hide_password, with_pg_driver
from ape_nas.errors import UserError
from ape_nas.reporting import TrialPruned
from ape_nas.schema import unknown_key_error

# Ray scheduler classes by exact name. "hyperband" is the asynchronous Hyperband (ASHA over several brackets):
# Ray's synchronous HyperBandScheduler pauses trials, which needs trial checkpoints that trials do not write.
SCHEDULERS: dict[str, str] = {
    "asha": "AsyncHyperBandScheduler",
    "hyperband": "AsyncHyperBandScheduler",
    "fifo": "FIFOScheduler",
}
NUMBER = "trial_number"  # config key holding the study's trial number (space parameters never look like this)
METRIC = "value"  # result key of the validation value (intermediate) or the score (final result)
STEP = "step"  # result key: 1-based epoch (or fold) = the scheduler's time attribute
FINAL = "final"  # result key present only in a trial's last result, after its MLflow run is closed
ATTRS = "attrs"  # result key: JSON of the trial attributes set since the last result
# scheduler arguments this backend sets itself (stop_last_trials=False: a trial that reaches max_t must finish
# its test evaluation and checkpoint, not be stopped at its last epoch report)
_OWNED = ("time_attr", "metric", "mode", "stop_last_trials")

# Live objects of the sweep in this (driver) process: the progress hooks and the deadline for starting trials.
# The searcher and the callback are pickled into Ray's experiment folder and restored from it, so they look
# these up here instead of holding them.
_LIVE: dict[str, Any] = {}


def default_storage(workdir: Path) -> str:
    return f"sqlite:///{(Path(workdir) / 'ray.db').resolve()}"


def _quiet_environment(local: bool) -> None:
    """Environment of a quiet Ray driver; set before Ray is imported. Explicit user settings win."""
    if local:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file and warning on a private cluster
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no configuration box, no tables
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/JSON/TensorBoard per trial
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # a failed trial is one line of the sweep's output
    for name in ("ray", "ray.tune", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


class _DefineByRun:
    """OptunaSearch's define-by-run function: the same ``Space.suggest`` the Optuna backend uses."""

    def __init__(self, space_path: str) -> None:
        self.space_path = space_path
        self._space: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"space_path": self.space_path, "_space": None}

    def __call__(self, trial: Any) -> dict[str, Any]:
        if self._space is None:
            from ape_nas.space import load_space

            self._space = load_space(self.space_path)
        values = self._space.suggest(trial)  # searched values are captured by OptunaSearch
        return {"model": values["model"]}  # a constant when the space has one family: the driver shows it


class _RayHandle:
    """A TrialHandle inside a Ray trial: the point was sampled already (config), reports go to Ray."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.number = int(config[NUMBER])
        self._config = config
        self.stopped = False
        self.step = 0
        self._unsent: dict[str, Any] = {}  # attributes not yet sent to the driver

    def _value(self, name: str) -> Any:
        if name not in self._config:
            raise KeyError(f"parameter {name!r} was not sampled for trial {self.number}")
        return self._config[name]

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self._value(name))

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self._value(name))

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._value(name)

    def set_attr(self, key: str, value: Any) -> None:
        self._unsent[key] = value

    def result(self, value: float, **extra: Any) -> dict[str, Any]:
        out = {METRIC: float(value), STEP: self.step, **extra}
        if self._unsent:
            out[ATTRS] = json.dumps(self._unsent, default=str)
            self._unsent = {}
        return out

    def report(self, value: float, step: int) -> bool:
        from ray import tune

        self.step = step + 1
        try:
            tune.report(self.result(value))
        except SystemExit:  # Ray's signal that this trial was stopped (by the scheduler, or the sweep ended)
            self.stopped = True
            return True
        return False


def _train(config: dict[str, Any], runner: TrialFunction, threads: int) -> None:
    """The Ray function trainable: one trial of ``runner`` (a TrialRunner) with its point from ``config``."""
    import torch
    from ray import tune

    torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS=1; match torch to the trial's CPUs
    handle = _RayHandle(config)
    try:
        score = runner(handle)
    except TrialPruned:
        if handle.stopped:  # the MLflow run is closed pruned; end without reporting again
            raise SystemExit(0) from None
        raise
    tune.report(handle.result(score, **{FINAL: True}))


INTERRUPTED = "interrupted_at"  # user attr of a trial stopped by an interrupt (Ray restarts it on resume)


def _term_as_sigint(signum: int, frame: Any) -> None:
    from ape_nas import interrupts

    interrupts.record(signum)
    os.kill(os.getpid(), signal.SIGINT)


def _trial_dirname(trial: Any) -> str:
    return f"trial-{int(trial.config.get(NUMBER, 0)):04d}-{trial.trial_id}"


def _error_line(trial: Any) -> str:
    """``Type: message`` of a failed Ray trial, from its error file (which holds Ray's whole traceback)."""
    text = ""
    with contextlib.suppress(Exception):
        text = Path(trial.error_file).read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):  # e.g. "ape_nas.models.registry.InvalidArchError: kernel_size must be odd"
        head, sep, message = ln.partition(":")
        name = head.rsplit(".", 1)[-1]
        if sep and name[:1].isupper() and head.replace(".", "").replace("_", "").isalnum():
            return f"{name}:{message}"[:1000]
    return (lines[-1] if lines else "the trial failed in Ray")[:1000]


def _rdb(url: str) -> optuna.storages.RDBStorage:
    """The study's storage: a plain RDB storage. No Optuna heartbeat: Ray notices dead trial actors itself."""
    engine: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return optuna.storages.RDBStorage(with_pg_driver(url, f"storage {hide_password(url)}"), engine_kwargs=engine)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"storage {hide_password(url)}: cannot open ({type(exc).__name__}: {exc})") from None


class _Book:
    """Driver-side writes to the study through Optuna's storage API (one place for states and attributes)."""

    def __init__(self, storage_url: str, study_name: str) -> None:
        self.storage = _rdb(storage_url)
        self.study_id = self.storage.get_study_id_from_name(study_name)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def frozen(self, number: int) -> optuna.trial.FrozenTrial:
        return self.storage.get_trial(self.trial_id(number))

    def set_attrs(self, number: int, values: dict[str, Any]) -> None:
        tid = self.trial_id(number)
        current = self.storage.get_trial(tid)
        if current.state.is_finished():
            return
        for key, value in values.items():
            if current.user_attrs.get(key) != value:
                self.storage.set_trial_user_attr(tid, key, value)

    def intermediate(self, number: int, step: int, value: float) -> None:
        tid = self.trial_id(number)
        ft = self.storage.get_trial(tid)
        if not ft.state.is_finished() and step not in ft.intermediate_values:  # a restarted trial reports again
            self.storage.set_trial_intermediate_value(tid, step, value)

    def finish(self, number: int, state: str, value: float | None = None) -> bool:
        """Set the final state once; False if the trial had finished already."""
        tid = self.trial_id(number)
        ft = self.storage.get_trial(tid)
        if ft.state.is_finished():
            return False
        states = optuna.trial.TrialState
        if state == "complete" and value is not None and math.isfinite(value):
            self.storage.set_trial_state_values(tid, states.COMPLETE, [value])
        elif state == "pruned":  # value: the last intermediate value, as Optuna does for pruned trials
            last = ft.intermediate_values[ft.last_step] if ft.last_step is not None else None
            values = [last] if last is not None and math.isfinite(last) else None
            self.storage.set_trial_state_values(tid, states.PRUNED, values)
        else:
            self.storage.set_trial_state_values(tid, states.FAIL, None)
        return True

    def running(self) -> list[optuna.trial.FrozenTrial]:
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """Start a quiet private local Ray (``address=None``) or join a running cluster (``ray start --head``).

    A sweep calls this itself, and shuts Ray down at its end; a process that calls it first (tests, notebooks)
    keeps its Ray across sweeps.
    """
    _quiet_environment(local=address is None)
    import ray

    try:
        ray.init(
            address=address or "local",  # "local": never attach to a stray cluster found in /tmp/ray
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            # trials keep the sweep's working directory (relative data paths, git commit of the runs)
            runtime_env={"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}},
            **kwargs,
        )
    except ConnectionError as exc:
        raise UserError(f"backend.address {address!r}: cannot join the Ray cluster ({exc})") from None


def _mlflow(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    from ape_nas.tracking import quiet_mlflow

    quiet_mlflow()
    return MlflowClient(tracking_uri=tracking_uri)


def _trial_runs(client: Any, experiment_id: str, parent_run_id: str, number: int) -> list[Any]:
    query = f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`ape_nas.trial_number` = '{number}'"
    return list(client.search_runs([experiment_id], query, max_results=100))


# --- classes with Ray base classes: defined on first use, so that importing this module (``status``, ``best``)
# does not import Ray (≈ 4 s). Pickle finds them by name through the module ``__getattr__`` below.


def _define_ray_classes() -> None:
    from ray.tune import Callback
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class _Search(OptunaSearch):
        """OptunaSearch whose points carry the study's trial number; states are written by ``_Recorder``."""

        def suggest(self, trial_id: str) -> dict | str | None:
            deadline = _LIVE.get("deadline")
            if deadline is not None and time.time() >= deadline:
                return Searcher.FINISHED  # timeout: start no more trials, let running ones finish
            params = super().suggest(trial_id)
            if params is None:
                return None
            return {**params, NUMBER: self._ot_trials[trial_id].number}

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            pass  # intermediate values are recorded per epoch by _Recorder (OptunaSearch would use iterations)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            self._completed_trials.add(trial_id)  # _Recorder knows why the trial ended and tells the study

    class _Recorder(Callback):
        """Driver side of each trial: study states, values and attributes; progress hooks; MLflow fallbacks."""

        def __init__(
            self, storage_url: str, study_name: str, scheduler: str, tracking_uri: str, parent_run_id: str
        ) -> None:
            self.storage_url, self.study_name, self.scheduler = storage_url, study_name, scheduler
            self.tracking_uri, self.parent_run_id = tracking_uri, parent_run_id
            self._book: _Book | None = None

        def __getstate__(self) -> dict[str, Any]:
            return {**self.__dict__, "_book": None}

        @property
        def book(self) -> _Book:
            if self._book is None:
                self._book = _Book(self.storage_url, self.study_name)
            return self._book

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            number = int(trial.config[NUMBER])
            model = str(trial.config.get("model", ""))
            # a trial restarted after an interrupt is running again
            self.book.set_attrs(number, {"model": model, "ray_trial_id": trial.trial_id, INTERRUPTED: None})
            if _LIVE.get("on_trial_start"):
                _LIVE["on_trial_start"](number, model)

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            number = int(trial.config[NUMBER])
            if result.get(ATTRS):
                self.book.set_attrs(number, json.loads(result[ATTRS]))
            if not result.get(FINAL) and result.get(STEP):
                self.book.intermediate(number, int(result[STEP]) - 1, float(result[METRIC]))

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            number = int(trial.config[NUMBER])
            last = trial.last_result or {}
            if last.get(FINAL):
                self._end(number, "complete", float(last[METRIC]))
                return
            note = f"pruned by the {self.scheduler} scheduler at epoch {int(last.get(STEP, 1)) - 1}"
            self._close_run(number, "pruned", note)
            self._end(number, "pruned")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            number = int(trial.config[NUMBER])
            error = _error_line(trial)
            note = self._close_run(number, "failed", error)
            self.book.set_attrs(number, {"error": note or error})  # the trial's own "Type: message" if it wrote one
            self._end(number, "failed")

        def _close_run(self, number: int, state: str, note: str) -> str | None:
            """End the trial's MLflow run if its actor could not (stopped or died first); return its note."""
            from ape_nas.tracking import TrialRun

            try:
                client = _mlflow(self.tracking_uri)
                run_id = self.book.frozen(number).user_attrs.get("mlflow_run_id")
                if run_id is None:  # failed before its first epoch: find the run by its trial number
                    parent = client.get_run(self.parent_run_id)
                    runs = _trial_runs(client, parent.info.experiment_id, self.parent_run_id, number)
                    run_id = runs[0].info.run_id if runs else None
                    if run_id is None:
                        return None
                    self.book.set_attrs(number, {"mlflow_run_id": run_id})
                run = client.get_run(run_id)
                if run.info.status == "RUNNING":
                    TrialRun(self.tracking_uri, run_id).close(state, note)
                    return note
                return run.data.tags.get("ape_nas.note")
            except Exception as exc:  # bookkeeping must not stop the sweep
                logging.getLogger(__name__).warning("trial %s: could not close its MLflow run: %s", number, exc)
                return None

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            _LIVE["trials"] = [int(t.config[NUMBER]) for t in trials if NUMBER in t.config]

        def _end(self, number: int, state: str, value: float | None = None) -> None:
            if self.book.finish(number, state, value) and _LIVE.get("on_trial_end"):
                _LIVE["on_trial_end"](trial_record(self.book.frozen(number)))

    for cls in (_Search, _Recorder):
        cls.__qualname__ = cls.__name__
        globals()[cls.__name__] = cls


def __getattr__(name: str) -> Any:
    if name in ("_Search", "_Recorder"):
        _define_ray_classes()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _ray_class(name: str) -> Any:
    return globals().get(name) or __getattr__(name)


class RayBackend(Backend):
    name = "ray"

    def __init__(self, experiment: ExperimentConfig, workdir: Path, storage: str | None = None) -> None:
        self.experiment = experiment
        self.workdir = Path(workdir)
        self._storage_url = storage or experiment.backend["storage"] or default_storage(self.workdir)
        self.study: optuna.Study | None = None
        # samplers (by exact name, options checked) and figures are the Optuna backend's
        self._optuna = OptunaBackend(experiment, self.workdir, storage=self._storage_url)
        self._optuna.parallel = experiment.backend["max_concurrent"] > 1  # TPE: running trials count (liar)

    @property
    def storage_url(self) -> str:
        return self._storage_url

    @property
    def ray_root(self) -> Path:
        return (self.workdir / "ray" / self.experiment.name).resolve()

    # --- validation -------------------------------------------------------------------------------------

    def _resource(self) -> int:
        """The scheduler's unit of progress: epochs (one fold) or folds (kfold, loso) per trial."""
        protocol = self.experiment.protocol
        if protocol["kind"] == "holdout":
            return int(self.experiment.training["max_epochs"])
        folds = protocol["folds"] if protocol["kind"] == "kfold" else 10
        return int(min(folds, protocol["max_folds"] or folds))

    def sampler(self) -> optuna.samplers.BaseSampler:
        return self._optuna.sampler()

    def scheduler(self) -> Any:
        cfg = self.experiment.backend
        name, options = cfg["scheduler"], dict(cfg["scheduler_options"])
        import inspect

        from ray.tune import schedulers

        cls = getattr(schedulers, SCHEDULERS[name])
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", *_OWNED)]
        for key in options:
            if key not in accepted:
                raise unknown_key_error(self.experiment.doc, ("backend", "scheduler_options"), key, accepted)
        resource = self._resource()
        if name == "fifo" or (resource < 2 and "max_t" not in options):  # one epoch: nothing to stop early
            return schedulers.FIFOScheduler()
        # Rungs sit at grace_period * reduction_factor**k <= max_t. max_t = last epoch - 1 keeps every rung before
        # the last epoch: a trial that trained all its epochs is never stopped (it completes, with its test
        # scores). grace_period 2: no trial is judged on its first epoch alone.
        kwargs: dict[str, Any] = {
            "max_t": resource - 1,
            "grace_period": min(2, resource - 1),
            "stop_last_trials": False,
        }
        if name == "hyperband":
            kwargs["brackets"] = 3
        kwargs.update(options)
        try:
            return cls(time_attr=STEP, **kwargs)
        except (TypeError, ValueError, AssertionError) as exc:
            raise self.experiment.doc.error(
                ("backend", "scheduler_options"), f"{SCHEDULERS[name]} rejected {kwargs}: {exc}"
            ) from None

    def validate(self) -> None:
        cfg = self.experiment.backend
        if "://" not in self._storage_url or self._storage_url.startswith("journal"):
            raise UserError(
                f"storage {self._storage_url!r}: the ray backend needs an SQLAlchemy URL such as "
                "sqlite:///path/ray.db or postgresql://user:pass@host/db"
            )
        _quiet_environment(local=cfg["address"] is None)
        try:
            import ray.tune.search.optuna  # noqa: F401
        except ImportError:
            raise UserError("backend ray needs Ray Tune: pip install 'ape-nas[ray]'") from None
        self.sampler()
        self.scheduler()
        if cfg["gpus_per_trial"] > 0 and self.experiment.training["accelerator"] == "cpu":
            raise self.experiment.doc.error(
                ("backend", "gpus_per_trial"),
                "GPUs are reserved for each trial but training.accelerator is cpu; set it to gpu (or auto)",
            )

    # --- the study --------------------------------------------------------------------------------------

    def _sqlite_file(self) -> Path | None:
        return Path(self._storage_url[len("sqlite:///") :]) if self._storage_url.startswith("sqlite:///") else None

    def open(self, create: bool = True) -> None:
        name, local = self.experiment.name, self._sqlite_file()
        if not create:
            if local is not None and not local.exists():
                raise UserError(f"no study {name!r}: {self.storage_label} does not exist; run `ape-nas sweep` first")
            try:
                self.study = optuna.load_study(study_name=name, storage=_rdb(self._storage_url))
            except KeyError:
                raise UserError(f"no study {name!r} in {self.storage_label}; run `ape-nas sweep` first") from None
            return
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
        self.study = optuna.create_study(
            study_name=name, storage=_rdb(self._storage_url), direction=self.experiment.direction, load_if_exists=True
        )
        have = self.study.direction.name.lower()
        if have != self.experiment.direction:
            raise UserError(
                f"study {name!r} in {self.storage_label} was created to {have}, but the experiment "
                f"asks to {self.experiment.direction}; use another name or storage"
            )
        if self.study.user_attrs.get("ape_nas.backend") != self.name:
            if self.study.get_trials(deepcopy=False):
                raise UserError(
                    f"study {name!r} in {self.storage_label} holds trials of another backend; "
                    "use another storage or experiment name for the ray backend"
                )
            self.study.set_user_attr("ape_nas.backend", self.name)
        self._optuna._trials_before = len(self.study.get_trials(deepcopy=False))  # resumed: a new sampler seed

    def delete(self) -> None:
        optuna.delete_study(study_name=self.experiment.name, storage=_rdb(self._storage_url))
        self.study = None

    def rename(self, experiment: ExperimentConfig) -> None:
        self.experiment = self._optuna.experiment = experiment

    def records(self) -> list[TrialRecord]:
        assert self.study is not None
        return [trial_record(ft) for ft in self.study.get_trials(deepcopy=False)]

    def attrs(self) -> dict[str, Any]:
        assert self.study is not None
        return dict(self.study.user_attrs)

    def set_attrs(self, values: dict[str, Any]) -> None:
        assert self.study is not None
        for key, value in values.items():
            self.study.set_user_attr(key, value)

    def figures(self) -> dict[str, Any]:
        self._optuna.study = self.study  # the Optuna backend's plots of this study
        return self._optuna.figures()

    # --- running ----------------------------------------------------------------------------------------

    def _connect(self) -> bool:
        """Join ``backend.address`` or start a private local cluster; True if this call started Ray."""
        import ray

        if ray.is_initialized():
            return False
        init_ray(self.experiment.backend["address"])
        return True

    def _ledger(self) -> list[dict[str, Any]]:
        return list(self.attrs().get("ray_runs") or [])

    def _tracking(self) -> tuple[str, str, str]:
        attrs = self.attrs()
        return attrs["tracking_uri"], attrs["mlflow_parent_run_id"], str(attrs["mlflow_experiment_id"])

    def _clear_unfinished(self, book: _Book, delete_runs: bool, note: str | None) -> None:
        """Trials the study still has as running: delete their partial MLflow runs (they restart) or fail them."""
        from ape_nas.tracking import TrialRun

        tracking_uri, parent_run_id, experiment_id = self._tracking()
        client = _mlflow(tracking_uri)
        for ft in book.running():
            for run in _trial_runs(client, experiment_id, parent_run_id, ft.number):
                if delete_runs:
                    client.delete_run(run.info.run_id)
                elif run.info.status in ("RUNNING", "KILLED"):
                    TrialRun(tracking_uri, run.info.run_id).close("failed", note)
            if not delete_runs:
                book.set_attrs(ft.number, {"error": note})
                book.finish(ft.number, "failed")

    def run(
        self,
        fn: TrialFunction,
        n_trials: int,
        timeout_s: float | None,
        on_trial_end: Callable[[TrialRecord], None] | None = None,
        on_trial_start: Callable[[int, str], None] | None = None,
    ) -> None:
        cfg = self.experiment.backend
        _quiet_environment(local=cfg["address"] is None)
        from ray import tune

        book = _Book(self._storage_url, self.experiment.name)
        ledger = self._ledger()
        last = ledger[-1] if ledger else None
        resume = last is not None and not last["finished"] and tune.Tuner.can_restore(str(self.ray_root / last["name"]))
        if resume:
            assert last is not None
            self._clear_unfinished(book, delete_runs=True, note=None)
        else:
            if last is not None and not last["finished"]:
                last["finished"] = True
            self._clear_unfinished(book, delete_runs=False, note="interrupted; its Ray experiment was not resumable")
            last = {"name": f"run-{len(ledger) + 1:03d}", "trials": int(n_trials), "finished": False}
            ledger.append(last)
            self.set_attrs({"ray_runs": ledger})

        if dataclasses.is_dataclass(fn) and isinstance(getattr(fn, "cache_dir", None), str):
            fn = dataclasses.replace(fn, cache_dir=str(Path(fn.cache_dir).resolve()))  # workers may start elsewhere
        resources = {"cpu": float(cfg["cpus_per_trial"])}
        if cfg["gpus_per_trial"] > 0:
            resources["gpu"] = float(cfg["gpus_per_trial"])
        threads = max(1, int(cfg["cpus_per_trial"]))

        started = self._connect()
        try:
            if started and cfg["address"] is None:
                self._check_fits(resources)
            trainable = tune.with_resources(tune.with_parameters(_train, runner=fn, threads=threads), resources)
            _LIVE.clear()
            _LIVE.update(
                on_trial_end=on_trial_end,
                on_trial_start=on_trial_start,
                deadline=None if timeout_s is None else time.time() + timeout_s,
            )
            path = str(self.ray_root / last["name"])
            if resume:
                tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False)
            else:
                tuner = self._new_tuner(trainable, int(n_trials), last["name"])
            handler = signal.getsignal(signal.SIGINT)
            term = signal.getsignal(signal.SIGTERM)
            if threading.current_thread() is threading.main_thread():
                # SIGTERM (a scheduler's stop, `kill`) takes Ray's Ctrl+C path: state saved, trials stopped
                signal.signal(signal.SIGTERM, _term_as_sigint)
            try:
                with warnings.catch_warnings():
                    # OptunaSearch times the define-by-run function; the first call loads the space file, which
                    # on a busy machine can pass its 1-s hint ("ensure that actual computation ... inside Tune")
                    warnings.filterwarnings("ignore", message="Define-by-run function passed in the `space`")
                    tuner.fit()
            except KeyboardInterrupt:  # a second Ctrl+C: Ray did not finish stopping
                self._mark_interrupted([ft.number for ft in book.running()])
                raise
            finally:  # Tune leaves its own SIGINT handler installed after a run it was not asked to stop
                if threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGINT, handler)
                    signal.signal(signal.SIGTERM, term)
            # Ray returns normally after SIGINT: it saved its state, then stopped the running trials (whose
            # in-memory status then reads TERMINATED). The study tells them apart: nobody told their end.
            numbers = _LIVE.get("trials", [])
            running = {ft.number for ft in book.running()}
            unfinished = [n for n in numbers if n in running]
            deadline = _LIVE["deadline"]
            short = len(numbers) < last["trials"] and (deadline is None or time.time() < deadline)
            if unfinished or short:
                self._mark_interrupted(unfinished)
                raise KeyboardInterrupt
            self._clear_unfinished(book, delete_runs=False, note="lost: never reported back to the sweep")
            last["finished"] = True
            ledger = [*self._ledger()[:-1], last]
            self.set_attrs({"ray_runs": ledger})
        finally:
            _LIVE.clear()
            if started:
                import ray

                ray.shutdown()

    def _check_fits(self, resources: dict[str, float]) -> None:
        """On a private local Ray, a trial asking for more than the machine has would wait forever."""
        import ray

        have = ray.cluster_resources()
        for kind, key in (("cpu", "CPU"), ("gpu", "GPU")):
            if resources.get(kind, 0) > have.get(key, 0):
                raise self.experiment.doc.error(
                    ("backend", f"{kind}s_per_trial"),
                    f"each trial asks for {resources[kind]:g} {key}s but this machine has {have.get(key, 0):g}",
                )

    def _new_tuner(self, trainable: Any, n_trials: int, name: str) -> Any:
        from ray import tune

        cfg = self.experiment.backend
        direction = self.experiment.direction
        search = _ray_class("_Search")(
            _DefineByRun(str(self.experiment.space_path)),
            metric=METRIC,
            mode="max" if direction == "maximize" else "min",
            sampler=self.sampler(),
            study_name=self.experiment.name,
            storage=_rdb(self._storage_url),
        )
        tracking_uri, parent_run_id, _ = self._tracking()
        recorder = _ray_class("_Recorder")(
            self._storage_url, self.experiment.name, cfg["scheduler"], tracking_uri, parent_run_id
        )
        scheduler = self.scheduler()
        return tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max" if direction == "maximize" else "min",
                search_alg=search,
                scheduler=scheduler,
                num_samples=n_trials,
                max_concurrent_trials=int(cfg["max_concurrent"]),
                reuse_actors=True,
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(self.ray_root),
                callbacks=[recorder],
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )

    def _mark_interrupted(self, numbers: list[int]) -> None:
        """Close the MLflow runs of trials Ray stopped on Ctrl+C (they restart when the sweep is re-run)."""
        tracking_uri, parent_run_id, experiment_id = self._tracking()
        client = _mlflow(tracking_uri)
        from ape_nas import interrupts

        how = signal.Signals(interrupts.received() or signal.SIGINT).name
        note = f"interrupted ({how}); re-running the sweep restarts this trial"
        book = _Book(self._storage_url, self.experiment.name)
        for number in numbers:  # the study keeps them RUNNING (resume restarts them); status shows "interrupted"
            book.set_attrs(number, {INTERRUPTED: time.time()})
            for run in _trial_runs(client, experiment_id, parent_run_id, number):
                client.set_tag(run.info.run_id, "ape_nas.state", "interrupted")
                client.set_tag(run.info.run_id, "ape_nas.note", note)
                client.set_terminated(run.info.run_id, "KILLED")
