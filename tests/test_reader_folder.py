"""The generic folder format (dataset.yaml + one folder per subject + labels.csv), on generated files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ape_nas.data.readers import folder
from ape_nas.data.types import UNLABELLED
from ape_nas.errors import ConfigError, KeyedError, UserError

START = 1714642200  # 2024-05-02T09:30:00Z

YAML = """\
name: my-study
class_names: [baseline, stress]
label_rate: 2
channels:
  ecg: {rate: 128, unit: mV}
  bvp: {rate: 64, unit: au}
  ibi: {kind: events, unit: s}
subjects:
  S01: {start: 2024-05-02T09:30:00Z, age: 34}
  S02: {start: 1714645800}
"""

LABELS = """\
subject,start,end,label
S01,0,30,baseline
S01,2024-05-02T09:30:30Z,2024-05-02T09:31:00Z,stress
S02,10,50,stress
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_study(root: Path, seconds: int = 60) -> Path:
    """The documented example: S01 with CSV files, S02 with .npy files and a time column."""
    rng = np.random.default_rng(0)
    write(root / "dataset.yaml", YAML)
    write(root / "labels.csv", LABELS)
    ecg = rng.normal(size=seconds * 128)
    write(root / "S01" / "ecg.csv", "ecg\n" + "".join(f"{x:.4f}\n" for x in ecg))
    write(root / "S01" / "bvp.csv", "".join(f"{x:.3f}\n" for x in rng.normal(size=seconds * 64)))
    beats = np.arange(0.5, seconds, 0.8)
    beats = beats[(beats < 20) | (beats > 25)]
    ibi = np.c_[beats, np.full(len(beats), 0.8)]
    write(root / "S01" / "ibi.csv", "time_s,ibi_s\n" + "".join(f"{t:.3f},{i:.3f}\n" for t, i in ibi))
    (root / "S02").mkdir(exist_ok=True)
    np.save(root / "S02" / "ecg.npy", rng.normal(size=seconds * 128).astype(np.float32))
    t = 2.0 + np.arange(seconds * 64 - 128) / 64
    np.save(root / "S02" / "bvp.npy", np.c_[t, np.sin(t)])
    np.save(root / "S02" / "ibi.npy", ibi)
    return root


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return make_study(tmp_path / "my-study")


def test_load_documented_example(study: Path):
    data = folder.load(path=str(study))
    assert data.name == "my-study" and data.class_names == ["baseline", "stress"] and data.skipped == {}
    s1, s2 = data.subjects
    assert s1.t0 == START and s2.t0 == START + 3600
    assert s1.rates == {"ecg": 128.0, "bvp": 64.0} and len(s1.signals["ecg"]) == 60 * 128
    assert s1.events["ibi"].shape[1] == 2 and np.diff(s1.events["ibi"][:, 0]).max() > 5  # gap kept
    assert s1.meta["age"] == 34 and s1.meta["units"] == {"ecg": "mV", "bvp": "au", "ibi": "s"}
    assert s1.label_rate == 2.0 and len(s1.labels) == 120
    assert (s1.labels[:60] == 0).all() and (s1.labels[60:] == 1).all()
    assert s2.offsets == {"bvp": 2.0} and s2.signals["bvp"][0] == pytest.approx(np.sin(2.0))
    assert (s2.labels[20:100] == 1).all() and (s2.labels[:20] == UNLABELLED).all()
    assert str(study / "dataset.yaml") in data.sources and str(study / "S02" / "bvp.npy") in data.sources


def test_channel_subset(study: Path):
    data = folder.load(path=str(study), channels=["ibi", "ecg"])
    assert data.channels() == ["ecg", "ibi"] and data.params["channels"] == ["ibi", "ecg"]
    with pytest.raises(KeyedError, match=r"data\.params\.channels: unknown 'eda'; expected some of ecg, bvp, ibi"):
        folder.load(path=str(study), channels=["eda"])
    with pytest.raises(KeyedError, match=r"data\.params\.channels: expected a list, got 'ecg'"):
        folder.load(path=str(study), channels="ecg")
    with pytest.raises(KeyedError, match=r"data\.params\.require_labels: expected true or false, got 'no'"):
        folder.load(path=str(study), require_labels="no")


def test_no_start_time_needs_relative_labels(study: Path):
    write(study / "dataset.yaml", YAML.split("subjects:")[0])
    with pytest.raises(UserError, match=r"labels\.csv:3: absolute times need a recording start time"):
        folder.load(path=str(study))
    write(study / "labels.csv", "subject,start,end,label\nS01,0,30,baseline\nS02,0,10,stress\n")
    data = folder.load(path=str(study))
    assert data.subjects[0].t0 is None


# ---- dataset.yaml: one line naming file, line and key ------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("channels: {ecg: {rate: 128}}\n", r"dataset\.yaml:1: class_names: missing required key \(a list\)"),
        ("class_names: [a, b]\nchanels: {}\n", r"dataset\.yaml:2: chanels: unknown key \(did you mean 'channels'\?\)"),
        ("class_names: [a]\nchannels: {}\n", r"dataset\.yaml:2: channels: expected at least one channel"),
        ("class_names: []\nchannels: {ecg: {rate: 1}}\n", r"dataset\.yaml:1: class_names: expected a non-empty list"),
        ("class_names: [a, a]\nchannels: {ecg: {rate: 1}}\n", r"dataset\.yaml:1: class_names: expected distinct"),
        (
            "class_names: [a]\nchannels:\n  ecg: {rate: -128}\n",
            r"dataset\.yaml:3: channels\.ecg\.rate: expected a positive number",
        ),
        (
            "class_names: [a]\nchannels:\n  ecg: {rate: fast}\n",
            r"dataset\.yaml:3: channels\.ecg\.rate: expected a number, got 'fast'",
        ),
        (
            "class_names: [a]\nchannels:\n  ecg: {unit: mV}\n",
            r"dataset\.yaml:3: channels\.ecg\.rate: missing: a signal",
        ),
        (
            "class_names: [a]\nchannels:\n  ibi: {kind: events, rate: 4}\n",
            r"dataset\.yaml:3: channels\.ibi\.rate: events \(beat intervals\) have no rate; remove it",
        ),
        (
            "class_names: [a]\nchannels:\n  ecg: {rate: 1, kind: wave}\n",
            r"dataset\.yaml:3: channels\.ecg\.kind: expected one of signal, events, got 'wave'",
        ),
        (
            "class_names: [a]\nchannels:\n  ecg: {rate: 1}\nsubjects:\n  S01: {start: yesterday}\n",
            r"dataset\.yaml:5: subjects\.S01\.start: expected a unix time in seconds or an ISO-8601",
        ),
        (
            "class_names: [a]\nchannels:\n  ecg: {rate: 1}\nsubjects:\n  S09: {}\n",
            r"dataset\.yaml:5: subjects\.S09: no folder .*S09; expected one of S01, S02",
        ),
        ("class_names: [a\n", r"dataset\.yaml:2: invalid YAML"),
    ],
)
def test_bad_dataset_yaml(study: Path, yaml: str, message: str):
    write(study / "dataset.yaml", yaml)
    with pytest.raises(ConfigError, match=message) as info:
        folder.load(path=str(study))
    assert "\n" not in str(info.value)


def test_missing_folder_or_yaml(tmp_path: Path):
    with pytest.raises(UserError, match=r"folder: .*nope: folder not found; expected a folder with dataset\.yaml"):
        folder.load(path=str(tmp_path / "nope"))
    with pytest.raises(UserError, match=r"folder: .* has no dataset\.yaml"):
        folder.load(path=str(tmp_path))
    with pytest.raises(UserError, match=r"folder: no path; set data\.params\.path"):
        folder.load()


# ---- channel files -------------------------------------------------------------------------------------------------


def test_time_column_contradicts_rate(study: Path):
    t = np.arange(600) / 128  # 128 Hz, declared 64
    write(study / "S01" / "bvp.csv", "time_s,bvp\n" + "".join(f"{x:.6f},1.0\n" for x in t))
    with pytest.raises(
        UserError,
        match=r"S01/bvp\.csv: the time column steps 0\.0078125 s \(128 Hz\) but dataset\.yaml channels\.bvp\.rate "
        r"declares 64 Hz; expected the two to agree",
    ):
        folder.load(path=str(study))


def test_time_column_gap_names_line(study: Path):
    t = np.r_[np.arange(600), np.arange(610, 3800)] / 64
    write(study / "S01" / "bvp.csv", "time_s,bvp\n" + "".join(f"{x:.6f},1.0\n" for x in t))
    with pytest.raises(UserError, match=r"S01/bvp\.csv:602: time step 0\.171875 s, expected 0\.015625 s at 64 Hz"):
        folder.load(path=str(study))


def test_length_contradicts_rate(study: Path):
    write(study / "S01" / "ecg.csv", "".join("0.1\n" for _ in range(60 * 64)))  # 64 Hz data, declared 128
    with pytest.raises(
        UserError,
        match=r"S01/ecg\.csv: 3840 samples at the declared 128 Hz end at 30\.0 s but bvp\.csv ends at 60\.0 s; "
        r"expected similar durations \(check channels\.ecg\.rate in dataset\.yaml",
    ):
        folder.load(path=str(study))
    write(study / "dataset.yaml", YAML + "check_durations: false\n")
    assert len(folder.load(path=str(study)).subjects) == 2


def test_non_numeric_row_names_file_and_line(study: Path):
    text = (study / "S01" / "ecg.csv").read_text().splitlines()
    text[41] = "0.12a"
    write(study / "S01" / "ecg.csv", "\n".join(text) + "\n")
    with pytest.raises(UserError, match=r"S01/ecg\.csv:42: '0\.12a' is not a number; expected one sample per line"):
        folder.load(path=str(study))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("ibi.csv", "time_s,ibi_s\n1.0,0.8\n2.0,0\n", r"S01/ibi\.csv:3: interval 0 is not positive"),
        ("ibi.csv", "time_s,ibi_s\n1.0,0.8\n0.9,0.8\n", r"S01/ibi\.csv:3: beat time does not increase"),
        ("ibi.csv", "1.0\n2.0\n", r"S01/ibi\.csv:1: 1 values per line; expected two columns time_s,ibi_s"),
        ("bvp.csv", "1,2,3\n", r"S01/bvp\.csv:1: 3 values per line; expected one sample per line, or two columns"),
        ("bvp.csv", "t,v\n1,2\n0,3\n", r"S01/bvp\.csv:3: time does not increase"),
    ],
)
def test_bad_channel_file(study: Path, name: str, text: str, message: str):
    write(study / "S01" / name, text)
    with pytest.raises(UserError, match=message):
        folder.load(path=str(study))


def test_bad_npy(study: Path):
    np.save(study / "S02" / "ecg.npy", np.zeros((10, 3)))
    with pytest.raises(UserError, match=r"S02/ecg\.npy: array of shape \(10, 3\) and type float64; expected one"):
        folder.load(path=str(study))
    np.save(study / "S02" / "ecg.npy", np.r_[np.zeros(5), np.nan])
    with pytest.raises(UserError, match=r"S02/ecg\.npy: row 5 is not finite"):
        folder.load(path=str(study))


def test_both_csv_and_npy_is_ambiguous(study: Path):
    np.save(study / "S01" / "ecg.npy", np.zeros(10))
    with pytest.raises(UserError, match=r"S01: both ecg\.csv and ecg\.npy exist; expected one file per channel"):
        folder.load(path=str(study))


def test_missing_or_truncated_file_skips_subject(study: Path):
    (study / "S02" / "ecg.npy").unlink()
    write(study / "S01" / "bvp.csv", "bvp\n")  # header only
    with (
        pytest.warns(UserWarning) as caught,
        pytest.raises(UserError, match=r"folder: no usable subject in .*S01: .*bvp\.csv: no samples after the header"),
    ):
        folder.load(path=str(study))
    assert [str(w.message).split(":")[1] for w in caught] == [" skipping subject S01", " skipping subject S02"]
    make_study(study)
    (study / "S02" / "ecg.npy").unlink()
    with pytest.warns(UserWarning, match=r"folder: skipping subject S02: .*S02: no ecg\.csv or ecg\.npy"):
        data = folder.load(path=str(study))
    assert data.subject_ids() == ["S01"] and "no ecg.csv or ecg.npy" in data.skipped["S02"]


# ---- labels --------------------------------------------------------------------------------------------------------


def test_labels_unknown_subject(study: Path):
    write(study / "labels.csv", LABELS + "S3,0,10,stress\n")
    with pytest.raises(UserError, match=r"labels\.csv:5: subject 'S3' is not in the data; known: S01, S02"):
        folder.load(path=str(study))


def test_labels_unknown_class(study: Path):
    write(study / "labels.csv", LABELS + "S02,50,55,calm\n")
    with pytest.raises(
        UserError, match=r"labels\.csv:5: label 'calm' is not a class; expected one of baseline, stress"
    ):
        folder.load(path=str(study))


def test_subject_without_labels_is_skipped(study: Path):
    write(study / "labels.csv", "subject,start,end,label\nS01,0,30,baseline\nS02,100,130,stress\n")
    with pytest.warns(UserWarning, match=r"skipping subject S02: no labelled data: .* intervals only outside"):
        data = folder.load(path=str(study))
    assert data.subject_ids() == ["S01"] and data.skipped["S02"].startswith("no labelled data")


def test_missing_labels_file(study: Path):
    (study / "labels.csv").unlink()
    with pytest.raises(UserError, match=r"labels\.csv: label table not found"):
        folder.load(path=str(study))
