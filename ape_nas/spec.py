"""The TrialSpec: the one object that crosses from orchestration to training.

A plain, serialisable point: model family + architecture values + optimiser values + data/protocol/training
config + seed. It is stored in MLflow (``spec.yaml``) and inside every checkpoint, so reproduce/export/predict
never need the search backend.

Example:
    >>> spec = TrialSpec(model="cnn1d", arch={"depth": 3}, optim={"lr": 1e-3}, data={}, protocol={},
    ...                  training={}, seed=0)
    >>> TrialSpec.from_dict(spec.to_dict()) == spec
    True
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

SPEC_VERSION = 1


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

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialSpec:
        known = {"model", "arch", "optim", "data", "protocol", "training", "seed", "version"}
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
        return out
