"""The TrialSpec: the one object that crosses from orchestration to training.

A plain, serialisable point: model family + architecture values + optimiser values + data/protocol/training
config + seed. It is stored in MLflow (``spec.yaml``) and inside every checkpoint, so reproduce/export/predict
never need the search backend.

Optimiser and training keys a spec does not give take their defaults (:data:`OPTIM_FIELDS`,
:data:`TRAINING_DEFAULTS`), so a spec recorded before a key existed loads as the spec it trained as.

``augment`` (training-time augmentations, :mod:`ape_nas.augment`: name → options) is left out of
:meth:`TrialSpec.to_dict` when empty: a spec without augmentation has the ``spec.yaml`` and digest it had before
the field existed, and an older ``spec.yaml`` loads with no augmentation. A spec with augmentations is refused
by an ape-nas that predates them (unknown field), never trained without them.

Example:
    >>> spec = TrialSpec(model="cnn1d", arch={"depth": 3}, optim={"lr": 1e-3}, data={}, protocol={},
    ...                  training={}, seed=0)
    >>> TrialSpec.from_dict(spec.to_dict()) == spec, spec.optim["optimizer"], spec.training["accelerator"]
    (True, 'adamw', 'cpu')
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from ape_nas.schema import Field

SPEC_VERSION = 2  # 2: optim carries SGD momentum/nesterov, training the accelerator (filled in older specs)

OPTIMIZERS = ("adam", "adamw", "sgd")

# Optimiser values every spec carries; a space may search or fix any of them.
OPTIM_FIELDS: dict[str, Field] = {
    "lr": Field(float, 1e-3, low=1e-7, high=10.0, doc="learning rate"),
    "weight_decay": Field(float, 0.0, low=0.0, high=1.0, doc="decoupled weight decay (adamw) or L2"),
    "batch_size": Field(int, 64, low=1, high=65536, doc="windows per batch"),
    "optimizer": Field(str, "adamw", choices=OPTIMIZERS, doc="optimiser"),
    "label_smoothing": Field(float, 0.0, low=0.0, high=0.5, doc="cross-entropy label smoothing"),
    "momentum": Field(float, 0.9, low=0.0, high=1.0, doc="sgd: momentum"),
    "nesterov": Field(bool, True, doc="sgd: Nesterov momentum (needs momentum > 0)"),
}

# Keys of ``data`` that describe a trial's input representation (a space's ``data`` section may set them).
INPUT_KEYS = ("channels", "window_s", "stride_s", "normalize", "rate_hz", "label_purity")

# Training values the Trainer reads and every spec carries (an experiment's training section sets them).
TRAINING_DEFAULTS: dict[str, Any] = {"accelerator": "cpu", "precision": "32-true"}


@dataclass(frozen=True)
class TrialSpec:
    model: str
    arch: dict[str, Any]
    optim: dict[str, Any]
    data: dict[str, Any]
    protocol: dict[str, Any]
    training: dict[str, Any]
    seed: int
    version: int = field(default=SPEC_VERSION)
    augment: dict[str, dict[str, Any]] = field(default_factory=dict)  # empty: no augmentation

    def __post_init__(self) -> None:
        if self.version > SPEC_VERSION:
            raise ValueError(f"TrialSpec version {self.version} is newer than this ape-nas reads ({SPEC_VERSION})")
        # A spec recorded before a key existed trained with that key's default: every spec carries all of them.
        optim = {**{k: f.default for k, f in OPTIM_FIELDS.items()}, **self.optim}
        object.__setattr__(self, "optim", optim)
        object.__setattr__(self, "training", {**TRAINING_DEFAULTS, **self.training})
        object.__setattr__(self, "version", SPEC_VERSION)

    def to_dict(self) -> dict[str, Any]:
        out = copy.deepcopy(asdict(self))
        if not out["augment"]:  # as recorded before augmentations existed: same spec.yaml, same digest
            del out["augment"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialSpec:
        known = {"model", "arch", "optim", "data", "protocol", "training", "seed", "version", "augment"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"TrialSpec has no field(s) {sorted(unknown)}")
        return cls(**copy.deepcopy(data))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> TrialSpec:
        return cls.from_dict(yaml.safe_load(text))

    def digest(self) -> str:
        """Short content hash: two specs with the same digest train the same model."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def flat_params(self) -> dict[str, Any]:
        """What a trial varies, flattened for MLflow params (``arch.depth``, ``optim.lr``, ...)."""
        out: dict[str, Any] = {"model": self.model, "seed": self.seed}
        out.update({f"arch.{k}": v for k, v in self.arch.items()})
        out.update({f"optim.{k}": v for k, v in self.optim.items()})
        for key in INPUT_KEYS:  # the input representation, which a space may search
            value = self.data.get(key)
            if value is not None:
                out[f"data.{key}"] = "+".join(map(str, value)) if isinstance(value, list) else value
        out.update({f"augment.{name}.{k}": v for name, opts in self.augment.items() for k, v in opts.items()})
        return out
