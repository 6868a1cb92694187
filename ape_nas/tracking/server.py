"""How an MLflow tracking server is started and asked about, for ``ape-nas ui`` (which owns the process)."""

from __future__ import annotations

import sys
from pathlib import Path

from ape_nas.tracking.names import default_tracking_uri

LOG_NAME = "mlflow-ui.log"  # the server's output, in the work directory


def server_command(workdir: Path, host: str, port: int) -> list[str]:
    """``python -m mlflow server`` over ``workdir``'s SQLite store and artifact folder, one worker."""
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        default_tracking_uri(workdir),
        "--artifacts-destination",
        str((Path(workdir) / "artifacts").resolve()),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def server_env() -> dict[str, str]:
    """Variables the server needs on top of the caller's environment (no job runner: nothing to execute)."""
    return {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def experiments_search_url(url: str) -> str:
    """The REST endpoint that lists a running server's experiments."""
    return f"{url}/api/2.0/mlflow/experiments/search"
