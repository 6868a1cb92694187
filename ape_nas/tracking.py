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
NOTE_TAG = "ape_nas.note"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag for nested runs
COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own tag, shown as "Source" in its UI
RUN_ID_ATTR = "mlflow_run_id"  # study/trial user attributes (backends) that point into the store
PARENT_RUN_ATTR = "mlflow_parent_run_id"
EXPERIMENT_ATTR = "mlflow_experiment_id"
_MLFLOW_STATUS = {"complete": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "running": "RUNNING"}
_NAMED_STATES = ("pruned", "failed")  # shown in the run name at close: `trial-0003 (pruned)`


def strip_state(run_name: str) -> str:
    """``trial-0003 (pruned)`` → ``trial-0003``: the run name as created, whatever state it ended in."""
    for state in _NAMED_STATES:
        suffix = f" ({state})"
        if run_name.endswith(suffix):
            return run_name[: -len(suffix)]
    return run_name


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


def _checked(call: Any, tracking_uri: str) -> Any:
    """The first request to a tracking server: refused credentials become one line, not a traceback."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        text = str(exc)
        if "401" in text or "403" in text or "Unauthorized" in text or "Permission" in text:
            from ape_nas.errors import UserError

            raise UserError(
                f"MLflow at {hide_password(tracking_uri)} refused the request ({text.splitlines()[0][:120]}); "
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an account of that server"
            ) from None
        raise


def _stringify(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


class TrialRun:
    """A nested MLflow run for one trial; implements :class:`~ape_nas.reporting.TrialTracker`."""

    def __init__(self, tracking_uri: str, run_id: str, name: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.run_id = run_id
        self.name = name  # the run name without a state suffix, when known (else read at close)
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
        """End the run in ``state``; a pruned or failed run is renamed ``<name> (pruned)`` / ``<name> (failed)``.

        MLflow's runs table shows a pruned trial as FINISHED like a complete one; the name makes the
        difference visible there. The state itself stays in the tag ``ape_nas.state``."""
        tags = {STATE_TAG: state}
        if note:
            tags["ape_nas.note"] = note
        self.set_tags(tags)
        if state in _NAMED_STATES:
            base = self.name if self.name is not None else self._client.get_run(self.run_id).info.run_name or ""
            self._client.update_run(self.run_id, name=f"{strip_state(base)} ({state})")
        self._client.set_terminated(self.run_id, _MLFLOW_STATUS[state])


class SweepTracker:
    """The sweep's MLflow experiment and parent run; opens a nested run per trial."""

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self._client = _client(tracking_uri)
        exp = _checked(lambda: self._client.get_experiment_by_name(experiment_name), tracking_uri)
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
            try:
                run = self._client.get_run(run_id)
                if run.info.experiment_id == self.experiment_id and run.info.lifecycle_stage == "active":
                    self._parent_was = run.info.status
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
        trial = TrialRun(self.tracking_uri, run.info.run_id, name=run.info.run_name)
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
        query = f"tags.mlflow.parentRunId = '{self.parent.run_id}'"
        return list(self._client.search_runs([self.experiment_id], query, max_results=10000))


def write_temp(text: str, name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="ape-nas-")) / name
    path.write_text(text)
    return path
