"""Subject-grouped splits. Subjects are the unit of independence: partitions never share a subject."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ape_nas.errors import UserError


@dataclass(frozen=True)
class Split:
    """Subject ids per partition; construction asserts they are disjoint."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        parts = {"train": set(self.train), "val": set(self.val), "test": set(self.test)}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            shared = parts[a] & parts[b]
            if shared:
                raise AssertionError(f"split is not subject-disjoint: {a} and {b} share {sorted(shared)}")
        for name, ids in (("train", self.train), ("val", self.val), ("test", self.test)):
            if len(set(ids)) != len(ids):
                raise AssertionError(f"split {name} lists a subject twice")

    def to_dict(self) -> dict[str, list[str]]:
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test)}

    def describe(self) -> str:
        return "; ".join(f"{k}={','.join(v)}" for k, v in self.to_dict().items())


def _resolve(spec: Any, pool: list[str], rng: np.random.Generator, what: str) -> list[str]:
    if isinstance(spec, int):
        if spec >= len(pool):
            raise UserError(f"protocol.{what}: asked for {spec} subjects but only {len(pool)} remain to draw from")
        return sorted(rng.choice(pool, size=spec, replace=False).tolist())
    ids = [str(s) for s in spec]
    missing = [s for s in ids if s not in pool]
    if missing:
        raise UserError(f"protocol.{what}: subject(s) {', '.join(missing)} not available; available: {', '.join(pool)}")
    return sorted(ids)


def holdout_split(subjects: Sequence[str], test: Any, val: Any, seed: int) -> Split:
    """Held-out test subjects, then validation subjects from the rest; counts are drawn with ``seed``.

    Example:
        >>> holdout_split([f"S{i}" for i in range(10)], test=2, val=2, seed=0).test
        ('S6', 'S7')
    """
    rng = np.random.default_rng(seed)
    pool = sorted(subjects)
    test_ids = _resolve(test, pool, rng, "test_subjects")
    rest = [s for s in pool if s not in test_ids]
    val_ids = _resolve(val, rest, rng, "val_subjects")
    train_ids = [s for s in rest if s not in val_ids]
    if not train_ids:
        raise UserError("protocol: no subjects left for training after choosing test and validation subjects")
    return Split(train=tuple(train_ids), val=tuple(val_ids), test=tuple(test_ids))


def make_split(protocol: dict[str, Any], subjects: Sequence[str]) -> Split:
    if protocol["kind"] == "holdout":
        return holdout_split(subjects, protocol["test_subjects"], protocol["val_subjects"], protocol["seed"])
    raise UserError(f"protocol.kind: unknown protocol {protocol['kind']!r}; expected one of: holdout")
