"""The write side of the store: the sweep's experiment and parent run, nested trial runs, their states.

Runs are addressed by id through ``MlflowClient`` (no global "active run"), so a trial can be logged from any
process that knows the tracking URI and its run id. States: a trial run ends ``complete`` (MLflow FINISHED),
``pruned`` (FINISHED, never FAILED) or ``failed`` (FAILED); the state is the tag ``ape_nas.state``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ape_nas.spec import TrialSpec
from ape_nas.tracking.client import checked, git_commit, make_client, run_or_none
from ape_nas.tracking.names import (
    COMMIT_TAG,
    DIGEST_TAG,
    NAMED_STATES,
    NOTE_TAG,
    NUMBER_TAG,
    PARENT_TAG,
    ROLE_TAG,
    RUN_STATUS,
    STATE_TAG,
    strip_state,
    ui_url,
)


def _stringify(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


class TrialRun:
    """A nested MLflow run for one trial; implements :class:`~ape_nas.reporting.TrialTracker`."""

    def __init__(self, tracking_uri: str, run_id: str, name: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.name = name  # the run name without a state suffix, when known (else read at close)
        self._client = make_client(tracking_uri)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _stringify(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        if items:
            self._client.log_batch(self.run_id, metrics=items)

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(self.run_id, tags=[RunTag(k, _stringify(v)) for k, v in tags.items()])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self._client.log_text(self.run_id, text, name)

    def log_figure(self, figure: Any, name: str) -> None:
        self._client.log_figure(self.run_id, figure, name)

    def mark_running(self) -> None:
        """Show the run as RUNNING again (a worker's parent run while its trials run)."""
        self._client.update_run(self.run_id, status="RUNNING")

    def close(self, state: str, note: str | None = None) -> None:
        """End the run in ``state``; a pruned or failed run is renamed ``<name> (pruned)`` / ``<name> (failed)``.

        MLflow's runs table shows a pruned trial as FINISHED like a complete one; the name makes the
        difference visible there. The state itself stays in the tag ``ape_nas.state``."""
        tags = {STATE_TAG: state}
        if note:
            tags[NOTE_TAG] = note
        self.set_tags(tags)
        if state in NAMED_STATES:
            base = self.name if self.name is not None else self._client.get_run(self.run_id).info.run_name or ""
            self._client.update_run(self.run_id, name=f"{strip_state(base)} ({state})")
        self._client.set_terminated(self.run_id, RUN_STATUS[state])


class SweepTracker:
    """The sweep's MLflow experiment and parent run; opens a nested run per trial."""

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self._client = make_client(tracking_uri)
        exp = checked(lambda: self._client.get_experiment_by_name(experiment_name), tracking_uri)
        if exp is None:
            location = None
            if artifact_root is not None and ui_url(tracking_uri) is None:
                location = (Path(artifact_root).resolve() / experiment_name).as_uri()
            self.experiment_id = self._client.create_experiment(experiment_name, artifact_location=location)
        else:
            if exp.lifecycle_stage == "deleted":
                self._client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id
        self.created_experiment = exp is None
        self.parent: TrialRun | None = None
        self._parent_was: str | None = None  # status of a resumed parent before this command ("" = new run)
        self.commit = git_commit()

    def attach_parent(self, run_id: str) -> TrialRun:
        """Use an existing parent run (another process opened it): for workers and remote trials."""
        self.parent = TrialRun(self.tracking_uri, run_id)
        return self.parent

    def open_parent(self, run_id: str | None, name: str, tags: dict[str, Any], params: dict[str, Any]) -> TrialRun:
        """Resume the recorded parent run if it exists in this store, else start one."""
        if run_id is not None:
            run = run_or_none(self._client, run_id)
            if (
                run is not None
                and run.info.experiment_id == self.experiment_id
                and run.info.lifecycle_stage == "active"
            ):
                self._parent_was = run.info.status
                self._client.update_run(run_id, status="RUNNING")
                self.parent = TrialRun(self.tracking_uri, run_id)
                self.parent.set_tags({"ape_nas.resumed": "true"})
                return self.parent
        all_tags = {ROLE_TAG: "sweep", **tags}
        if self.commit:
            all_tags[COMMIT_TAG] = self.commit
        run = self._client.create_run(self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()})
        self._parent_was = ""
        self.parent = TrialRun(self.tracking_uri, run.info.run_id)
        self.parent.log_params(params)
        return self.parent

    def undo_parent(self, delete: bool = True) -> None:
        """Undo :meth:`open_parent` after a failed start: a new parent run (and a new experiment) is ended and
        deleted (``delete=False``: ended FAILED only); a resumed one gets its earlier status back."""
        if self.parent is not None and self._parent_was is not None:
            run_id = self.parent.run_id
            if self._parent_was:
                self._client.update_run(run_id, status=self._parent_was)
            else:
                self._client.set_terminated(run_id, "FAILED")
                if delete:
                    self._client.delete_run(run_id)
        if delete and self.created_experiment:
            self._client.delete_experiment(self.experiment_id)

    def start_trial(self, number: int, spec: TrialSpec, extra_tags: dict[str, Any] | None = None) -> TrialRun:
        assert self.parent is not None, "open_parent() first"
        tags = {
            PARENT_TAG: self.parent.run_id,
            ROLE_TAG: "trial",
            STATE_TAG: "running",
            NUMBER_TAG: str(number),
            "ape_nas.seed": str(spec.seed),
            "ape_nas.model": spec.model,
            DIGEST_TAG: spec.digest(),
            **(extra_tags or {}),
        }
        if self.commit:
            tags[COMMIT_TAG] = self.commit
        run = self._client.create_run(
            self.experiment_id, run_name=f"trial-{number:04d}", tags={k: str(v) for k, v in tags.items()}
        )
        trial = TrialRun(self.tracking_uri, run.info.run_id, name=run.info.run_name)
        trial.log_params(spec.flat_params())
        trial.log_text(spec.to_yaml(), "spec.yaml")
        return trial

    @contextmanager
    def trial(self, number: int, spec: TrialSpec, extra_tags: dict[str, Any] | None = None) -> Iterator[TrialRun]:
        """Context for one trial run: ends complete, pruned (on ``TrialPruned``), rejected (``TrialRejected``:
        over a cost constraint, never trained) or failed (any other error)."""
        from ape_nas.reporting import TrialPruned, TrialRejected

        run = self.start_trial(number, spec, extra_tags)
        try:
            yield run
        except TrialPruned as exc:
            run.close("rejected" if isinstance(exc, TrialRejected) else "pruned", str(exc))
            raise
        except BaseException as exc:
            from ape_nas.interrupts import Interrupted

            note = str(exc) if isinstance(exc, Interrupted | KeyboardInterrupt) and str(exc) else None
            run.close("failed", note or f"{type(exc).__name__}: {exc}"[:500])
            raise
        else:
            run.close("complete")

    def finish_parent(self, status: str = "FINISHED") -> None:
        if self.parent is not None:
            self._client.set_terminated(self.parent.run_id, status)

    def trial_runs(self) -> list[Any]:
        """All nested trial runs of the parent (for status checks and tests)."""
        assert self.parent is not None
        query = f"tags.{PARENT_TAG} = '{self.parent.run_id}'"
        return list(self._client.search_runs([self.experiment_id], query, max_results=10000))
