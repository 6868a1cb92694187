"""What ``ape-nas export TARGET`` exports: a trial run by its MLflow run id, or the best trial of an experiment's
sweep, read from the sweep's parent run in the store (no backend, no study)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ape_nas.errors import UserError

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Source:
    tracking_uri: str
    run_id: str
    how: str  # how the run was chosen, for bundle.json and the card


def resolve_source(
    target: str,
    *,
    workdir: str | Path = "runs",
    tracking_uri: str | None = None,
    overrides: list[str] | None = None,
) -> Source:
    """``target`` is an experiment file (→ the best trial of its sweep) or an MLflow run id.

    The store is ``tracking_uri``, else the work directory's default store."""
    from ape_nas.tracking import default_tracking_uri

    uri = tracking_uri or default_tracking_uri(Path(workdir))
    path = Path(target)
    if path.is_file() or path.suffix in (".yaml", ".yml"):
        return best_trial_source(path, uri, overrides)
    if not RUN_ID_RE.match(target):
        raise UserError(
            f"{target}: neither an experiment file nor an MLflow run id (32 hex digits, e.g. from `ape-nas status`)"
        )
    return Source(uri, target, f"MLflow run {target}")


def best_trial_source(path: Path, tracking_uri: str, overrides: list[str] | None = None) -> Source:
    from ape_nas.experiments import load_experiment
    from ape_nas.tracking import TrialStore

    exp = load_experiment(path, overrides)
    store = TrialStore(tracking_uri)
    if store.sweep_parent(exp.name) is None:
        raise UserError(
            f"no sweep of experiment {exp.name!r} in {tracking_uri}: run `ape-nas sweep {path}` first, or give "
            "the --workdir / --tracking-uri the sweep used"
        )
    best = store.best_trial(exp.name)
    if best is None or "score" not in best.metrics:
        raise UserError(f"study {exp.name!r} has no complete trial yet; nothing to export")
    value = best.metrics["score"]
    how = f"best trial {best.number} of study {exp.name} (val {exp.objective['metric']} {value:.4f})"
    return Source(tracking_uri, best.run_id, how)
