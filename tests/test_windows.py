"""Windowing, label purity, channel alignment, beat-interval series and quality rejection."""

from __future__ import annotations

import numpy as np
import pytest

from ape_nas.data.quality import QualityConfig, reject
from ape_nas.data.types import UNLABELLED, SubjectRecording
from ape_nas.data.windows import events_to_series, window_subject
from ape_nas.errors import UserError

CFG = {"channels": ["x"], "window_s": 2.0, "stride_s": 1.0, "label_purity": 0.9, "normalize": "none"}


def _rec(x, rate=10.0, labels=None, label_rate=1.0, **kw) -> SubjectRecording:
    n_s = int(len(x) / rate)
    labels = np.zeros(n_s, dtype=np.int64) if labels is None else np.asarray(labels)
    return SubjectRecording("S1", {"x": np.asarray(x, float)}, {"x": rate}, labels, label_rate, **kw)


def test_windows_shape_starts_and_majority_labels():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 5 + [1] * 5)
    sw, fs = window_subject(_rec(rng.normal(size=100), labels=labels), CFG)
    assert fs == 10.0
    assert sw.windows.shape[1:] == (1, 20)
    # windows [0,2) .. [8,10): the one straddling the change at 5 s ([4,6)) has purity 0.5 and is dropped
    assert list(sw.starts_s) == [0, 1, 2, 3, 5, 6, 7, 8]
    assert list(sw.labels) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert sw.dropped["label"] == 1


def test_window_content_is_the_signal_at_its_start_time():
    x = np.arange(100, dtype=float)
    sw, _ = window_subject(_rec(x), CFG)
    for w, s in zip(sw.windows, sw.starts_s, strict=True):
        np.testing.assert_array_equal(w[0], x[int(s * 10) : int(s * 10) + 20])


def test_unlabelled_and_label_offset():
    labels = np.array([UNLABELLED] * 4 + [1] * 6)
    sw, _ = window_subject(_rec(np.arange(100.0), labels=labels, label_offset=0.0), CFG)
    assert sw.starts_s.min() >= 4
    # labels starting 3 s after t0: the first 3 s of signal have no label
    sw2, _ = window_subject(_rec(np.arange(100.0), labels=np.ones(7, dtype=int), label_offset=3.0), CFG)
    assert sw2.starts_s.min() == 3 and sw2.starts_s.max() == 8


def test_channels_with_offsets_are_aligned_on_their_common_span():
    a = np.arange(0, 100, dtype=float)  # 10 Hz from t=0
    b = np.arange(0, 40, dtype=float)  # 4 Hz from t=2 s: b[k] is at 2 + k/4 s
    rec = SubjectRecording(
        "S1", {"a": a, "b": b}, {"a": 10.0, "b": 4.0}, np.zeros(10, dtype=int), 1.0, offsets={"b": 2.0}
    )
    cfg = {**CFG, "channels": ["a", "b"], "rate_hz": 4.0}
    sw, fs = window_subject(rec, cfg)
    assert fs == 4.0 and sw.starts_s[0] == pytest.approx(2.0)
    np.testing.assert_allclose(sw.windows[0, 1], b[:8])


def test_missing_channel_and_mixed_rates_are_user_errors():
    with pytest.raises(UserError, match="has no channel"):
        window_subject(_rec(np.zeros(100)), {**CFG, "channels": ["ecg"]})
    rec = SubjectRecording(
        "S1", {"a": np.zeros(100), "b": np.zeros(40)}, {"a": 10.0, "b": 4.0}, np.zeros(10, dtype=int), 1.0
    )
    with pytest.raises(UserError, match="rate_hz"):
        window_subject(rec, {**CFG, "channels": ["a", "b"]})


def test_events_to_series_marks_gaps_and_never_invents_beats():
    beats = np.array([1.0, 1.8, 2.6, 3.4, 7.4, 8.2, 9.0])  # a 4-s gap between 3.4 and 7.4
    events = np.column_stack([beats[1:], np.diff(beats)])
    series = events_to_series(events, rate=10.0, end_s=10.0)
    t = np.arange(100) / 10
    assert np.isnan(series[t < 1.8]).all()  # before the first interval ends there is no known interval
    assert np.allclose(series[(t >= 1.8) & (t < 3.4)], 0.8)
    assert np.isnan(series[(t >= 3.4) & (t < 7.4)]).all()
    assert np.allclose(series[(t >= 7.4) & (t < 9.0)], 0.8)
    # a missing beat (interval column disagrees with the spacing of listed beats) is a gap too
    events2 = np.array([[1.0, 0.8], [2.6, 0.8], [3.4, 0.8]])
    s2 = events_to_series(events2, 10.0, 4.0)
    assert np.isnan(s2[(t[:40] >= 1.0) & (t[:40] < 2.6)]).all() and np.allclose(s2[26:34], 0.8)


def test_ibi_channel_windows_reject_gappy_windows():
    beats = np.concatenate([np.arange(0.5, 30, 0.8), np.arange(45, 80, 0.8)])
    events = np.column_stack([beats[1:], np.diff(beats)])
    rec = SubjectRecording("S1", {}, {}, np.zeros(80, dtype=int), 1.0, events={"ibi": events})
    cfg = {**CFG, "channels": ["ibi"], "rate_hz": 4.0, "window_s": 10.0, "stride_s": 5.0, "normalize": "subject"}
    sw, _ = window_subject(rec, cfg)
    assert sw.dropped["gaps"] >= 2
    assert not ((sw.starts_s > 25) & (sw.starts_s < 40)).any()
    assert np.isfinite(sw.windows).all()


def test_quality_rejects_flat_nan_and_clipped_windows():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 1, 200))
    w[1, 0, 50:150] = 0.3  # flat for 100 samples = 1 s at 100 Hz
    w[2, 0, 10] = np.nan
    w[3, 0, 20:60] = 5.0  # 20 % at the rail, as a plateau
    w[0, 0, 7] = -5.0  # a single sample at the other rail is not clipping
    keep, counts = reject(w, 100.0, ["signal"], [(-5.0, 5.0)], QualityConfig(flat_s=0.5))
    assert list(keep) == [True, False, False, False]
    assert counts == {"nan": 1, "flat": 1, "clipped": 1, "gaps": 0}


def test_subject_normalisation_uses_only_that_subject():
    rng = np.random.default_rng(2)
    sw, _ = window_subject(_rec(5 + 3 * rng.normal(size=1000)), {**CFG, "normalize": "subject"})
    assert abs(sw.windows.mean()) < 0.05 and abs(sw.windows.std() - 1) < 0.05
