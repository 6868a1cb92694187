"""Empatica E4 reader and the ``e4`` loader, on generated files in the exact E4 CSV layout."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ape_nas.data.readers import e4
from ape_nas.data.types import UNLABELLED
from ape_nas.errors import KeyedError, UserError

T0 = 1644226061  # 2022-02-07 09:27:41 UTC


def write_session(
    folder: Path,
    t0: float = T0,
    seconds: int = 120,
    *,
    crlf: bool = False,
    acc: bool = False,
    tags: tuple[float, ...] = (),
) -> Path:
    """An E4 session folder as E4 connect exports it (BVP 64 Hz, HR 1 Hz from t0 + 10 s, IBI with a gap)."""
    folder.mkdir(parents=True, exist_ok=True)
    nl = "\r\n" if crlf else "\n"
    rng = np.random.default_rng(int(t0) % 1000)
    bvp = np.sin(np.arange(seconds * 64) / 64 * 2 * np.pi * 1.2) * 50 + rng.normal(0, 2, seconds * 64)
    (folder / "BVP.csv").write_text(nl.join([f"{t0}", "64", *(f"{x:.2f}" for x in bvp)]) + nl, newline="")
    hr = 70 + rng.normal(0, 1, seconds - 10)
    (folder / "HR.csv").write_text(
        "\n".join([f"{t0 + 10:.6f}", "1.000000", *(f"{x:.2f}" for x in hr)]) + "\n", newline=""
    )
    beats = np.arange(5.0, seconds - 1, 0.85)
    beats = beats[(beats < 40) | (beats > 50)]  # movement: no beats detected between 40 and 50 s
    ibi = np.diff(beats, prepend=beats[0] - 0.85)
    rows = [f"{t:.6f},{i:.6f}" for t, i in zip(beats, ibi, strict=True)]
    (folder / "IBI.csv").write_text("\n".join([f"{t0:.6f}, IBI", *rows]) + "\n")
    if acc:
        xyz = rng.integers(-64, 64, size=(seconds * 32, 3))
        lines = [", ".join([f"{t0:.6f}"] * 3), ", ".join(["32.000000"] * 3), *(",".join(map(str, r)) for r in xyz)]
        (folder / "ACC.csv").write_text("\n".join(lines) + "\n")
    (folder / "tags.csv").write_text("".join(f"{t:.2f}\n" for t in tags))
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---- readers -------------------------------------------------------------------------------------------------------


def test_read_signal_bvp_and_hr(tmp_path: Path):
    folder = write_session(tmp_path / "S01", crlf=True)
    bvp = e4.read_signal(folder / "BVP.csv")
    assert (bvp.start, bvp.rate, bvp.data.shape) == (T0, 64.0, (120 * 64,))
    hr = e4.read_signal(folder / "HR.csv")
    assert (hr.start, hr.rate, len(hr.data)) == (T0 + 10, 1.0, 110)


def test_read_signal_multi_column_acc(tmp_path: Path):
    folder = write_session(tmp_path / "S01", acc=True)
    acc = e4.read_signal(folder / "ACC.csv")
    assert acc.rate == 32.0 and acc.data.shape == (120 * 32, 3)


def test_read_ibi_keeps_gaps(tmp_path: Path):
    folder = write_session(tmp_path / "S01")
    start, beats = e4.read_ibi(folder / "IBI.csv")
    rows = (folder / "IBI.csv").read_text().splitlines()[1:]
    assert start == T0 and beats.shape == (len(rows), 2)  # no beat invented
    step = np.diff(beats[:, 0])
    gap = np.flatnonzero(step > 5)
    assert gap.size == 1 and beats[gap[0], 0] < 40 < 50 < beats[gap[0] + 1, 0]


def test_read_ibi_header_only_is_no_beats(tmp_path: Path):
    p = write(tmp_path / "IBI.csv", f"{T0:.6f}, IBI\n")
    start, beats = e4.read_ibi(p)
    assert start == T0 and beats.shape == (0, 2)


def test_read_tags(tmp_path: Path):
    assert list(e4.read_tags(write(tmp_path / "tags.csv", f"{T0 + 79}\r\n{T0 + 374.5}\r\n"))) == [T0 + 79, T0 + 374.5]
    assert e4.read_tags(write(tmp_path / "empty.csv", "")).shape == (0,)


def test_read_session_aligns_channels(tmp_path: Path):
    folder = write_session(tmp_path / "P7", acc=True, tags=(T0 + 30, T0 + 90))
    rec = e4.read_session(folder, ["bvp", "hr", "ibi", "acc_z"])
    assert rec.subject == "P7" and rec.t0 == T0
    assert rec.rates == {"bvp": 64.0, "hr": 1.0, "acc_z": 32.0}
    assert rec.offsets == {"bvp": 0.0, "hr": 10.0, "acc_z": 0.0}
    assert rec.events["ibi"][0, 0] == pytest.approx(5.0)  # seconds after t0
    assert list(rec.meta["tags"]) == [30.0, 90.0]
    assert rec.signals["bvp"].dtype == np.float32 and len(rec.labels) == 0
    assert rec.duration_s() == pytest.approx(120.0)
    assert str(folder / "tags.csv") in rec.meta["files"]


def test_read_session_hr_only_starts_at_hr(tmp_path: Path):
    rec = e4.read_session(write_session(tmp_path / "S01"), ["hr"])
    assert rec.t0 == T0 + 10 and rec.offsets == {"hr": 0.0}


def test_readers_import_no_torch():
    import subprocess

    code = "import sys, ape_nas.data.readers.e4, ape_nas.data.readers.stress_predict, ape_nas.data.readers.folder; "
    code += "assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- bad input: one line naming file (and line) and what is expected ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (None, e4.NoDataError, r"BVP\.csv: file not found; expected an Empatica E4 CSV"),
        ("", e4.NoDataError, r"BVP\.csv: empty file; expected an Empatica E4 CSV"),
        (f"{T0}\n", e4.NoDataError, r"BVP\.csv:2: missing the sample-rate line \(truncated file\?\)"),
        (f"{T0}\n64\n", e4.NoDataError, r"BVP\.csv: no samples after the 2-line header \(truncated file\?\)"),
        (f"{T0}\nabc\n1\n", UserError, r"BVP\.csv:2: sample rate 'abc' is not a positive number; expected line 2"),
        (f"{T0}\n0\n1\n", UserError, r"BVP\.csv:2: sample rate '0' is not a positive number"),
        (f"{T0}\n-64\n1\n", UserError, r"BVP\.csv:2: sample rate '-64' is not a positive number"),
        (f"{T0}\nnan\n1\n", UserError, r"BVP\.csv:2: sample rate 'nan' is not a positive number"),
        ("start\n64\n1\n", UserError, r"BVP\.csv:1: session start 'start' is not a number"),
        ("12.5\n64\n1\n", UserError, r"BVP\.csv:1: session start '12.5' is not a unix time"),
        (f"{T0}\n64\n1.0\n2.0\n-3.x\n4\n", UserError, r"BVP\.csv:5: '-3.x' is not a number; expected one number"),
        (f"{T0}\n64\n1.0\n\n3.0\n", UserError, r"BVP\.csv:4: empty line inside the data"),
        (f"{T0}\n64\n1.0\nnan\n", UserError, r"BVP\.csv:4: 'nan' is not a number"),
        (
            f"{T0}\n64\n1.0\n2.0,3.0\n",
            UserError,
            r"BVP\.csv:4: 2 values, but line 3 has 1; expected one number per line",
        ),
    ],
)
def test_bad_signal_file(tmp_path: Path, text: str | None, error: type, message: str):
    p = tmp_path / "BVP.csv"
    if text is not None:
        p.write_text(text)
    with pytest.raises(error, match=message) as info:
        e4.read_signal(p)
    assert "\n" not in str(info.value) and str(p) in str(info.value)


def test_trailing_blank_lines_are_fine(tmp_path: Path):
    assert len(e4.read_signal(write(tmp_path / "BVP.csv", f"{T0}\n64\n1\n2\n\n\n")).data) == 2


def test_bad_acc_row(tmp_path: Path):
    p = write(tmp_path / "ACC.csv", f"{T0}, {T0}, {T0}\n32, 32, 32\n1,2,3\n4,5\n")
    with pytest.raises(UserError, match=r"ACC\.csv:4: missing value\(s\); expected 3 comma-separated"):
        e4.read_signal(p)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("1.0,0.8\n2.0,x\n", r"IBI\.csv:3: 'x' is not a number"),
        ("1.0,0.8\n2.0,-0.5\n", r"IBI\.csv:3: interval -0.5 s is not positive"),
        ("1.0,0.8\n0.5,0.8\n", r"IBI\.csv:3: beat time does not increase"),
        ("1.0\n", r"IBI\.csv:2: 1 values per line; expected IBI\.csv: header 'start, IBI'"),
    ],
)
def test_bad_ibi(tmp_path: Path, rows: str, message: str):
    with pytest.raises(UserError, match=message):
        e4.read_ibi(write(tmp_path / "IBI.csv", f"{T0}.000000, IBI\n{rows}"))


def test_bad_tag(tmp_path: Path):
    with pytest.raises(UserError, match=r"tags\.csv:2: 12\.0 is not a unix time"):
        e4.read_tags(write(tmp_path / "tags.csv", f"{T0}\n12\n"))


def test_unknown_channel(tmp_path: Path):
    with pytest.raises(UserError, match=r"E4 channel\(s\) 'ecg' unknown; expected some of bvp, hr"):
        e4.read_session(write_session(tmp_path / "S01"), ["bvp", "ecg"])


# ---- the loader ----------------------------------------------------------------------------------------------------


@pytest.fixture
def sessions(tmp_path: Path) -> Path:
    root = tmp_path / "e4data"
    for i, sid in enumerate(["A1", "B2", "C3"]):
        write_session(root / sid, T0 + 3600 * i)
    return root


def test_loader_interval_table(sessions: Path):
    labels = write(
        sessions / "labels.csv",
        "subject,start,end,label,note\n"
        "A1,0,60,stress,x\n"
        "A1,60,120,baseline,\n"
        f"B2,{T0 + 3600 + 30},{T0 + 3600 + 90},stress,\n"
        "C3,2022-02-07T11:27:41,2022-02-07T11:28:41,baseline,\n",
    )
    data = e4.e4(path=str(sessions), labels=str(labels), label_rate=2.0)
    assert data.name == "e4" and data.subject_ids() == ["A1", "B2", "C3"] and data.skipped == {}
    assert data.class_names == ["baseline", "stress"]  # sorted
    a, b, c = data.subjects
    assert a.label_rate == 2.0 and len(a.labels) == 240 and (a.labels[:120] == 1).all() and (a.labels[120:] == 0).all()
    assert (b.labels[60:180] == 1).all() and (b.labels[:60] == UNLABELLED).all()
    assert (c.labels[:120] == 0).all() and (c.labels[120:] == UNLABELLED).all()
    assert str(labels) in data.sources and str(sessions / "A1" / "BVP.csv") in data.sources
    assert data.channels() == ["bvp", "hr", "ibi"]


def test_loader_default_labels_and_class_order(sessions: Path):
    write(sessions / "labels.csv", "subject,start,end,label\nA1,0,60,stress\nB2,0,60,baseline\nC3,0,30,stress\n")
    data = e4.e4(path=str(sessions), class_names=["stress", "baseline"], channels=["bvp"])
    assert data.class_names == ["stress", "baseline"] and data.subjects[0].labels[0] == 0
    assert data.channels() == ["bvp"]


def test_loader_per_second_labels(sessions: Path):
    rows = ["subject,time,label"]
    rows += [f"A1,{t},{2 if t < 20 else 10}" for t in range(5, 40)]
    rows += [f"B2,{T0 + 3600 + t},2" for t in range(-3, 3)]  # starts 3 s before the recording
    rows += ["", "C3,2022-02-07T11:27:51,10"]
    labels = write(sessions / "sec.csv", "\n".join(rows) + "\n")
    data = e4.e4(path=str(sessions), labels=str(labels))
    assert data.class_names == ["2", "10"]  # numeric order
    a, b, c = data.subjects
    assert (a.label_rate, a.label_offset, len(a.labels)) == (1.0, 5.0, 35)
    assert list(a.labels[14:16]) == [0, 1]
    assert (b.label_offset, list(b.labels)) == (0.0, [0, 0, 0])
    assert (c.label_offset, list(c.labels)) == (10.0, [1])


def test_loader_skips_subject_without_labels_or_files(sessions: Path):
    (sessions / "C3" / "BVP.csv").unlink()
    write(sessions / "labels.csv", "subject,start,end,label\nA1,0,60,stress\nB2,500,600,stress\n")
    with pytest.warns(UserWarning) as caught:
        data = e4.e4(path=str(sessions))
    assert data.subject_ids() == ["A1"]
    assert data.skipped["B2"].startswith("no labelled data: ") and "only outside the recording" in data.skipped["B2"]
    assert "C3" in data.skipped and "BVP.csv: file not found" in data.skipped["C3"]
    texts = [str(w.message) for w in caught]
    assert any(t.startswith("e4: skipping subject B2: no labelled data") for t in texts)
    assert any(t.startswith("e4: skipping subject C3: ") for t in texts)


def test_loader_subject_with_no_rows_is_skipped(sessions: Path):
    write(sessions / "labels.csv", "subject,start,end,label\nA1,0,60,stress\n")
    with pytest.warns(UserWarning) as caught:
        data = e4.e4(path=str(sessions))
    assert set(data.skipped) == {"B2", "C3"}
    assert "labels.csv has no rows for it" in data.skipped["B2"]
    assert any("skipping subject B2: no labelled data: " in str(w.message) for w in caught)


def test_loader_unknown_subject_in_table(sessions: Path):
    labels = write(sessions / "labels.csv", "subject,start,end,label\nA1,0,60,stress\nZ9,0,60,stress\n")
    with pytest.raises(UserError, match=r"labels\.csv:3: subject 'Z9' is not in the data; known: A1, B2, C3"):
        e4.e4(path=str(sessions), labels=str(labels))


def test_loader_unknown_subject_per_second(sessions: Path):
    labels = write(sessions / "sec.csv", "subject,time,label\nA1,0,x\n\nZ9,1,x\n")
    with pytest.raises(UserError, match=r"sec\.csv:4: subject 'Z9' is not in the data; known: A1, B2, C3"):
        e4.e4(path=str(sessions), labels=str(labels))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("subject,time,label\nA1,abc,x\n", r"sec\.csv:2: time 'abc' is not a time"),
        ("subject,time,label\nA1,1,x\nA1,1.5,x\n", r"sec\.csv:3: time is not on the 1-second grid"),
        ("subject,time,label\nA1,1,x\nA1,1,y\n", r"sec\.csv:3: second labelled twice with different labels"),
        ("subject,time,label\nA1,1,\n", r"sec\.csv:2: empty label"),
        ("subject,when,label\nA1,1,x\n", r"sec\.csv:1: header has neither start,end nor time"),
        ("subject,time,label\nA1,1,x\n", r"sec\.csv:2: label 'x' is not a class; expected one of y"),
    ],
)
def test_loader_bad_per_second_table(sessions: Path, text: str, message: str):
    labels = write(sessions / "sec.csv", text)
    names = ["y"] if "not a class" in message else None
    with pytest.raises(UserError, match=message):
        e4.e4(path=str(sessions), labels=str(labels), class_names=names)


def test_loader_bad_paths(tmp_path: Path, sessions: Path):
    with pytest.raises(UserError, match=r"e4: .*nowhere: folder not found; expected a folder of per-subject"):
        e4.e4(path=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"e4: no path; set data.params.path"):
        e4.e4()
    with pytest.raises(UserError, match=r"A1 is one session folder; expected a folder with one E4 session folder"):
        e4.e4(path=str(sessions / "A1"))
    with pytest.raises(UserError, match=r"e4: no labels: .*labels\.csv not found"):
        e4.e4(path=str(sessions))


def test_loader_corrupt_file_stops(sessions: Path):
    write(sessions / "labels.csv", "subject,start,end,label\nA1,0,60,stress\n")
    text = (sessions / "B2" / "HR.csv").read_text().splitlines()
    text[6] = "7O.5"
    write(sessions / "B2" / "HR.csv", "\n".join(text) + "\n")
    with pytest.raises(UserError, match=r"B2/HR\.csv:7: '7O\.5' is not a number"):
        e4.e4(path=str(sessions))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"channels": "bvp"}, r"data\.params\.channels: expected a list, got 'bvp'"),
        ({"channels": []}, r"data\.params\.channels: expected a non-empty list of some of bvp, hr"),
        ({"channels": ["bvp", "ppg"]}, r"data\.params\.channels: unknown 'ppg'; expected some of bvp, hr"),
        ({"channels": ["bvp", 3]}, r"data\.params\.channels: expected names \(strings\), got \['bvp', 3\]"),
        ({"label_rate": 0}, r"data\.params\.label_rate: expected a positive number, got 0"),
        ({"label_rate": float("inf")}, r"data\.params\.label_rate: expected a positive number, got inf"),
        ({"label_rate": True}, r"data\.params\.label_rate: expected a number, got true"),
        ({"class_names": "ab"}, r"data\.params\.class_names: expected a list, got 'ab'"),
        ({"class_names": ["a", "a"]}, r"data\.params\.class_names: lists a name twice"),
        ({"labels": 5}, r"data\.params\.labels: expected a path \(a string\), got 5"),
        ({"path": 3}, r"data\.params\.path: expected a path \(a string\), got 3"),
        ({"require_labels": 1}, r"data\.params\.require_labels: expected true or false, got 1"),
    ],
)
def test_loader_bad_params(sessions: Path, params: dict, message: str):
    with pytest.raises(KeyedError, match=message):
        e4.e4(**{"path": str(sessions), **params})


def test_loader_accepts_tuples_and_paths(sessions: Path):
    """The Python API's spellings (tuples, Path objects) are accepted like the YAML lists and strings."""
    write(sessions / "labels.csv", "subject,start,end,label\nA1,0,60,stress\nB2,0,60,calm\nC3,0,60,calm\n")
    data = e4.e4(path=sessions, channels=("hr",), labels=sessions / "labels.csv", label_rate=1)
    assert data.params["channels"] == ["hr"] and data.params["label_rate"] == 1.0
