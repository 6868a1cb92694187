"""The ``stress-predict`` benchmark: real facts on ../shared/data (skipped when absent, failed in CI) + generated
layouts (the time log as the authors' spreadsheet, as a converted csv, both, or neither)."""

from __future__ import annotations

import datetime as dt
import time
from datetime import UTC, datetime
from pathlib import Path

import _common
import numpy as np
import pytest
from _stress_download import write_time_logs_xlsx

from ape_nas.data.readers import e4, stress_predict, time_logs
from ape_nas.data.types import UNLABELLED
from ape_nas.errors import KeyedError, UserError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "stress-predict"
needs_shared = _common.needs_shared(SHARED / "Raw_data")  # skipped when absent; fails in CI

# the two header rows of the real Time_logs.csv, unchanged (spelling included)
HEADER = (
    "S. ID.,Start Time,End Time,Session ID,Consent,,Baseline/Questionniare,,Stroop Test,,Relax,,Interview,,Relax,,"
    "Hyperventilation,,Relax,,Questionniare,,Relax/Baseline,,,Date\n"
    ",,,,Start,End,Start,End,Start,End,Start,End,Start,End,Start,End,Start,End,Start,End,Start,End,Start,End,,\n"
)
# S01 as in the quirks: a session crossing noon on a 12-hour clock, its Baseline column after Stroop and Relax
ROW_S01 = (
    "S01,12:58:00,01:10:00,1445405,12:58:00,12:59:00,01:03:00,01:04:00,12:59:00,01:01:00,01:01:00,01:03:00,"
    "01:04:00,01:05:00,01:05:00,01:06:00,01:06:00,01:07:00,01:07:00,01:08:00,01:08:00,01:09:00,01:09:00,01:10:00,"
    "Day 1,2022-02-07 00:00:00\n"
)
ROW_S02 = (
    "S02,09:00:00,09:12:00,1445449,09:00:00,09:01:00,09:01:00,09:03:00,09:03:00,09:05:00,09:05:00,09:06:00,"
    "09:06:00,09:08:00,09:08:00,09:09:00,09:09:00,09:10:00,09:10:00,09:11:00,09:11:00,09:11:30,09:11:30,09:12:00,"
    "Day 1,2022-02-07 00:00:00\n"
)
T0_S01 = datetime(2022, 2, 7, 12, 59, tzinfo=UTC).timestamp()
T0_S02 = datetime(2022, 2, 7, 9, 1, tzinfo=UTC).timestamp()


def write_e4(folder: Path, t0: float, seconds: int = 720) -> None:
    """A Stress-Predict E4 folder: BVP 64 Hz, HR 1 Hz from t0 + 10 s, IBI with a gap, tags_SXX.csv."""
    folder.mkdir(parents=True)
    x = np.sin(np.arange(seconds * 64) / 64 * 2 * np.pi)
    np.savetxt(folder / "BVP.csv", x, fmt="%.2f", header=f"{t0:.2f}\n64.000000", comments="")
    np.savetxt(
        folder / "HR.csv", np.full(seconds - 10, 70.0), fmt="%.2f", header=f"{t0 + 10:.6f}\n1.000000", comments=""
    )
    beats = np.arange(3.0, seconds - 1.0, 1.0)
    beats = beats[(beats < 100) | (beats > 130)]
    np.savetxt(
        folder / "IBI.csv",
        np.c_[beats, np.ones_like(beats)],
        fmt="%.6f",
        delimiter=",",
        header=f"{t0:.6f}, IBI",
        comments="",
    )
    (folder / f"tags_{folder.name}.csv").write_text(f"{t0 + 60:.2f}\n")


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    root = tmp_path / "stress-predict"
    write_e4(root / "Raw_data" / "S01", T0_S01)
    write_e4(root / "Raw_data" / "S02", T0_S02)
    write_e4(root / "Raw_data" / "S03", T0_S02 + 7200)
    (root / "Raw_data" / "S03" / "BVP.csv").unlink()
    write_e4(root / "Raw_data" / "S04", T0_S02 + 3 * 7200)
    (root / "Processed_data").mkdir()
    (root / stress_predict.TIME_LOGS_CSV).write_text(HEADER + ROW_S01 + ROW_S02)
    first = int(T0_S02) + 9
    rows = [f"2,70.0,12.0,{first + i},{int(120 <= i < 240)}" for i in range(600)]
    (root / stress_predict.BINARY_FILE).write_text("Participant,HR,respr,Time(sec),Label\n" + "\n".join(rows) + "\n")
    return root


# ---- generated layout ----------------------------------------------------------------------------------------------


def test_time_logs_quirks(layout: Path):
    logs = stress_predict.read_time_logs(layout / stress_predict.TIME_LOGS_CSV)
    s1 = logs["S01"]
    assert (s1.line, s1.date, s1.day, s1.session_id) == (3, "2022-02-07", "Day 1", "1445405")
    by_column = {p.column: p for p in s1.phases}
    assert by_column["Stroop Test"].start == T0_S01  # 12:59 stays 12:59 (noon)
    assert by_column["Baseline/Questionniare"].start == T0_S01 + 240  # 01:03 → 13:03, after Stroop and Relax
    assert by_column["Relax/Baseline"].end == T0_S01 + 660  # 01:10 → 13:10
    assert [p.kind for p in s1.phases] == [None, "baseline", "stroop", "relax", "interview", "relax",
                                           "hyperventilation", "relax", None, "relax"]  # fmt: skip
    assert [p.column for p in s1.phases][5] == "Relax #2"
    assert logs["S02"].start == T0_S02 - 60


def test_binary_from_authors_file_and_time_logs(layout: Path):
    with pytest.warns(UserWarning) as caught:
        data = stress_predict.load(path=str(layout))
    assert data.name == "stress-predict" and data.class_names == ["no-stress", "stress"]
    assert data.subject_ids() == ["S01", "S02"]
    assert "BVP.csv: file not found" in data.skipped["S03"]
    assert (
        data.skipped["S04"]
        == "no labelled data: no rows in Improved_All_Combined_hr_rsp_binary.csv and no row in Time_logs.csv"
    )
    assert sorted(str(w.message).split(":")[1] for w in caught) == [" skipping subject S03", " skipping subject S04"]
    s1, s2 = data.subjects
    assert s1.meta["label_source"] == "Time_logs.csv" and s1.label_offset == 0.0 and s1.label_rate == 1.0
    stress = np.r_[0:120, 300:360, 420:480]
    assert (s1.labels[stress] == 1).all() and (s1.labels == 1).sum() == 240
    assert (s1.labels == 0).sum() == 420 and (s1.labels[660:] == UNLABELLED).all()
    assert s2.meta["label_source"] == "Improved_All_Combined_hr_rsp_binary.csv"
    assert s2.label_offset == 9.0 and len(s2.labels) == 600 and (s2.labels[120:240] == 1).all()
    assert s1.offsets == {"bvp": 0.0, "hr": 10.0} and s1.t0 == T0_S01
    assert s1.meta["tags"].tolist() == [60.0] and s1.meta["phases"][2] == ("Stroop Test", "stroop", 0.0, 120.0)
    assert str(layout / stress_predict.TIME_LOGS_CSV) in data.sources
    assert str(layout / stress_predict.BINARY_FILE) in data.sources
    assert str(layout / "Raw_data" / "S04" / "IBI.csv") in data.sources  # read, then skipped


def test_phases_task(layout: Path):
    with pytest.warns(UserWarning):
        data = stress_predict.load(path=str(layout), task="phases", channels=["ibi"])
    assert data.class_names == ["baseline", "stroop", "interview", "hyperventilation", "relax"]
    assert data.subject_ids() == ["S01", "S02"] and data.channels() == ["ibi"]
    s1 = data.subjects[0]
    expect = {0: 1, 150: 4, 250: 0, 330: 2, 400: 4, 450: 3, 500: 4, 570: UNLABELLED, 630: 4, 700: UNLABELLED}
    assert {t: int(s1.labels[t]) for t in expect} == expect
    assert str(layout / stress_predict.BINARY_FILE) not in data.sources


def test_subjects_param(layout: Path):
    data = stress_predict.load(path=str(layout), subjects=["S02"], channels=["bvp"])
    assert data.subject_ids() == ["S02"] and data.skipped == {} and data.params["subjects"] == ["S02"]
    with pytest.raises(KeyedError, match=r"data\.params\.subjects: unknown 'S29'; expected some of S01, S02, S03"):
        stress_predict.load(path=str(layout), subjects=["S29"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"task": "arousal"}, r"data\.params\.task: expected one of binary, phases, got 'arousal'"),
        ({"channels": ["ecg"]}, r"data\.params\.channels: unknown 'ecg'; expected some of bvp, hr, ibi"),
        ({"channels": []}, r"data\.params\.channels: expected a non-empty list of some of bvp, hr, ibi"),
        ({"channels": ["bvp", "bvp"]}, r"data\.params\.channels: lists a name twice"),
        ({"subjects": "S01"}, r"data\.params\.subjects: expected a list, got 'S01'"),
        ({"require_labels": "yes"}, r"data\.params\.require_labels: expected true or false, got 'yes'"),
        ({"path": 3}, r"data\.params\.path: expected a path \(a string\), got 3"),
    ],
)
def test_bad_params(layout: Path, params: dict, message: str):
    with pytest.raises(KeyedError, match=message) as info:
        stress_predict.load(**{"path": str(layout), **params})
    assert info.value.keys[0][:2] == ("data", "params")  # the sweep places it at the experiment's file:line


def test_wrong_path(tmp_path: Path):
    with pytest.raises(UserError, match=r"stress-predict: .*/missing: folder not found; expected the Stress-Predict"):
        stress_predict.load(path=str(tmp_path / "missing"))
    with pytest.raises(UserError, match=r"stress-predict: .* has no Raw_data/ folder"):
        stress_predict.load(path=str(tmp_path))
    with pytest.raises(UserError, match=r"stress-predict: no path; set data\.params\.path"):
        stress_predict.load()


def test_missing_processed_files(layout: Path):
    (layout / stress_predict.BINARY_FILE).unlink()
    with pytest.raises(UserError, match=r"Improved_All_Combined_hr_rsp_binary\.csv: file not found"):
        stress_predict.load(path=str(layout))
    (layout / stress_predict.TIME_LOGS_CSV).unlink()
    with pytest.raises(UserError, match=r"Time_logs\.xlsx: file not found; expected the Stress-Predict phase time log"):
        stress_predict.load(path=str(layout), task="phases")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("S02,09:00:00", "S02,9h00", r"Time_logs\.csv:4: Start Time: '9h00' is not a clock time; expected HH:MM:SS"),
        (",09:03:00,09:05:00,", ",09:03:00,09:75:00,", r"Time_logs\.csv:4: Stroop Test End: '09:75:00' is not a clock"),
        (
            ",09:03:00,09:05:00,",
            ",09:05:00,09:03:00,",
            r"Time_logs\.csv:4: phase 'Stroop Test' ends \(09:03:00\) before",
        ),
        ("Day 1,2022-02-07 00:00:00\n", "Day 1,07/02/2022\n", r"Time_logs\.csv:3: Date '07/02/2022' is not a date"),
        (",Interview,", ",Lunch,", r"Time_logs\.csv:1: unknown phase 'Lunch'"),
        ("Hyperventilation,,", "Hyperventilation,X,", r"Time_logs\.csv:2: phase 'Hyperventilation' has no End column"),
        ("S02,", "P2,", r"Time_logs\.csv:4: subject 'P2' is not an id like S01"),
        (",09:03:00,09:05:00,", ",09:03:00,,", r"Time_logs\.csv:4: phase 'Stroop Test' has only one of Start/End"),
    ],
)
def test_bad_time_logs(layout: Path, old: str, new: str, message: str):
    p = layout / stress_predict.TIME_LOGS_CSV
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new, 1))
    with pytest.raises(UserError, match=message) as info:
        stress_predict.read_time_logs(p)
    assert "\n" not in str(info.value)


# ---- the time log as the authors' spreadsheet (Time_logs.xlsx) ----------------------------------------------------


def _as_xlsx(layout: Path, text: str | None = None) -> Path:
    return write_time_logs_xlsx(layout / stress_predict.TIME_LOGS, text or HEADER + ROW_S01 + ROW_S02)


def test_xlsx_reads_like_the_csv(layout: Path):
    xlsx = _as_xlsx(layout)
    assert stress_predict.read_time_logs(xlsx) == stress_predict.read_time_logs(layout / stress_predict.TIME_LOGS_CSV)


@pytest.mark.parametrize("task", ["binary", "phases"])
def test_xlsx_only_layout_gives_the_same_labels(layout: Path, task: str):
    with pytest.warns(UserWarning):
        from_csv = stress_predict.load(path=str(layout), task=task)
    _as_xlsx(layout)
    (layout / stress_predict.TIME_LOGS_CSV).unlink()
    with pytest.warns(UserWarning):
        from_xlsx = stress_predict.load(path=str(layout), task=task)
    assert from_xlsx.subject_ids() == from_csv.subject_ids() == ["S01", "S02"]
    for a, b in zip(from_csv.subjects, from_xlsx.subjects, strict=True):
        assert np.array_equal(a.labels, b.labels) and a.label_offset == b.label_offset
        assert a.meta["phases"] == b.meta["phases"]
    assert from_xlsx.subjects[0].meta["label_source"] == "Time_logs.xlsx"
    assert str(layout / stress_predict.TIME_LOGS) in from_xlsx.sources
    assert not any(src.endswith("Time_logs.csv") for src in from_xlsx.sources)


def test_csv_beside_the_xlsx_must_agree(layout: Path):
    _as_xlsx(layout)
    with pytest.warns(UserWarning):
        both = stress_predict.load(path=str(layout))
    assert str(layout / stress_predict.TIME_LOGS_CSV) in both.sources  # both read: an edit of either shows
    assert both.subjects[0].meta["label_source"] == "Time_logs.xlsx"
    _as_xlsx(layout, HEADER + ROW_S01 + ROW_S02.replace(",09:03:00,09:05:00,", ",09:03:00,09:06:00,", 1))
    with pytest.raises(UserError, match=r"Time_logs\.csv: disagrees with Time_logs\.xlsx \(S02: phase 'Stroop Test'"):
        stress_predict.load(path=str(layout))
    _as_xlsx(layout, HEADER + ROW_S01)
    with pytest.raises(UserError, match=r"Time_logs\.csv: disagrees .*only in the second: \['S02'\]"):
        stress_predict.load(path=str(layout))


def test_binary_task_needs_no_time_log(layout: Path, recwarn: pytest.WarningsRecorder):
    (layout / stress_predict.TIME_LOGS_CSV).unlink()
    data = stress_predict.load(path=str(layout), subjects=["S02"])  # labelled by the authors' per-second file
    assert not recwarn.list and data.skipped == {}
    assert data.subjects[0].meta["label_source"] == "Improved_All_Combined_hr_rsp_binary.csv"
    assert "date" not in data.subjects[0].meta  # the time log's facts are simply absent
    with pytest.warns(UserWarning, match="skipping subject S01"):
        data = stress_predict.load(path=str(layout), subjects=["S01", "S02"])
    assert data.subject_ids() == ["S02"]
    assert data.skipped["S01"] == (
        "no labelled data: no rows in Improved_All_Combined_hr_rsp_binary.csv and "
        "no time log (Processed_data/Time_logs.xlsx or Time_logs.csv)"
    )
    unlabelled = stress_predict.load(path=str(layout), subjects=["S01", "S02"], require_labels=False)
    assert [r.is_labelled() for r in unlabelled.subjects] == [False, True]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("S02,09:00:00", "S02,9h00", r"Time_logs\.xlsx:4: Start Time: '9h00' is not a clock time; expected HH:MM:SS"),
        (",09:03:00,09:05:00,", ",09:03:00,09:75:00,", r"Time_logs\.xlsx:4: Stroop Test End: '09:75:00' is not a"),
        ("Day 1,2022-02-07 00:00:00\n", "Day 1,07/02/2022\n", r"Time_logs\.xlsx:3: Date '07/02/2022' is not a date"),
    ],
)
def test_bad_xlsx_cells_name_the_row(layout: Path, old: str, new: str, message: str):
    text = HEADER + ROW_S01 + ROW_S02
    assert old in text
    p = _as_xlsx(layout, text.replace(old, new, 1))
    with pytest.raises(UserError, match=message):
        stress_predict.read_time_logs(p)


def test_unreadable_xlsx(layout: Path):
    p = layout / stress_predict.TIME_LOGS
    p.write_text("S. ID.,Start Time\n")  # a csv saved under the spreadsheet's name
    with pytest.raises(UserError, match=r"Time_logs\.xlsx: not a readable \.xlsx workbook .*; expected the Stress"):
        stress_predict.load(path=str(layout))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (dt.time(9, 21, 59, 999_999), "09:22:00"),  # Excel's day fractions round to the second
        (dt.time(13, 5), "13:05:00"),
        (dt.timedelta(hours=1, minutes=5), "01:05:00"),
        (dt.datetime(2022, 2, 7), "2022-02-07 00:00:00"),
        (1445405, "1445405"),
        (1445405.0, "1445405"),
        (" Day 1 ", "Day 1"),
    ],
)
def test_spreadsheet_cells_read_as_the_csv_export_writes_them(value: object, text: str):
    assert time_logs.cell_text(value) == text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2,70.0,12.0,abc,0", r"binary\.csv:5: Time\(sec\) 'abc' is not a number"),
        ("2,70.0,12.0,1644217263,2", r"binary\.csv:5: Label 2 is not 0 or 1"),
    ],
)
def test_bad_binary_file(layout: Path, line: str, message: str):
    p = layout / stress_predict.BINARY_FILE
    lines = p.read_text().splitlines()
    lines[4] = line
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=message):
        stress_predict.read_binary_labels(p)


def test_corrupt_signal_stops_with_line(layout: Path):
    p = layout / "Raw_data" / "S02" / "HR.csv"
    lines = p.read_text().splitlines()
    lines[10] = "7O.00"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"S02/HR\.csv:11: '7O\.00' is not a number; expected one number per line"):
        stress_predict.load(path=str(layout))


# ---- the real data (../shared/data/stress-predict) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def binary():
    start = time.perf_counter()
    data = stress_predict.load(path=str(SHARED))
    data.params["load_s"] = time.perf_counter() - start
    return data


@pytest.fixture(scope="module")
def phases():
    return stress_predict.load(path=str(SHARED), task="phases")


@needs_shared
def test_real_binary_facts(binary):
    assert len(binary.subjects) == 28 and binary.skipped == {}
    assert binary.subject_ids() == [f"S{i:02d}" for i in range(1, 29)]
    assert binary.params["load_s"] < 30  # measured ≈ 1 s on 2 cores
    for rec in binary.subjects:
        assert rec.rates == {"bvp": 64.0, "hr": 1.0}
        assert rec.offsets["bvp"] == 0.0 and rec.offsets["hr"] == 10.0
        assert 3000 < rec.duration_s() < 3600 and rec.label_rate == 1.0
    labels = np.concatenate([r.labels[r.labels != UNLABELLED] for r in binary.subjects])
    assert 0.31 < labels.mean() < 0.35  # ≈ 33 % stress seconds
    s1, s2 = binary.subjects[:2]
    assert s1.meta["label_source"] == "Time_logs.xlsx" and s1.label_offset == 0.0
    assert 900 < (s1.labels == 1).sum() < 1100  # Stroop 5 + Interview 10 + Hyperventilation 2 min
    assert s2.meta["label_source"].startswith("Improved_All_Combined") and s2.label_offset == 9.0
    assert len(binary.sources) == 3 + 28 * 4  # Time_logs.xlsx and .csv, binary file, BVP/HR/IBI/tags per subject


@needs_shared
def test_real_ibi_gaps_are_kept(binary):
    s1 = binary.subjects[0]
    rows = (SHARED / "Raw_data" / "S01" / "IBI.csv").read_text().splitlines()[1:]
    ev = s1.events["ibi"]
    assert len(ev) == len(rows) == 1260  # no beat invented
    gaps = np.diff(ev[:, 0]) > ev[1:, 1] + 0.05
    assert gaps.sum() > 50 and ev[0, 0] == pytest.approx(35.484375)


@needs_shared
def test_real_phases(phases):
    assert len(phases.subjects) == 28 and phases.skipped == {}
    for rec in phases.subjects:
        present = set(np.unique(rec.labels[rec.labels != UNLABELLED]).tolist())
        assert present == {0, 1, 2, 3, 4}, rec.subject
        assert abs(rec.meta["phases"][0][2] / 60 + 5) < 3  # the log starts 3-7 min before the E4
    s1 = phases.subjects[0]
    starts = {kind: a for _, kind, a, _ in s1.meta["phases"] if kind}
    assert starts["stroop"] < starts["baseline"] < starts["interview"]  # S01's column out of order


@needs_shared
def test_real_xlsx_equals_the_converted_csv():
    """The authors' spreadsheet and the converted csv give the same phases and times for every subject."""
    xlsx = stress_predict.read_time_logs(SHARED / stress_predict.TIME_LOGS)
    csv = stress_predict.read_time_logs(SHARED / stress_predict.TIME_LOGS_CSV)
    assert sorted(xlsx) == sorted(csv) == [f"S{i:02d}" for i in range(1, 29)]
    for sid in xlsx:
        a, b = xlsx[sid], csv[sid]
        assert (a.date, a.day, a.session_id, a.phases) == (b.date, b.day, b.session_id, b.phases), sid
        assert len(a.phases) == 10, sid


@needs_shared
def test_real_pm_inference():
    logs = stress_predict.read_time_logs(SHARED / stress_predict.TIME_LOGS)
    assert len(logs) == 28
    for sid, log in logs.items():
        t0 = e4.read_signal(SHARED / "Raw_data" / sid / "HR.csv").start - 10
        assert 2 * 60 < t0 - log.start < 8 * 60, sid  # e.g. S08 12:08 → 13:05, S10 01:11 = 13:11
        assert 54 * 60 <= log.end - log.start <= 65 * 60, sid


@needs_shared
def test_real_time_logs_agree_with_authors_labels():
    logs = stress_predict.read_time_logs(SHARED / stress_predict.TIME_LOGS)
    authors = stress_predict.read_binary_labels(SHARED / stress_predict.BINARY_FILE)
    assert sorted(authors) == [f"S{i:02d}" for i in range(2, 29)]
    same, total = 0, 0
    for sid, (first, theirs) in authors.items():
        mine = stress_predict.time_log_labels(logs[sid], "binary", first, len(theirs))
        both = (mine != UNLABELLED) & (theirs != UNLABELLED)
        assert both.mean() > 0.95, sid
        agree = (mine[both] == theirs[both]).mean()
        assert agree > 0.85, (sid, agree)
        same += int((mine[both] == theirs[both]).sum())
        total += int(both.sum())
    assert same / total > 0.94  # measured 0.952 (docs/DATA_FORMATS.md)
