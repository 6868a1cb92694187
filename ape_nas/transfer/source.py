"""The network a transfer starts from: an exported bundle, a trial run id, or an experiment's best trial.

A bundle is verified against its checksums first; its network is rebuilt from the spec in ``bundle.json`` and
the weights of its TorchScript file (``model.ts`` holds every tensor as traced; there is no pickle in a bundle).
A trial (run id or experiment file, found in MLflow as ``export`` finds it) gives its plain checkpoint (fold 0 of
a cross-validated trial) and a preprocessing record built exactly as ``export`` writes it. Either way the result
is one :class:`TransferSource`: the network, a way to build a fresh one of the same architecture, and the
preprocessing the target windows must go through. No search backend is imported.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ape_nas.errors import UserError
from ape_nas.handoff.bundle import METRICS, Bundle, verify_bundle
from ape_nas.spec import TrialSpec

ENSEMBLE_KINDS = ("folds", "top_k")


@dataclass
class TransferSource:
    net: nn.Module  # the trained network (logits), eval mode
    spec: TrialSpec
    bundle: Bundle  # its preprocessing (a bundle on disk, or built from the trial's checkpoint)
    kind: str  # "bundle" | "trial"
    how: str  # what the source is, in words
    where: str  # the bundle folder, or the run id
    in_channels: int
    n_features: int
    tracking_uri: str | None = None  # a trial source: its store (the transfer run is logged beside it)
    run_id: str | None = None
    experiment_id: str | None = None

    def build(self, num_classes: int) -> nn.Module:
        """A fresh network of the source's architecture with ``num_classes`` outputs (random weights)."""
        from ape_nas.models import build_model

        return build_model(self.spec.model, self.in_channels, num_classes, n_features=self.n_features, **self.spec.arch)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "where": self.where,
            "how": self.how,
            "model": self.spec.model,
            "spec_digest": self.spec.digest(),
            "class_names": self.bundle.class_names,
            "trained_on": self.bundle.info.get("split", {}),
            "benchmark": (self.bundle.preprocessing.get("source_data") or {}).get("benchmark"),
        }


def is_bundle(target: str) -> bool:
    return Path(target).is_dir()


def load_source(
    target: str,
    *,
    workdir: str | Path = "runs",
    tracking_uri: str | None = None,
    overrides: list[str] | None = None,
    step: Callable[[str], None] | None = None,
) -> TransferSource:
    """``target``: a bundle folder, an MLflow run id of a trial, or an experiment file (its best trial)."""
    step = step or (lambda _t: None)
    if is_bundle(target):
        step(f"verifying bundle {target}")
        return bundle_source(Path(target))
    from ape_nas.handoff.source import resolve_source

    source = resolve_source(target, workdir=workdir, tracking_uri=tracking_uri, overrides=overrides)
    step(f"downloading checkpoint and spec of run {source.run_id}")
    return trial_source(source.tracking_uri, source.run_id, source.how)


def bundle_source(path: Path) -> TransferSource:
    import torch

    from ape_nas.handoff.convert import quiet_exporters

    bundle = verify_bundle(path)
    kind = (bundle.info.get("source") or {}).get("kind")
    if kind in ENSEMBLE_KINDS:
        raise UserError(
            f"{path}: an ensemble bundle ({kind}) is a mean of several networks; transfer adapts one network: "
            "export one trial (ape-nas export EXPERIMENT --out DIR) and transfer that"
        )
    if "spec" not in bundle.info:
        raise UserError(f"{path / 'bundle.json'}: no spec (a bundle written by an older ape-nas); export it again")
    spec = TrialSpec.from_dict(bundle.info["spec"])
    metrics = json.loads((path / METRICS).read_text())
    bundle.info = {**bundle.info, "split": metrics.get("split", {})}
    with quiet_exporters():
        scripted = torch.jit.load(str(bundle.path / bundle.info.get("files", {}).get("torchscript", "model.ts")))
    state = {k.removeprefix("net."): v for k, v in scripted.state_dict().items()}
    prep = bundle.preprocessing
    n_features = len(prep["hrv_features"]["names"]) if prep.get("hrv_features") else 0
    src = TransferSource(
        net=nn.Identity(),
        spec=spec,
        bundle=bundle,
        kind="bundle",
        how=f"bundle {path} ({bundle.info.get('title', spec.model)})",
        where=str(path),
        in_channels=int(prep["input"]["shape"][1]),
        n_features=n_features,
    )
    net = src.build(len(bundle.class_names))
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: model.ts does not hold the weights of its spec's network ({first})") from None
    src.net = net.eval()
    return src


def trial_source(tracking_uri: str, run_id: str, how: str) -> TransferSource:
    from ape_nas.handoff.preprocessing import preprocessing_json
    from ape_nas.handoff.trial import fetch_trial, load_network
    from ape_nas.tracking import TrialStore

    store = TrialStore(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="ape-nas-transfer-") as tmp:
        trial = fetch_trial(store, run_id, Path(tmp))
    ckpt = trial.ckpt
    prep = preprocessing_json(trial.spec.data, ckpt, dynamic_time=True)
    info = {"title": how, "spec": trial.spec.to_dict(), "split": dict(ckpt.get("split") or {})}
    bundle = Bundle(path=Path(f"run-{run_id}"), info=info, preprocessing=prep)
    fold = "" if trial.fold is None else f" (fold {trial.fold} of {trial.folds}: its checkpoint)"
    return TransferSource(
        net=load_network(trial),
        spec=trial.spec,
        bundle=bundle,
        kind="trial",
        how=f"{how}{fold}",
        where=run_id,
        in_channels=int(ckpt["in_channels"]),
        n_features=int(ckpt.get("n_features", 0)),
        tracking_uri=tracking_uri,
        run_id=run_id,
        experiment_id=trial.run.experiment_id,
    )
