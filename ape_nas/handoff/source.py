"""What ``ape-nas export TARGET`` exports: a trial run by its MLflow run id, or the best trial of an experiment's
sweep, or (``--ensemble K``) its K best distinct trials, read from the sweep's parent run in the store (no
backend, no study)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ape_nas.errors import UserError

if TYPE_CHECKING:
    from ape_nas.tracking import RunView, TrialStore

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Source:
    tracking_uri: str
    run_id: str  # the run the bundle is logged under (the trial; its refit run with --final)
    how: str  # how the run was chosen, for bundle.json and the card
    members: list[str] = field(default_factory=list)  # --ensemble K: the K trial runs, best first
    parent_run_id: str | None = None  # the sweep's parent run (where a top-K ensemble is logged)


def resolve_source(
    target: str,
    *,
    workdir: str | Path = "runs",
    tracking_uri: str | None = None,
    overrides: list[str] | None = None,
    top: int | None = None,
    trial: int | None = None,
) -> Source:
    """``target`` is an experiment file (→ the best trial of its sweep; ``top``: its ``top`` best distinct
    trials; ``trial``: its trial of that number, e.g. a point of a Pareto front) or an MLflow run id.

    The store is ``tracking_uri``, else the work directory's default store."""
    from ape_nas.tracking import default_tracking_uri

    uri = tracking_uri or default_tracking_uri(Path(workdir))
    path = Path(target)
    if path.is_file() or path.suffix in (".yaml", ".yml"):
        if trial is not None:
            if top is not None:
                raise UserError(f"--trial {trial} with --ensemble {top}: choose one trial or the K best, not both")
            return numbered_trial_source(path, uri, overrides, trial)
        return best_trial_source(path, uri, overrides, top)
    if trial is not None:
        raise UserError(f"--trial {trial}: give the experiment file (its trial {trial}), not a run id")
    if not RUN_ID_RE.match(target):
        raise UserError(
            f"{target}: neither an experiment file nor an MLflow run id (32 hex digits, e.g. from `ape-nas status`)"
        )
    if top is not None:
        raise UserError(
            f"--ensemble {top}: give the experiment file (its {top} best trials), not a run id; "
            "for one trial's fold models use --ensemble folds"
        )
    return Source(uri, target, f"MLflow run {target}")


def ranked_trials(store: TrialStore, parent: RunView) -> list[RunView]:
    """The complete trials of a sweep, best first (the parent run's recorded direction; trials on data of another
    fingerprint left out; ties to the lower trial number), one per spec digest (a repeated spec is one trial)."""
    from ape_nas.tracking import DIGEST_TAG

    sign = -1.0 if parent.params.get("objective.direction") == "minimize" else 1.0
    fingerprint = parent.tags.get("data_fingerprint")
    complete = [
        r
        for r in store.trial_runs(parent.run_id)
        if r.state == "complete"
        and "score" in r.metrics
        and (fingerprint is None or r.tags.get("data_fingerprint", fingerprint) == fingerprint)
    ]
    complete.sort(key=lambda r: (-sign * r.metrics["score"], r.number if r.number is not None else 1 << 30))
    seen: set[str] = set()
    distinct = []
    for r in complete:
        digest = r.tags.get(DIGEST_TAG) or r.run_id
        if digest not in seen:
            seen.add(digest)
            distinct.append(r)
    return distinct


def _sweep(path: Path, tracking_uri: str, overrides: list[str] | None) -> tuple[Any, TrialStore, RunView]:
    """The experiment, the store and its sweep's parent run (none: one UserError line)."""
    from ape_nas.experiments import load_experiment
    from ape_nas.tracking import TrialStore

    exp = load_experiment(path, overrides)
    store = TrialStore(tracking_uri)
    parent = store.sweep_parent(exp.name)
    if parent is None:
        raise UserError(
            f"no sweep of experiment {exp.name!r} in {tracking_uri}: run `ape-nas sweep {path}` first, or give "
            "the --workdir / --tracking-uri the sweep used"
        )
    return exp, store, parent


def best_trial_source(
    path: Path, tracking_uri: str, overrides: list[str] | None = None, top: int | None = None
) -> Source:
    exp, store, parent = _sweep(path, tracking_uri, overrides)
    if top is not None:
        ranked = ranked_trials(store, parent)
        if top > len(ranked):
            raise UserError(
                f"--ensemble {top}: study {exp.name!r} has {len(ranked)} complete distinct trial(s) (different spec "
                f"digests) in {tracking_uri}; choose at most {len(ranked)}, or run more trials"
            )
        chosen = ranked[:top]
        numbers = ", ".join(str(r.number) for r in chosen)
        metric = exp.objective["metric"]
        how = (
            f"mean of the {top} best distinct trials ({numbers}) of study {exp.name} "
            f"(val {metric} {', '.join(format(r.metrics['score'], '.4f') for r in chosen)})"
        )
        return Source(tracking_uri, chosen[0].run_id, how, [r.run_id for r in chosen], parent.run_id)
    best = store.best_trial(exp.name)
    if best is None or "score" not in best.metrics:
        raise UserError(f"study {exp.name!r} has no complete trial yet; nothing to export")
    value = best.metrics["score"]
    how = f"best trial {best.number} of study {exp.name} (val {exp.objective['metric']} {value:.4f})"
    return Source(tracking_uri, best.run_id, how, parent_run_id=parent.run_id)


def numbered_trial_source(path: Path, tracking_uri: str, overrides: list[str] | None, number: int) -> Source:
    """Trial ``number`` of the experiment's sweep (any complete trial: e.g. a point of its Pareto front)."""
    exp, store, parent = _sweep(path, tracking_uri, overrides)
    run = store.trial_by_number(exp.name, number)
    if run is None or run.state != "complete":
        state = "no run" if run is None else f"state {run.state}"
        raise UserError(
            f"--trial {number}: study {exp.name!r} has no complete trial {number} in {tracking_uri} ({state}; a "
            "trial that repeated an earlier spec has no run of its own: give that trial's number)"
        )
    score = run.metrics.get("score")
    value = f" (val {exp.objective['metric']} {score:.4f})" if score is not None else ""
    return Source(tracking_uri, run.run_id, f"trial {number} of study {exp.name}{value}", parent_run_id=parent.run_id)
