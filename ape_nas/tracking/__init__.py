"""The one door to MLflow: nothing outside this package imports it or spells its names.

- ``names``: tags, attributes and states that tie a sweep to its store (no imports);
- ``client``: the one way to make a client (PostgreSQL driver, quiet loggers, refused credentials → one line);
- ``runs``: the write side — the sweep's experiment and parent run, nested trial runs, their states;
- ``store``: ``TrialStore`` — reading trials back (by id, by number, the best of a sweep), spec and artifacts,
  closing/deleting/repairing runs, logging bundles, model-registry versions;
- ``server``: how ``ape-nas ui`` starts an MLflow server and asks it about experiments.

Importing this package does not import MLflow (``ape-nas --help`` stays fast).
"""

from ape_nas.tracking.client import commit_state, git_commit, preload, quiet_mlflow
from ape_nas.tracking.names import (
    BEST_RUN_TAG,
    COMMIT_TAG,
    DIGEST_TAG,
    EXPERIMENT_ATTR,
    NOTE_TAG,
    NUMBER_TAG,
    PARENT_RUN_ATTR,
    PARENT_TAG,
    ROLE_TAG,
    RUN_ID_ATTR,
    STATE_TAG,
    STORE_FILE,
    STUDY_TAG,
    default_tracking_uri,
    nested_experiment,
    outer_study,
    strip_state,
    ui_url,
)
from ape_nas.tracking.runs import SweepTracker, TrialRun
from ape_nas.tracking.store import RunView, TrialStore

__all__ = [
    "BEST_RUN_TAG",
    "COMMIT_TAG",
    "DIGEST_TAG",
    "EXPERIMENT_ATTR",
    "NOTE_TAG",
    "NUMBER_TAG",
    "PARENT_RUN_ATTR",
    "PARENT_TAG",
    "ROLE_TAG",
    "RUN_ID_ATTR",
    "STATE_TAG",
    "STORE_FILE",
    "STUDY_TAG",
    "RunView",
    "SweepTracker",
    "TrialRun",
    "TrialStore",
    "commit_state",
    "default_tracking_uri",
    "git_commit",
    "nested_experiment",
    "outer_study",
    "preload",
    "quiet_mlflow",
    "strip_state",
    "ui_url",
]
