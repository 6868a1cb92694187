"""The trial as it was trained: its run, spec and plain checkpoint from the store, its network rebuilt, and the
exact windows it was trained on (the data fingerprint must match the checkpoint's). Also the fold models of a
cross-validated trial (:func:`fold_members`) and its refit on every non-test subject (:func:`refit_final`)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ape_nas.errors import UserError
from ape_nas.handoff.convert import Probabilities
from ape_nas.spec import TrialSpec
from ape_nas.tracking import RunView, TrialStore

STUDY_TAG = "ape_nas.study"


@dataclass
class Trial:
    run: RunView
    spec: TrialSpec
    ckpt: dict[str, Any]
    fold: int | None  # None: single-fold trial
    folds: int
    checkpoint_artifact: str
    parent_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def study(self) -> str:
        return self.run.tags.get(STUDY_TAG) or "study"


def checkpoint_artifact(store: TrialStore, run_id: str) -> tuple[str, int | None]:
    """The artifact path of the trial's plain checkpoint and its fold (None: a single-fold trial)."""
    top = set(store.artifacts(run_id))
    if "model.pt" in top:
        return "model.pt", None
    if "checkpoints" in top:
        return "checkpoints/fold0/model.pt", 0
    raise UserError(f"trial run {run_id} has no model.pt artifact (artifacts: {', '.join(sorted(top)) or 'none'})")


def load_checkpoint(path: Path, where: str) -> dict[str, Any]:
    """A plain ape-nas checkpoint (``weights_only=True``); anything else is one UserError line."""
    from ape_nas.objective import CHECKPOINT_FORMAT

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{where}: not an ape-nas checkpoint ({CHECKPOINT_FORMAT})")
    return ckpt


def fetch_trial(store: TrialStore, run_id: str, scratch: Path) -> Trial:
    """The complete trial run ``run_id``, its spec and its checkpoint (fold 0 of a multi-fold trial)."""
    run = store.require_trial(run_id)
    artifact, fold = checkpoint_artifact(store, run_id)
    ckpt = load_checkpoint(store.download(run_id, artifact, scratch), f"{artifact} of run {run_id}")
    spec = store.spec(run_id)
    if TrialSpec.from_dict(ckpt["spec"]).digest() != spec.digest():
        raise UserError(f"run {run_id}: spec.yaml and the checkpoint's spec differ (artifacts altered?)")
    parent = store.run(run.parent_run_id) if run.parent_run_id else None
    folds = int(run.tags.get("split.folds", "1") or 1)
    return Trial(run, spec, ckpt, fold, folds, artifact, dict(parent.metrics) if parent else {})


def fold_members(store: TrialStore, trial: Trial, scratch: Path) -> list[Trial]:
    """Every fold model of a cross-validated trial (``checkpoints/fold<k>/model.pt``), fold 0 first."""
    if trial.folds < 2:
        number = trial.run.number
        raise UserError(
            f"--ensemble folds: trial {number if number is not None else trial.run.run_id} has one fold "
            f"(protocol {trial.spec.protocol['kind']}); the fold ensemble needs a kfold or loso trial"
        )
    members = [trial]
    for k in range(1, trial.folds):
        artifact = f"checkpoints/fold{k}/model.pt"
        where = f"{artifact} of run {trial.run.run_id}"
        ckpt = load_checkpoint(store.download(trial.run.run_id, artifact, scratch / f"fold{k}"), where)
        if TrialSpec.from_dict(ckpt["spec"]).digest() != trial.spec.digest():
            raise UserError(f"{where}: its spec differs from the run's spec.yaml (artifacts altered?)")
        members.append(replace(trial, ckpt=ckpt, fold=k, checkpoint_artifact=artifact))
    return members


def load_network(trial: Trial) -> nn.Module:
    """The trained network (logits), in eval mode."""
    from ape_nas.models import build_model

    ckpt = trial.ckpt
    n_features = int(ckpt.get("n_features", 0))  # the HRV feature input of a hybrid network (0: none)
    net = build_model(
        trial.spec.model, int(ckpt["in_channels"]), int(ckpt["num_classes"]), n_features=n_features, **trial.spec.arch
    )
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


def load_model(trial: Trial | Sequence[Trial]) -> Probabilities:
    """The trained network with a softmax, in eval mode; several trials: their mean probability
    (:class:`ape_nas.handoff.ensemble.MeanProbability`)."""
    from ape_nas.handoff.ensemble import MeanProbability

    if isinstance(trial, Trial):
        return Probabilities(load_network(trial)).eval()
    return Probabilities(MeanProbability([load_network(t) for t in trial])).eval()


@dataclass
class Refit:
    """The model of a cross-validated trial refitted on every non-test subject (``export --final``)."""

    run_id: str  # its MLflow run (role "final"), which holds the bundle
    trial_run_id: str
    epochs: int
    epochs_from: str  # "best_epoch": the trial's recorded best epoch + 1; "training.max_epochs": none recorded


def final_epochs(trial: Trial) -> tuple[int, str]:
    """Epochs of the refit: the trial's recorded ``best_epoch`` + 1 (a multi-fold trial records the median of
    its folds' best epochs), else ``training.max_epochs``."""
    best = trial.run.metrics.get("best_epoch")
    if best is not None and math.isfinite(best):
        return math.floor(best + 0.5) + 1, "best_epoch"
    return int(trial.spec.training["max_epochs"]), "training.max_epochs"


def refit_final(store: TrialStore, trial: Trial, workdir: Path) -> tuple[Trial, Refit]:
    """Retrain the trial's spec on all its non-test subjects (``objective.train_final``) in a new MLflow run of
    role ``final``; the test subjects are scored once. Returns the trial with the refit's checkpoint.

    The run is deleted again when training fails or is interrupted (no orphan run)."""
    from ape_nas.objective import train_final

    epochs, epochs_from = final_epochs(trial)
    source = trial.run
    name = f"final-trial-{source.number:04d}" if source.number is not None else f"final-{source.run_id[:8]}"
    tags = {
        "ape_nas.source_run": source.run_id,
        "ape_nas.final.epochs": str(epochs),
        "ape_nas.final.epochs_from": epochs_from,
        STUDY_TAG: trial.study,
    }
    run = store.new_run(source.experiment_id, name, "final", trial.spec, tags)
    try:
        result = train_final(trial.spec, epochs, cache_dir=workdir / "cache", tracker=run)
        try:
            ckpt = load_checkpoint(result.checkpoint, f"refit checkpoint of run {run.run_id}")
        finally:
            shutil.rmtree(result.checkpoint.parent, ignore_errors=True)
        run.close("complete")
    except BaseException:
        store.delete_run(run.run_id)
        raise
    refit = Refit(run.run_id, source.run_id, epochs, epochs_from)
    return replace(trial, ckpt=ckpt, fold=None, checkpoint_artifact="model.pt"), refit


def training_windows(trial: Trial, workdir: Path) -> Any:
    """The windows the trial was trained on (``WindowSet``); data that changed since training is a UserError."""
    from ape_nas.data.prepare import prepare_windows

    ws = prepare_windows(trial.spec.data, workdir / "cache")
    if ws.fingerprint != trial.ckpt["data_fingerprint"]:
        raise UserError(
            f"the data of run {trial.run.run_id} changed since training (fingerprint {ws.fingerprint} here, "
            f"{trial.ckpt['data_fingerprint']} at training): the card's per-subject metrics would not describe this "
            "model; restore the data (or export with the work directory of the sweep)"
        )
    return ws


KINDS = ("trial", "final", "folds", "top_k")


@dataclass
class Plan:
    """What one bundle holds: ``kind`` ``trial`` (the trial's model; fold 0 of a cross-validated trial),
    ``final`` (its refit on every non-test subject), ``folds`` (the mean of its fold models) or ``top_k`` (the
    mean of the K best distinct trials of its sweep)."""

    kind: str
    trial: Trial  # the trial (the best member of an ensemble; ``final``: with the refit's checkpoint)
    members: list[Trial]  # the networks of the bundle: [trial], or the ensemble's members (best / fold 0 first)
    split: dict[str, list[str]]  # the subjects the bundle's numbers rest on (no validation subjects: val [])
    refit: Refit | None = None

    @property
    def ensemble(self) -> bool:
        return self.kind in ("folds", "top_k")


def bundle_split(kind: str, members: list[Trial]) -> dict[str, list[str]]:
    """The split a bundle is scored on. One model: its checkpoint's. ``folds``: every fold validated on subjects
    the other folds trained on, so the ensemble has no clean validation subjects: train = every non-test subject,
    val = none. ``top_k``: the members' common split (trials trained on other subjects cannot be scored together).
    """
    first = members[0].ckpt["split"]
    for m in members[1:]:
        other, same = m.ckpt["split"], ("test",) if kind == "folds" else ("train", "val", "test")
        if any(sorted(other[p]) != sorted(first[p]) for p in same):
            raise UserError(
                f"ensemble members {describe(members[0])} and {describe(m)} were trained on different subject splits "
                f"({first} vs {other}); their mean cannot be scored on one set of test subjects"
            )
    if kind == "folds":
        rest = sorted({s for m in members for p in ("train", "val") for s in m.ckpt["split"][p]})
        return {"train": rest, "val": [], "test": list(first["test"])}
    return {p: list(first[p]) for p in ("train", "val", "test")}


def describe(member: Trial) -> str:
    number = member.run.number
    name = f"trial {number}" if number is not None else f"run {member.run.run_id}"
    return name if member.fold is None or member.folds < 2 else f"{name} fold {member.fold}"


def check_members(members: list[Trial]) -> None:
    """Ensemble members take the same input and give the same classes: same data config (preprocessing), data
    fingerprint, channels, window length and class names; else one UserError line naming the first that differs."""
    first = members[0]
    keys = ("data_fingerprint", "class_names", "channels", "rate_hz", "window_samples", "in_channels")
    for m in members[1:]:
        if m.spec.data != first.spec.data:
            raise UserError(
                f"ensemble members {describe(first)} and {describe(m)} use different data settings (data section of "
                "their specs): an ensemble's members must share one preprocessing"
            )
        for key in keys:
            if m.ckpt.get(key) != first.ckpt.get(key):
                raise UserError(
                    f"ensemble members {describe(first)} and {describe(m)} differ in {key} "
                    f"({first.ckpt.get(key)} vs {m.ckpt.get(key)}): an ensemble's members must share one input"
                )
