"""The ``dreamer`` reader on small MATLAB files in DREAMER's published nesting (structs inside a cell array)."""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io as sio

from ape_nas.data.readers import dreamer
from ape_nas.data.readers.dreamer import CLIP_GAP_S, load
from ape_nas.data.types import UNLABELLED
from ape_nas.data.windows import window_subject
from ape_nas.errors import KeyedError, UserError

RATE = 256
VALENCE = [[4, 2, 5], [1, 3, 3], [5, 5, 1]]  # per subject, per clip
AROUSAL = [[1, 5, 2], [4, 4, 4], [2, 3, 5]]
DOMINANCE = [[3, 3, 3], [2, 5, 1], [1, 1, 4]]


def cell(items: list[Any]) -> np.ndarray:
    """An n×1 MATLAB cell array."""
    c = np.empty((len(items), 1), dtype=object)
    for i, x in enumerate(items):
        c[i, 0] = x
    return c


def clip(rng: np.random.Generator, seconds: float) -> np.ndarray:
    return rng.normal(size=(round(seconds * RATE), 2))


def person(i: int, n_clips: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng(i)
    return {
        "Age": str(22 + i),
        "Gender": "female" if i % 2 else "male",
        "EEG": {
            "baseline": cell([rng.normal(size=(64, 14))] * n_clips),
            "stimuli": cell([rng.normal(size=(64, 14))] * n_clips),
        },
        "ECG": {
            "baseline": cell([clip(rng, 2.0) for _ in range(n_clips)]),
            "stimuli": cell([clip(rng, 3.0 + k) for k in range(n_clips)]),
        },
        "ScoreValence": np.array(VALENCE[i][:n_clips], dtype=np.float64).reshape(-1, 1),
        "ScoreArousal": np.array(AROUSAL[i][:n_clips], dtype=np.float64).reshape(-1, 1),
        "ScoreDominance": np.array(DOMINANCE[i][:n_clips], dtype=np.float64).reshape(-1, 1),
    }


def write(path: Path, people: list[dict[str, Any]], struct_array: bool = False, **top: Any) -> Path:
    """DREAMER.mat: Data is a 1×n cell array of structs (as published) or a 1×n struct array."""
    if struct_array:
        data = np.zeros((1, len(people)), dtype=[(k, "O") for k in people[0]])
        for i, p in enumerate(people):
            for k, v in p.items():
                data[0, i][k] = v
    else:
        data = np.empty((1, len(people)), dtype=object)
        for i, p in enumerate(people):
            data[0, i] = p
    fields = {
        "Data": data,
        "EEG_SamplingRate": 128,
        "ECG_SamplingRate": RATE,
        "EEG_Electrodes": cell(["AF3", "F7"]),
        "noOfSubjects": len(people),
        "noOfVideoSequences": 3,
        "Disclaimer": "test",
        **top,
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    sio.savemat(path, {"DREAMER": fields})
    return path


@pytest.fixture
def mat(tmp_path: Path) -> Path:
    return write(tmp_path / "DREAMER.mat", [person(i) for i in range(3)])


def test_module_constants():
    assert dreamer.NAME == "dreamer" and dreamer.VERSION == 1


def test_load_roundtrip(mat: Path):
    data = load(path=str(mat.parent), channels=["ecg", "ecg2"])  # the folder works too
    assert data.subject_ids() == ["S01", "S02", "S03"] and data.class_names == ["low", "high"]
    assert data.sources == [str(mat)] and data.skipped == {}
    rec = data.subjects[0]
    assert rec.rates == {"ecg": 256.0, "ecg2": 256.0} and rec.label_rate == 256.0 and rec.t0 is None
    ref = person(0)["ECG"]["stimuli"]
    clips = rec.meta["clips"]
    assert [c["clip"] for c in clips] == [1, 2, 3]
    assert [c["label"] for c in clips] == ["high", "low", "high"]  # valence 4, 2, 5 > 3
    assert [c["valence"] for c in clips] == [4.0, 2.0, 5.0] and clips[1]["arousal"] == 5.0
    assert rec.meta["age"] == "22" and rec.meta["gender"] == "male"
    for k, c in enumerate(clips):
        a, b = round(c["start_s"] * RATE), round(c["end_s"] * RATE)
        np.testing.assert_allclose(rec.signals["ecg"][a:b], ref[k, 0][:, 0].astype(np.float32))
        np.testing.assert_allclose(rec.signals["ecg2"][a:b], ref[k, 0][:, 1].astype(np.float32))
        assert (rec.labels[a:b] == (1 if c["label"] == "high" else 0)).all()
        if k:
            assert c["start_s"] - clips[k - 1]["end_s"] == pytest.approx(CLIP_GAP_S)
            gap = slice(round(clips[k - 1]["end_s"] * RATE), a)
            assert np.isnan(rec.signals["ecg"][gap]).all() and (rec.labels[gap] == UNLABELLED).all()
    assert rec.duration_s() == pytest.approx(clips[-1]["end_s"])


def test_targets_and_threshold(mat: Path):
    arousal = load(path=str(mat), target="arousal")
    assert [c["label"] for c in arousal.subjects[0].meta["clips"]] == ["low", "high", "low"]
    dom = load(path=str(mat), target="dominance", threshold=2.5)
    assert [c["label"] for c in dom.subjects[1].meta["clips"]] == ["low", "high", "low"]
    assert list(load(path=str(mat)).subjects[0].signals) == ["ecg"]


def test_struct_array_layout_reads_the_same(mat: Path, tmp_path: Path):
    other = write(tmp_path / "struct.mat", [person(i) for i in range(3)], struct_array=True)
    a, b = load(path=str(mat)), load(path=str(other))
    for x, y in zip(a.subjects, b.subjects, strict=True):
        np.testing.assert_array_equal(x.signals["ecg"], y.signals["ecg"])
        np.testing.assert_array_equal(x.labels, y.labels)


def test_single_subject_single_clip(tmp_path: Path):
    # MATLAB 1×1 cells and scalars: nothing gets squeezed away
    file = write(tmp_path / "one.mat", [person(2, n_clips=1)], noOfVideoSequences=1)
    data = load(path=str(file))
    assert data.subject_ids() == ["S01"] and [c["label"] for c in data.subjects[0].meta["clips"]] == ["high"]


def test_use_baseline(mat: Path):
    rec = load(path=str(mat), use_baseline=True).subjects[0]
    bases, clips = rec.meta["baselines"], rec.meta["clips"]
    assert len(bases) == 3
    for base, c in zip(bases, clips, strict=True):
        assert base["end_s"] - base["start_s"] == pytest.approx(2.0)
        assert c["start_s"] - base["end_s"] == pytest.approx(CLIP_GAP_S)
        a, b = round(base["start_s"] * RATE), round(base["end_s"] * RATE)
        assert (rec.labels[a:b] == UNLABELLED).all() and np.isfinite(rec.signals["ecg"][a:b]).all()


def test_no_window_straddles_two_clips(mat: Path):
    rec = load(path=str(mat)).subjects[0]
    cfg = {
        "channels": ["ecg"],
        "window_s": 2.0,
        "stride_s": 0.25,
        "label_purity": 0.5,
        "quality": {"max_nan_frac": 0.5},
    }
    sw, _ = window_subject(rec, cfg)
    assert len(sw.labels) > 0
    spans = [(c["start_s"], c["end_s"]) for c in rec.meta["clips"]]
    for s in sw.starts_s:
        touched = [k for k, (a, b) in enumerate(spans) if s < b and s + cfg["window_s"] > a]
        assert len(touched) == 1


# ---- bad input ----------------------------------------------------------------------------------------------------


def test_missing_and_unreadable_files(tmp_path: Path):
    with pytest.raises(KeyedError, match=r"^data\.params\.path: required: DREAMER\.mat or the folder holding it"):
        load()
    with pytest.raises(UserError, match=r"DREAMER\.mat not found"):
        load(path=str(tmp_path))
    v73 = tmp_path / "v73.mat"
    head = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + b"\0" * 8
    v73.write_bytes(head + struct.pack("<H", 0x0200) + b"IM" + b"\0" * 512)
    with pytest.raises(UserError, match=r"v73\.mat: a MATLAB v7\.3 \(HDF5\) file"):
        load(path=str(v73))
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"garbage" * 10)
    with pytest.raises(UserError, match=r"junk\.mat: truncated or not a MATLAB file"):
        load(path=str(junk))


def test_truncated_file(mat: Path):
    raw = mat.read_bytes()
    mat.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match=r"DREAMER\.mat: truncated or not a MATLAB file") as exc:
        load(path=str(mat))
    assert "\n" not in str(exc.value)


def test_missing_fields(tmp_path: Path):
    people = [person(i) for i in range(3)]
    del people[1]["ECG"]["stimuli"]
    file = write(tmp_path / "a.mat", people)
    with pytest.raises(UserError, match=r"a\.mat: DREAMER\.Data\{2\}\.ECG has no field 'stimuli'"):
        load(path=str(file))
    file = write(tmp_path / "b.mat", [person(0)], ECG_SamplingRate=None)
    with pytest.raises(UserError, match=r"b\.mat: DREAMER has no field 'ECG_SamplingRate'"):
        load(path=str(file))
    people = [person(i) for i in range(2)]
    del people[0]["ScoreArousal"], people[1]["ScoreArousal"]
    file = write(tmp_path / "c.mat", people)
    assert len(load(path=str(file)).subjects) == 2  # only the target score is needed
    with pytest.raises(UserError, match=r"DREAMER\.Data\{1\} has no field 'ScoreArousal'"):
        load(path=str(file), target="arousal")
    sio.savemat(tmp_path / "d.mat", {"other": 1})
    with pytest.raises(UserError, match=r"d\.mat: no variable 'DREAMER'"):
        load(path=str(tmp_path / "d.mat"))
    people = [person(0)]
    del people[0]["ECG"]["baseline"]
    file = write(tmp_path / "e.mat", people)
    assert load(path=str(file)).subject_ids() == ["S01"]
    with pytest.raises(UserError, match=r"Data\{1\}\.ECG has no field 'baseline'"):
        load(path=str(file), use_baseline=True)


def test_inconsistent_contents(tmp_path: Path):
    p = person(0)
    p["ScoreValence"] = np.array([[4], [2]])
    with pytest.raises(UserError, match=r"Data\{1\}\.ScoreValence has 2 scores for 3 clips"):
        load(path=str(write(tmp_path / "a.mat", [p])))
    p = person(0)
    p["ScoreValence"] = np.array([[4], [7], [2]])
    with pytest.raises(UserError, match=r"Data\{1\}\.ScoreValence\(2\) = 7; expected a self-assessment score 1-5"):
        load(path=str(write(tmp_path / "b.mat", [p])))
    p = person(0)
    p["ECG"]["stimuli"][1, 0] = np.ones((10, 3))
    with pytest.raises(UserError, match=r"Data\{1\}\.ECG\.stimuli\{2\} is a float64 array of shape \(10, 3\)"):
        load(path=str(write(tmp_path / "c.mat", [p])))
    with pytest.raises(UserError, match=r"stimuli has 3 clips but DREAMER\.noOfVideoSequences is 18"):
        load(path=str(write(tmp_path / "d.mat", [person(0)], noOfVideoSequences=18)))


def test_subject_without_samples_is_skipped(tmp_path: Path):
    empty = person(1)
    empty["ECG"]["stimuli"] = cell([np.zeros((0, 2))] * 3)
    file = write(tmp_path / "DREAMER.mat", [person(0), empty])
    with pytest.warns(UserWarning, match=r"skipping subject S02: DREAMER\.Data\{2\}\.ECG\.stimuli holds no samples"):
        data = load(path=str(file))
    assert data.subject_ids() == ["S01"] and "S02" in data.skipped


@pytest.mark.parametrize(
    ("bad", "key", "problem"),
    [
        ({"target": "liking"}, "target", "expected one of valence, arousal, dominance, got 'liking'"),
        ({"channels": ["ecg3"]}, "channels", "unknown 'ecg3'; expected some of ecg, ecg2"),
        ({"channels": ["ecg", "ecg"]}, "channels", "lists a name twice"),
        ({"require_labels": "no"}, "require_labels", "expected true or false, got 'no'"),
        ({"threshold": "3"}, "threshold", "expected a number, got '3'"),
        ({"threshold": float("nan")}, "threshold", "expected a finite number, got nan"),
        ({"threshold": True}, "threshold", "expected a number, got true"),
        ({"use_baseline": "yes"}, "use_baseline", "expected true or false, got 'yes'"),
    ],
)
def test_bad_params(mat: Path, bad: dict, key: str, problem: str):
    with pytest.raises(KeyedError, match=re.escape(f"data.params.{key}: {problem}")) as err:
        load(path=str(mat), **bad)
    assert err.value.keys == [("data", "params", key)]
