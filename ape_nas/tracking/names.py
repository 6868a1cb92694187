"""Names of the tags and attributes that tie a sweep to its MLflow store, and the run states. No imports.

Callers outside ``ape_nas.tracking`` use these constants instead of spelling MLflow's names themselves.
"""

from __future__ import annotations

from pathlib import Path

STATE_TAG = "ape_nas.state"
ROLE_TAG = "ape_nas.role"
NOTE_TAG = "ape_nas.note"
NUMBER_TAG = "ape_nas.trial_number"
DIGEST_TAG = "ape_nas.spec_digest"
BEST_RUN_TAG = "best_run_id"  # on the parent run: the study's best trial run when the sweep (or a worker) left
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag for nested runs
COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own tag, shown as "Source" in its UI
RUN_ID_ATTR = "mlflow_run_id"  # study/trial user attributes (backends) that point into the store
CONSTRAINTS_ATTR = "constraints"  # trial user attr: each cost constraint's value - limit (> 0: violated)
PARENT_RUN_ATTR = "mlflow_parent_run_id"
EXPERIMENT_ATTR = "mlflow_experiment_id"
UI_ATTR = "mlflow_ui"  # study user attr (written by `ape-nas dashboard`): where the study's runs are browsed
STORE_FILE = "mlflow.db"  # the default store of a work directory
STUDY_TAG = "ape_nas.study"  # on parent and trial runs: the study's name
STUDY_FINGERPRINT_TAG = "ape_nas.study_fingerprint"  # on trial runs: the study's data fingerprint
OUTER_SEP = "/outer-"  # study of outer fold k of a nested run: <name>/outer-<k>


def outer_study(name: str, k: int) -> str:
    """The study of outer fold ``k`` (counted from 1) of the nested run ``name``."""
    return f"{name}{OUTER_SEP}{k}"


def nested_experiment(study: str) -> str:
    """The MLflow experiment a study logs to: its own name, or the nested run's for an outer fold's study."""
    return study.rsplit(OUTER_SEP, 1)[0] if OUTER_SEP in study else study


# ape-nas state -> MLflow run status. "interrupted": stopped by Ctrl+C/SIGTERM, restarted when the sweep is re-run.
RUN_STATUS = {
    "complete": "FINISHED",
    "pruned": "FINISHED",
    "rejected": "FINISHED",  # over a cost constraint, never trained
    "failed": "FAILED",
    "running": "RUNNING",
    "interrupted": "KILLED",
}
NAMED_STATES = ("pruned", "rejected", "failed")  # shown in the run name at close: `trial-0003 (pruned)`


def strip_state(run_name: str) -> str:
    """``trial-0003 (pruned)`` → ``trial-0003``: the run name as created, whatever state it ended in."""
    for state in NAMED_STATES:
        suffix = f" ({state})"
        if run_name.endswith(suffix):
            return run_name[: -len(suffix)]
    return run_name


def default_tracking_uri(workdir: Path) -> str:
    return f"sqlite:///{(Path(workdir) / STORE_FILE).resolve()}"


def ui_url(tracking_uri: str) -> str | None:
    return tracking_uri if tracking_uri.startswith(("http://", "https://")) else None
