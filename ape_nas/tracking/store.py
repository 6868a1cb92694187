"""The read side of the store, and what later steps do to recorded runs: look a trial up (by run id, by number,
the best of an experiment), download its spec and checkpoint, close or delete runs, log a bundle and register a
model version. Needs no backend: the sweep's parent run records what is needed (direction, data fingerprint,
best trial).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ape_nas.errors import UserError
from ape_nas.spec import TrialSpec
from ape_nas.tracking.client import checked, git_commit, make_client, mlflow_error, run_or_none
from ape_nas.tracking.names import (
    BEST_RUN_TAG,
    COMMIT_TAG,
    NUMBER_TAG,
    PARENT_TAG,
    ROLE_TAG,
    STATE_TAG,
    STUDY_FINGERPRINT_TAG,
    STUDY_TAG,
    nested_experiment,
)

FINGERPRINT_TAG = "data_fingerprint"


def _study_fingerprint(run: RunView, default: str) -> str:
    """The data fingerprint of the study a trial run belongs to: its recorded study fingerprint, else its own."""
    return run.tags.get(STUDY_FINGERPRINT_TAG) or run.tags.get(FINGERPRINT_TAG, default)


if TYPE_CHECKING:
    from ape_nas.tracking.runs import TrialRun


@dataclass(frozen=True)
class RunView:
    """A recorded run as plain values (no MLflow object leaves this package)."""

    run_id: str
    experiment_id: str
    name: str
    status: str  # MLflow's: RUNNING, FINISHED, FAILED, KILLED
    start_time: int | None  # ms since the epoch
    end_time: int | None
    artifact_uri: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def parent_run_id(self) -> str | None:
        return self.tags.get(PARENT_TAG)

    @property
    def state(self) -> str:
        """ape-nas's state of a trial run (``complete``, ``pruned``, ``failed``, ``running``, ``interrupted``)."""
        return self.tags.get(STATE_TAG, "unknown")

    @property
    def number(self) -> int | None:
        text = self.tags.get(NUMBER_TAG)
        return int(text) if text not in (None, "") else None


def _view(run: Any) -> RunView:
    return RunView(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        name=run.info.run_name or "",
        status=run.info.status,
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        artifact_uri=run.info.artifact_uri or "",
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


class TrialStore:
    """One MLflow tracking store, addressed by its URI. Every MLflow call outside the sweep's writes goes here."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client = make_client(tracking_uri)

    # ---- runs -------------------------------------------------------------------------------------------------

    def run(self, run_id: str) -> RunView | None:
        """The run, or None when this store has none with that id; other errors (server down) are raised."""
        run = checked(lambda: run_or_none(self._client, run_id), self.tracking_uri)
        return None if run is None else _view(run)

    def require_trial(self, run_id: str) -> RunView:
        """A complete trial run of an ape-nas sweep (it has a model), else one UserError line."""
        run = self.run(run_id)
        if run is None:
            raise UserError(f"no MLflow run {run_id} in {self.tracking_uri}")
        if run.tags.get(ROLE_TAG) != "trial":
            raise UserError(f"MLflow run {run_id} is not a trial run of an ape-nas sweep (tag {ROLE_TAG})")
        if run.state != "complete":
            raise UserError(f"trial run {run_id} is {run.tags.get(STATE_TAG, 'unknown')}, not complete: no model")
        return run

    def _search(self, experiment_id: str, query: str, order_by: list[str] | None = None) -> list[RunView]:
        runs = self._client.search_runs([experiment_id], query, max_results=10000, order_by=order_by)
        return [_view(r) for r in runs]

    def trial_runs(self, parent_run_id: str, number: int | None = None) -> list[RunView]:
        """The nested runs of a sweep's parent run (trial ``number`` only, when given)."""
        parent = self.run(parent_run_id)
        return [] if parent is None else self._children(parent, number)

    def _children(self, parent: RunView, number: int | None = None) -> list[RunView]:
        query = f"tags.{PARENT_TAG} = '{parent.run_id}'"
        if number is not None:
            query += f" and tags.`{NUMBER_TAG}` = '{number}'"
        return self._search(parent.experiment_id, query)

    def sweep_parent(self, experiment_name: str) -> RunView | None:
        """The newest active parent run of the sweep of study ``experiment_name``.

        A study logs to the MLflow experiment of its name; an outer fold of a nested run (``<name>/outer-k``)
        logs to the nested run's experiment ``<name>``, its parent tagged with the study's name."""
        name = nested_experiment(experiment_name)
        exp = checked(lambda: self._client.get_experiment_by_name(name), self.tracking_uri)
        if exp is None or exp.lifecycle_stage != "active":
            return None
        parents = self._search(exp.experiment_id, f"tags.`{ROLE_TAG}` = 'sweep'", ["attributes.start_time DESC"])
        if name != experiment_name:
            parents = [p for p in parents if p.tags.get(STUDY_TAG) == experiment_name]
        return parents[0] if parents else None

    def nested_parent(self, name: str) -> RunView | None:
        """The newest active top-level run of the nested run ``name`` (its outer folds' parents are under it)."""
        exp = checked(lambda: self._client.get_experiment_by_name(name), self.tracking_uri)
        if exp is None or exp.lifecycle_stage != "active":
            return None
        runs = self._search(exp.experiment_id, f"tags.`{ROLE_TAG}` = 'nested'", ["attributes.start_time DESC"])
        return runs[0] if runs else None

    def best_trial(self, experiment_name: str) -> RunView | None:
        """The best complete trial of a sweep, from its parent run: its recorded direction and data fingerprint.

        Trials trained on other data (a parent that saw another fingerprint) never count; ties go to the
        lower trial number. Computed from the trial runs, so a sweep still running is answered too. A trial
        whose inputs the space chose compares by the study's fingerprint it records (its own windows have
        their own ``data_fingerprint``)."""
        parent = self.sweep_parent(experiment_name)
        if parent is None:
            return None
        sign = -1.0 if parent.params.get("objective.direction") == "minimize" else 1.0
        fingerprint = parent.tags.get(FINGERPRINT_TAG)
        candidates = [
            r
            for r in self._children(parent)
            if r.state == "complete"
            and "score" in r.metrics
            and (fingerprint is None or _study_fingerprint(r, fingerprint) == fingerprint)
        ]
        if not candidates:
            recorded = parent.tags.get(BEST_RUN_TAG)
            return self.run(recorded) if recorded else None
        return max(candidates, key=lambda r: (sign * r.metrics["score"], -(r.number or 0)))

    def trial_by_number(self, experiment_name: str, number: int) -> RunView | None:
        """Trial ``number`` of a sweep (its last run, when a retried trial left several)."""
        parent = self.sweep_parent(experiment_name)
        if parent is None:
            return None
        runs = sorted(self._children(parent, number), key=lambda r: r.start_time or 0)
        return runs[-1] if runs else None

    # ---- changes to recorded runs ----------------------------------------------------------------------------

    def close(self, run_id: str, state: str, note: str | None = None) -> None:
        """End a run in ``state`` (``complete``, ``pruned``, ``failed``, ``interrupted``) with an optional note."""
        from ape_nas.tracking.runs import TrialRun

        TrialRun(self.tracking_uri, run_id).close(state, note)

    def new_run(self, experiment_id: str, name: str, role: str, spec: TrialSpec, tags: dict[str, str]) -> TrialRun:
        """A top-level run of ``role`` (``reproduce``, ``final``, ...) that retrains ``spec``: tags, params and
        ``spec.yaml`` as a trial run has them; close it with ``run.close(state)``."""
        from ape_nas.tracking.runs import TrialRun

        all_tags = {ROLE_TAG: role, "ape_nas.seed": str(spec.seed), "ape_nas.model": spec.model, **tags}
        commit = git_commit()
        if commit:
            all_tags[COMMIT_TAG] = commit
        run = self._client.create_run(experiment_id, run_name=name, tags=all_tags)
        tracked = TrialRun(self.tracking_uri, run.info.run_id, name=name)
        tracked.log_params(spec.flat_params())
        tracked.log_text(spec.to_yaml(), "spec.yaml")
        return tracked

    def delete_run(self, run_id: str) -> None:
        self._client.delete_run(run_id)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from ape_nas.tracking.runs import TrialRun

        TrialRun(self.tracking_uri, run_id).set_tags(tags)

    def repair_running(self, parent_run_id: str, alive: Callable[[RunView], bool], note: str) -> list[str]:
        """Trial runs left RUNNING by a process that died: those ``alive`` says are not running are closed
        ``failed`` with ``note``. Returns their run ids."""
        fixed = []
        for run in self.trial_runs(parent_run_id):
            if run.status == "RUNNING" and not alive(run):
                self.close(run.run_id, "failed", note)
                fixed.append(run.run_id)
        return fixed

    # ---- artifacts -------------------------------------------------------------------------------------------

    def artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return [a.path for a in self._client.list_artifacts(run_id, path)]

    def download(self, run_id: str, artifact_path: str, dst_dir: str | Path) -> Path:
        """Download one artifact of a run into ``dst_dir``; a missing artifact is one UserError line."""
        Path(dst_dir).mkdir(parents=True, exist_ok=True)
        try:
            return Path(self._client.download_artifacts(run_id, artifact_path, str(dst_dir)))
        except (mlflow_error(), OSError) as exc:
            raise UserError(f"run {run_id}: cannot download {artifact_path} ({exc})") from None

    def spec(self, run_id: str) -> TrialSpec:
        """The TrialSpec a run recorded as ``spec.yaml``."""
        tmp = Path(tempfile.mkdtemp(prefix="ape-nas-spec-"))
        try:
            return TrialSpec.from_yaml(self.download(run_id, "spec.yaml", tmp).read_text())
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def log_artifacts(self, run_id: str, folder: str | Path, artifact_path: str | None = None) -> None:
        self._client.log_artifacts(run_id, str(folder), artifact_path)

    # ---- model registry --------------------------------------------------------------------------------------

    def register_version(
        self,
        name: str,
        run_id: str,
        source_subpath: str,
        tags: dict[str, str],
        description: str,
        model_description: str,
    ) -> str:
        """A new version of registered model ``name`` (created when missing) for ``runs:/<run>/<subpath>``."""
        try:
            self._client.get_registered_model(name)
        except mlflow_error():
            self._client.create_registered_model(name, description=model_description)
        version = self._client.create_model_version(
            name, source=f"runs:/{run_id}/{source_subpath}", run_id=run_id, tags=tags, description=description
        )
        return str(version.version)

    @staticmethod
    def error_type() -> type[Exception]:
        """MLflow's exception class, for callers that turn a failed store call into their own message."""
        return mlflow_error()
