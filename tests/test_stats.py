"""Subject-level uncertainty (``ape_nas.stats``): bootstrap intervals, selection scores, indistinguishable trials."""

from __future__ import annotations

import numpy as np
import pytest

from ape_nas.backends.base import TrialRecord
from ape_nas.metrics import classification_metrics
from ape_nas.progress import selection_noise_line
from ape_nas.stats import (
    indistinguishable,
    metric_intervals,
    model_intervals,
    per_subject,
    selection_score,
    subject_bootstrap,
)


def _cohort(n_subjects: int, seed: int, windows: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows of ``n_subjects`` people; each person's model accuracy differs (subject effect)."""
    rng = np.random.default_rng(seed)
    y, probs, groups = [], [], []
    for s in range(n_subjects):
        skill = rng.uniform(0.45, 0.9)
        labels = rng.integers(0, 2, windows)
        right = rng.random(windows) < skill
        p1 = np.where(right == (labels == 1), rng.uniform(0.55, 1.0, windows), rng.uniform(0.0, 0.45, windows))
        y.append(labels)
        probs.append(np.stack([1 - p1, p1], axis=1))
        groups += [f"S{s}"] * windows
    return np.concatenate(y), np.concatenate(probs), np.array(groups)


@pytest.mark.parametrize("seed", range(6))
def test_intervals_contain_the_point_estimate(seed: int):
    y, probs, groups = _cohort(int(np.random.default_rng(seed).integers(3, 30)), seed)
    for name, iv in metric_intervals(y, probs, groups, 2, n_boot=300, seed=seed).items():
        assert iv.low <= iv.point <= iv.high, name
        assert iv.point == pytest.approx(classification_metrics(y, probs, 2)[name])


@pytest.mark.parametrize("seed", range(4))
def test_intervals_shrink_with_more_subjects(seed: int):
    widths = []
    for n in (6, 24, 96):
        y, probs, groups = _cohort(n, seed)
        widths.append(metric_intervals(y, probs, groups, 2, n_boot=400, seed=seed)["balanced_accuracy"].half_width)
    assert widths[0] > widths[1] > widths[2], widths


def test_resampling_subjects_is_wider_than_resampling_windows():
    """Windows of one person are not independent: a window bootstrap would claim a precision the data lacks."""
    y, probs, groups = _cohort(8, 0, windows=50)
    correct = (probs.argmax(1) == y).astype(float)
    by_subject = subject_bootstrap(lambda idx: float(correct[idx].mean()), groups, n_boot=500)
    by_window = subject_bootstrap(lambda idx: float(correct[idx].mean()), np.arange(y.size).astype(str), n_boot=500)
    assert by_subject.half_width > 1.5 * by_window.half_width


def test_mean_over_models_interval_is_the_mean_of_their_metrics():
    y, probs, groups = _cohort(10, 1)
    other = probs[:, ::-1]
    ivs = model_intervals(y, [probs, other], groups, 2, n_boot=100)
    a, b = classification_metrics(y, probs, 2), classification_metrics(y, other, 2)
    assert ivs["f1_macro"].point == pytest.approx((a["f1_macro"] + b["f1_macro"]) / 2)


def test_per_subject_metrics_are_each_subjects_own():
    y, probs, groups = _cohort(3, 2)
    table = per_subject(y, probs, groups, 2)
    assert list(table) == ["S0", "S1", "S2"]
    idx = groups == "S1"
    assert table["S1"]["f1_macro"] == pytest.approx(classification_metrics(y[idx], probs[idx], 2)["f1_macro"])


def test_mean_minus_se_penalises_a_lucky_fold():
    steady, lucky = [0.70, 0.71, 0.69], [0.60, 0.90, 0.60]
    assert selection_score(lucky, "mean", "maximize") > selection_score(steady, "mean", "maximize")
    assert selection_score(lucky, "mean_minus_se", "maximize") < selection_score(steady, "mean_minus_se", "maximize")
    assert selection_score([0.3, 0.5], "mean_minus_se", "minimize") > 0.4, "minimising moves the score up"
    with pytest.raises(ValueError, match="unknown selection"):
        selection_score(steady, "median", "maximize")


def test_indistinguishable_trials_are_those_not_significantly_worse():
    best = [0.80, 0.82, 0.79, 0.81]
    others = {1: [0.50, 0.52, 0.49, 0.51], 2: [0.81, 0.80, 0.80, 0.80], 3: [0.7]}
    assert indistinguishable(best, others, "maximize") == [2, 3]


def test_the_sweep_summary_counts_trials_tied_with_the_best():
    def rec(n: int, folds: list[float]) -> TrialRecord:
        return TrialRecord(n, "complete", float(np.mean(folds)), 1.0, attrs={"fold_scores": folds})

    records = [rec(0, [0.8, 0.82, 0.79]), rec(1, [0.79, 0.83, 0.78]), rec(2, [0.5, 0.52, 0.49])]
    line = selection_noise_line(records, records[0], "maximize")
    assert line is not None and "1 of the 2 other complete trials are statistically indistinguishable" in line
    assert selection_noise_line(records[:1], records[0], "maximize") is None


@pytest.mark.parametrize("k", [2, 3])
def test_weighted_metrics_equal_the_metrics_of_the_repeated_windows(k: int):
    """The bootstrap scores each resample from window counts: the same numbers as scoring the repeated windows."""
    from ape_nas.metrics import classification_metrics, weighted_classification_metrics

    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 60)
    probs = np.round(rng.random((60, k)), 1) + 0.05  # rounded: many ties, which AUROC counts one half
    probs /= probs.sum(axis=1, keepdims=True)
    counts = rng.integers(0, 3, size=(25, 60))
    counts[0] = 0
    counts[0, y == 0] = 1  # a resample with one class only: AUROC 0, as torchmetrics says
    got = weighted_classification_metrics(y, probs, k, counts)
    for r, row in enumerate(counts):
        idx = np.repeat(np.arange(60), row)
        want = classification_metrics(y[idx], probs[idx], k)
        for name, value in want.items():
            assert got[name][r] == pytest.approx(value, abs=1e-12), (name, r)
