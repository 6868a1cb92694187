"""`ape-nas reproduce`: retrain a recorded trial from its TrialSpec alone and say whether the score matches.

The trial is found through the sweep's MLflow parent run (``--trial N|best``) or given as an MLflow run id;
from then on only MLflow's record is used: ``spec.yaml`` (model, architecture, optimiser, data, protocol,
training, seed) and the recorded ``score``. No search backend is involved. The new run is logged in the same
MLflow experiment, tagged with its source run, verdict and both numbers.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ape_nas.errors import UserError
from ape_nas.spec import TrialSpec

DEFAULT_TOLERANCE = 1e-6  # CPU training is bit-deterministic here; GPUs may need a looser tolerance


@dataclass
class SourceTrial:
    run_id: str
    tracking_uri: str
    experiment_id: str
    spec: TrialSpec
    recorded_score: float | None
    best_epoch: int | None
    number: int | None
    data_fingerprint: str | None


def find_trial(
    experiment: str, trial: str, *, workdir: str, tracking_uri: str | None = None, overrides: list[str]
) -> tuple[str, str]:
    """(run id, tracking URI) of trial ``N`` or the best complete trial of an experiment's sweep.

    Read from the sweep's MLflow parent run (no search backend): the experiment file gives the study's name,
    the tracking URI is ``tracking_uri`` or the work directory's store."""
    from ape_nas.experiments import load_experiment
    from ape_nas.tracking import TrialStore, default_tracking_uri

    exp = load_experiment(experiment, overrides)
    uri = tracking_uri or default_tracking_uri(Path(workdir))
    store = TrialStore(uri)
    if store.sweep_parent(exp.name) is None:
        raise UserError(f"no sweep {exp.name!r} in MLflow at {uri}; run `ape-nas sweep {experiment}` first")
    if trial == "best":
        run = store.best_trial(exp.name)
        if run is None:
            raise UserError(f"study {exp.name!r} has no complete trial to reproduce")
        return run.run_id, uri
    try:
        number = int(trial)
    except ValueError:
        raise UserError(f"--trial {trial!r}: expected a trial number or 'best'") from None
    run = store.trial_by_number(exp.name, number)
    if run is None:
        raise UserError(f"study {exp.name!r} has no trial {number} in MLflow at {uri}")
    if run.state != "complete":
        raise UserError(f"trial {number} is {run.state}; only complete trials have a score to reproduce")
    return run.run_id, uri


def load_source(run_id: str, tracking_uri: str) -> SourceTrial:
    from ape_nas.tracking import TrialStore

    store = TrialStore(tracking_uri)
    run = store.run(run_id)
    if run is None:
        raise UserError(f"no MLflow run {run_id!r} in {tracking_uri}")
    try:
        spec = store.spec(run_id)
    except UserError as exc:
        raise UserError(f"run {run_id} has no readable spec.yaml artifact ({exc})") from None
    metrics = run.metrics
    return SourceTrial(
        run_id=run_id,
        tracking_uri=tracking_uri,
        experiment_id=run.experiment_id,
        spec=spec,
        recorded_score=metrics.get("score"),
        best_epoch=int(metrics["best_epoch"]) if "best_epoch" in metrics else None,
        number=run.number,
        data_fingerprint=run.tags.get("data_fingerprint"),
    )


def _new_run(source: SourceTrial, role: str) -> Any:
    from ape_nas.tracking import TrialStore

    name = f"{role}-trial-{source.number:04d}" if source.number is not None else f"{role}-{source.run_id[:8]}"
    tags = {"ape_nas.source_run": source.run_id}
    return TrialStore(source.tracking_uri).new_run(source.experiment_id, name, role, source.spec, tags)


def reproduce(source: SourceTrial, *, cache_dir: Path, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Retrain the source spec (same subjects, same seed) and compare its validation score with the record."""
    from ape_nas.objective import run_trial

    if source.recorded_score is None:
        raise UserError(f"run {source.run_id} has no recorded score (was the trial complete?)")
    run = _new_run(source, "reproduce")
    try:
        result = run_trial(source.spec, None, run, cache_dir=cache_dir)
    except BaseException as exc:
        run.close("failed", f"{type(exc).__name__}: {exc}"[:500])
        raise
    diff = abs(result.score - source.recorded_score)
    verdict = "MATCH" if diff <= tolerance else "MISMATCH"
    run.log_metrics(
        {
            "recorded_score": source.recorded_score,
            "reproduced_score": result.score,
            "abs_diff": diff,
            "tolerance": tolerance,
        }
    )
    data_changed = bool(source.data_fingerprint) and source.data_fingerprint != result.data_fingerprint
    tags = {"ape_nas.reproduce.verdict": verdict}
    if data_changed:
        tags["ape_nas.reproduce.note"] = "data fingerprint differs from the source run's"
    run.set_tags(tags)  # written while the run is open: a closed run is never changed afterwards
    run.close("complete")
    for fold in result.folds:
        shutil.rmtree(fold.checkpoint.parent, ignore_errors=True)
    return {
        "data_changed": data_changed,
        "data_fingerprint": result.data_fingerprint,
        "source_data_fingerprint": source.data_fingerprint,
        "verdict": verdict,
        "recorded": source.recorded_score,
        "reproduced": result.score,
        "abs_diff": diff,
        "tolerance": tolerance,
        "run_id": run.run_id,
        "source_run": source.run_id,
        "metric": source.spec.training["metric"],
    }


def final(source: SourceTrial, *, cache_dir: Path) -> dict[str, Any]:
    """Retrain on all non-test subjects for the source trial's best epoch count; evaluate the test subjects once."""
    from ape_nas.objective import train_final

    epochs = (source.best_epoch or int(source.spec.training["max_epochs"]) - 1) + 1
    run = _new_run(source, "final")
    try:
        result = train_final(source.spec, epochs, cache_dir=cache_dir, tracker=run)
    except BaseException as exc:
        run.close("failed", f"{type(exc).__name__}: {exc}"[:500])
        raise
    run.close("complete")
    shutil.rmtree(result.checkpoint.parent, ignore_errors=True)
    return {
        "run_id": run.run_id,
        "source_run": source.run_id,
        "epochs": epochs,
        "train_subjects": result.split.train,
        "test_subjects": result.split.test,
        "test_metrics": result.test_metrics,
        "per_subject": result.per_subject,
    }
