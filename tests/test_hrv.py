"""HRV baseline (ape_nas.hrv, ape_nas.baseline): beat detection, interval cleaning, window features, linear model
and metrics."""

from __future__ import annotations

import subprocess
import sys
import warnings
from functools import cache

import numpy as np
import pytest

from ape_nas import baseline, hrv
from ape_nas import metrics as metric_defs
from ape_nas.data.synthetic import generate
from ape_nas.data.types import SubjectRecording

COL = {name: i for i, name in enumerate(hrv.FEATURE_NAMES)}


@cache
def _bench(fs: float, noise: float, ppg: bool = False, subjects: int = 4, minutes: float = 2.0):
    return generate(subjects=subjects, fs=fs, noise=noise, ppg=ppg, minutes_per_state=minutes, seed=0)


def _nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each element of ``a`` to the nearest element of sorted ``b``."""
    j = np.searchsorted(b, a)
    left = b[np.clip(j - 1, 0, b.size - 1)]
    right = b[np.clip(j, 0, b.size - 1)]
    return np.minimum(np.abs(a - left), np.abs(a - right))


def _beats_from_rr(rr: np.ndarray, t0: float = 1.0) -> np.ndarray:
    return t0 + np.concatenate([[0.0], np.cumsum(rr)])


def _modulated_beats(freq_hz: float, amp_s: float, duration_s: float = 1200.0, rr0: float = 0.8) -> np.ndarray:
    """Beat times whose interval follows rr0 + amp sin(2π f t) (sampled at each beat)."""
    t, beats = 0.0, []
    while t < duration_s:
        t += rr0 + amp_s * np.sin(2.0 * np.pi * freq_hz * t)
        beats.append(t)
    return np.asarray(beats)


# ---------------------------------------------------------------------------------------------------------------
# beat detection
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [128.0, 500.0])
@pytest.mark.parametrize("noise", [1.0, 2.0])
def test_ecg_r_peaks_match_ground_truth(fs: float, noise: float) -> None:
    bench = _bench(fs, noise)
    for rec in bench.subjects:
        x = rec.signals["ecg"]
        true = rec.meta["r_peaks"] / fs
        duration = x.size / fs
        true = true[(true > 0.1) & (true < duration - 0.1)]  # a QRS cut by the recording's edge is not a peak
        for sign in (1.0, -1.0):  # inverted lead: same peaks
            det = hrv.detect_beats(sign * x, fs, "ecg")
            assert np.all(np.diff(det) > 0)
            hit = _nearest(true, det) <= 0.04
            false_pos = _nearest(det, true) > 0.04
            assert hit.mean() >= 0.99, (rec.subject, sign, hit.mean())
            assert false_pos.sum() <= max(1, 0.005 * true.size), (rec.subject, sign, false_pos.sum())
            assert np.median(_nearest(true, det)) < 0.5 / fs + 0.004  # timing: about a sample or better


def test_ppg_heart_rate_matches_ecg_per_minute() -> None:
    fs = 128.0
    bench = _bench(fs, 1.0, ppg=True)
    for rec in bench.subjects:
        hr = {}
        for ch in ("ecg", "ppg"):
            t, rr = hrv.clean_rr(*hrv.intervals_from_beats(hrv.detect_beats(rec.signals[ch], fs, ch)))
            hr[ch] = np.array([60.0 / rr[(t >= m * 60) & (t < (m + 1) * 60)].mean() for m in range(4)])
        assert np.all(np.abs(hr["ppg"] - hr["ecg"]) < 1.0), (rec.subject, hr)
        bvp = hrv.detect_beats(rec.signals["ppg"], fs, "bvp")  # alias
        assert bvp.size == hrv.detect_beats(rec.signals["ppg"], fs, "ppg").size


def test_nan_gaps_give_no_beats_and_do_not_disturb_the_rest() -> None:
    fs = 128.0
    rec = _bench(fs, 1.0, ppg=True).subjects[0]
    true = rec.meta["r_peaks"] / fs
    a, b = 100.0, 112.0
    for ch in ("ecg", "ppg"):
        x = rec.signals[ch].astype(np.float64)
        x[int(a * fs) : int(b * fs)] = np.nan
        det = hrv.detect_beats(x, fs, ch)
        assert not np.any((det > a - 0.05) & (det < b + 0.05))
        if ch == "ecg":
            outside = true[((true < a - 0.2) | (true > b + 0.2)) & (true > 0.1) & (true < x.size / fs - 0.1)]
            assert (_nearest(outside, det) <= 0.04).mean() >= 0.99
        # the intervals spanning the gap are dropped, never bridged by invented beats
        t, rr = hrv.clean_rr(*hrv.intervals_from_beats(det))
        assert not np.any((t - rr < b) & (t > a))
    assert hrv.detect_beats(np.full(2000, np.nan), fs, "ecg").size == 0
    assert hrv.detect_beats(np.zeros(2000), fs, "ppg").size == 0
    assert hrv.detect_beats(np.zeros(10), fs, "ecg").size == 0
    with pytest.raises(ValueError, match="kind"):
        hrv.detect_beats(np.zeros(2000), fs, "eeg")


def test_ecg_robust_to_baseline_wander() -> None:
    fs = 250.0
    rec = generate(subjects=1, fs=fs, noise=1.0, seed=5).subjects[0]
    t = np.arange(rec.signals["ecg"].size) / fs
    x = rec.signals["ecg"] + 2.0 * np.sin(2 * np.pi * 0.3 * t) + 1.0 * t / 60.0  # 2 mV wander, 1 mV/min drift
    true = rec.meta["r_peaks"] / fs
    true = true[(true > 0.1) & (true < t[-1] - 0.1)]
    det = hrv.detect_beats(x, fs, "ecg")
    assert (_nearest(true, det) <= 0.04).mean() >= 0.99
    assert (_nearest(det, true) > 0.04).sum() <= 1


# ---------------------------------------------------------------------------------------------------------------
# intervals and cleaning
# ---------------------------------------------------------------------------------------------------------------


def test_intervals_from_beats() -> None:
    times, rr = hrv.intervals_from_beats(np.array([2.0, 1.0, 3.5, np.nan, 1.0]))
    np.testing.assert_allclose(times, [2.0, 3.5])  # stamped with the beat that ends the interval
    np.testing.assert_allclose(rr, [1.0, 1.5])


def test_clean_rr_removes_ectopic_and_impossible_intervals_without_inventing_beats() -> None:
    rng = np.random.default_rng(0)
    rr = 0.8 + 0.02 * rng.standard_normal(60)
    beats = _beats_from_rr(rr)
    # an extra (false or interpolated) beat inside interval 20, a premature beat at 40 (with compensatory pause)
    extra = beats[20] + 0.45 * rr[20]
    premature = beats.copy()
    premature[40] -= 0.3 * rr[39]
    for bt, bad_times in ((np.sort(np.append(beats, extra)), [extra, beats[21]]), (premature, premature[40:42])):
        t, r = hrv.intervals_from_beats(bt)
        tc, rc = hrv.clean_rr(t, r)
        assert not np.isin(bad_times, tc).any()  # the disturbed intervals are gone
        assert tc.size == t.size - 2  # and only those
        assert np.isin(tc, t).all()  # nothing invented, nothing moved
        assert np.all(np.abs(rc - 0.8) < 0.1)
    # physiologically impossible intervals
    t = np.arange(1.0, 11.0)
    r = np.array([1.0, 0.2, 1.0, 2.5, 1.0, 1.0, np.nan, 1.0, 1.0, 1.0])
    tc, rc = hrv.clean_rr(t, r)
    np.testing.assert_allclose(tc, [1, 3, 5, 6, 8, 9, 10])
    assert hrv.clean_rr(np.empty(0), np.empty(0))[0].size == 0


# ---------------------------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------------------------


def test_time_domain_features_on_known_series() -> None:
    # constant 0.8 s: no variability, 75 bpm
    t, rr = hrv.intervals_from_beats(_beats_from_rr(np.full(200, 0.8)))
    x = hrv.window_features(t, rr, np.array([10.0, 50.0]), 60.0)
    assert x.shape == (2, len(hrv.FEATURE_NAMES))
    for name, value in {"mean_rr": 800, "sdnn": 0, "rmssd": 0, "pnn50": 0, "mean_hr": 75, "sd1": 0, "sd2": 0}.items():
        np.testing.assert_allclose(x[:, COL[name]], value, atol=1e-6, err_msg=name)
    # alternating 0.8 / 0.9 s: every successive difference is ±100 ms
    alt = np.tile([0.8, 0.9], 100)
    t, rr = hrv.intervals_from_beats(_beats_from_rr(alt))
    start, window = 20.0, 30.0
    x = hrv.window_features(t, rr, np.array([start]), window)[0]
    sel = rr[(t >= start) & (t < start + window)] * 1000
    np.testing.assert_allclose(x[COL["rmssd"]], 100.0)
    np.testing.assert_allclose(x[COL["pnn50"]], 100.0)
    np.testing.assert_allclose(x[COL["mean_rr"]], sel.mean())
    np.testing.assert_allclose(x[COL["sdnn"]], sel.std(ddof=1))
    np.testing.assert_allclose(x[COL["mean_hr"]], 60000.0 / sel.mean())
    d = np.diff(sel)
    np.testing.assert_allclose(x[COL["sd1"]], np.sqrt(d.var(ddof=1) / 2))
    np.testing.assert_allclose(x[COL["sd2"]], np.sqrt(max(2 * sel.var(ddof=1) - d.var(ddof=1) / 2, 0.0)), atol=1e-6)


def test_time_domain_features_match_a_direct_computation_per_window() -> None:
    rng = np.random.default_rng(1)
    t, rr = hrv.intervals_from_beats(_beats_from_rr(0.8 + 0.05 * rng.standard_normal(3000)))
    keep = rng.uniform(size=t.size) > 0.05  # 5 % of intervals dropped: gaps
    t, rr = t[keep], rr[keep]
    starts = rng.uniform(0.0, 2300.0, 200)
    window = 45.0
    x = hrv.window_features(t, rr, starts, window)
    for row, s in zip(x, starts, strict=True):
        sel = np.flatnonzero((t >= s) & (t < s + window))
        v = rr[sel] * 1000
        nxt = sel[1:][np.isclose(t[sel[1:]] - rr[sel[1:]], t[sel[:-1]])]  # intervals that follow their predecessor
        d = (rr[nxt] - rr[nxt - 1]) * 1000
        expected = {
            "mean_rr": v.mean(),
            "sdnn": v.std(ddof=1),
            "rmssd": np.sqrt(np.mean(d**2)),
            "pnn50": 100 * np.mean(np.abs(d) > 50),
            "mean_hr": 60000 / v.mean(),
            "sd1": np.sqrt(d.var(ddof=1) / 2),
            "sd2": np.sqrt(2 * v.var(ddof=1) - d.var(ddof=1) / 2),
        }
        for name, value in expected.items():
            np.testing.assert_allclose(row[COL[name]], value, rtol=1e-9, err_msg=name)


def test_successive_differences_never_span_a_gap() -> None:
    alt = np.tile([0.8, 0.9], 50)
    t, rr = hrv.intervals_from_beats(_beats_from_rr(alt))
    # drop every other interval: the rest are all 0.8 s but none follows another, so no successive differences
    t2, rr2 = t[::2], rr[::2]
    x = hrv.window_features(t2, rr2, np.array([5.0]), 60.0)[0]
    assert np.isnan(x[[COL["rmssd"], COL["pnn50"], COL["sd1"], COL["sd2"]]]).all()
    # dropping one interval of an alternating series removes its two differences, the others stay ±100 ms
    keep = np.ones(t.size, dtype=bool)
    keep[30] = False
    x = hrv.window_features(t[keep], rr[keep], np.array([5.0]), 60.0)[0]
    np.testing.assert_allclose(x[COL["rmssd"]], 100.0)


def test_frequency_domain_puts_power_in_the_right_band() -> None:
    amp = 0.04  # s: a sinusoid of amplitude A has power A²/2 = 800 ms²
    starts = np.arange(0.0, 1000.0, 37.0)
    for freq, band, other in ((0.25, "hf", "lf"), (0.1, "lf", "hf")):
        t, rr = hrv.intervals_from_beats(_modulated_beats(freq, amp))
        for window in (60.0, 120.0, 300.0):
            x = hrv.window_features(t, rr, starts, window)
            power = x[:, COL[band]]
            np.testing.assert_allclose(power, 800.0, rtol=0.1, err_msg=f"{freq} Hz, {window} s")
            assert np.all(x[:, COL[other]] < 0.03 * power)
            ratio = x[:, COL["lf_hf"]]
            assert np.all(ratio > 10) if band == "lf" else np.all(ratio < 0.1)
            nu = x[:, COL["hf_nu"]]
            assert np.all(nu < 10) if band == "lf" else np.all(nu > 90)


def test_lomb_scargle_agrees_with_scipy() -> None:
    from scipy.signal import lombscargle

    rng = np.random.default_rng(3)
    beats = 50_000.0 + np.cumsum(0.8 + 0.05 * rng.standard_normal(4000))  # far from 0: numerically demanding
    t, rr = hrv.intervals_from_beats(beats)
    window = 120.0
    starts = t[[100, 2000, 3800]] - 0.5
    x = hrv.window_features(t, rr, starts, window)
    df = min(0.005, 1.0 / (4.0 * window))
    nf = round(0.36 / df)
    freqs = 0.04 + (np.arange(nf) + 0.5) * 0.36 / nf
    for row, s in zip(x, starts, strict=True):
        sel = (t >= s) & (t < s + window)
        tt, y = t[sel], rr[sel] * 1000
        design = np.stack([tt - tt.mean(), np.ones_like(tt)], axis=1)
        resid = y - design @ np.linalg.lstsq(design, y, rcond=None)[0]
        psd = 2.0 * lombscargle(tt, resid, 2 * np.pi * freqs) * y.mean() / 1000
        np.testing.assert_allclose(row[COL["lf"]], psd[freqs < 0.15].sum() * 0.36 / nf, rtol=1e-6)
        np.testing.assert_allclose(row[COL["hf"]], psd[freqs >= 0.15].sum() * 0.36 / nf, rtol=1e-6)


def test_short_windows_and_sparse_windows() -> None:
    t, rr = hrv.intervals_from_beats(_modulated_beats(0.25, 0.03, duration_s=400))
    freq_cols = [COL["lf"], COL["hf"], COL["lf_hf"], COL["hf_nu"]]
    lf_cols = [COL["lf"], COL["lf_hf"], COL["hf_nu"]]
    x10 = hrv.window_features(t, rr, np.array([10.0, 100.0]), 10.0)
    assert np.isnan(x10[:, freq_cols]).all() and np.isfinite(np.delete(x10, freq_cols, axis=1)).all()
    x20 = hrv.window_features(t, rr, np.array([10.0, 100.0]), 20.0)
    assert np.isnan(x20[:, lf_cols]).all() and np.isfinite(x20[:, COL["hf"]]).all()
    assert np.isfinite(hrv.window_features(t, rr, np.array([10.0]), 50.0)).all()
    # a window beyond the data, one with < 4 intervals, one with < 50 % coverage: all-NaN rows
    x = hrv.window_features(t, rr, np.array([1000.0, 397.5, 300.0]), 60.0)
    assert np.isnan(x[:2]).all()
    gap = (t > 310) & (t < 345)
    assert np.isnan(hrv.window_features(t[~gap], rr[~gap], np.array([300.0]), 60.0)).all()
    assert hrv.window_features(t, rr, np.empty(0), 60.0).shape == (0, len(hrv.FEATURE_NAMES))
    assert np.isnan(hrv.window_features(np.empty(0), np.empty(0), np.array([0.0]), 60.0)).all()


def test_feature_speed_10k_windows() -> None:
    import time

    t, rr = hrv.intervals_from_beats(_modulated_beats(0.2, 0.03, duration_s=3600))
    starts = np.linspace(0.0, 3540.0, 10_000)
    t0 = time.perf_counter()
    x = hrv.window_features(t, rr, starts, 60.0)
    assert time.perf_counter() - t0 < 3.0
    assert np.isfinite(x).all()


def test_recording_rr_and_windowset_features() -> None:
    fs = 128.0
    bench = _bench(fs, 1.0, ppg=True)
    rec = bench.subjects[0]
    t_ecg, rr_ecg = hrv.recording_rr(rec)  # picks the ECG
    assert np.isclose(np.median(60.0 / rr_ecg), rec.meta["state_mean_hr"]["baseline"], atol=15)
    # an events channel with an offset timeline is used as given; a channel offset shifts detected beats
    events = np.stack([t_ecg, rr_ecg], axis=1)
    shifted = SubjectRecording(
        subject="X",
        signals={"ecg": rec.signals["ecg"]},
        rates={"ecg": fs},
        labels=rec.labels,
        label_rate=fs,
        offsets={"ecg": 5.0},
        events={"ibi": events},
    )
    t_ev, rr_ev = hrv.recording_rr(shifted)  # events first
    np.testing.assert_allclose(t_ev, t_ecg)
    np.testing.assert_allclose(rr_ev, rr_ecg)
    t_sh, _ = hrv.recording_rr(shifted, "ecg")
    np.testing.assert_allclose(t_sh, t_ecg + 5.0)
    with pytest.raises(ValueError, match="no beat source"):
        hrv.recording_rr(SubjectRecording("Y", {"eda": np.zeros(10)}, {"eda": 4.0}, np.zeros(10, int), 4.0))

    groups = np.array([0, 0, 1, 1])
    starts = np.array([0.0, 60.0, 30.0, 120.0])
    x = hrv.windowset_features(bench.subjects, groups, starts, 60.0)
    np.testing.assert_allclose(x[:2], hrv.window_features(t_ecg, rr_ecg, starts[:2], 60.0))
    assert np.isfinite(x).all()


# ---------------------------------------------------------------------------------------------------------------
# baseline model and metrics
# ---------------------------------------------------------------------------------------------------------------


def _labelled_windows(rec: SubjectRecording, window_s: float, stride_s: float) -> tuple[np.ndarray, np.ndarray]:
    fs = rec.label_rate
    starts = np.arange(0.0, rec.labels.size / fs - window_s + 1e-9, stride_s)
    a = np.round(starts * fs).astype(int)
    lab = np.lib.stride_tricks.sliding_window_view(rec.labels, round(window_s * fs))[a]
    pure = (lab == lab[:, :1]).all(axis=1) & (lab[:, 0] >= 0)
    return starts[pure], lab[pure, 0]


@pytest.mark.parametrize("window_s", [10.0, 60.0])
def test_baseline_beats_chance_subject_independent(window_s: float) -> None:
    bench = _bench(128.0, 1.0, subjects=12)
    rr = {i: hrv.recording_rr(r) for i, r in enumerate(bench.subjects)}
    parts = [(*_labelled_windows(r, window_s, 5.0), i) for i, r in enumerate(bench.subjects)]
    starts = np.concatenate([s for s, _, _ in parts])
    y = np.concatenate([lab for _, lab, _ in parts])
    groups = np.concatenate([np.full(lab.size, i) for _, lab, i in parts])
    X = hrv.windowset_features(bench.subjects, groups, starts, window_s, rr=rr)
    scores = []
    for fold in range(3):  # 3-fold cross-validation over subjects (4 held-out subjects per fold)
        test = np.isin(groups, np.arange(fold, 12, 3))
        res = baseline.fit_evaluate(X[~test], y[~test], {"test": (X[test], y[test])}, 2, seed=0)["test"]
        assert res["n"] == test.sum() and res["n_nan"] == 0
        assert res["n_features"] == (11 if window_s >= 50 else 7)
        scores.append([res["f1_macro"], res["balanced_accuracy"], res["auroc"]])
    f1, bacc, auroc = np.mean(scores, axis=0)
    print(f"HRV baseline, synthetic baseline vs stress, {window_s:.0f} s windows: {f1=:.3f} {bacc=:.3f} {auroc=:.3f}")
    assert bacc > 0.65 and f1 > 0.6 and auroc > 0.8


def test_fit_evaluate_nan_handling_and_determinism() -> None:
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 4)) + y[:, None] * np.array([1.0, -0.5, 0.0, 0.0])
    X[:, 3] = np.nan  # a column never available (like LF on short windows): dropped
    X[::10, :3] = np.nan  # all-NaN rows: dropped from training, imputed at evaluation
    X[5, 1] = np.nan  # partially NaN row
    evals = {"val": (X[:100], y[:100]), "test": (X[100:], y[100:]), "empty": (X[:0], y[:0])}
    a = baseline.fit_evaluate(X[100:], y[100:], evals, 3, seed=1)
    b = baseline.fit_evaluate(X[100:], y[100:], evals, 3, seed=1)
    assert a == b
    assert set(a["val"]) >= {"f1_macro", "balanced_accuracy", "auroc", "n", "n_nan"}
    # n_nan counts windows with a NaN among the features used (column 3 is dropped): rows 0, 10, …, 90 and 5
    assert a["val"]["n"] == 100 and a["val"]["n_nan"] == 11
    assert a["test"]["n_features"] == 3 and a["test"]["n_train"] == 180
    assert a["val"]["balanced_accuracy"] > 0.5  # 3 classes: chance 1/3
    assert all(np.isfinite(v) for m in a.values() for v in m.values())
    # a single training class is predicted for everything
    one = baseline.fit_evaluate(X[y == 0], y[y == 0], {"val": (X[:100], y[:100])}, 3, seed=0)["val"]
    assert np.isclose(one["balanced_accuracy"], 1.0 / 3.0)


def test_metrics_agree_with_torchmetrics_on_random_predictions() -> None:
    torch = pytest.importorskip("torch")
    from ape_nas.task import make_metrics  # the deep models' metric collection

    rng = np.random.default_rng(7)
    for num_classes in (2, 3, 5):
        for trial in range(8):
            n = int(rng.integers(5, 300))
            y = rng.integers(0, num_classes, n)
            if trial == 0:
                y[y == num_classes - 1] = 0  # a class absent from the targets
            logits = rng.standard_normal((n, num_classes)).astype(np.float32)
            if trial % 3 == 1:
                logits = np.round(logits)  # ties
            probs = torch.tensor(logits).softmax(dim=1)
            metrics = make_metrics(num_classes)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                metrics.update(probs, torch.tensor(y))
                ref = {k: float(v) for k, v in metrics.compute().items()}
            ours = metric_defs.classification_metrics(y, probs.numpy(), num_classes)
            assert set(ours) == set(ref)
            for k in ref:
                assert ours[k] == pytest.approx(ref[k], abs=1e-6), (num_classes, trial, k)


def test_hrv_module_does_not_import_torch() -> None:
    code = "import sys, ape_nas.hrv; assert 'torch' not in sys.modules and 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("best", "direction", "plain_verdict", "ahead"),
    [(0.70, "maximize", "beats", True), (0.85, "maximize", "beats", False), (0.50, "maximize", "does NOT beat", True)],
)
def test_sweep_summary_compares_the_best_model_with_both_baselines(
    best: float, direction: str, plain_verdict: str, ahead: bool
) -> None:
    from types import SimpleNamespace

    from ape_nas.commands.sweep import baseline_comparison

    baseline = SimpleNamespace(
        val={"f1_macro": 0.52}, test={"f1_macro": 0.48}, subject_normalised={"val": {"f1_macro": 0.80}}
    )
    line = baseline_comparison(baseline, best, "f1_macro", direction)
    assert f"best deep model {plain_verdict} it" in line
    assert "reaches val 0.8000" in line
    assert ("ahead of the best deep model" in line) is ahead
