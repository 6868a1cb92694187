"""The one band-pass filter (ape_nas.data.filters): its gap and edge rules, and that the deep models' windows and
the HRV beat detector see the same filtered signal."""

from __future__ import annotations

import numpy as np
import pytest

from ape_nas import hrv
from ape_nas.data.filters import HIGH_EDGE_FRACTION, bandpass, bandpass_bridged, description
from ape_nas.data.synthetic import generate
from ape_nas.data.windows import window_subject
from ape_nas.errors import UserError

KEEP_ALL = {"max_nan_frac": 1.0, "flat_s": 1e9, "clip_frac": 1.0}  # quality checks that reject nothing


def _drifting_sine(fs: float = 64.0, seconds: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(int(seconds * fs)) / fs
    return t, np.sin(2 * np.pi * t) + 0.1 * t  # the local level near the start is far from the mean


def test_gaps_stay_gaps_and_do_not_pull_their_neighbours() -> None:
    fs = 64.0
    t, x = _drifting_sine(fs)
    gappy = x.copy()
    gappy[int(20 * fs) : int(23 * fs)] = np.nan
    ref, out = bandpass(x, fs, [0.5, 8.0]), bandpass(gappy, fs, [0.5, 8.0])
    np.testing.assert_array_equal(np.isnan(out), np.isnan(gappy))  # a gap neither grows nor shrinks
    # one second away from the gap the filtered signal is what it would be without the gap; a constant fill
    # (the subject's mean) gives errors of about 0.16 there
    far = (t < 19.0) | (t > 24.0)
    assert np.max(np.abs(out - ref)[far]) < 0.05
    bridged, bad = bandpass_bridged(gappy, fs, [0.5, 8.0])
    np.testing.assert_array_equal(bridged[~bad], out[~bad])
    assert np.isfinite(bridged).all()
    assert np.isnan(bandpass(np.full(500, np.nan), fs, [0.5, 8.0])).all()


def test_the_high_edge_is_capped_and_an_impossible_band_is_refused() -> None:
    fs = 64.0
    _, x = _drifting_sine(fs)
    np.testing.assert_array_equal(bandpass(x, fs, [0.5, 1000.0]), bandpass(x, fs, [0.5, HIGH_EDGE_FRACTION * fs]))
    assert not np.array_equal(bandpass(x, fs, [0.5, 20.0]), bandpass(x, fs, [0.5, 28.8]))
    with pytest.raises(ValueError, match="64 Hz"):
        bandpass(x, fs, [30.0, 40.0])
    assert "0.45 × the sampling rate" in description([0.5, 8.0])
    rec = generate(subjects=1, fs=64.0, minutes_per_state=0.5, seed=0).subjects[0]
    cfg = {"channels": ["ecg"], "window_s": 10.0, "stride_s": 10.0, "label_purity": 0.5, "bandpass_hz": [30, 40]}
    with pytest.raises(UserError, match=r"data\.bandpass_hz: channel ecg"):
        window_subject(rec, cfg)


@pytest.mark.parametrize(("kind", "channel"), [("ecg", "ecg"), ("ppg", "ppg")])
def test_windows_and_the_beat_detector_see_the_same_filtered_signal(kind: str, channel: str) -> None:
    fs = 128.0
    rec = generate(subjects=1, fs=fs, ppg=True, minutes_per_state=0.5, seed=3).subjects[0]
    x = rec.signals[channel].astype(np.float64)
    x[int(12.3 * fs) : int(14.1 * fs)] = np.nan  # a gap: both must bridge it the same way
    rec.signals[channel] = x
    band = hrv.ECG_BAND_HZ if kind == "ecg" else hrv.PPG_BAND_HZ
    cfg = {
        "channels": [channel],
        "window_s": 5.0,
        "stride_s": 5.0,
        "label_purity": 0.0,
        "normalize": "none",
        "bandpass_hz": {channel: list(band)},
        "quality": KEEP_ALL,
    }
    sw, rate = window_subject(rec, cfg, require_labels=False)
    assert rate == fs and sw.windows.shape[0] == int(x.size / fs / 5.0)
    detector, bad = hrv.detection_signal(x, fs, kind)
    win = round(5.0 * fs)
    for w, start in zip(sw.windows[:, 0], sw.starts_s, strict=True):
        a = round(start * fs)
        seen, gaps = detector[a : a + win], bad[a : a + win]
        np.testing.assert_allclose(w[~gaps], seen[~gaps].astype(np.float32), rtol=0, atol=0)
        assert (w[gaps] == 0).all()  # gaps are 0 in the windows (after normalisation), NaN before
    assert bad.sum() > 0
