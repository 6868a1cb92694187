"""One trial of a sweep, as a picklable callable: the same code runs in the sweep process, in parallel Optuna
workers and inside Ray Tune trial actors.

``TrialRunner(handle)`` samples a TrialSpec from the space through the backend's handle, opens the trial's
nested MLflow run under the sweep's parent run, runs :func:`ape_nas.objective.run_trial` with the handle as
reporter, records the run id, spec and test metrics on the backend's trial, and returns the score.

A spec identical to one the study already completed (same digest: same family, architecture, optimiser, data,
protocol, training and seed) is not trained again: the trial records ``duplicate_of`` and that trial's score,
test metrics and MLflow run (backends whose handle can look up finished trials: Optuna's).

Fingerprints: a space may choose the trial's inputs (``data`` section), so a trial's windows need not be the
study's. The trial records the study's fingerprint (user attr ``data_fingerprint``, MLflow tag
``ape_nas.study_fingerprint``), which ``sweep.comparable`` and ``TrialStore.best_trial`` compare, and the
fingerprint of its own windows (user attr ``input_fingerprint``, MLflow tag ``data_fingerprint``, also in its
checkpoint), which reproduce and export check when they rebuild the windows from its ``spec.data``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ape_nas.backends.base import TrialHandle
from ape_nas.tracking.names import CONSTRAINTS_ATTR, RUN_ID_ATTR, STUDY_FINGERPRINT_TAG


@dataclass
class TrialRunner:
    space_path: str
    base: dict[str, Any]
    experiment_name: str
    tracking_uri: str
    parent_run_id: str
    cache_dir: str
    data_fingerprint: str = ""
    study: str = ""  # the study's name when it differs from the MLflow experiment (outer folds of a nested run)
    costs: list[str] = field(default_factory=list)  # further objectives (cost metrics, minimised) after the score
    constraints: dict[str, float] = field(default_factory=dict)  # cost limits: over one, rejected before training
    _space: Any = field(default=None, init=False, repr=False, compare=False)
    _tracker: Any = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:  # ship the plain fields; rebuild the rest in the new process
        state = dict(self.__dict__)
        state["_space"] = state["_tracker"] = None
        return state

    def _objects(self) -> tuple[Any, Any]:
        if self._space is None:
            from ape_nas.space import load_space
            from ape_nas.tracking import SweepTracker

            self._space = load_space(self.space_path)
            self._tracker = SweepTracker(self.tracking_uri, self.experiment_name)
            self._tracker.attach_parent(self.parent_run_id)
        return self._space, self._tracker

    def values(self, score: float, cost: dict[str, Any]) -> float | list[float]:
        """What the backend is told: the score, or the score and the cost objectives."""
        return [score, *(float(cost[name]) for name in self.costs)] if self.costs else score

    def _gate(self, handle: TrialHandle) -> Callable[[dict[str, Any]], None]:
        """Called by ``run_trial`` with the network's measured cost before any training: records it, and rejects a
        spec over a constraint (``TrialRejected``: the trial is recorded as rejected, no epoch is run)."""
        from ape_nas.cost import Cost, describe_violations, violations
        from ape_nas.reporting import TrialRejected

        def gate(cost: dict[str, Any]) -> None:
            handle.set_attr("cost", cost)
            if not self.constraints:
                return
            measured = Cost.from_dict(cost)
            over = violations(measured, self.constraints)
            handle.set_attr(CONSTRAINTS_ATTR, list(over.values()))
            _set_constraints(handle, over)
            reason = describe_violations(measured, self.constraints)
            if reason:
                handle.set_attr("rejected", reason)
                raise TrialRejected(reason)

        return gate

    def __call__(self, handle: TrialHandle, on_start: Callable[[int, str], None] | None = None) -> float | list[float]:
        from ape_nas.models import arch_defaults
        from ape_nas.models.registry import canonical_spec
        from ape_nas.objective import run_trial

        space, tracker = self._objects()
        # the spec holds the whole network, in one canonical form (equal networks, equal digests)
        spec = canonical_spec(space.sample(handle, self.base, arch_defaults()))
        digest = spec.digest()
        handle.set_attr("model", spec.model)
        handle.set_attr("spec", spec.to_dict())
        handle.set_attr("spec_digest", digest)
        if self.data_fingerprint:
            handle.set_attr("data_fingerprint", self.data_fingerprint)
        if on_start is not None:
            on_start(handle.number, spec.model)
        lookup = getattr(handle, "finished_with", None)
        twin = lookup(digest) if lookup is not None else None
        if twin is not None and twin.values is not None:
            handle.set_attr("duplicate_of", twin.number)
            keys = (RUN_ID_ATTR, "test_metrics", "best_epoch", "test_ci", "fold_scores", "input_fingerprint", "cost")
            for key in (*keys, CONSTRAINTS_ATTR):
                if key in twin.attrs:
                    handle.set_attr(key, twin.attrs[key])
            if self.constraints and CONSTRAINTS_ATTR in twin.attrs:
                _set_constraints(handle, dict(zip(self.constraints, twin.attrs[CONSTRAINTS_ATTR], strict=False)))
            return twin.values if len(twin.values) > 1 else float(twin.values[0])
        tags = {"ape_nas.study": self.study or self.experiment_name}
        if self.data_fingerprint:  # the study's windows; the trial's own (its spec.data) are tagged data_fingerprint
            tags[STUDY_FINGERPRINT_TAG] = self.data_fingerprint
        with tracker.trial(handle.number, spec, tags) as run:
            handle.set_attr(RUN_ID_ATTR, run.run_id)
            result = run_trial(spec, handle, run, cache_dir=Path(self.cache_dir), gate=self._gate(handle))
            for fold in result.folds:  # logged to MLflow: the temporary copies can go
                shutil.rmtree(fold.checkpoint.parent, ignore_errors=True)
            handle.set_attr("test_metrics", result.test_metrics)
            handle.set_attr("best_epoch", result.best_epoch)
            handle.set_attr("input_fingerprint", result.data_fingerprint)  # the windows this trial trained on
            handle.set_attr("test_ci", result.test_ci)
            handle.set_attr("fold_scores", result.fold_scores)
            return self.values(result.score, result.cost)


def _set_constraints(handle: TrialHandle, values: dict[str, float]) -> None:
    """Each constraint's value (<= 0 feasible) to a backend that takes them (Optuna's ``set_constraint``: its
    samplers learn the feasible region, ``best_trials`` keeps feasible trials)."""
    constrain = getattr(handle, "set_constraint", None)
    if constrain is not None:
        for key, value in values.items():
            constrain(key, value)
