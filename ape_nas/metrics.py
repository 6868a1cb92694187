"""Metric names and their definitions, one place for all: the deep models (torchmetrics), the HRV baseline,
``evaluate`` and the model card use these names. No torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

CLASS_METRICS: tuple[str, ...] = ("f1_macro", "balanced_accuracy", "auroc")
"""Classification metrics every trial, the HRV baseline and a bundle's evaluation report."""

DIRECTIONS: dict[str, str] = {**dict.fromkeys(CLASS_METRICS, "maximize"), "loss": "minimize"}
"""Metric name → the direction in which it improves (the names an experiment's ``objective.metric`` may take)."""

COST_METRICS: tuple[str, ...] = ("params", "macs", "latency_ms", "peak_memory_mb")
"""A network's measured cost (``ape_nas.cost``), always minimised: trainable parameters, multiply-accumulates per
window, batch-1 onnxruntime latency on this CPU, peak activation memory of a batch-1 forward."""

CONSTRAINTS: dict[str, str] = {f"{name}_max": name for name in COST_METRICS}
"""``objective.constraints`` keys → the cost each one limits (a spec over a limit is rejected before training)."""

SELECTIONS: tuple[str, ...] = ("mean", "mean_minus_se")
"""How a multi-fold trial's score is made from its fold scores (``objective.selection``; see ape_nas.stats)."""


def human(n: float) -> str:
    """A count as people read it: ``1234567`` → ``1.23M`` (k, M, G); ``314`` → ``314``."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}"


def _auroc_ovr(y_true: np.ndarray, scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``scores`` for ``positive`` (Mann–Whitney with mid-ranks = trapezoidal ROC with ties).

    As torchmetrics does, a class without positives or without negatives scores 0 (not NaN)."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.0
    from scipy.stats import rankdata

    ranks = rankdata(scores, method="average")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> dict[str, float]:
    """``f1_macro``, ``balanced_accuracy`` and ``auroc`` exactly as the deep models' torchmetrics compute them
    (``MulticlassF1Score(average="macro")``, ``MulticlassAccuracy(average="macro")``, ``MulticlassAUROC`` macro):

    * predictions are the argmax of ``probs``;
    * macro F1 and macro recall average over the classes that occur in targets or predictions (a class with
      tp + fp + fn = 0 is left out), 0/0 counts as 0;
    * AUROC is the mean over classes of the one-vs-rest AUROC of that class's probability (for 2 classes with
      probabilities summing to 1: the binary AUROC of the positive class); a class absent from the targets
      counts as 0, as in torchmetrics.
    """
    import numpy as np

    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(probs, dtype=np.float64).reshape(y.size, num_classes)
    pred = p.argmax(axis=1)
    cm = np.bincount(y * num_classes + pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = (tp + fp + fn) > 0

    def safe(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0)

    def macro(v: np.ndarray) -> float:
        return float(v[present].mean()) if present.any() else 0.0

    f1 = safe(2.0 * tp, 2.0 * tp + fp + fn)
    recall = safe(tp, tp + fn)
    auroc = float(np.mean([_auroc_ovr(y, p[:, c], y == c) for c in range(num_classes)])) if y.size else 0.0
    return {"f1_macro": macro(f1), "balanced_accuracy": macro(recall), "auroc": auroc}


def weighted_classification_metrics(
    y_true: np.ndarray, probs: np.ndarray, num_classes: int, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """:func:`classification_metrics` of many resamples at once: row ``r`` of ``weights`` (resamples × windows,
    whole numbers) says how often each window occurs in resample ``r`` — a subject bootstrap without building
    each resample. Returns each metric as an array over resamples, equal to ``classification_metrics`` of the
    repeated windows (up to float rounding): ties in AUROC count one half, as mid-ranks do."""
    import numpy as np

    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(probs, dtype=np.float64).reshape(y.size, num_classes)
    w = np.asarray(weights, dtype=np.float64).reshape(-1, y.size)
    onehot = np.zeros((y.size, num_classes * num_classes))
    onehot[np.arange(y.size), y * num_classes + p.argmax(axis=1)] = 1.0
    cm = (w @ onehot).reshape(-1, num_classes, num_classes)  # (resamples, true, predicted)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    fp, fn = cm.sum(axis=1) - tp, cm.sum(axis=2) - tp
    present = (tp + fp + fn) > 0

    def macro(num: np.ndarray, den: np.ndarray) -> np.ndarray:
        v = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        count = present.sum(axis=1)
        return np.divide((v * present).sum(axis=1), count, out=np.zeros(len(w)), where=count > 0)

    aurocs = [_weighted_auroc(p[:, c], y == c, w) for c in range(num_classes)]
    return {
        "f1_macro": macro(2.0 * tp, 2.0 * tp + fp + fn),
        "balanced_accuracy": macro(tp, tp + fn),
        "auroc": np.mean(aurocs, axis=0) if y.size else np.zeros(len(w)),
    }


def _weighted_auroc(scores: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per resample (row of ``w``): P(score of a positive > score of a negative) + ½ P(equal), windows counted
    ``w`` times; 0 where a resample has no positive or no negative (as :func:`_auroc_ovr`)."""
    import numpy as np

    order = np.argsort(scores, kind="stable")
    s, pos = scores[order], positive[order]
    wpos, wneg = w[:, order] * pos, w[:, order] * ~pos
    # tie groups of equal scores: negatives strictly below each group, and in it
    first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1
    cum = np.cumsum(wneg, axis=1)
    below = np.concatenate([np.zeros((len(w), 1)), cum[:, first[1:] - 1]], axis=1) if first.size else cum[:, :0]
    last = np.r_[first[1:] - 1, s.size - 1]
    equal = cum[:, last] - below
    wins = (wpos * (below[:, group] + 0.5 * equal[:, group])).sum(axis=1)
    n_pos, n_neg = wpos.sum(axis=1), wneg.sum(axis=1)
    ok = (n_pos > 0) & (n_neg > 0)
    return np.divide(wins, n_pos * n_neg, out=np.zeros(len(w)), where=ok)
