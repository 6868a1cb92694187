"""The backend interface: what orchestration needs from Optuna, Ray Tune or any other search engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ape_nas.tracking.names import RUN_ID_ATTR


class TrialHandle(Protocol):
    """One trial as the sweep sees it: a suggester, a reporter and a place for attributes."""

    number: int

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def report(self, value: float, step: int) -> bool: ...
    def set_attr(self, key: str, value: Any) -> None: ...


class TrialFunction(Protocol):
    """What a backend calls per trial: ``ape_nas.trial_runner.TrialRunner`` (picklable, so it can be shipped
    to worker processes and Ray actors). ``on_start(number, model)`` is for progress display only."""

    def __call__(
        self, handle: TrialHandle, on_start: Callable[[int, str], None] | None = None
    ) -> float | list[float]: ...


@dataclass
class TrialRecord:
    """A backend-neutral view of one trial, for progress, status and summaries."""

    number: int
    state: str
    value: float | None
    duration_s: float | None
    params: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    values: list[float] | None = None  # every objective of a complete trial (``value`` is the first)

    @property
    def run_id(self) -> str | None:
        return self.attrs.get(RUN_ID_ATTR)

    @property
    def model(self) -> str:
        return str(self.attrs.get("model") or self.params.get("model") or "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.state,
            "value": self.value,
            "duration_s": self.duration_s,
            RUN_ID_ATTR: self.run_id,
            "model": self.model,
            "params": self.params,
            **({"values": self.values} if self.values is not None and len(self.values) > 1 else {}),
        }


class Backend(ABC):
    """A search engine driving trials. One implementation per module; see ``backends/optuna_backend.py``."""

    name: str

    @abstractmethod
    def validate(self) -> None:
        """Check backend options (sampler, pruner, storage URL) without creating anything."""

    @abstractmethod
    def open(self, create: bool = True) -> None:
        """Create or load the study; with ``create=False`` a missing study is a UserError."""

    def exists(self) -> bool:
        """Whether the study is already in its storage (creates no file: local stores are checked first)."""
        from ape_nas.errors import UserError

        try:
            self.open(create=False)
        except UserError:
            return False
        return True

    def delete(self) -> None:
        """Remove the study: undoes a study this command created before a late error."""
        raise NotImplementedError

    def rename(self, experiment: Any) -> None:
        """Use another (derived) study name: ``experiment`` is the same experiment under that name."""
        self.experiment = experiment

    @abstractmethod
    def run(
        self,
        fn: TrialFunction,
        n_trials: int,
        timeout_s: float | None,
        on_trial_end: Callable[[TrialRecord], None] | None = None,
        on_trial_start: Callable[[int, str], None] | None = None,
    ) -> None:
        """Run ``n_trials`` more trials (or until ``timeout_s``); a failing trial does not stop the sweep."""

    @abstractmethod
    def records(self) -> list[TrialRecord]:
        """All trials of the study so far, in trial-number order."""

    @abstractmethod
    def attrs(self) -> dict[str, Any]:
        """Study-level attributes (e.g. the MLflow parent run id)."""

    @abstractmethod
    def set_attrs(self, values: dict[str, Any]) -> None: ...

    @property
    @abstractmethod
    def storage_url(self) -> str: ...

    @property
    def storage_label(self) -> str:
        """The storage for output and tags, with any password hidden."""
        from ape_nas.dburl import hide_password

        return hide_password(self.storage_url)

    def figures(self) -> dict[str, Any]:
        """Matplotlib figures of the study (history, importances, parallel coordinates); may be empty."""
        return {}
