"""The one way this package makes an MLflow client: PostgreSQL driver choice, quiet loggers, readable refusals."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ape_nas.dburl import hide_password, with_pg_driver
from ape_nas.errors import UserError

T = TypeVar("T")


def quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # noqa: F401  (configures its loggers on import: set levels after)

    for name in ("mlflow", "alembic", "alembic.runtime.migration", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def preload(tracking_uri: str) -> None:
    """What :func:`make_client` imports and creates for ``tracking_uri`` (MLflow, its SQL store, a new SQLite store
    from the template), done ahead: outside the study's mutex, workers starting at once no longer queue behind
    each other's ~3 s of imports (``benchmarks/parallel_efficiency.py``)."""
    from ape_nas.tracking.template import seed_store

    quiet_mlflow()
    if "://" in tracking_uri and not tracking_uri.startswith(("http://", "https://", "file:")):
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    seed_store(tracking_uri)


def make_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` for ``tracking_uri``; a plain ``postgresql://`` URI gets whichever driver is installed."""
    from ape_nas.tracking.template import seed_store

    quiet_mlflow()
    from mlflow.tracking import MlflowClient

    seed_store(tracking_uri)  # a new SQLite store: a copy of an empty migrated one (no migrations to run)
    return MlflowClient(tracking_uri=with_pg_driver(tracking_uri, f"tracking URI {hide_password(tracking_uri)}"))


def mlflow_error() -> type[Exception]:
    from mlflow.exceptions import MlflowException

    return MlflowException


def checked(call: Callable[[], T], tracking_uri: str) -> T:
    """The first request to a tracking server: refused credentials become one line, not a traceback."""
    try:
        return call()
    except mlflow_error() as exc:
        text = str(exc)
        if "401" in text or "403" in text or "Unauthorized" in text or "Permission" in text:
            raise UserError(
                f"MLflow at {hide_password(tracking_uri)} refused the request ({text.splitlines()[0][:120]}); "
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an account of that server"
            ) from None
        raise


_NO_SUCH_RUN = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def run_or_none(client: Any, run_id: str) -> Any:
    """The MLflow run, or None when this store has no run with that id (e.g. one recorded in another store).

    Any other error (server down, refused credentials) is raised: a caller must never take it for "absent"
    (the sweep would start a second parent run)."""
    try:
        return client.get_run(run_id)
    except mlflow_error() as exc:
        if getattr(exc, "error_code", "") in _NO_SUCH_RUN or "not found" in str(exc).lower():
            return None
        raise


def git_commit(cwd: Path | None = None, *, short: bool = False) -> str | None:
    cmd = ["git", "rev-parse", *(["--short"] if short else []), "HEAD"]
    try:
        out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


#: results written by the runs themselves: regenerating them in place does not make the code differ from the commit
RESULT_DIRS = (":(top,exclude)docs/results", ":(top,exclude)benchmarks/results")


def commit_state(cwd: Path | None = None, *, short: bool = False) -> str | None:
    """The checkout's commit, marked ``+uncommitted`` when a tracked file outside the results folders differs from
    it (the results a run is rewriting, and untracked files, do not count)."""
    commit = git_commit(cwd, short=short)
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ":(top)", *RESULT_DIRS],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return f"{commit}+uncommitted" if commit and dirty.strip() else commit
