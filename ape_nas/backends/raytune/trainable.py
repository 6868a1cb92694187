"""The function trainable of a Ray sweep and the TrialHandle its trial sees. Imports Ray: only for a Ray sweep."""

from __future__ import annotations

import json
import math
import os
import socket
from typing import Any

from ray import tune

from ape_nas.backends.base import TrialFunction
from ape_nas.backends.raytune.keys import ATTRS, ERROR, FINAL, METRIC, NUMBER, STEP, WORKER
from ape_nas.reporting import TrialPruned


def report(result: dict[str, Any]) -> bool:
    """Send one result to Ray; True when Ray has stopped this trial instead.

    Ray 2.x tells a function trainable that it was stopped (its scheduler's decision, the end of the sweep, an
    interrupt) only by raising ``SystemExit`` out of ``tune.report`` in the training thread (the train session
    calls ``sys.exit(0)`` once its stop event is set); there is no public flag to ask. This is the one place
    that knows it (``tests/test_ray_backend.py`` checks it on a real Ray); :func:`train` then ends the trial
    with the same ``SystemExit(0)``.
    """
    try:
        tune.report(result)
    except SystemExit:
        return True
    return False


class RayHandle:
    """A TrialHandle inside a Ray trial: the point was sampled by the driver (config), reports go to Ray."""

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
        """A result for Ray: the value, the step (unless ``extra`` says ``step=None``), unsent attributes."""
        out = {METRIC: float(value), STEP: self.step, **extra}
        if out[STEP] is None:
            del out[STEP]  # not a step of the trial's curve: schedulers ignore it
        if self._unsent:
            out[ATTRS] = json.dumps(self._unsent, default=str)
            self._unsent = {}
        return out

    def report(self, value: float, step: int) -> bool:
        self.step = step + 1
        self.stopped = report(self.result(value))
        return self.stopped


def train(config: dict[str, Any], runner: TrialFunction, threads: int) -> None:
    """The Ray function trainable: one trial of ``runner`` (a TrialRunner) with its point from ``config``.

    The trial's own errors end it with a last result naming the error (its MLflow run is closed failed by the
    runner): Ray sees an error only when the actor itself fails (killed, out of memory), and retries those."""
    import torch

    torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS=1; match torch to the trial's CPUs
    handle = RayHandle(config)
    handle.set_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
    try:
        score = runner(handle)
    except Exception as exc:
        if isinstance(exc, TrialPruned) and handle.stopped:  # stopped by Ray: the run is closed pruned
            # end the way Ray's own stop does: a stopped function that returns normally leaves the next trial
            # on its reused actor pending for ever (Ray 2.60; test_asha_stops_trials_and_they_end_pruned)
            raise SystemExit(0) from None
        report(handle.result(math.nan, step=None, **{FINAL: True, ERROR: f"{type(exc).__name__}: {exc}"[:1000]}))
        return
    report(handle.result(score, **{FINAL: True}))
