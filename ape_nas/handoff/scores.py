"""Scores of a bundle's model as ``metrics.json`` and ``evaluate`` report them: the metrics of training
(:data:`ape_nas.metrics.CLASS_METRICS`) plus window counts and a confusion matrix, per subject and pooled.
No torch: the model comes in as a function of the windows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ape_nas.metrics import CLASS_METRICS


def confusion(y: np.ndarray, pred: np.ndarray, k: int) -> list[list[int]]:
    """Rows: true class, columns: predicted class."""
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(int).tolist()


def score(y: np.ndarray, probs: np.ndarray, k: int) -> dict[str, Any]:
    """Metrics of training (f1_macro, balanced_accuracy, auroc) plus counts; AUROC is None when a class is absent
    from ``y`` (undefined; training's torchmetrics would count it as 0)."""
    from ape_nas.metrics import classification_metrics

    m: dict[str, Any] = classification_metrics(y, probs, k) if len(y) else dict.fromkeys(CLASS_METRICS)
    if len(y) and len(np.unique(y)) < k:
        m["auroc"] = None
    pred = probs.argmax(axis=1) if len(y) else np.zeros(0, dtype=np.int64)
    m.update(
        windows=len(y),
        accuracy=float((pred == y).mean()) if len(y) else None,
        counts=np.bincount(y, minlength=k).astype(int).tolist(),
        confusion=confusion(y, pred, k),
    )
    return m


@dataclass
class SplitScores:
    """The model on the validation and test subjects of its split (no validation subjects: ``val`` is empty and
    ``pooled["val"]`` is None, e.g. a model refitted on every non-test subject)."""

    val: dict[str, Any]  # subject → score
    test: dict[str, Any]
    pooled: dict[str, dict[str, Any] | None]  # "val" | "test" → score of the partition's windows together
    X_test: np.ndarray  # the test windows, subject after subject (the parity checks run on them)
    p_test: np.ndarray  # the model's probabilities of X_test
    y_test: np.ndarray  # their labels
    g_test: np.ndarray  # their subjects
    F_test: np.ndarray | None = None  # their HRV feature input (a model that takes one), else None


def score_split(
    model: Callable[..., np.ndarray],
    ws: Any,
    val: list[str],
    test: list[str],
    k: int,
    features: np.ndarray | None = None,
) -> SplitScores:
    """Score ``model`` (windows → probabilities; ``model(x, f)`` when ``features``, the HRV feature input of all
    of ``ws``'s windows, is given) on the windows of each validation and test subject of ``ws``."""
    X = {s: np.asarray(ws.X[ws.indices([s])]) for s in (*val, *test)}
    y = {s: np.asarray(ws.y[ws.indices([s])]) for s in X}
    F = {s: None if features is None else features[ws.indices([s])] for s in X}
    probs = {s: model(x) if F[s] is None else model(x, F[s]) for s, x in X.items()}

    def part(subjects: list[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        if not subjects:
            return {}, None
        per_subject = {s: score(y[s], probs[s], k) for s in subjects}
        pooled = score(np.concatenate([y[s] for s in subjects]), np.concatenate([probs[s] for s in subjects]), k)
        return per_subject, pooled

    (val_scores, val_pooled), (test_scores, test_pooled) = part(val), part(test)
    return SplitScores(
        val_scores,
        test_scores,
        {"val": val_pooled, "test": test_pooled},
        np.concatenate([X[s] for s in test]),
        np.concatenate([probs[s] for s in test]),
        np.concatenate([y[s] for s in test]),
        np.concatenate([np.full(len(y[s]), s, dtype=object) for s in test]).astype(str),
        None if features is None else np.concatenate([F[s] for s in test]),
    )
