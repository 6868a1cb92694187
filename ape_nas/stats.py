"""Uncertainty of scores where subjects are the unit of independence. No torch.

* :func:`subject_bootstrap` — a confidence interval for any window-level metric by resampling *subjects*
  (with replacement; all windows of a drawn subject come along), never windows: windows of one person are not
  independent, and a window bootstrap gives intervals that are far too narrow.
* :func:`per_subject` — the metric of each subject on its own windows (the distribution behind the pooled value).
* :func:`fold_summary` / :func:`selection_score` — a CV trial's score as the mean over folds, or the mean minus
  a multiple of its standard error (``objective.selection: mean_minus_se``).
* :func:`indistinguishable` — trials whose fold scores are not significantly worse than the best trial's
  (one-sided paired test over the same folds).

With 6–7 test subjects a 95% interval of ±10 points is normal: that is the honest size of the uncertainty.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np

DEFAULT_BOOT = 1000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its subject-bootstrap interval (``low <= point <= high``)."""

    point: float
    low: float
    high: float
    level: float
    n_subjects: int
    n_boot: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def text(self, digits: int = 3) -> str:
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0


def subject_bootstrap(
    score: Callable[[np.ndarray], float],
    groups: Sequence[str] | np.ndarray,
    *,
    n_boot: int = DEFAULT_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``score(window_indices)`` over resamples of subjects.

    ``groups[i]`` is the subject of window ``i``. Each resample draws as many subjects as there are, with
    replacement, and scores the concatenation of their windows. Resamples whose score is not finite (e.g. one
    class only, for a metric that needs two) are skipped. The interval is widened to contain the point
    estimate where the percentile interval of a skewed statistic would miss it.

    Example:
        >>> y = np.array([0, 1, 0, 1, 1, 0]); g = np.array(["a", "a", "b", "b", "c", "c"])
        >>> iv = subject_bootstrap(lambda idx: float((y[idx] == 1).mean()), g, n_boot=200)
        >>> iv.low <= iv.point <= iv.high
        True
    """
    n_subjects, draws = _subject_draws(groups, n_boot, seed)
    point = float(score(np.arange(len(groups))))
    values = [v for v in (float(score(idx)) for idx in draws) if math.isfinite(v)]
    if not values or not math.isfinite(point):
        return Interval(point, float("nan"), float("nan"), level, n_subjects, n_boot)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return Interval(point, min(float(low), point), max(float(high), point), level, n_subjects, n_boot)


def _subject_draws(groups: Sequence[str] | np.ndarray, n_boot: int, seed: int) -> tuple[int, Iterator[np.ndarray]]:
    """(number of subjects, ``n_boot`` window-index arrays): each draws as many subjects as there are, with
    replacement, and takes all windows of every drawn subject."""
    subjects, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    members = [np.flatnonzero(inverse == k) for k in range(len(subjects))]
    rng = np.random.default_rng(seed)
    n = len(subjects)
    return n, (np.concatenate([members[k] for k in rng.integers(0, n, size=n)]) for _ in range(n_boot))


def _subject_counts(groups: Sequence[str] | np.ndarray, n_boot: int, seed: int) -> tuple[int, np.ndarray]:
    """The draws of :func:`_subject_draws` as counts: (number of subjects, ``(n_boot, windows)`` array of how
    often each window occurs in each resample)."""
    subjects, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    rng = np.random.default_rng(seed)
    n = len(subjects)
    per_subject = np.stack([np.bincount(rng.integers(0, n, size=n), minlength=n) for _ in range(n_boot)])
    return n, per_subject[:, inverse] if n_boot else np.zeros((0, len(inverse)))


def metric_intervals(
    y: np.ndarray,
    probs: np.ndarray,
    groups: Sequence[str] | np.ndarray,
    num_classes: int,
    *,
    n_boot: int = DEFAULT_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Interval]:
    """Subject-bootstrap intervals of every classification metric (:data:`ape_nas.metrics.CLASS_METRICS`)
    of one model's probabilities ``probs`` (windows × classes) against labels ``y``.

    One bootstrap draw serves every metric (the same resampled subjects), so they stay comparable."""
    return model_intervals(y, [probs], groups, num_classes, n_boot=n_boot, level=level, seed=seed)


def model_intervals(
    y: np.ndarray,
    probs_per_model: Sequence[np.ndarray],
    groups: Sequence[str] | np.ndarray,
    num_classes: int,
    *,
    n_boot: int = DEFAULT_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, Interval]:
    """Intervals of the *mean over models* of each metric (a CV trial's test score is the mean of its fold
    models' test scores): every resample scores each model on the same resampled subjects, then averages."""
    from ape_nas.metrics import CLASS_METRICS, classification_metrics, weighted_classification_metrics

    y = np.asarray(y)
    per_model = [classification_metrics(y, p, num_classes) for p in probs_per_model]
    point = np.array([np.mean([m[name] for m in per_model]) for name in CLASS_METRICS])
    n_subjects, counts = _subject_counts(groups, n_boot, seed)  # (resamples, windows): the same draws
    rows = max(1, 2_000_000 // max(1, y.size))  # resamples per block: bounded memory on large test sets
    blocks = []
    for start in range(0, len(counts), rows):
        drawn = [
            weighted_classification_metrics(y, p, num_classes, counts[start : start + rows]) for p in probs_per_model
        ]
        blocks.append(np.stack([np.mean([d[name] for d in drawn], axis=0) for name in CLASS_METRICS], axis=1))
    draws = np.concatenate(blocks) if blocks else np.zeros((0, len(CLASS_METRICS)))
    alpha = (1.0 - level) / 2.0
    out = {}
    for j, name in enumerate(CLASS_METRICS):
        low, high = np.quantile(draws[:, j], [alpha, 1.0 - alpha])
        p = float(point[j])
        out[name] = Interval(p, min(float(low), p), max(float(high), p), level, n_subjects, n_boot)
    return out


def per_subject(
    y: np.ndarray, probs: np.ndarray, groups: Sequence[str] | np.ndarray, num_classes: int
) -> dict[str, dict[str, float]]:
    """Every classification metric of each subject on its own windows (natural subject order).

    A subject with windows of one class only has an undefined AUROC (recorded as NaN, not torchmetrics' 0)."""
    from ape_nas.data.ids import natural_sorted
    from ape_nas.metrics import classification_metrics

    y, g = np.asarray(y), np.asarray(groups).astype(str)
    out: dict[str, dict[str, float]] = {}
    for s in natural_sorted(set(g.tolist())):
        idx = np.flatnonzero(g == s)
        values = classification_metrics(y[idx], np.asarray(probs)[idx], num_classes)
        if len(np.unique(y[idx])) < 2:
            values["auroc"] = float("nan")
        out[s] = values
    return out


def interval_metrics(prefix: str, intervals: dict[str, Interval]) -> dict[str, float]:
    """Flat MLflow metrics: ``<prefix><metric>_ci_low`` / ``_ci_high`` per metric."""
    flat = {}
    for name, iv in intervals.items():
        flat[f"{prefix}{name}_ci_low"] = iv.low
        flat[f"{prefix}{name}_ci_high"] = iv.high
    return flat


@dataclass(frozen=True)
class FoldSummary:
    mean: float
    std: float
    se: float
    n: int


def fold_summary(scores: Sequence[float]) -> FoldSummary:
    """Mean, standard deviation (ddof 1) and standard error of a trial's fold scores."""
    a = np.asarray(scores, dtype=float)
    n = a.size
    std = float(a.std(ddof=1)) if n > 1 else 0.0
    return FoldSummary(float(a.mean()), std, std / math.sqrt(n) if n > 1 else 0.0, n)


from ape_nas.metrics import SELECTIONS  # noqa: E402


def selection_score(scores: Sequence[float], selection: str, direction: str, se_multiple: float = 1.0) -> float:
    """The score a search optimises from a trial's fold scores.

    ``mean``: the mean over folds. ``mean_minus_se``: the mean moved by ``se_multiple`` standard errors in the
    unfavourable direction (lower when maximising, higher when minimising), so a trial that scored well on
    one lucky fold does not win over a steadier one.
    """
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; expected one of {', '.join(SELECTIONS)}")
    s = fold_summary(scores)
    if selection == "mean":
        return s.mean
    sign = -1.0 if direction == "maximize" else 1.0
    return s.mean + sign * se_multiple * s.se


def indistinguishable(
    best: Sequence[float], others: dict[int, Sequence[float]], direction: str, alpha: float = 0.05
) -> list[int]:
    """Trials (keys of ``others``) not significantly worse than ``best`` at level ``alpha``.

    Several folds: one-sided paired t-test over the same folds (fold ``k`` of both trials validates on the same
    subjects). A trial with fewer fold scores (pruned early) is compared on the folds both have; with fewer
    than two paired folds nothing can be told apart, so the trial counts as indistinguishable.
    """
    from scipy import stats as sps

    out = []
    for number, scores in others.items():
        n = min(len(best), len(scores))
        if n < 2:
            out.append(number)
            continue
        diff = np.asarray(best[:n], dtype=float) - np.asarray(scores[:n], dtype=float)
        if direction != "maximize":
            diff = -diff
        if np.allclose(diff, diff[0]):
            p = 0.0 if diff[0] > 0 else 1.0
        else:
            p = float(sps.ttest_1samp(diff, 0.0, alternative="greater").pvalue)
        if p >= alpha:
            out.append(number)
    return out
