"""Inputs and augmentations as part of the search: the space's ``data`` and ``augment`` sections (validation with
file:line errors, values in the spec), spec compatibility, derived beat-interval channels, and a real sweep whose
trials choose their window length: one cache entry per value, none rebuilt by a second sweep, every trial
compared on the study's fingerprint and reproduced on its own windows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import optuna
import pytest
from _common import QUICKSTART, SMALL, status_json

from ape_nas.data.synthetic import generate
from ape_nas.data.windows import beat_events, events_to_series, has_channel, window_subject
from ape_nas.errors import ConfigError, UserError
from ape_nas.experiments import load_experiment
from ape_nas.space import load_space
from ape_nas.spec import TrialSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)

MODELS = "models:\n  cnn1d: {depth: 2, width: 8, kernel_size: 7, pool: 4}\n"


def _space(tmp_path: Path, body: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(MODELS + body)
    return path


def _base() -> dict:
    return load_experiment(QUICKSTART).base()


class _Pick:
    """A suggester answering every parameter with choice/bound ``k`` (0: first/low, -1: last/high)."""

    def __init__(self, k: int) -> None:
        self.k = k

    def suggest_int(self, name, low, high, *, step=1, log=False):
        return low if self.k == 0 else high

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return low if self.k == 0 else high

    def suggest_categorical(self, name, choices):
        return choices[self.k]


# ---- the space file ------------------------------------------------------------------------------------------

SEARCHED = """\
data:
  channels: {type: categorical, choices: [[ecg], [ecg, ecg_ibi]]}
  window_s: {type: categorical, choices: [5, 10]}
  normalize: window
augment:
  time_warp: {max_stretch: {type: float, low: 0.05, high: 0.2}}
  jitter:
  mixup: {p: {type: categorical, choices: [0.0, 0.5]}, alpha: 0.4}
"""


def test_a_space_with_inputs_and_augmentations_validates_and_lands_in_the_spec(tmp_path: Path):
    space = load_space(_space(tmp_path, SEARCHED))
    base = _base()
    space.check_inputs(base["data"])
    names = {p.name for p in space.parameters()}
    assert {"data.channels", "data.window_s", "data.normalize", "augment.time_warp.max_stretch"} <= names
    assert space.data["data.channels"].choices == ("ecg", "ecg+ecg_ibi"), "channel sets reach the backend as labels"
    low, high = (space.sample(_Pick(k), base) for k in (0, -1))
    assert (low.data["channels"], high.data["channels"]) == (["ecg"], ["ecg", "ecg_ibi"])
    assert (low.data["window_s"], high.data["window_s"]) == (5.0, 10.0)
    assert isinstance(low.data["window_s"], float), "5 and 5.0 are the same windows (one cache entry)"
    assert low.data["normalize"] == "window" and low.data["benchmark"] == base["data"]["benchmark"]
    assert low.protocol == base["protocol"] and low.training == base["training"]
    assert set(low.augment) == {"time_warp", "jitter", "mixup"}, "listed augmentations, every option filled in"
    assert low.augment["jitter"] == {"p": 1.0, "sigma": 0.05}
    assert (low.augment["time_warp"]["max_stretch"], high.augment["time_warp"]["max_stretch"]) == (0.05, 0.2)
    assert (low.augment["mixup"], high.augment["mixup"]) == ({"p": 0.0, "alpha": 0.4}, {"p": 0.5, "alpha": 0.4})
    params = high.flat_params()
    assert params["data.channels"] == "ecg+ecg_ibi" and params["augment.mixup.p"] == 0.5
    assert TrialSpec.from_yaml(high.to_yaml()) == high
    # with a real study: the backend sees scalar labels and the spec the lists
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(6):
        trial = study.ask()
        spec = space.sample(trial, base)
        assert "+".join(spec.data["channels"]) == trial.params["data.channels"]
        study.tell(trial, 0.0)


def test_a_space_without_inputs_gives_the_experiment_data_and_no_augmentation(tmp_path: Path):
    space = load_space(_space(tmp_path, ""))
    spec = space.sample(_Pick(0), _base())
    assert spec.data == _base()["data"] and spec.augment == {}
    assert "augment" not in spec.to_dict() and "augment" not in spec.to_yaml()


BAD = [
    ("data:\n  benchmark: synthetic\n", "data.benchmark", "not set by a search space"),
    ("data:\n  window_len: 5\n", "data.window_len", "unknown key"),
    ("data:\n  window_s: 0.1\n", "data.window_s", "expected a value >= 0.5"),
    ("data:\n  window_s: {type: float, low: 0.1, high: 5}\n", "data.window_s.low", ">= 0.5"),
    ("data:\n  normalize: {type: categorical, choices: [subject, zscore]}\n", "data.normalize.choices.1", "one of"),
    ("data:\n  channels: ecg\n", "data.channels", "non-empty list of channel names"),
    ("data:\n  channels: [ecg, ecg]\n", "data.channels", "repeats"),
    ("data:\n  channels: {type: categorical, choices: [ecg, [ppg]]}\n", "data.channels.choices.0", "list of channel"),
    ("data:\n  channels: {type: categorical, choices: [[ecg], [ecg]]}\n", "data.channels.choices", "repeat"),
    ("data:\n  channels: {type: int, low: 1, high: 2}\n", "data.channels.type", "categorical"),
    ("augment:\n  time_warps: {}\n", "augment.time_warps", "did you mean 'time_warp'"),
    ("augment:\n  time_warp: {max_stretch: 0.4}\n", "augment.time_warp.max_stretch", "<= 0.25"),
    ("augment:\n  jitter: {sigma: -1}\n", "augment.jitter.sigma", ">= 0.0"),
    ("augment:\n  mixup: {beta: 1}\n", "augment.mixup.beta", "unknown key"),
    ("augment:\n  mixup: 0.2\n", "augment.mixup", "expected a mapping of options"),
    ("augment:\n  mixup: {p: {type: float, low: 0.5, high: 2}}\n", "augment.mixup.p.high", "<= 1.0"),
]


@pytest.mark.parametrize(("body", "key", "problem"), BAD, ids=[b[1] for b in BAD])
def test_a_bad_input_or_augmentation_is_one_line_at_its_file_and_line(tmp_path: Path, body: str, key: str, problem):
    path = _space(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    text = str(err.value)  # every bad value is on the body's second line, the file's fourth
    assert text.startswith(f"{path}:4: {key}: ") and problem in text and "\n" not in text, text


def test_window_lengths_are_checked_against_the_experiment_stride(tmp_path: Path):
    space = load_space(_space(tmp_path, "data:\n  window_s: {type: categorical, choices: [1.0, 10.0]}\n"))
    with pytest.raises(ConfigError, match=r"s\.yaml:\d+: data\.window_s: window_s 1 s with stride_s 5 s"):
        space.check_inputs(_base()["data"])  # the quickstart strides 5 s: at most 4 window lengths
    from ape_nas.sweep import prepare_sweep

    with pytest.raises(ConfigError, match=r"data\.window_s"):
        prepare_sweep(QUICKSTART, overrides=[f"space={space.path}"], workdir=tmp_path / "w")
    assert not (tmp_path / "w").exists()


# ---- the spec ------------------------------------------------------------------------------------------------

OLD_SPEC = {
    "model": "cnn1d",
    "arch": {"depth": 2},
    "optim": {"lr": 0.01},
    "data": {"benchmark": "synthetic", "window_s": 10.0},
    "protocol": {"kind": "holdout"},
    "training": {"max_epochs": 3},
    "seed": 7,
    "version": 2,
}


def test_a_spec_without_augmentation_keeps_its_yaml_and_digest():
    spec = TrialSpec.from_dict(dict(OLD_SPEC))
    assert spec.augment == {} and "augment" not in spec.to_dict()
    assert spec.digest() == "cbac85b6ee9f6451", "the digest ape-nas gave this spec before augmentations existed"
    assert spec.digest() == TrialSpec.from_dict({**OLD_SPEC, "augment": {}}).digest()
    augmented = TrialSpec.from_dict({**OLD_SPEC, "augment": {"jitter": {"p": 1.0, "sigma": 0.05}}})
    assert augmented.digest() != spec.digest() and TrialSpec.from_yaml(augmented.to_yaml()) == augmented
    assert augmented.flat_params()["augment.jitter.sigma"] == 0.05


# ---- derived beat-interval channels ----------------------------------------------------------------------------


def test_a_beat_interval_channel_derived_from_a_signal_is_windowed_like_a_reader_s():
    from ape_nas.hrv import recording_rr

    rec = generate(subjects=1, minutes_per_state=1.0, ppg=True, seed=3).subjects[0]
    assert has_channel(rec, "ecg_ibi") and has_channel(rec, "ppg_ibi") and not has_channel(rec, "resp_ibi")
    times, rr = recording_rr(rec, "ecg")
    assert np.array_equal(beat_events(rec, "ecg_ibi"), np.column_stack([times, rr]))
    assert 0.3 < float(np.median(rr)) < 2.0
    cfg = {"channels": ["ecg", "ecg_ibi"], "window_s": 10.0, "stride_s": 5.0, "label_purity": 0.9, "normalize": "none"}
    sw, fs = window_subject(rec, cfg)
    assert sw.windows.shape[1:] == (2, round(10 * fs)) and len(sw.labels) > 0
    series = events_to_series(beat_events(rec, "ecg_ibi"), fs, rec.duration_s())
    start = round(sw.starts_s[-1] * fs)
    expected = np.nan_to_num(series[start : start + sw.windows.shape[2]], nan=0.0)
    assert np.allclose(sw.windows[-1, 1], expected, atol=1e-6), "the interval held from beat to beat, unnormalised"
    rec.signals["resp"] = rec.signals["ecg"]
    rec.rates["resp"] = rec.rates["ecg"]
    with pytest.raises(UserError, match=r"resp_ibi.*cannot tell ECG from PPG"):
        window_subject(rec, {**cfg, "channels": ["ecg", "resp_ibi"]})
    with pytest.raises(UserError, match=r"no channel.*bvp_ibi.*<signal>_ibi"):
        window_subject(rec, {**cfg, "channels": ["bvp_ibi"]})


# ---- a real sweep --------------------------------------------------------------------------------------------

SWEEP_SPACE = """\
optim:
  lr: 3.0e-3
  batch_size: 64
data:
  window_s: {type: categorical, choices: [5.0, 10.0]}
augment:
  jitter: {sigma: 0.05}
  time_warp: {p: 0.5, max_stretch: 0.1}
"""


def _cache_entries(workdir: Path) -> set[str]:
    return {p.name for p in (workdir / "cache").iterdir() if p.is_dir() and not p.name.startswith(".")}


@pytest.mark.slow
def test_a_sweep_choosing_window_lengths_caches_each_once_and_compares_on_the_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    from ape_nas.cli import main
    from ape_nas.data import prepare
    from ape_nas.tracking import TrialStore

    space = _space(tmp_path, SWEEP_SPACE)
    workdir = tmp_path / "w"
    sets = [*SMALL, "--set", f"space={space}", "--set", "backend.sampler=random", "--set", "backend.sampler_options={}"]
    sweep = ["sweep", QUICKSTART, "--workdir", str(workdir), "--no-progress", *sets]
    assert main([*sweep, "--trials", "3"]) == 0
    status = status_json(workdir, capsys, *sets)
    assert {t["params"]["data.window_s"] for t in status["trials"]} == {5.0, 10.0}, "the seeded sampler chose both"
    assert len(_cache_entries(workdir)) == 2, "the experiment's 10-s windows (also a trial's) and the 5-s windows"

    # a second sweep of the same study: every window set comes from the disk cache, none is built again
    prepare.clear_memo()
    built: list[float] = []
    monkeypatch.setattr(prepare, "_build", lambda cfg, *a, **k: built.append(cfg["window_s"]) or pytest.fail("rebuilt"))
    assert main([*sweep, "--trials", "2"]) == 0
    assert built == [] and len(_cache_entries(workdir)) == 2
    monkeypatch.undo()

    status = status_json(workdir, capsys, *sets)
    assert len(status["trials"]) == 5
    store = TrialStore(status["tracking_uri"])
    parent = store.sweep_parent("quickstart")
    study_fp = parent.tags["data_fingerprint"]
    runs = [r for r in store.trial_runs(parent.run_id) if r.state == "complete"]
    own = {store.spec(r.run_id).data["window_s"]: r.tags["data_fingerprint"] for r in runs}
    assert set(own) == {5.0, 10.0} and own[10.0] == study_fp and own[5.0] != study_fp
    assert all(r.tags["ape_nas.study_fingerprint"] == study_fp for r in runs)
    study = optuna.load_study(study_name="quickstart", storage=f"sqlite:///{workdir / 'optuna.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all(t.user_attrs["data_fingerprint"] == study_fp for t in done), "compared on the study's fingerprint"
    assert {t.user_attrs["input_fingerprint"] for t in done} == {own[5.0], own[10.0]}
    best = store.best_trial("quickstart")
    top = max(r.metrics["score"] for r in runs)
    assert best is not None and math.isclose(best.metrics["score"], top), "trials on 5-s windows compete too"

    # reproduce a 5-s trial: it rebuilds (reads) its own windows, not the experiment's, and matches
    five = next(r for r in runs if store.spec(r.run_id).data["window_s"] == 5.0)
    capsys.readouterr()
    code = main(["reproduce", five.run_id, "--workdir", str(workdir), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["verdict"] == "MATCH", out
    assert out["data_fingerprint"] == out["source_data_fingerprint"] == own[5.0]
