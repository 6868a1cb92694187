"""The HRV baseline cannot leak: everything it fits comes from training subjects, and it scores chance on
labels that carry no information (issue 9, point 7)."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from ape_nas.baseline import HrvModel, fold_models, hrv_baseline
from ape_nas.data.prepare import WindowSet, prepare_windows
from ape_nas.data.splits import make_splits
from ape_nas.metrics import CLASS_METRICS

DATA = {
    "benchmark": "synthetic",
    "params": {"subjects": 16, "minutes_per_state": 3.0, "fs": 128.0, "states": ["baseline", "stress"], "seed": 7},
    "channels": ["ecg"],
    "bandpass_hz": [0.5, 40.0],
    "normalize": "subject",
    "window_s": 10.0,
    "stride_s": 5.0,
    "label_purity": 0.9,
}
PROTOCOL = {"kind": "kfold", "test_subjects": 4, "folds": 4, "seed": 3}
SEED = 7


@cache
def _windows() -> WindowSet:
    ws = prepare_windows(DATA)
    assert ws.hrv is not None and np.isfinite(ws.hrv[:, 0]).mean() > 0.9  # 10 s windows: no LF, HF
    return ws


def _with(ws: WindowSet, **changes: np.ndarray) -> WindowSet:
    return dataclasses.replace(ws, **changes)  # the prepared windows are shared (memo): never change them in place


def _extreme(hrv: np.ndarray, rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """A copy of ``hrv`` whose ``rows`` hold huge values of either sign and NaNs."""
    rng = np.random.default_rng(seed)
    out = np.array(hrv, dtype=np.float64)
    out[rows] = rng.choice([-1e9, 1e9], size=out[rows].shape) * rng.random(out[rows].shape)
    out[rows[::3], ::2] = np.nan
    return out


def _state(m: HrvModel) -> dict[str, np.ndarray]:
    return {
        "columns": m.columns,
        "medians": m.medians,  # the imputation
        "scaler_mean": m.scaler.mean_,
        "scaler_scale": m.scaler.scale_,
        "coef": m.model.coef_,
        "intercept": m.model.intercept_,
    }


def _same(a: HrvModel, b: HrvModel) -> bool:
    sa, sb = _state(a), _state(b)
    return all(np.array_equal(sa[k], sb[k]) for k in sa)


def test_scaler_imputation_and_model_are_fitted_on_training_subjects_only() -> None:
    ws = _windows()
    splits = make_splits(PROTOCOL, ws.subjects)
    assert len(splits) == 4
    reference = fold_models(ws, np.asarray(ws.hrv), splits, SEED)
    for k, split in enumerate(splits):
        outside = np.flatnonzero(~np.isin(ws.groups, [ws.subjects.index(s) for s in split.train]))
        assert outside.size > 0
        changed = fold_models(ws, _extreme(ws.hrv, outside), splits, SEED)[k]
        assert _same(changed, reference[k]), f"fold {k} learnt from its validation or test subjects"
        # the check can fail: the same change on one training subject moves every fitted statistic
        one = ws.indices(split.train[:1])
        moved = fold_models(ws, _extreme(ws.hrv, one), splits, SEED)[k]
        assert not any(np.array_equal(_state(moved)[key], _state(reference[k])[key]) for key in ("medians", "coef"))


def test_test_subjects_move_only_test_scores() -> None:
    ws = _windows()
    test_subjects = make_splits(PROTOCOL, ws.subjects)[0].test
    rows = ws.indices(test_subjects)
    before = hrv_baseline(ws, PROTOCOL, SEED)
    after = hrv_baseline(_with(ws, hrv=_extreme(ws.hrv, rows)), PROTOCOL, SEED)
    assert before is not None and after is not None
    assert after.val == before.val
    assert [f["val"] for f in after.folds] == [f["val"] for f in before.folds]
    # per-subject feature normalisation is within each subject: the test subjects' change stays theirs
    assert after.subject_normalised["val"] == before.subject_normalised["val"]
    assert after.test != before.test  # the change did reach the test subjects' scores


@pytest.mark.parametrize("shuffle_seed", [0, 1, 2])
def test_labels_shuffled_across_windows_score_chance(shuffle_seed: int) -> None:
    ws = _windows()
    real = hrv_baseline(ws, PROTOCOL, SEED)
    # the features do carry the label (10 s windows: time domain only), more so within each subject
    assert real is not None and real.val["balanced_accuracy"] > 0.58
    assert real.subject_normalised["val"]["balanced_accuracy"] > 0.75
    y = np.random.default_rng(shuffle_seed).permutation(ws.y)
    shuffled = hrv_baseline(_with(ws, y=y), PROTOCOL, SEED)
    assert shuffled is not None
    # chance is narrow on this many windows: 4 standard deviations of a chance score (≈ 0.5 / sqrt(n) for balanced
    # accuracy, ≈ 0.58 / sqrt(n) for AUROC); the validation windows of the folds are disjoint, the test windows not
    n = {"val": sum(f["val"]["n"] for f in shuffled.folds), "test": shuffled.test["n"]}
    assert n["val"] > 600 and n["test"] > 200
    scores = {"plain": {"val": shuffled.val, "test": shuffled.test}, "subject": shuffled.subject_normalised}
    for variant, parts in scores.items():
        for part, m in parts.items():
            assert abs(m["balanced_accuracy"] - 0.5) < 4 * 0.5 / np.sqrt(n[part]), (variant, part, m)
            assert abs(m["auroc"] - 0.5) < 4 * 0.58 / np.sqrt(n[part]), (variant, part, m)
    assert set(CLASS_METRICS) <= set(shuffled.val)
