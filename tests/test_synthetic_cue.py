"""The ``synthetic`` benchmark's planted cue (issue 13): a class-specific morphology change in known beats, whose
spans in ``meta["cue_spans_s"]`` are the ground truth that saliency maps are scored against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ape_nas.data import synthetic
from ape_nas.data.prepare import fingerprint
from ape_nas.data.synthetic import generate
from ape_nas.data.types import UNLABELLED, BenchmarkData
from ape_nas.errors import KeyedError, UserError
from ape_nas.experiments import load_experiment

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "experiments" / "synthetic_cue.yaml"
SMALL = {"subjects": 3, "minutes_per_state": 1.0, "ppg": True, "seed": 4}
CUE_KEYS = {"cue", "cue_state", "cue_fraction", "cue_spans_s", "cue_r_peaks"}
CUES = [c for c in synthetic.CUES if c != "none"]


@pytest.fixture(scope="module")
def plain() -> BenchmarkData:
    return generate(**SMALL)


@pytest.fixture(scope="module", params=CUES)
def planted(request) -> BenchmarkData:
    return generate(**SMALL, cue=request.param)


def _in_spans(times: np.ndarray, spans: np.ndarray) -> np.ndarray:
    inside = np.zeros(times.shape, dtype=bool)
    for a, b in spans:
        inside |= (times >= a - 1e-9) & (times < b)
    return inside


def test_no_cue_is_the_default_and_changes_nothing(plain):
    assert synthetic.DEFAULTS["cue"] == "none" and plain.params["cue"] == "none"
    other = generate(**SMALL, cue="none", cue_state="baseline", cue_fraction=1.0)  # irrelevant without a cue
    for a, b in zip(plain.subjects, other.subjects, strict=True):
        assert not CUE_KEYS & set(a.meta)
        for ch in a.signals:
            assert np.array_equal(a.signals[ch], b.signals[ch])


def test_spans_are_exactly_where_the_signal_differs(plain, planted):
    """Same seed with and without the cue: samples differ only inside the spans, and in every span."""
    for a, b in zip(plain.subjects, planted.subjects, strict=True):
        spans = b.meta["cue_spans_s"]
        assert set(spans) == {"ecg", "ppg"}
        assert len(spans["ecg"]) == len(spans["ppg"]) == len(b.meta["cue_r_peaks"]) > 10
        for ch, sp in spans.items():
            assert sp.dtype == np.float64 and sp.shape[1] == 2 and np.all(sp[:, 1] > sp[:, 0])
            assert np.all(np.diff(sp[:, 0]) > 0)  # one span per beat, in time order
            fs = b.rates[ch]
            t = np.arange(len(b.signals[ch])) / fs
            changed = a.signals[ch] != b.signals[ch]
            assert np.all(_in_spans(t[changed], sp)), ch
            for lo, hi in sp:
                assert changed[(t >= lo) & (t < hi)].any(), (ch, lo, hi)
        assert np.array_equal(a.labels, b.labels)


def test_cue_only_in_labelled_samples_of_the_cue_state(planted):
    k = planted.class_names.index("stress")  # the default: the last state
    for rec in planted.subjects:
        assert rec.meta["cue"] in CUES and rec.meta["cue_state"] == "stress"
        for ch, sp in rec.meta["cue_spans_s"].items():
            fs = rec.rates[ch]
            idx = np.flatnonzero(_in_spans(np.arange(len(rec.labels)) / fs, sp))
            assert idx.size and np.all(rec.labels[idx] == k), ch
            assert UNLABELLED not in rec.labels[idx]
        cue_peaks = rec.meta["cue_r_peaks"]
        assert np.isin(cue_peaks, rec.meta["r_peaks"]).all() and np.all(rec.labels[cue_peaks] == k)


def test_the_cue_state_can_be_chosen():
    states = ["baseline", "stress", "amusement"]
    data = generate(subjects=2, minutes_per_state=1.0, states=states, cue="t_inversion", cue_state="baseline")
    for rec in data.subjects:
        sp = rec.meta["cue_spans_s"]["ecg"]
        assert rec.meta["cue_state"] == "baseline" and len(sp) > 10
        assert np.all(rec.labels[_in_spans(np.arange(len(rec.labels)) / rec.label_rate, sp)] == 0)


def test_beats_labels_and_the_rest_of_the_ground_truth_are_unchanged(plain, planted):
    for a, b in zip(plain.subjects, planted.subjects, strict=True):
        assert set(b.meta) - set(a.meta) == CUE_KEYS
        for key, value in a.meta.items():
            if isinstance(value, np.ndarray):
                assert np.array_equal(value, b.meta[key]), key
            else:
                assert value == b.meta[key], key
        # the cue never touches the QRS: the R-peak samples are those of the cue-free signal
        rp = a.meta["r_peaks"]
        assert np.array_equal(a.signals["ecg"][rp], b.signals["ecg"][rp])


def test_the_ecg_cue_does_not_depend_on_the_ppg_flag(planted):
    cue = planted.params["cue"]
    ecg_only = generate(**{**SMALL, "ppg": False}, cue=cue)
    for a, b in zip(ecg_only.subjects, planted.subjects, strict=True):
        assert np.array_equal(a.signals["ecg"], b.signals["ecg"])
        assert set(a.meta["cue_spans_s"]) == {"ecg"}
        assert np.array_equal(a.meta["cue_spans_s"]["ecg"], b.meta["cue_spans_s"]["ecg"])


@pytest.mark.parametrize(("cue", "sign"), [("st_elevation", 1.0), ("t_inversion", -1.0)])
def test_the_cue_is_visible_in_the_waveform(plain, cue, sign):
    """ST elevation raises and T inversion lowers the ECG in every span, by > 0.1 mV; the PPG wave is positive."""
    data = generate(**SMALL, cue=cue)
    for a, b in zip(plain.subjects, data.subjects, strict=True):
        d = sign * (b.signals["ecg"].astype(np.float64) - a.signals["ecg"])
        t = np.arange(d.size) / b.rates["ecg"]
        for lo, hi in b.meta["cue_spans_s"]["ecg"]:
            part = d[(t >= lo) & (t < hi)]
            assert part.min() >= 0.0 and part.max() > 0.1
        assert np.all(b.signals["ppg"] >= a.signals["ppg"])


def test_the_fraction_is_respected():
    """With fraction f the cue beats are a random share f of those that carry it at fraction 1 (same stream)."""
    params = {"subjects": 16, "minutes_per_state": 1.0, "seed": 11, "cue": "st_elevation"}
    full = generate(**params, cue_fraction=1.0)
    part = generate(**params, cue_fraction=0.3)
    n_full = n_part = 0
    for f, p in zip(full.subjects, part.subjects, strict=True):
        all_beats, some = f.meta["cue_r_peaks"], p.meta["cue_r_peaks"]
        assert np.isin(some, all_beats).all()
        n_full, n_part = n_full + all_beats.size, n_part + some.size
        # at fraction 1 every labelled stress beat carries it, except a few at the ends of its labelled stretches
        k = f.labels[f.meta["r_peaks"]] == f.labels.max()
        assert 0 <= k.sum() - all_beats.size <= 3
    share, se = n_part / n_full, np.sqrt(0.3 * 0.7 / n_full)
    assert n_full > 800 and abs(share - 0.3) < 4 * se, (share, n_full)


def test_cue_data_change_the_cache_key_and_cue_free_keys_stay():
    data_cfg = load_experiment(ROOT / "experiments" / "quickstart.yaml").base()["data"]
    assert "cue" not in data_cfg["params"]  # cue-free experiments hash the params as written: keys unchanged
    keys = {fingerprint(data_cfg)}
    for extra in ({"cue": "st_elevation"}, {"cue": "t_inversion"}, {"cue": "t_inversion", "cue_fraction": 0.25}):
        keys.add(fingerprint({**data_cfg, "params": {**data_cfg["params"], **extra}}))
    assert len(keys) == 4
    cue_cfg = load_experiment(EXPERIMENT).base()["data"]
    without = {k: v for k, v in cue_cfg["params"].items() if not k.startswith("cue")}
    assert fingerprint(cue_cfg) != fingerprint({**cue_cfg, "params": without})


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ({"cue": "st"}, "expected one of none, st_elevation, t_inversion, got 'st'"),
        ({"cue": 1}, "expected a string, got 1"),
        ({"cue_state": "relax"}, "'relax' is not one of the states; expected one of baseline, stress"),
        ({"cue_state": ["stress"]}, "expected a string, got a list"),
        ({"cue_fraction": 0.0}, "expected a fraction in (0, 1], got 0.0"),
        ({"cue_fraction": -0.5}, "expected a fraction in (0, 1], got -0.5"),
        ({"cue_fraction": 1.5}, "expected a fraction in (0, 1], got 1.5"),
        ({"cue_fraction": float("nan")}, "expected a fraction in (0, 1], got nan"),
    ],
)
def test_bad_cue_parameters_are_one_keyed_line(bad, problem):
    key = next(iter(bad))
    with pytest.raises(synthetic.SyntheticParamError) as err:
        generate(subjects=1, minutes_per_state=0.5, **{"cue": "st_elevation", **bad})
    assert err.value.keys == [("data", "params", key)]
    assert isinstance(err.value, KeyedError) and isinstance(err.value, ValueError)
    assert str(err.value).startswith(f"data.params.{key}: {problem}") and "\n" not in str(err.value)


def test_experiment_files_accept_the_cue_keys_and_place_bad_values(tmp_path, capsys):
    from ape_nas.cli import main  # deferred: the other tests here need no CLI

    exp = load_experiment(EXPERIMENT)
    assert exp.data["params"]["cue"] == "st_elevation" and exp.data["params"]["cue_state"] == "amusement"
    with pytest.raises(UserError, match=r"data\.params\.cue_fractoin: unknown key \(did you mean 'cue_fraction'\?\)"):
        load_experiment(EXPERIMENT, ["data.params.cue_fractoin=0.5"])
    with pytest.raises(UserError, match=r"data\.params\.cue_fraction: expected float like the default 0\.5"):
        load_experiment(EXPERIMENT, ["data.params.cue_fraction=half"])
    args = ["sweep", str(EXPERIMENT), "--workdir", str(tmp_path / "w"), "--trials", "1", "--no-progress"]
    assert main([*args, "--set", "data.params.cue_state=stress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--set data.params.cue_state=stress: data.params.cue_state: 'stress' is not one of the "
                        "states; expected one of baseline, amusement (or nothing: the last state)")  # fmt: skip
