"""A quiet Ray driver: environment set before Ray is imported, and ``init_ray``."""

from __future__ import annotations

import logging
import os
from typing import Any

from ape_nas.errors import UserError


def quiet_environment(local: bool) -> None:
    """Environment of a quiet Ray driver; set before Ray is imported. Explicit user settings win."""
    if local:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file and warning on a private cluster
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no configuration box, no tables
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no CSV/JSON/TensorBoard per trial
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # a failed trial is one line of the sweep's output
    for name in ("ray", "ray.tune", "ray.train", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


def trial_env() -> dict[str, str]:
    """Environment of the trial actors."""
    return {
        # trials keep the sweep's working directory (relative data paths, git commit of the runs)
        "RAY_CHDIR_TO_TRIAL_DIR": "0",
        # a reused actor serves the next trial once the last one's thread has ended (a stopped trial closes
        # its MLflow run first); Ray waits 2 s, then fails the next trial for it: wait longer on a busy machine
        "TUNE_FUNCTION_THREAD_TIMEOUT_S": os.environ.get("TUNE_FUNCTION_THREAD_TIMEOUT_S", "120"),
    }


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """Start a quiet private local Ray (``address=None``) or join a running cluster (``ray start --head``).

    A sweep calls this itself, and shuts Ray down at its end; a process that calls it first (tests, notebooks)
    keeps its Ray across sweeps.
    """
    quiet_environment(local=address is None)
    import ray

    try:
        ray.init(
            address=address or "local",  # "local": never attach to a stray cluster found in /tmp/ray
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
            runtime_env={"env_vars": trial_env()},
            **kwargs,
        )
    except ConnectionError as exc:
        raise UserError(f"backend.address {address!r}: cannot join the Ray cluster ({exc})") from None
