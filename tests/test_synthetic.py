"""The embedded ``synthetic`` benchmark: determinism, layout, and physiology checked from the signals themselves."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
from _common import QUICKSTART
from scipy import signal

from ape_nas.data import synthetic
from ape_nas.data.synthetic import DEFAULTS, STATES, TRANSITION_S, generate
from ape_nas.data.types import UNLABELLED, BenchmarkData
from ape_nas.errors import KeyedError, UserError

SMALL = {"subjects": 3, "minutes_per_state": 0.5}


@pytest.fixture(scope="module")
def data() -> BenchmarkData:
    return generate()  # the default benchmark


@pytest.fixture(scope="module")
def data_all() -> BenchmarkData:
    return generate(subjects=8, minutes_per_state=1.5, states=list(STATES), ppg=True, seed=3)


# ---- helpers: everything below works from the signals / peak indices, not from the generator's own numbers -------


def detect_r_peaks(ecg: np.ndarray, fs: float) -> np.ndarray:
    sos = signal.butter(3, [5.0 / (fs / 2), 20.0 / (fs / 2)], btype="bandpass", output="sos")
    x = signal.sosfiltfilt(sos, ecg.astype(np.float64))
    peaks, _ = signal.find_peaks(x, height=0.35 * np.percentile(x, 99.5), distance=int(0.3 * fs))
    return peaks


def runs(labels: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) sample runs where labels == k."""
    m = np.concatenate([[0], (labels == k).astype(np.int8), [0]])
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def state_rr(peaks: np.ndarray, labels: np.ndarray, k: int, fs: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per labelled run of state k: (beat times [s], RR intervals [s]) of beats inside the run."""
    out = []
    for a, b in runs(labels, k):
        p = peaks[(peaks >= a) & (peaks < b)] / fs
        out.append((p[1:], np.diff(p)))
    return out


def mean_hr(peaks, labels, k, fs) -> float:
    rr = np.concatenate([r for _, r in state_rr(peaks, labels, k, fs)])
    return 60.0 / rr.mean()


def rmssd_ms(peaks, labels, k, fs) -> float:
    d = np.concatenate([np.diff(r) for _, r in state_rr(peaks, labels, k, fs)])
    return 1000.0 * np.sqrt(np.mean(d**2))


def hf_power(peaks, labels, k, fs) -> float:
    """HF (0.15-0.4 Hz) power of the 4 Hz-resampled RR series, ms², averaged over the state's runs."""
    powers = []
    for t, rr in state_rr(peaks, labels, k, fs):
        grid = np.arange(t[0], t[-1], 0.25)
        x = signal.detrend(np.interp(grid, t, rr * 1000.0))
        f, pxx = signal.welch(x, fs=4.0, nperseg=min(256, len(x)))
        band = (f >= 0.15) & (f <= 0.4)
        powers.append(np.trapezoid(pxx[band], f[band]))
    return float(np.mean(powers))


def per_subject(bench: BenchmarkData, fn, detected: bool = True) -> np.ndarray:
    """(subjects, states) array of fn(peaks, labels, k, fs)."""
    rows = []
    for rec in bench.subjects:
        fs = rec.rates["ecg"]
        peaks = detect_r_peaks(rec.signals["ecg"], fs) if detected else rec.meta["r_peaks"]
        rows.append([fn(peaks, rec.labels, k, fs) for k in range(len(bench.class_names))])
    return np.array(rows)


# ---- interface and determinism ------------------------------------------------------------------------------------


def test_defaults_match_signature_and_params(data):
    sig = {p.name: p.default for p in inspect.signature(generate).parameters.values()}
    sig["states"] = list(sig["states"])
    assert sig == DEFAULTS
    assert data.params == DEFAULTS
    assert data.name == "synthetic"
    assert data.class_names == ["baseline", "stress"]
    assert data.subject_ids() == [f"S{i:02d}" for i in range(1, 13)]


def test_same_seed_identical_different_seed_differs():
    a, b = generate(**SMALL, seed=5), generate(**SMALL, seed=5)
    c = generate(**SMALL, seed=6)
    for ra, rb, rc in zip(a.subjects, b.subjects, c.subjects, strict=True):
        assert np.array_equal(ra.signals["ecg"], rb.signals["ecg"])
        assert np.array_equal(ra.labels, rb.labels)
        assert np.array_equal(ra.meta["r_peaks"], rb.meta["r_peaks"])
        assert not np.array_equal(ra.signals["ecg"], rc.signals["ecg"])
        assert ra.meta["baseline_hr"] != rc.meta["baseline_hr"]


def test_adding_subjects_leaves_earlier_subjects_unchanged():
    few, many = generate(**{**SMALL, "subjects": 2}), generate(**{**SMALL, "subjects": 5})
    for ra, rb in zip(few.subjects, many.subjects[:2], strict=True):
        assert ra.subject == rb.subject
        assert np.array_equal(ra.signals["ecg"], rb.signals["ecg"])
        assert np.array_equal(ra.labels, rb.labels)


def test_subjects_differ(data):
    ecgs = [r.signals["ecg"] for r in data.subjects]
    assert not np.array_equal(ecgs[0], ecgs[1])
    assert len({round(r.meta["baseline_hr"], 3) for r in data.subjects}) == len(data.subjects)
    assert len({round(r.meta["morphology"]["r_mv"], 3) for r in data.subjects}) == len(data.subjects)


def test_ppg_flag_and_noise_do_not_change_the_heart():
    plain = generate(**SMALL)
    with_ppg = generate(**SMALL, ppg=True)
    clean = generate(**SMALL, noise=0.0)
    for a, b, c in zip(plain.subjects, with_ppg.subjects, clean.subjects, strict=True):
        assert np.array_equal(a.signals["ecg"], b.signals["ecg"])
        assert np.array_equal(a.meta["r_peaks"], c.meta["r_peaks"])
        assert not np.array_equal(a.signals["ecg"], c.signals["ecg"])
        # noise=0 is much smoother: less high-frequency energy between beats
        assert np.std(np.diff(c.signals["ecg"])) < np.std(np.diff(a.signals["ecg"]))


# ---- layout -------------------------------------------------------------------------------------------------------


def test_shapes_dtypes_labels_and_transitions(data):
    fs = DEFAULTS["fs"]
    block = int(DEFAULTS["minutes_per_state"] * 60 * fs)
    trans = int(TRANSITION_S * fs)
    orders = set()
    for rec in data.subjects:
        ecg = rec.signals["ecg"]
        assert list(rec.signals) == ["ecg"]
        assert ecg.dtype == np.float32 and ecg.ndim == 1 and len(ecg) == 2 * block
        assert rec.rates == {"ecg": fs}
        assert rec.label_rate == fs and len(rec.labels) == len(ecg)
        assert np.issubdtype(rec.labels.dtype, np.integer)
        assert set(np.unique(rec.labels)) == {UNLABELLED, 0, 1}
        order = rec.meta["block_order"]
        orders.add(tuple(order))
        assert sorted(order) == sorted(data.class_names)
        for j, state in enumerate(order):
            seg = rec.labels[j * block : (j + 1) * block]
            k = data.class_names.index(state)
            if j == 0:
                assert np.all(seg == k)  # the session start is not a state change
            else:
                assert np.all(seg[:trans] == UNLABELLED)
                assert np.all(seg[trans:] == k)
        rp = rec.meta["r_peaks"]
        assert np.issubdtype(rp.dtype, np.integer) and np.all(np.diff(rp) > 0)
        assert rp[0] >= 0 and rp[-1] < len(ecg)
    assert len(orders) == 2  # block order is shuffled per subject


def test_r_amplitude_in_mv_range(data):
    for rec in data.subjects:
        ecg = rec.signals["ecg"]
        r = np.median(ecg[rec.meta["r_peaks"]] - np.median(ecg))
        assert 0.5 < r < 1.8, (rec.subject, r)


def test_ppg_pulses_follow_r_peaks(data_all):
    for rec in data_all.subjects:
        ppg, fs = rec.signals["ppg"], rec.rates["ppg"]
        assert ppg.dtype == np.float32 and ppg.shape == rec.signals["ecg"].shape and rec.rates["ppg"] == fs
        w = int(0.6 * fs)
        rp = rec.meta["r_peaks"][:-2]
        delay = np.array([np.argmax(ppg[p : p + w]) for p in rp]) / fs
        assert 0.25 < np.median(delay) < 0.5
        q25, q75 = np.percentile(delay, [25, 75])
        assert q75 - q25 < 0.06  # time-locked to the R peak, not a free-running oscillation


# ---- physiology -----------------------------------------------------------------------------------------------------


def test_detected_r_peaks_match_ground_truth(data_all):
    for rec in data_all.subjects:
        truth = rec.meta["r_peaks"]
        found = detect_r_peaks(rec.signals["ecg"], rec.rates["ecg"])
        assert abs(len(found) - len(truth)) <= 0.02 * len(truth)
        nearest = np.abs(found[np.clip(np.searchsorted(found, truth), 0, len(found) - 1)] - truth)
        nearest = np.minimum(nearest, np.abs(found[np.clip(np.searchsorted(found, truth) - 1, 0, None)] - truth))
        assert np.mean(nearest <= 2) > 0.97


@pytest.mark.parametrize("detected", [False, True])
def test_heart_rate_plausible_in_every_state(data, data_all, detected):
    for bench in (data, data_all):
        hr = per_subject(bench, mean_hr, detected)
        assert np.all((hr > 45) & (hr < 120)), hr


def test_meta_ground_truth_agrees_with_signal(data):
    hr = per_subject(data, mean_hr, detected=True)
    meta = np.array([[r.meta["state_mean_hr"][s] for s in data.class_names] for r in data.subjects])
    assert np.allclose(hr, meta, atol=1.0)
    rm = per_subject(data, rmssd_ms, detected=False)
    meta_rm = np.array([[r.meta["state_rmssd_ms"][s] for s in data.class_names] for r in data.subjects])
    assert np.allclose(rm, meta_rm, rtol=0.25)  # sample quantisation of the peaks adds a little


def test_stress_raises_hr_and_lowers_vagal_hrv(data):
    hr = per_subject(data, mean_hr)
    assert np.mean(hr[:, 1] > hr[:, 0]) >= 0.8
    assert np.mean(hr[:, 1] - hr[:, 0]) > 4.0
    rm = per_subject(data, rmssd_ms, detected=False)
    assert np.mean(rm[:, 1] < rm[:, 0]) >= 0.75
    hf = per_subject(data, hf_power, detected=False)
    assert np.mean(np.log(hf[:, 1] / hf[:, 0])) < 0
    assert np.mean(hf[:, 1] < hf[:, 0]) >= 0.6


def test_between_subject_spread_makes_the_task_non_trivial(data):
    hr = per_subject(data, mean_hr)
    assert np.std(hr[:, 0]) >= 3.0  # resting HR differs by several bpm between subjects
    response = hr[:, 1] - hr[:, 0]
    assert np.ptp(response) > 5.0  # strong and weak responders
    # a weak responder's stress HR is within the range of other subjects' resting HR
    assert response.min() < np.ptp(hr[:, 0])
    assert hr[:, 1].min() < hr[:, 0].max()


def _stress_response(bench: BenchmarkData) -> tuple[np.ndarray, np.ndarray]:
    """Per subject: resting HR and the stress HR rise (bpm), measured from the R peaks."""
    hr = per_subject(bench, mean_hr, detected=False)
    return hr[:, 0], hr[:, 1] - hr[:, 0]


def test_typical_cohort_responds_like_real_stress_cohorts():
    """``cohort: typical`` (the quickstart, issue 10): resting HR ≈ 55-85 bpm, and nearly every subject's HR rises
    under stress by a few to ≈ 15-20 bpm with variable size, while RMSSD falls; the broad default cohort keeps
    its many weak responders (about a quarter rising < 4 bpm), which leave a single window little to learn from."""
    params = {"subjects": 40, "minutes_per_state": 1.0, "seed": 5}
    typical = generate(**params, cohort="typical")
    rest, rise = _stress_response(typical)
    assert 60 < np.median(rest) < 80 and np.mean((rest > 52) & (rest < 90)) >= 0.9
    assert 3.0 < np.std(rest) < 11.0  # between-subject spread of resting HR stays (no trivial threshold)
    assert np.mean(rise > 3.0) >= 0.9 and 7.0 < np.median(rise) < 14.0
    assert np.percentile(rise, 95) < 25.0 and np.std(rise) > 2.0  # variable response, no extreme ones
    rm = per_subject(typical, rmssd_ms, detected=False)
    assert np.mean(rm[:, 1] < rm[:, 0]) >= 0.85
    _, broad_rise = _stress_response(generate(**params))
    assert np.mean(broad_rise < 4.0) > 2 * np.mean(rise < 4.0)
    assert typical.params["cohort"] == "typical" and generate(subjects=1, minutes_per_state=0.5).params["cohort"] == (
        "broad"
    )


def test_unknown_cohort_is_rejected():
    with pytest.raises(ValueError, match="cohort"):
        generate(subjects=1, minutes_per_state=0.5, cohort="huge")


def test_other_states_move_in_the_expected_direction(data_all):
    names = data_all.class_names
    hr = per_subject(data_all, mean_hr)
    rm = per_subject(data_all, rmssd_ms, detected=False)
    base, stress, amuse = names.index("baseline"), names.index("stress"), names.index("amusement")
    for calm in (names.index("relax"), names.index("meditation")):
        assert np.mean(hr[:, calm] - hr[:, base]) < -1.0
        assert np.mean(np.log(rm[:, calm] / rm[:, base])) > 0
    assert np.mean(hr[:, base]) < np.mean(hr[:, amuse]) < np.mean(hr[:, stress])


def test_state_ramp_is_continuous():
    t = np.linspace(0, 30, 3001)
    y = synthetic._ramped(np.array([60.0, 80.0]), np.array([0.0, 10.0]), 5.0, t)
    assert np.all(y[t <= 10] == 60) and np.all(y[t >= 15] == 80)
    assert np.all(np.diff(y) >= 0) and np.max(np.diff(y)) < 0.1  # no jump


# ---- errors and imports ------------------------------------------------------------------------------------------


def test_unknown_state_raises_value_error_listing_known_states():
    with pytest.raises(ValueError, match="boredom") as err:
        generate(states=["baseline", "boredom"])
    for name in STATES:
        assert name in str(err.value)
    assert isinstance(err.value, UserError)


@pytest.mark.parametrize(
    "bad",
    [
        {"subjects": 0},
        {"subjects": 2.5},
        {"minutes_per_state": 0.1},
        {"fs": 10.0},
        {"noise": -1.0},
        {"seed": -1},
        {"states": []},
        {"states": "baseline"},
        {"states": ["stress", "stress"]},
        {"ppg": "yes"},
    ],
)
def test_invalid_parameters_raise(bad):
    with pytest.raises(ValueError):
        generate(**bad)


def test_module_imports_neither_torch_nor_neurokit2():
    code = (
        "import sys, ape_nas.data.synthetic as s; s.generate(subjects=1, minutes_per_state=0.5); "
        "bad = [m for m in ('torch', 'neurokit2') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_invalid_parameters_are_keyed_to_the_experiment():
    with pytest.raises(synthetic.SyntheticParamError, match=r"^data\.params\.noise: expected a finite number") as err:
        generate(noise=float("nan"))
    assert err.value.keys == [("data", "params", "noise")] and isinstance(err.value, KeyedError)
    with pytest.raises(synthetic.UnknownStateError) as err:
        generate(states=["calm"])
    assert err.value.keys == [("data", "params", "states")]


def test_numpy_scalars_are_accepted():
    a = generate(subjects=np.int64(1), minutes_per_state=np.float64(0.5), fs=np.float32(128.0), seed=np.int64(4))
    b = generate(subjects=1, minutes_per_state=0.5, fs=128.0, seed=4)
    assert a.params == b.params and np.array_equal(a.subjects[0].signals["ecg"], b.subjects[0].signals["ecg"])


def test_a_bad_parameter_in_a_sweep_names_where_it_was_set(tmp_path, capsys):
    from ape_nas.cli import main  # deferred: the other tests here need no CLI

    args = ["sweep", QUICKSTART, "--workdir", str(tmp_path), "--trials", "1", "--no-progress"]
    assert main([*args, "--set", "data.params.fs=10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--set data.params.fs=10: data.params.fs: expected a value >= 64.0, got 10.0")
