"""Optuna backend: samplers and pruners by exact name, a shared study storage, resumable studies.

The study lives in ``<workdir>/optuna.db`` (SQLite) unless ``backend.storage`` or ``--storage`` gives another
storage: any SQLAlchemy URL (PostgreSQL for several workers: ``postgresql://user:pass@host/db``) or an Optuna
journal file on a shared file system without a database server: ``journal:///abs/path/study.log`` (or
``journal://relative/path.log``). Re-running the same experiment loads the same study (same name) and adds trials.

Crashed workers: every running trial records a heartbeat (RDB: Optuna's own, ``RDBStorage(heartbeat_interval=,
grace_period=, heartbeat_stale_trial_callback=)``; journal: the same Optuna protocol, recorded as a trial system
attribute by :class:`_JournalStorage`). When a trial's heartbeat is older than the grace period, the next worker
that starts a trial marks it FAIL (``optuna.storages.fail_stale_trials``), ``on_stale_trial`` closes its MLflow
run, and ``RetryHeartbeatStaleTrialCallback`` enqueues a retry with the same parameters (user attr ``retry_of``).
Interval, grace and retries: ``APE_NAS_HEARTBEAT_S`` (30), ``APE_NAS_HEARTBEAT_GRACE_S`` (4 × interval) and
``APE_NAS_TRIAL_RETRIES`` (1).

Optuna internals: only :class:`_JournalStorage` (Optuna has no public heartbeat for journal storages); see there.
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import random
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # private: the one use, in _JournalStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ape_nas.backends.base import Backend, TrialFunction, TrialRecord
from ape_nas.config.experiment import ExperimentConfig
from ape_nas.dburl import sqlite_path, with_pg_driver
from ape_nas.errors import UserError
from ape_nas.interrupts import Interrupted
from ape_nas.reporting import TrialPruned
from ape_nas.schema import unknown_key_error
from ape_nas.search_names import PRUNER_CLASSES as PRUNERS  # name -> class in optuna.pruners
from ape_nas.search_names import SAMPLER_CLASSES as SAMPLERS  # name -> class in optuna.samplers

_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
JOURNAL_SCHEME = "journal://"
HEARTBEAT_S = 30  # a running trial records a heartbeat this often
GRACE_FACTOR = 4  # ... and is stale (its worker died) after GRACE_FACTOR intervals without one
TRIAL_RETRIES = 1  # a trial whose worker died is run again this many times (same parameters)
_HEARTBEAT_ATTR = "ape_nas:heartbeat"  # journal storage: time.time() of the last heartbeat
_log = logging.getLogger(__name__)


def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.logging.disable_propagation()
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("optuna").setLevel(logging.ERROR)


def default_storage(workdir: Path) -> str:
    return f"sqlite:///{(Path(workdir) / 'optuna.db').resolve()}"


def journal_path(url: str) -> Path | None:
    """The log file of a ``journal://`` storage: ``journal:///abs/path.log`` or ``journal://rel/path.log``."""
    return Path(url[len(JOURNAL_SCHEME) :]) if url.startswith(JOURNAL_SCHEME) else None


def _env_int(name: str, default: int, low: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"{name}={raw!r}: expected a whole number >= {low}") from None
    if value < low:
        raise UserError(f"{name}={raw!r}: expected a whole number >= {low}")
    return value


def heartbeat_settings() -> tuple[int, int, int]:
    """(heartbeat interval s, grace period s, retries) from the environment, with the defaults above."""
    interval = _env_int("APE_NAS_HEARTBEAT_S", HEARTBEAT_S, 1)
    grace = _env_int("APE_NAS_HEARTBEAT_GRACE_S", GRACE_FACTOR * interval, 1)
    if grace <= interval:
        raise UserError(f"APE_NAS_HEARTBEAT_GRACE_S={grace} must be longer than the heartbeat interval {interval} s")
    return interval, grace, _env_int("APE_NAS_TRIAL_RETRIES", TRIAL_RETRIES, 0)


class _RDBStorage(RDBStorage):
    """RDBStorage whose heartbeat thread survives a transient database error (it beats again next interval)."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:  # Optuna's heartbeat thread would die on it and the live trial turn stale
            _log.warning("heartbeat of trial id %s not recorded: %s", trial_id, exc)


class _JournalStorage(JournalStorage, BaseHeartbeat):
    """Journal storage with Optuna's heartbeat protocol (Optuna 5.0 has it for RDB storages only).

    The heartbeat is a trial system attribute holding the writer's ``time.time()``; stale means older than the
    grace period by the reader's clock (hosts sharing a file system keep their clocks in sync within seconds).

    The one use of Optuna internals in ape-nas, because Optuna offers no public way: the protocol is the class
    ``BaseHeartbeat`` of the private module ``optuna.storages._heartbeat``, and one of its four methods,
    ``_get_stale_trial_ids``, is private. ``Study.optimize`` runs the heartbeat thread and the public
    ``optuna.storages.fail_stale_trials`` fails the stale trials through these methods.
    ``tests/test_workers.py::test_optuna_s_heartbeat_protocol_is_the_one_the_journal_storage_implements`` fails
    when an Optuna release changes that protocol.
    """

    def __init__(
        self,
        log: Any,
        *,
        heartbeat_interval: int,
        grace_period: int,
        heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None,
    ) -> None:
        super().__init__(log)
        self._beat_interval = heartbeat_interval
        self._beat_grace = grace_period
        self._beat_callback = heartbeat_stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, _HEARTBEAT_ATTR, time.time())
        except Exception as exc:  # finished meanwhile, or a transient file-system error: beat again next time
            _log.debug("heartbeat of trial id %s not recorded: %s", trial_id, exc)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        return [
            self.get_trial_id_from_study_id_trial_number(study_id, t.number)
            for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            if _HEARTBEAT_ATTR in t.system_attrs and now - float(t.system_attrs[_HEARTBEAT_ATTR]) > self._beat_grace
        ]

    def get_heartbeat_interval(self) -> int | None:
        return self._beat_interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self._beat_callback


def _transient(exc: BaseException) -> bool:
    """Errors worth another try: several workers creating the tables of a fresh database at once (all but one
    get a unique-violation or "already exists"), a server that is starting. Not: bad password, missing database."""
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.IntegrityError | sqlalchemy.exc.ProgrammingError | sqlalchemy.exc.InternalError):
        return True
    if isinstance(exc, sqlalchemy.exc.OperationalError):
        text = str(exc).lower()
        return not any(s in text for s in ("authentication", "does not exist", "permission denied", "no such"))
    return False


class _Handle:
    """Adapts an optuna.Trial to the backend-neutral TrialHandle."""

    def __init__(self, trial: optuna.Trial) -> None:
        self._trial = trial
        self.number = trial.number

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self._trial.suggest_int(name, low, high, step=step, log=log)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return self._trial.suggest_float(name, low, high, step=step, log=log)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._trial.suggest_categorical(name, choices)

    def report(self, value: float, step: int) -> bool:
        if len(self._trial.study.directions) > 1:  # Optuna keeps no intermediate values of multi-objective trials
            return False
        self._trial.report(value, step)
        return bool(self._trial.should_prune())  # some pruners answer numpy.bool_

    def set_attr(self, key: str, value: Any) -> None:
        self._trial.set_user_attr(key, value)

    def set_constraint(self, key: str, value: float) -> None:
        """A constraint value (<= 0 feasible) through Optuna's ``Trial.set_constraint``: its samplers (TPE, NSGA-II/III,
        GP) learn the feasible region from it, and ``best_trials`` keeps feasible trials only."""
        self._trial.set_constraint(key, value)

    def finished_with(self, digest: str) -> TrialRecord | None:
        """A complete trial of this study that trained the spec with this digest (it need not run again)."""
        for ft in self._trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if ft.user_attrs.get("spec_digest") == digest and ft.values is not None:
                return trial_record(ft)
        return None


def trial_record(ft: optuna.trial.FrozenTrial) -> TrialRecord:
    """A frozen Optuna trial as the backend-neutral :class:`TrialRecord` (Ray's stopped trials: ``interrupted``)."""
    duration = ft.duration.total_seconds() if ft.duration is not None else None
    state = _STATES.get(ft.state.name, ft.state.name.lower())
    stopped = ft.user_attrs.get("interrupted_at")  # Ray: interrupted, restarted when the sweep is re-run
    if state == "running" and stopped is not None:
        state = "interrupted"
    if duration is None and ft.datetime_start is not None and ft.state.name == "RUNNING":
        duration = (stopped or time.time()) - ft.datetime_start.timestamp()
    if state == "pruned" and "rejected" in ft.user_attrs:
        state = "rejected"  # over a cost constraint: never trained
    return TrialRecord(
        number=ft.number,
        state=state,
        value=ft.values[0] if ft.values else None,
        values=list(ft.values) if ft.values else None,
        duration_s=duration,
        params=dict(ft.params),
        attrs=dict(ft.user_attrs),
    )


REJECTED_PER_TRIAL = 10  # at most this many specs rejected before training per trial of the budget


class _TrainedBudget:
    """Stops ``optimize`` after ``n`` trials that were not rejected before training (over a cost constraint), or
    after ``REJECTED_PER_TRIAL × n`` rejections (a space almost entirely over the limits ends, it does not spin)."""

    def __init__(self, n: int) -> None:
        self.n, self.trained, self.rejected = n, 0, 0

    def __call__(self, study: optuna.Study, ft: FrozenTrial) -> None:
        if "rejected" in ft.user_attrs:
            self.rejected += 1
        else:
            self.trained += 1
        if self.trained >= self.n or self.rejected >= REJECTED_PER_TRIAL * self.n:
            study.stop()


def derived_seed(seed: int, n_trials: int) -> int:
    """The sampler seed of a command that continues a study of ``n_trials`` trials: ``seed`` for a new study,
    else ``(seed + 7919 * n_trials) mod 2**31`` — reproducible, and never the start-up points of earlier runs."""
    return (seed + 7919 * n_trials) % 2**31


class OptunaBackend(Backend):
    name = "optuna"

    def __init__(self, experiment: ExperimentConfig, workdir: Path, storage: str | None = None) -> None:
        self.experiment = experiment
        self.workdir = Path(workdir)
        url = storage or experiment.backend["storage"] or default_storage(self.workdir)
        if url.startswith(JOURNAL_SCHEME) and url[len(JOURNAL_SCHEME) :]:
            url = JOURNAL_SCHEME + str(Path(url[len(JOURNAL_SCHEME) :]).resolve())  # same file from any cwd
        self._storage_url = url
        self.study: optuna.Study | None = None
        self._store: optuna.storages.BaseStorage | None = None
        # set by the sweep: called with the record of a trial whose worker died (no heartbeat), before its retry
        self.on_stale_trial: Callable[[TrialRecord], None] | None = None
        # several workers share the study: each samples with its own seed, and TPE counts running trials
        self.parallel = False
        self._seed_offset = 0
        self._trials_before = 0  # trials in the study when this command opened it: the sampler seed follows it
        self._retries = TRIAL_RETRIES
        quiet_optuna()

    @property
    def storage_url(self) -> str:
        return self._storage_url

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        """The opened Optuna storage of the study (after :meth:`open`)."""
        assert self._store is not None, "open() first"
        return self._store

    @property
    def storage_kind(self) -> str:
        """``journal``, ``sqlite`` or ``rdb`` (a database server such as PostgreSQL)."""
        if self._storage_url.startswith(JOURNAL_SCHEME):
            return "journal"
        return "sqlite" if self._storage_url.startswith("sqlite") else "rdb"

    def use_parallel(self) -> None:
        """This process is one of several workers of the study: its own sampler seed, TPE's constant liar."""
        self.parallel = True
        self._seed_offset = random.SystemRandom().randrange(1, 2**30)

    def _build(self, kind: str, table: dict[str, str], defaults: dict[str, Any]) -> Any:
        cfg = self.experiment.backend
        name, options = cfg[kind], dict(cfg[f"{kind}_options"])
        cls = getattr(optuna.samplers if kind == "sampler" else optuna.pruners, table[name])
        accepted = inspect.signature(cls).parameters
        for key in options:
            if key not in accepted or key == "self":
                raise unknown_key_error(
                    self.experiment.doc, ("backend", f"{kind}_options"), key, [p for p in accepted if p != "self"]
                )
        kwargs = {k: v for k, v in defaults.items() if k in accepted and k not in options}
        kwargs.update(options)
        if kind == "sampler" and isinstance(kwargs.get("seed"), int):
            # a resumed study must not draw the points of earlier commands again; workers not each other's
            kwargs["seed"] = (derived_seed(kwargs["seed"], self._trials_before) + self._seed_offset) % 2**31
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise self.experiment.doc.error(
                ("backend", f"{kind}_options"), f"{table[name]} rejected {kwargs}: {exc}"
            ) from None

    def sampler(self) -> optuna.samplers.BaseSampler:
        defaults: dict[str, Any] = {"seed": self.experiment.seed}
        if self.parallel:
            defaults["constant_liar"] = True  # TPE: running trials of other workers count as bad, not as absent
        return self._build("sampler", SAMPLERS, defaults)

    def pruner(self) -> optuna.pruners.BasePruner:
        max_epochs = self.experiment.training["max_epochs"]
        defaults = {"percentile": 25.0, "min_resource": 1, "n_warmup_steps": 1, "n_startup_trials": 3}
        if self.experiment.backend["pruner"] == "hyperband":
            defaults["max_resource"] = max_epochs
        return self._build("pruner", PRUNERS, defaults)

    def validate(self) -> None:
        self.sampler()
        self.pruner()
        heartbeat_settings()
        url = self._storage_url
        if url.startswith(JOURNAL_SCHEME):
            if url == JOURNAL_SCHEME:
                raise UserError(f"storage {url!r}: expected journal:///absolute/path/study.log")
            return
        if "://" not in url:
            raise UserError(
                f"storage {url!r}: expected an SQLAlchemy URL such as sqlite:///path/optuna.db or "
                "postgresql://user:pass@host/db, or a journal file: journal:///path/study.log"
            )
        self._sqlalchemy_url()

    def _sqlalchemy_url(self) -> str:
        return with_pg_driver(self._storage_url, f"storage {self.storage_label}")

    def _on_stale(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna failed ``trial`` (no heartbeat): close its MLflow run, then enqueue the retry."""
        if self.on_stale_trial is not None:
            try:
                self.on_stale_trial(trial_record(trial))
            except Exception as exc:  # the retry matters more than the MLflow bookkeeping
                _log.warning("trial %s: could not close its MLflow run: %s", trial.number, exc)
        retry = copy.deepcopy(trial)
        retry.user_attrs = {"retry_of": trial.number}  # spec, model and MLflow run id are the retry's own
        retry.system_attrs = {k: v for k, v in trial.system_attrs.items() if k != _HEARTBEAT_ATTR}
        RetryHeartbeatStaleTrialCallback(max_retry=self._retries)(study, retry)

    def _storage(self) -> optuna.storages.BaseStorage:
        interval, grace, self._retries = heartbeat_settings()
        beat: dict[str, Any] = {
            "heartbeat_interval": interval,
            "grace_period": grace,
            "heartbeat_stale_trial_callback": self._on_stale,
        }
        journal = journal_path(self._storage_url)
        if journal is not None:
            from optuna.storages.journal import JournalFileBackend

            try:
                return _JournalStorage(JournalFileBackend(str(journal)), **beat)
            except OSError as exc:
                raise UserError(f"storage {self._storage_url}: cannot open ({exc})") from None
        if self._storage_url.startswith("sqlite"):
            engine: dict[str, Any] = {"connect_args": {"timeout": 60}}
        else:  # a server: connections of long-lived workers may be closed by it between two trials
            engine = {"pool_pre_ping": True}
        url, attempts = self._sqlalchemy_url(), 5
        for attempt in range(1, attempts + 1):
            try:
                return _RDBStorage(url, engine_kwargs=engine, **beat)
            except Exception as exc:
                # several workers creating the tables of a fresh database at once: all but one fail once
                if attempt < attempts and _transient(exc):
                    time.sleep(random.uniform(0.2, 0.5) * 2**attempt)
                    continue
                raise UserError(f"storage {self.storage_label}: cannot open ({type(exc).__name__}: {exc})") from None
        raise AssertionError("unreachable")

    def open(self, create: bool = True) -> None:
        name = self.experiment.name
        local = sqlite_path(self._storage_url) or journal_path(self._storage_url)
        if not create:
            if local is not None and not local.exists():
                raise UserError(f"no study {name!r}: {self._storage_url} does not exist; run `ape-nas sweep` first")
            self._store = self._storage()
            try:
                self.study = optuna.load_study(study_name=name, storage=self._store)
            except KeyError:
                raise UserError(f"no study {name!r} in {self.storage_label}; run `ape-nas sweep` first") from None
            return
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
        self._store = self._storage()
        self.study = optuna.create_study(
            study_name=name,
            storage=self._store,
            sampler=self.sampler(),
            pruner=self.pruner(),
            directions=self.experiment.directions,
            load_if_exists=True,
        )
        have = [d.name.lower() for d in self.study.directions]
        if have != self.experiment.directions:
            raise UserError(
                f"study {name!r} in {self._storage_url} was created to {' and '.join(have)}, but the experiment "
                f"asks to {' and '.join(self.experiment.directions)} ({', '.join(self.experiment.objectives)}); "
                "use another name or storage"
            )
        self._trials_before = len(self.study.get_trials(deepcopy=False))
        if self._trials_before:
            self.study.sampler = self.sampler()

    def delete(self) -> None:
        """Remove the study (used to undo a study this command created before a late error)."""
        assert self._store is not None
        optuna.delete_study(study_name=self.experiment.name, storage=self._store)
        self.study = None

    def fail_trials(self, numbers: list[int], note: str) -> None:
        """Mark these running trials FAIL with ``note`` (an interrupt that came between Optuna's bookkeeping)."""
        assert self.study is not None and self._store is not None
        store = self._store
        study_id = store.get_study_id_from_name(self.experiment.name)
        for ft in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if ft.number in numbers:
                trial_id = store.get_trial_id_from_study_id_trial_number(study_id, ft.number)
                with suppress(Exception):  # finished meanwhile
                    store.set_trial_user_attr(trial_id, "error", note)
                    store.set_trial_state_values(trial_id, TrialState.FAIL)

    def run(
        self,
        fn: TrialFunction,
        n_trials: int,
        timeout_s: float | None,
        on_trial_end: Callable[[TrialRecord], None] | None = None,
        on_trial_start: Callable[[int, str], None] | None = None,
    ) -> None:
        assert self.study is not None

        def objective(trial: optuna.Trial) -> float | list[float]:
            try:
                return fn(_Handle(trial), on_start=on_trial_start)
            except TrialPruned:
                raise optuna.TrialPruned() from None
            except Interrupted as exc:  # Optuna fails the trial on KeyboardInterrupt and stops optimize()
                trial.set_user_attr("error", str(exc))
                raise KeyboardInterrupt(str(exc)) from exc
            except Exception as exc:
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:1000])
                raise

        callbacks = [lambda study, ft: on_trial_end(trial_record(ft))] if on_trial_end else []
        if self.experiment.objective["constraints"]:  # a rejected spec cost nothing: it does not use the budget
            callbacks.append(_TrainedBudget(n_trials))
        self.study.optimize(
            objective,
            n_trials=None if self.experiment.objective["constraints"] else n_trials,
            timeout=timeout_s,
            catch=(Exception,),
            callbacks=callbacks,
            gc_after_trial=False,
            show_progress_bar=False,
        )

    def fail_stale_trials(self) -> None:
        """Fail trials whose worker died (no heartbeat within the grace period); each is retried once."""
        assert self.study is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    @contextmanager
    def exclusive(self, key: str, *, timeout_s: float = 600.0, stale_s: float = 120.0) -> Iterator[None]:
        """A mutex among every process that uses this study's storage (workers on any host).

        Holding it = the marker study ``<study>::lock:<key>`` exists. Creating a study is atomic in every Optuna
        storage (a unique name in the RDB, the order of the log in a journal), so exactly one contender creates
        it (the others get DuplicatedStudyError and poll); the holder deletes it when done. A marker unchanged
        for ``stale_s`` belonged to a process that died inside the critical section: it is removed.
        """
        storage = self._store
        assert storage is not None, "open() first"
        name = f"{self.experiment.name}::lock:{key}"
        holder = {"token": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
        seen: dict[tuple[int, str], float] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                lock_id = storage.create_new_study([StudyDirection.MINIMIZE], name)
            except optuna.exceptions.DuplicatedStudyError:
                pass
            else:
                storage.set_study_user_attr(lock_id, "holder", {**holder, "since": time.time()})
                break
            try:
                other = storage.get_study_id_from_name(name)
                token = str((storage.get_study_user_attrs(other).get("holder") or {}).get("token"))
            except KeyError:  # released in the meantime
                continue
            first = seen.setdefault((other, token), time.monotonic())
            if time.monotonic() - first > stale_s:
                _log.warning("removing lock %r left by a process that died while holding it", name)
                with suppress(KeyError):
                    storage.delete_study(other)
                continue
            if time.monotonic() > deadline:
                raise UserError(
                    f"study {self.experiment.name!r} in {self.storage_label}: could not take the lock {name!r} within "
                    f"{timeout_s:g} s (other workers held it all that time)"
                )
            time.sleep(random.uniform(0.1, 0.3))
        try:
            yield
        finally:
            with suppress(KeyError):  # KeyError: removed as stale by another process, nothing to release
                storage.delete_study(lock_id)

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
        assert self.study is not None
        import matplotlib

        matplotlib.use("Agg")
        from optuna.visualization import matplotlib as vm

        complete = [t for t in self.study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        plots = {
            "optimization_history.png": vm.plot_optimization_history,
            "parallel_coordinate.png": vm.plot_parallel_coordinate,
        }
        if len(complete) >= 2:
            plots["param_importances.png"] = vm.plot_param_importances
        target: dict[str, Any] = {}
        if self.experiment.multi_objective:  # Optuna's plots need one target: the first objective (the metric)
            target = {"target": lambda t: t.values[0], "target_name": self.experiment.objective["metric"]}
        out = {}
        for name, fn in plots.items():
            try:
                with warnings.catch_warnings():  # "few trials per regime", "no artists for legend"
                    warnings.simplefilter("ignore")
                    ax = fn(self.study, **target)
            except (ValueError, RuntimeError, ZeroDivisionError):  # too few distinct trials for this plot
                continue
            ax = ax[0] if hasattr(ax, "__len__") and not hasattr(ax, "figure") else ax
            fig = ax.figure if hasattr(ax, "figure") else ax
            fig.set_size_inches(9, 5)
            fig.tight_layout()
            out[name] = fig
        return out
