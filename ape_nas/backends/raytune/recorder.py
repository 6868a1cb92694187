"""The driver side of each Ray trial, as a Tune callback. Imports Ray: only for a Ray sweep.

States are written here because only the driver knows why a trial ended: its final result arrived (complete,
or failed when that result names the trial's error), Ray's scheduler stopped it (pruned: the trial ends its
MLflow run pruned when it sees the stop, the driver closes it too in case the actor is gone first), or the
actor itself failed (killed, out of memory: its run is closed failed; Ray retries it, see ``FailureConfig``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ray.tune import Callback

from ape_nas.backends.optuna_backend import trial_record
from ape_nas.backends.raytune.keys import ATTRS, ERROR, FINAL, INTERRUPTED, METRIC, NUMBER, STEP
from ape_nas.backends.raytune.live import LIVE
from ape_nas.backends.raytune.runs import close_trial_run
from ape_nas.backends.raytune.study import StudyBook
from ape_nas.tracking import TrialStore

_log = logging.getLogger(__name__)


def actor_error(trial: Any) -> str:
    """``Type: message`` (first line) of the error Ray recorded for a trial whose actor failed."""
    error = trial.get_pickled_error()
    if error is None:
        return "the trial's Ray actor failed"
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:1000]


class Recorder(Callback):
    """Study states, values and attributes of each trial; progress hooks; the store's fallbacks."""

    def __init__(
        self, storage_url: str, study_name: str, scheduler: str, tracking_uri: str, parent_run_id: str
    ) -> None:
        self.storage_url, self.study_name, self.scheduler = storage_url, study_name, scheduler
        self.tracking_uri, self.parent_run_id = tracking_uri, parent_run_id
        self._book: StudyBook | None = None
        self._store: TrialStore | None = None

    def __getstate__(self) -> dict[str, Any]:  # opened again where it is restored
        return {**self.__dict__, "_book": None, "_store": None}

    @property
    def book(self) -> StudyBook:
        if self._book is None:
            self._book = StudyBook(self.storage_url, self.study_name)
        return self._book

    @property
    def store(self) -> TrialStore:
        if self._store is None:
            self._store = TrialStore(self.tracking_uri)
        return self._store

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        number = int(trial.config[NUMBER])
        model = str(trial.config.get("model", ""))
        # a trial restarted after an interrupt is running again
        self.book.set_attrs(number, {"model": model, "ray_trial_id": trial.trial_id, INTERRUPTED: None})
        if LIVE.get("on_trial_start"):
            LIVE["on_trial_start"](number, model)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        number = int(trial.config[NUMBER])
        if result.get(ATTRS):
            self.book.set_attrs(number, json.loads(result[ATTRS]))
        if not result.get(FINAL) and result.get(STEP):
            self.book.intermediate(number, int(result[STEP]) - 1, float(result[METRIC]))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        number = int(trial.config[NUMBER])
        last = trial.last_result or {}
        if last.get(FINAL) and last.get(ERROR):
            self.book.set_attrs(number, {"error": last[ERROR]})
            self._end(number, "failed")
        elif last.get(FINAL):
            self._end(number, "complete", float(last[METRIC]))
        else:
            note = f"pruned by the {self.scheduler} scheduler at epoch {int(last.get(STEP, 1)) - 1}"
            self._close_run(number, "pruned", note)
            self._end(number, "pruned")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The trial's actor failed and Ray runs the trial again: the attempt's run ends failed."""
        number = int(trial.config[NUMBER])
        note = f"{actor_error(trial)}; Ray runs the trial again"
        self._close_run(number, "failed", note)
        self.book.set_attrs(number, {"actor_failures": int(trial.num_failures)})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        number = int(trial.config[NUMBER])
        error = actor_error(trial)
        note = self._close_run(number, "failed", error)
        self.book.set_attrs(number, {"error": note or error})
        self._end(number, "failed")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        LIVE["trials"] = [int(t.config[NUMBER]) for t in trials if NUMBER in t.config]

    def _close_run(self, number: int, state: str, note: str) -> str | None:
        try:
            return close_trial_run(self.store, self.parent_run_id, self.book, number, state, note)
        except Exception as exc:  # bookkeeping must not stop the sweep
            _log.warning("trial %s: could not close its MLflow run: %s", number, exc)
            return None

    def _end(self, number: int, state: str, value: float | None = None) -> None:
        if self.book.finish(number, state, value) and LIVE.get("on_trial_end"):
            LIVE["on_trial_end"](trial_record(self.book.frozen(number)))
