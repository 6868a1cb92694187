"""The Optuna study of a Ray sweep, as the driver writes it: states, values, intermediate values, attributes.

Only the driver process writes the study (trial actors send their attributes with their results), through
Optuna's public study and storage API.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ape_nas.dburl import hide_password, with_pg_driver
from ape_nas.errors import UserError


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """A plain RDB storage. No Optuna heartbeat: Ray notices dead trial actors itself."""
    engine: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    label = hide_password(url)
    try:
        return optuna.storages.RDBStorage(with_pg_driver(url, f"storage {label}"), engine_kwargs=engine)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"storage {label}: cannot open ({type(exc).__name__}: {exc})") from None


def load(url: str, name: str, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url), sampler=sampler)


class StudyBook:
    """The driver's writes to the trials of the study, by trial number (one place for states and attributes)."""

    def __init__(self, storage_url: str, study_name: str) -> None:
        self.storage = open_storage(storage_url)
        self.study = optuna.load_study(study_name=study_name, storage=self.storage)
        self.study_id = self.storage.get_study_id_from_name(study_name)

    def _id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def frozen(self, number: int) -> FrozenTrial:
        return self.storage.get_trial(self._id(number))

    def set_attrs(self, number: int, values: dict[str, Any]) -> None:
        """Set user attributes of a trial still running (unchanged values are not written again)."""
        tid = self._id(number)
        current = self.storage.get_trial(tid)
        if current.state.is_finished():
            return
        for key, value in values.items():
            if current.user_attrs.get(key) != value:
                self.storage.set_trial_user_attr(tid, key, value)

    def intermediate(self, number: int, step: int, value: float) -> None:
        """Record the value of ``step``; a trial restarted after an interrupt reports its steps again: kept once."""
        tid = self._id(number)
        ft = self.storage.get_trial(tid)
        if not ft.state.is_finished() and step not in ft.intermediate_values:
            self.storage.set_trial_intermediate_value(tid, step, value)

    def finish(self, number: int, state: str, value: float | None = None) -> bool:
        """Tell the study how the trial ended, once; False if it had finished already.

        ``complete`` needs a finite value (else the trial fails); ``pruned`` takes the last intermediate value,
        as Optuna does for pruned trials; anything else is ``failed``."""
        if self.frozen(number).state.is_finished():
            return False
        if state == "complete" and value is not None and math.isfinite(value):
            self.study.tell(number, value)
        elif state == "pruned":
            self.study.tell(number, state=TrialState.PRUNED)
        else:
            self.study.tell(number, state=TrialState.FAIL)
        return True

    def running(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
