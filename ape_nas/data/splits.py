"""Subject-grouped splits. Subjects are the unit of independence: partitions never share a subject.

Protocols (``protocol.kind``):
- ``holdout``: held-out test subjects, then validation subjects from the rest, the others train (one fold).
- ``kfold``: held-out test subjects; the remaining subjects are dealt into ``folds`` groups; fold ``k``
  validates on group ``k`` and trains on the others (grouped k-fold).
- ``loso``: held-out test subjects; leave-one-subject-out over the remaining subjects (each fold validates on one).
- ``nested`` (outer level only, :func:`outer_folds`): the subjects are dealt into ``outer_folds`` groups of test
  subjects; each outer fold runs a whole search with the ``inner`` protocol (one of the three above) on the
  other subjects, whose test subjects are that group.

Test subjects are the same in every fold and never used for training or for the search's score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ape_nas.errors import KeyedError, UserError

PROTOCOLS = ("holdout", "kfold", "loso")  # a nested protocol is made of these (see outer_folds)


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


def _count(spec: Any) -> int:
    return spec if isinstance(spec, int) else len(spec)


def check_counts(protocol: dict[str, Any], subjects: Sequence[str]) -> None:
    """Subject counts of the protocol against the data's subjects, naming the key to change (KeyedError)."""
    n, kind = len(subjects), protocol["kind"]
    test = _count(protocol["test_subjects"])
    test_key, val_key = ("protocol", "test_subjects"), ("protocol", "val_subjects")
    if test >= n:
        raise KeyedError([test_key], f"{test} test subjects, but the data has {n} usable subjects; expected fewer")
    rest = n - test
    if kind == "holdout":
        val = _count(protocol["val_subjects"])
        if test + val >= n:
            raise KeyedError(
                [test_key, val_key],
                f"{test} test + {val} validation subjects leave none of the data's {n} usable subjects for "
                f"training; expected test_subjects + val_subjects <= {n - 1}",
            )
    elif kind == "kfold" and (protocol["folds"] > rest or rest < 2):
        raise KeyedError(
            [("protocol", "folds"), test_key],
            f"{protocol['folds']} folds need at least {max(protocol['folds'], 2)} non-test subjects; "
            f"{rest} of the data's {n} remain after {test} test subjects",
        )
    elif kind == "loso" and rest < 2:
        raise KeyedError([test_key], f"leave-one-subject-out needs at least 2 non-test subjects; {rest} of {n} remain")


def check_balance(splits: list[Split], labels_of: dict[str, set[int]], class_names: list[str], kind: str) -> None:
    """Every training partition holds every class; a holdout's validation and test subjects at least two.

    ``labels_of`` maps each subject id to the classes of its windows.
    """

    def classes(ids: tuple[str, ...]) -> set[int]:
        return set().union(*(labels_of.get(s, set()) for s in ids)) if ids else set()

    wanted = set(range(len(class_names)))
    for k, split in enumerate(splits):
        fold = f" of fold {k + 1}" if len(splits) > 1 else ""
        missing = wanted - classes(split.train)
        if missing:
            names = ", ".join(class_names[c] for c in sorted(missing))
            raise KeyedError(
                [("protocol", "seed"), ("protocol", "test_subjects")],
                f"the training subjects{fold} have no windows of class {names}; expected every class in training "
                "(draw other subjects with another protocol.seed, or list test/validation subjects)",
            )
        if kind != "holdout":
            continue
        for part, key in (("val", "val_subjects"), ("test", "test_subjects")):
            ids = getattr(split, part)
            if len(classes(ids)) < 2:
                only = ", ".join(class_names[c] for c in sorted(classes(ids))) or "none"
                raise KeyedError(
                    [("protocol", key), ("protocol", "seed")],
                    f"the {'validation' if part == 'val' else 'test'} subjects {', '.join(ids)} hold windows of one "
                    f"class only ({only}); expected at least two classes so that the metrics mean something",
                )


def _resolve(spec: Any, pool: list[str], rng: np.random.Generator, what: str) -> list[str]:
    if isinstance(spec, int):
        if spec >= len(pool):
            raise KeyedError(
                [("protocol", what)], f"asked for {spec} subjects but only {len(pool)} remain to draw from"
            )
        return sorted(rng.choice(pool, size=spec, replace=False).tolist())
    ids = [str(s) for s in spec]
    missing = [s for s in ids if s not in pool]
    if missing:
        raise KeyedError(
            [("protocol", what)], f"subject(s) {', '.join(missing)} not available; available: {', '.join(pool)}"
        )
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
        raise KeyedError(
            [("protocol", "test_subjects"), ("protocol", "val_subjects")],
            "no subjects left for training after choosing test and validation subjects",
        )
    return Split(train=tuple(train_ids), val=tuple(val_ids), test=tuple(test_ids))


def grouped_kfold(subjects: Sequence[str], test: Any, folds: int, seed: int) -> list[Split]:
    """Held-out test subjects; the rest shuffled with ``seed`` and dealt into ``folds`` validation groups."""
    rng = np.random.default_rng(seed)
    pool = sorted(subjects)
    test_ids = _resolve(test, pool, rng, "test_subjects")
    rest = [s for s in pool if s not in test_ids]
    if folds > len(rest) or len(rest) < 2:
        raise KeyedError(
            [("protocol", "folds")],
            f"{folds} folds need at least {max(folds, 2)} non-test subjects, {len(rest)} remain",
        )
    order = [rest[i] for i in rng.permutation(len(rest))]
    groups = [sorted(order[k::folds]) for k in range(folds)]
    return [
        Split(train=tuple(sorted(s for s in rest if s not in g)), val=tuple(g), test=tuple(test_ids)) for g in groups
    ]


def make_splits(protocol: dict[str, Any], subjects: Sequence[str]) -> list[Split]:
    """All folds of a protocol (one for holdout), truncated to ``max_folds`` if set."""
    kind, seed = protocol["kind"], protocol["seed"]
    check_counts(protocol, subjects)
    if kind == "holdout":
        splits = [holdout_split(subjects, protocol["test_subjects"], protocol["val_subjects"], seed)]
    elif kind == "kfold":
        splits = grouped_kfold(subjects, protocol["test_subjects"], protocol["folds"], seed)
    elif kind == "loso":
        n_rest = len(subjects) - (
            protocol["test_subjects"] if isinstance(protocol["test_subjects"], int) else len(protocol["test_subjects"])
        )
        splits = grouped_kfold(subjects, protocol["test_subjects"], max(n_rest, 0), seed)
    else:
        raise UserError(f"protocol.kind: unknown protocol {kind!r}; expected one of: {', '.join(PROTOCOLS)}")
    if protocol.get("max_folds"):
        splits = splits[: protocol["max_folds"]]
    return splits


def outer_folds(
    subjects: Sequence[str], k: int, seed: int, balance: dict[str, float] | None = None
) -> list[tuple[str, ...]]:
    """Test subjects of each of ``k`` outer folds (disjoint, together every subject, sizes differ by <= 1).

    ``balance`` (subject → share of its windows in one class, e.g. the positive class) stratifies the folds:
    subjects are ordered by it (ties in a seeded random order) and dealt in a serpentine order, so every outer
    fold gets subjects across the range of label balance. Without it the deal is a seeded shuffle.

    Example:
        >>> outer_folds([f"S{i}" for i in range(6)], 3, seed=0)
        [('S1', 'S3'), ('S0', 'S2'), ('S4', 'S5')]
    """
    pool = sorted(subjects)
    if k < 2 or k > len(pool):
        raise KeyedError(
            [("protocol", "outer_folds")],
            f"{k} outer folds need at least {max(k, 2)} subjects; the data has {len(pool)} usable subjects",
        )
    rng = np.random.default_rng(seed)
    order = [pool[i] for i in rng.permutation(len(pool))]
    if balance is not None:
        order = sorted(order, key=lambda s: balance.get(s, 0.5))  # stable: ties keep the shuffled order
    groups: list[list[str]] = [[] for _ in range(k)]
    for i, s in enumerate(order):
        lap, pos = divmod(i, k)
        groups[pos if lap % 2 == 0 else k - 1 - pos].append(s)
    folds = [tuple(sorted(g)) for g in groups]
    seen = [s for g in folds for s in g]
    assert len(seen) == len(set(seen)) == len(pool), "outer folds must partition the subjects"
    return folds


def inner_protocol(protocol: dict[str, Any], test: Sequence[str]) -> dict[str, Any]:
    """The protocol of the search inside one outer fold: ``protocol.inner`` with the fold's test subjects."""
    inner = protocol["inner"]
    return {
        "kind": inner["kind"],
        "test_subjects": list(test),
        "val_subjects": inner.get("val_subjects"),
        "folds": inner.get("folds"),
        "max_folds": inner.get("max_folds"),
        "seed": protocol["seed"],
        "outer_folds": None,
        "inner": None,
    }
