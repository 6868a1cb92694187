"""The trial as it was trained: its run, spec and plain checkpoint from the store, its network rebuilt, and the
exact windows it was trained on (the data fingerprint must match the checkpoint's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

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


def fetch_trial(store: TrialStore, run_id: str, scratch: Path) -> Trial:
    """The complete trial run ``run_id``, its spec and its checkpoint (fold 0 of a multi-fold trial)."""
    from ape_nas.objective import CHECKPOINT_FORMAT

    run = store.require_trial(run_id)
    artifact, fold = checkpoint_artifact(store, run_id)
    ckpt = torch.load(store.download(run_id, artifact, scratch), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{artifact} of run {run_id}: not an ape-nas checkpoint ({CHECKPOINT_FORMAT})")
    spec = store.spec(run_id)
    if TrialSpec.from_dict(ckpt["spec"]).digest() != spec.digest():
        raise UserError(f"run {run_id}: spec.yaml and the checkpoint's spec differ (artifacts altered?)")
    parent = store.run(run.parent_run_id) if run.parent_run_id else None
    folds = int(run.tags.get("split.folds", "1") or 1)
    return Trial(run, spec, ckpt, fold, folds, artifact, dict(parent.metrics) if parent else {})


def load_model(trial: Trial) -> Probabilities:
    """The trained network with a softmax, in eval mode."""
    from ape_nas.models import build_model

    ckpt = trial.ckpt
    net = build_model(trial.spec.model, int(ckpt["in_channels"]), int(ckpt["num_classes"]), **trial.spec.arch)
    net.load_state_dict(ckpt["state_dict"])
    return Probabilities(net).eval()


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
