"""All MLflow calls in one place: the sweep's parent run, nested trial runs, states, tags and artifacts.

Runs are addressed by id through ``MlflowClient`` (no global "active run"), so a trial can be logged from any
process that knows the tracking URI and its run id. States: a trial run ends ``complete`` (MLflow FINISHED),
``pruned`` (FINISHED, never FAILED) or ``failed`` (FAILED); the state is the tag ``ape_nas.state``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ape_nas.dburl import hide_password, with_pg_driver
from ape_nas.spec import TrialSpec

STATE_TAG = "ape_nas.state"
ROLE_TAG = "ape_nas.role"
_MLFLOW_STATUS = {"complete": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "running": "RUNNING"}


def default_tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{(Path(workdir) / 'mlflow.db').resolve()}"


def ui_url(tracking_uri: str) -> str | None:
    return tracking_uri if tracking_uri.startswith(("http://", "https://")) else None


def quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # noqa: F401  (configures its loggers on import: set levels after)

    for name in ("mlflow", "alembic", "alembic.runtime.migration", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _client(tracking_uri: str) -> Any:
    quiet_mlflow()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=with_pg_driver(tracking_uri, f"tracking URI {hide_password(tracking_uri)}"))


def _stringify(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


class TrialRun:
    """A nested MLflow run for one trial; implements :class:`~ape_nas.reporting.TrialTracker`."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self._client = _client(tracking_uri)

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

    def close(self, state: str, note: str | None = None) -> None:
        tags = {STATE_TAG: state}
        if note:
            tags["ape_nas.note"] = note
        self.set_tags(tags)
        self._client.set_terminated(self.run_id, _MLFLOW_STATUS[state])


class SweepTracker:
    """The sweep's MLflow experiment and parent run; opens a nested run per trial."""

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self._client = _client(tracking_uri)
        exp = self._client.get_experiment_by_name(experiment_name)
        if exp is None:
            location = None
            if artifact_root is not None and ui_url(tracking_uri) is None:
                location = (Path(artifact_root).resolve() / experiment_name).as_uri()
            self.experiment_id = self._client.create_experiment(experiment_name, artifact_location=location)
        else:
            if exp.lifecycle_stage == "deleted":
                self._client.restore_experiment(exp.experiment_id)
            self.experiment_id = exp.experiment_id
        self.parent: TrialRun | None = None
        self.commit = git_commit()

    def attach_parent(self, run_id: str) -> TrialRun:
        """Use an existing parent run (another process opened it): for workers and remote trials."""
        self.parent = TrialRun(self.tracking_uri, run_id)
        return self.parent

    def open_parent(self, run_id: str | None, name: str, tags: dict[str, Any], params: dict[str, Any]) -> TrialRun:
        """Resume the recorded parent run if it exists in this store, else start one."""
        if run_id is not None:
            try:
                run = self._client.get_run(run_id)
                if run.info.experiment_id == self.experiment_id and run.info.lifecycle_stage == "active":
                    self._client.update_run(run_id, status="RUNNING")
                    self.parent = TrialRun(self.tracking_uri, run_id)
                    self.parent.set_tags({"ape_nas.resumed": "true"})
                    return self.parent
            except Exception:
                pass
        all_tags = {ROLE_TAG: "sweep", **tags}
        if self.commit:
            all_tags["mlflow.source.git.commit"] = self.commit
        run = self._client.create_run(self.experiment_id, run_name=name, tags={k: str(v) for k, v in all_tags.items()})
        self.parent = TrialRun(self.tracking_uri, run.info.run_id)
        self.parent.log_params(params)
        return self.parent

    def start_trial(self, number: int, spec: TrialSpec, extra_tags: dict[str, Any] | None = None) -> TrialRun:
        assert self.parent is not None, "open_parent() first"
        tags = {
            "mlflow.parentRunId": self.parent.run_id,
            ROLE_TAG: "trial",
            STATE_TAG: "running",
            "ape_nas.trial_number": str(number),
            "ape_nas.seed": str(spec.seed),
            "ape_nas.model": spec.model,
            "ape_nas.spec_digest": spec.digest(),
            **(extra_tags or {}),
        }
        if self.commit:
            tags["mlflow.source.git.commit"] = self.commit
        run = self._client.create_run(
            self.experiment_id, run_name=f"trial-{number:04d}", tags={k: str(v) for k, v in tags.items()}
        )
        trial = TrialRun(self.tracking_uri, run.info.run_id)
        trial.log_params(spec.flat_params())
        trial.log_text(spec.to_yaml(), "spec.yaml")
        return trial

    @contextmanager
    def trial(self, number: int, spec: TrialSpec, extra_tags: dict[str, Any] | None = None) -> Iterator[TrialRun]:
        """Context for one trial run: ends complete, pruned (on ``TrialPruned``) or failed (any other error)."""
        from ape_nas.reporting import TrialPruned

        run = self.start_trial(number, spec, extra_tags)
        try:
            yield run
        except TrialPruned as exc:
            run.close("pruned", str(exc))
            raise
        except BaseException as exc:
            run.close("failed", f"{type(exc).__name__}: {exc}"[:500])
            raise
        else:
            run.close("complete")

    def finish_parent(self, status: str = "FINISHED") -> None:
        if self.parent is not None:
            self._client.set_terminated(self.parent.run_id, status)

    def trial_runs(self) -> list[Any]:
        """All nested trial runs of the parent (for status checks and tests)."""
        assert self.parent is not None
        query = f"tags.mlflow.parentRunId = '{self.parent.run_id}'"
        return list(self._client.search_runs([self.experiment_id], query, max_results=10000))


def write_temp(text: str, name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="ape-nas-")) / name
    path.write_text(text)
    return path
