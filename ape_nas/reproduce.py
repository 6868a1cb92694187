"""`ape-nas reproduce`: retrain a recorded trial from its TrialSpec alone and say whether the score matches.

The trial is found through the study (``--trial N|best``) or given as an MLflow run id; from then on only
MLflow's record is used: ``spec.yaml`` (model, architecture, optimiser, data, protocol, training, seed) and the
recorded ``score``. No search backend is involved in training. The new run is logged in the same MLflow
experiment, tagged with its source run, verdict and both numbers.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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
    experiment: str, trial: str, *, workdir: str, storage: str | None, overrides: list[str]
) -> tuple[str, str]:
    """(run id, tracking URI) of trial ``N`` or the best complete trial of an experiment's study."""
    from ape_nas.progress import best_of
    from ape_nas.sweep import load_status

    exp, backend = load_status(experiment, workdir=workdir, storage=storage, overrides=overrides)
    records = backend.records()
    if trial == "best":
        record = best_of(records, exp.direction)
        if record is None:
            raise UserError(f"study {exp.name!r} has no complete trial to reproduce")
    else:
        try:
            number = int(trial)
        except ValueError:
            raise UserError(f"--trial {trial!r}: expected a trial number or 'best'") from None
        matches = [r for r in records if r.number == number]
        if not matches:
            raise UserError(f"study {exp.name!r} has no trial {number}; it has 0..{len(records) - 1}")
        record = matches[0]
        if record.state != "complete":
            raise UserError(f"trial {number} is {record.state}; only complete trials have a score to reproduce")
    if not record.run_id:
        raise UserError(f"trial {record.number} has no MLflow run recorded")
    return record.run_id, backend.attrs()["tracking_uri"]


def load_source(run_id: str, tracking_uri: str) -> SourceTrial:
    from mlflow.exceptions import MlflowException

    from ape_nas.tracking import _client

    client = _client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise UserError(f"no MLflow run {run_id!r} in {tracking_uri}") from None
    tmp = Path(tempfile.mkdtemp(prefix="ape-nas-spec-"))
    try:
        spec_file = client.download_artifacts(run_id, "spec.yaml", str(tmp))
        spec = TrialSpec.from_dict(yaml.safe_load(Path(spec_file).read_text()))
    except (MlflowException, OSError) as exc:
        raise UserError(f"run {run_id} has no readable spec.yaml artifact ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    metrics = run.data.metrics
    number = run.data.tags.get("ape_nas.trial_number")
    return SourceTrial(
        run_id=run_id,
        tracking_uri=tracking_uri,
        experiment_id=run.info.experiment_id,
        spec=spec,
        recorded_score=metrics.get("score"),
        best_epoch=int(metrics["best_epoch"]) if "best_epoch" in metrics else None,
        number=int(number) if number else None,
        data_fingerprint=run.data.tags.get("data_fingerprint"),
    )


def _new_run(source: SourceTrial, role: str) -> Any:
    from ape_nas.tracking import ROLE_TAG, TrialRun, _client, git_commit

    client = _client(source.tracking_uri)
    name = f"{role}-trial-{source.number:04d}" if source.number is not None else f"{role}-{source.run_id[:8]}"
    tags = {
        ROLE_TAG: role,
        "ape_nas.source_run": source.run_id,
        "ape_nas.seed": str(source.spec.seed),
        "ape_nas.model": source.spec.model,
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    run = client.create_run(source.experiment_id, run_name=name, tags=tags)
    tracked = TrialRun(source.tracking_uri, run.info.run_id)
    tracked.log_params(source.spec.flat_params())
    tracked.log_text(source.spec.to_yaml(), "spec.yaml")
    return tracked


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
    run.set_tags({"ape_nas.reproduce.verdict": verdict})
    run.close("complete")
    for fold in result.folds:
        shutil.rmtree(fold.checkpoint.parent, ignore_errors=True)
    data_changed = bool(source.data_fingerprint) and source.data_fingerprint != result.data_fingerprint
    if data_changed:
        run.set_tags({"ape_nas.reproduce.note": "data fingerprint differs from the source run's"})
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
