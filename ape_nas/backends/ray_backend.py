"""Ray Tune backend: the experiment's space searched through the study's ask interface, trials run concurrently
as Ray actors, stopped early by an ASHA / Hyperband scheduler, resumed with ``Tuner.restore``.

What lives where (``<workdir>`` is ``--workdir``):

- ``<workdir>/ray.db`` (or ``backend.storage`` / ``--storage``): an Optuna study named after the experiment. It
  is the searcher's study (the sampler sees every earlier trial, so a re-run warm-starts the search) and the
  sweep's record: trial numbers (Optuna's, assigned when Ray asks for a point: stable across resume), states,
  values, intermediate values, user attributes. ``status`` / ``best`` read only this study (no Ray import).
- ``<workdir>/ray/<experiment>/run-NNN/``: Ray's experiment folder of each ``ape-nas sweep`` command, for
  ``Tuner.restore``. The study attribute ``ray_runs`` lists them with the trials each was asked for.

Trials: ``backend.max_concurrent`` at a time (``reuse_actors``: one trial actor serves trial after trial), each
with ``cpus_per_trial`` CPUs (torch threads follow; ``training.num_threads`` overrides) and ``gpus_per_trial``
GPUs (fractions pack several trials on one GPU). Each epoch's validation value goes to Ray (``step`` = epoch +
1, or fold + 1 for kfold/loso); the scheduler (``backend.scheduler``, see ``raytune/schedulers.py``) is ASHA,
asynchronous Hyperband or none (``fifo``), with ``max_t`` = the trial's last step - 1, counted from the data's
subjects for kfold/loso (:meth:`RayBackend.use_subjects`). ``backend.pruner`` is not used by this backend. A
trial whose actor dies (killed, out of memory) is run again, ``APE_NAS_TRIAL_RETRIES`` times (1), as the Optuna
workers retry a trial whose worker died; the failed attempt's MLflow run ends FAILED.

Interrupt (Ctrl+C) and resume: Ray catches SIGINT in the driver, stops the running trials and saves its
experiment state; trial workers are in their own process groups and never see the signal. This backend closes
the interrupted trials' MLflow runs as KILLED (tag ``ape_nas.state=interrupted``; the study keeps them running)
and raises ``KeyboardInterrupt`` (the sweep ends "interrupted").
Re-running the same command restores that Ray experiment: finished trials are kept, interrupted ones restart
from scratch under their own trial numbers (their partial MLflow runs are deleted, so each trial keeps one
run), and only the trials still missing from that command's ``--trials`` run. Once a command has finished,
the next one adds ``--trials`` new trials in a new Ray experiment (trial numbers continue).

The parts (searcher, trainable, recorder, scheduler table, study book-keeping) are in ``raytune/``; this module
and its light parts do not import Ray, which is imported only when a sweep runs.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna

from ape_nas.backends.base import Backend, TrialFunction, TrialRecord
from ape_nas.backends.optuna_backend import OptunaBackend, heartbeat_settings
from ape_nas.backends.raytune import runs
from ape_nas.backends.raytune.environment import init_ray, quiet_environment
from ape_nas.backends.raytune.keys import METRIC
from ape_nas.backends.raytune.live import LIVE
from ape_nas.backends.raytune.schedulers import make_scheduler, trial_steps
from ape_nas.backends.raytune.study import StudyBook
from ape_nas.config.experiment import ExperimentConfig
from ape_nas.errors import UserError
from ape_nas.tracking import PARENT_RUN_ATTR, TrialStore

BACKEND_ATTR = "ape_nas.backend"  # study user attr: the backend whose trials the study holds


def default_storage(workdir: Path) -> str:
    return f"sqlite:///{(Path(workdir) / 'ray.db').resolve()}"


def _term_as_sigint(signum: int, frame: Any) -> None:
    from ape_nas import interrupts

    interrupts.record(signum)
    os.kill(os.getpid(), signal.SIGINT)


def _trial_dirname(trial: Any) -> str:
    from ape_nas.backends.raytune.keys import NUMBER

    return f"trial-{int(trial.config.get(NUMBER, 0)):04d}-{trial.trial_id}"


class RayBackend(Backend):
    name = "ray"

    def __init__(self, experiment: ExperimentConfig, workdir: Path, storage: str | None = None) -> None:
        self.experiment = experiment
        self.workdir = Path(workdir)
        self._storage_url = storage or experiment.backend["storage"] or default_storage(self.workdir)
        self.study: optuna.Study | None = None
        self._subjects: list[str] | None = None
        # the study (opened, seeded sampler, records, attributes, figures) is the Optuna backend's
        self._optuna = OptunaBackend(experiment, self.workdir, storage=self._storage_url)
        self._optuna.parallel = experiment.backend["max_concurrent"] > 1  # TPE: running trials count (liar)

    @property
    def storage_url(self) -> str:
        return self._storage_url

    @property
    def ray_root(self) -> Path:
        return (self.workdir / "ray" / self.experiment.name).resolve()

    # --- validation -------------------------------------------------------------------------------------

    def use_subjects(self, subjects: Sequence[str]) -> None:
        """The subjects of the sweep's data: the folds of kfold/loso, and so the scheduler's ``max_t``, follow."""
        self._subjects = list(subjects)

    def steps_per_trial(self) -> int | None:
        """Epochs (holdout) or folds (kfold, loso) of one trial; None for loso before :meth:`use_subjects`."""
        return trial_steps(self.experiment, self._subjects)

    def sampler(self) -> optuna.samplers.BaseSampler:
        return self._optuna.sampler()

    def scheduler(self) -> Any:
        return make_scheduler(self.experiment, self.steps_per_trial())

    def validate(self) -> None:
        cfg = self.experiment.backend
        if "://" not in self._storage_url or self._storage_url.startswith("journal"):
            raise UserError(
                f"storage {self._storage_url!r}: the ray backend needs an SQLAlchemy URL such as "
                "sqlite:///path/ray.db or postgresql://user:pass@host/db"
            )
        quiet_environment(local=cfg["address"] is None)
        try:
            import ray.tune  # noqa: F401
        except ImportError:
            raise UserError("backend ray needs Ray Tune: pip install 'ape-nas[ray]'") from None
        self.sampler()
        self.scheduler()
        if cfg["gpus_per_trial"] > 0 and self.experiment.training["accelerator"] == "cpu":
            raise self.experiment.doc.error(
                ("backend", "gpus_per_trial"),
                "GPUs are reserved for each trial but training.accelerator is cpu; set it to gpu (or auto)",
            )
        if cfg["gpus_per_trial"] <= 0 and self.experiment.training["accelerator"] == "gpu":
            raise self.experiment.doc.error(
                ("backend", "gpus_per_trial"),
                "training.accelerator is gpu but no GPU is reserved for a trial: Ray would hide every GPU from it; "
                "expected a share such as 0.25 (4 trials per GPU) or 1",
            )

    # --- the study --------------------------------------------------------------------------------------

    def open(self, create: bool = True) -> None:
        self._optuna.open(create)
        self.study = self._optuna.study
        if create and self.attrs().get(BACKEND_ATTR) != self.name:
            if self.records():
                raise UserError(
                    f"study {self.experiment.name!r} in {self.storage_label} holds trials of another backend; "
                    "use another storage or experiment name for the ray backend"
                )
            self.set_attrs({BACKEND_ATTR: self.name})

    def delete(self) -> None:
        self._optuna.delete()
        self.study = None

    def rename(self, experiment: ExperimentConfig) -> None:
        self.experiment = self._optuna.experiment = experiment

    def records(self) -> list[TrialRecord]:
        return self._optuna.records()

    def attrs(self) -> dict[str, Any]:
        return self._optuna.attrs()

    def set_attrs(self, values: dict[str, Any]) -> None:
        self._optuna.set_attrs(values)

    def figures(self) -> dict[str, Any]:
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

    def _store(self) -> tuple[TrialStore, str]:
        attrs = self.attrs()
        return TrialStore(attrs["tracking_uri"]), attrs[PARENT_RUN_ATTR]

    def _book(self) -> StudyBook:
        return StudyBook(self._storage_url, self.experiment.name)

    def _this_run(self, n_trials: int) -> tuple[dict[str, Any], bool]:
        """This command's entry of the ledger and whether it resumes it (its Ray experiment is restorable)."""
        from ray import tune

        ledger = self._ledger()
        last = ledger[-1] if ledger else None
        store, parent_run_id = self._store()
        if last is not None and not last["finished"] and tune.Tuner.can_restore(str(self.ray_root / last["name"])):
            runs.clear_unfinished(store, parent_run_id, self._book(), restart=True, note=None)
            return last, True
        if last is not None:
            last["finished"] = True
        note = "interrupted; its Ray experiment was not resumable"
        runs.clear_unfinished(store, parent_run_id, self._book(), restart=False, note=note)
        last = {"name": f"run-{len(ledger) + 1:03d}", "trials": int(n_trials), "finished": False}
        self.set_attrs({"ray_runs": [*ledger, last]})
        return last, False

    def run(
        self,
        fn: TrialFunction,
        n_trials: int,
        timeout_s: float | None,
        on_trial_end: Callable[[TrialRecord], None] | None = None,
        on_trial_start: Callable[[int, str], None] | None = None,
    ) -> None:
        cfg = self.experiment.backend
        quiet_environment(local=cfg["address"] is None)
        from ray import tune

        from ape_nas.backends.raytune.trainable import train

        last, resume = self._this_run(n_trials)
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
            trainable = tune.with_resources(tune.with_parameters(train, runner=fn, threads=threads), resources)
            LIVE.clear()
            LIVE.update(
                on_trial_end=on_trial_end,
                on_trial_start=on_trial_start,
                deadline=None if timeout_s is None else time.time() + timeout_s,
            )
            path = str(self.ray_root / last["name"])
            if resume:
                tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=False)
            else:
                tuner = self._new_tuner(trainable, int(n_trials), last["name"])
            self._fit(tuner)
            self._settle(last)
        finally:
            LIVE.clear()
            if started:
                import ray

                ray.shutdown()

    def _fit(self, tuner: Any) -> None:
        """``tuner.fit()`` with SIGTERM taking Ray's Ctrl+C path (state saved, trials stopped)."""
        main = threading.current_thread() is threading.main_thread()
        handler, term = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        if main:  # a batch scheduler's stop, `kill`
            signal.signal(signal.SIGTERM, _term_as_sigint)
        try:
            tuner.fit()
        except KeyboardInterrupt:  # a second Ctrl+C: Ray did not finish stopping
            self._mark_interrupted([ft.number for ft in self._book().running()])
            raise
        finally:  # Tune leaves its own SIGINT handler installed after a run it was not asked to stop
            if main:
                signal.signal(signal.SIGINT, handler)
                signal.signal(signal.SIGTERM, term)

    def _settle(self, last: dict[str, Any]) -> None:
        """After ``fit``: an interrupted run raises KeyboardInterrupt, a finished one is marked in the ledger.

        Ray returns normally after SIGINT: it saved its state, then stopped the running trials (whose in-memory
        status then reads TERMINATED). The study tells them apart: nobody told their end."""
        numbers = LIVE.get("trials", [])
        running = {ft.number for ft in self._book().running()}
        unfinished = [n for n in numbers if n in running]
        deadline = LIVE["deadline"]
        short = len(numbers) < last["trials"] and (deadline is None or time.time() < deadline)
        if unfinished or short:
            self._mark_interrupted(unfinished)
            raise KeyboardInterrupt
        store, parent_run_id = self._store()
        runs.clear_unfinished(
            store, parent_run_id, self._book(), restart=False, note="lost: never reported back to the sweep"
        )
        last["finished"] = True
        self.set_attrs({"ray_runs": [*self._ledger()[:-1], last]})

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

        from ape_nas.backends.raytune.recorder import Recorder
        from ape_nas.backends.raytune.searcher import StudySearcher

        cfg = self.experiment.backend
        mode = "max" if self.experiment.direction == "maximize" else "min"
        assert self.study is not None, "open() first"
        search = StudySearcher(
            str(self.experiment.space_path), self._storage_url, self.experiment.name, self.study.sampler, METRIC, mode
        )
        store, parent_run_id = self._store()
        recorder = Recorder(
            self._storage_url, self.experiment.name, cfg["scheduler"], store.tracking_uri, parent_run_id
        )
        return tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode=mode,
                search_alg=search,
                scheduler=self.scheduler(),
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
                # a trial whose actor died runs again; a trial's own error ends it (see raytune/trainable.py)
                failure_config=tune.FailureConfig(max_failures=heartbeat_settings()[2]),
            ),
        )

    def _mark_interrupted(self, numbers: list[int]) -> None:
        """Close the MLflow runs of trials Ray stopped on Ctrl+C (they restart when the sweep is re-run)."""
        from ape_nas import interrupts

        how = signal.Signals(interrupts.received() or signal.SIGINT).name
        store, parent_run_id = self._store()
        note = f"interrupted ({how}); re-running the sweep restarts this trial"
        runs.mark_interrupted(store, parent_run_id, self._book(), numbers, note)


__all__ = ["RayBackend", "default_storage", "init_ray"]
