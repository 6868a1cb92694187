"""The ``wfdb`` reader: the real drivedb records (skipped when ../shared/data is absent) and generated records."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import numpy as np
import pytest
import wfdb
from _common import needs_shared

from ape_nas.data.readers import wfdb_reader
from ape_nas.data.readers.wfdb.markers import find_markers
from ape_nas.data.readers.wfdb.names import normalise_names
from ape_nas.data.readers.wfdb.subjects import RECORD_GAP_S
from ape_nas.data.readers.wfdb_reader import load
from ape_nas.data.types import UNLABELLED
from ape_nas.errors import KeyedError, UserError

DRIVEDB = Path(__file__).resolve().parents[2] / "shared" / "data" / "drivedb"
needs_drivedb = needs_shared(DRIVEDB / "drive17a.hea")  # skipped when absent; fails in CI

DRIVE17 = {"drive17a": [None, "rest", "city"], "drive17b": ["city", "rest", None]}


def test_module_constants():
    assert wfdb_reader.NAME == "wfdb" and wfdb_reader.VERSION == 1


# ---- real drivedb -------------------------------------------------------------------------------------------------

SPF = {"ecg": 32, "emg": 1, "foot_gsr": 2, "hand_gsr": 2, "hr": 1, "marker": 1, "resp": 2}
FRAMES = {"drive17a": 26132, "drive17b": 23655}
HEADER_FS = {"drive17a": 15.0, "drive17b": 15.5}


@needs_drivedb
@pytest.mark.shared_data
def test_drivedb_records_channels_rates_durations():
    data = load(path=str(DRIVEDB))
    assert data.subject_ids() == ["drive17a", "drive17b"] and data.skipped == {}
    assert data.class_names == []
    assert sorted(Path(s).name for s in data.sources) == [
        "drive17a.dat",
        "drive17a.hea",
        "drive17b.dat",
        "drive17b.hea",
    ]
    for rec in data.subjects:
        fs = HEADER_FS[rec.subject]
        assert list(rec.signals) == list(SPF)
        assert rec.meta["channel_names"] == {
            "ecg": "ECG",
            "emg": "EMG",
            "foot_gsr": "foot GSR",
            "hand_gsr": "hand GSR",
            "hr": "HR",
            "marker": "marker",
            "resp": "RESP",
        }
        for ch, spf in SPF.items():
            assert rec.rates[ch] == fs * spf
            assert len(rec.signals[ch]) == FRAMES[rec.subject] * spf
            assert rec.signals[ch].dtype == np.float32 and np.isfinite(rec.signals[ch]).all()
        assert rec.duration_s() == pytest.approx(FRAMES[rec.subject] / fs)
        assert 60 < float(np.median(rec.signals["hr"])) < 90  # bpm
        assert (rec.labels == UNLABELLED).all() and rec.t0 is None
    b = data.subjects[1]
    assert b.rates["ecg"] == 496.0 and b.duration_s() == pytest.approx(1526.13, abs=0.01)
    assert data.subjects[0].rates["ecg"] == 480.0  # drive17a's header says 15 Hz frames


@needs_drivedb
@pytest.mark.shared_data
def test_drivedb_marker_events_and_segments():
    data = load(path=str(DRIVEDB), labels="marker", marker_classes=DRIVE17, channels=["ECG", "marker"])
    assert data.class_names == ["rest", "city"]
    a, b = (rec.meta["records"][0] for rec in data.subjects)
    assert a["markers_s"] == pytest.approx([26.7, 956.7], abs=0.5)
    assert b["markers_s"] == pytest.approx([610.3, 1509.9], abs=0.5)
    # header rates: drive17a's rest lasts 930 s, drive17b's 900 s
    assert [g["class"] for g in a["segments"]] == [None, "rest", "city"]
    rest_a, rest_b = a["segments"][1], b["segments"][1]
    assert rest_a["end_s"] - rest_a["start_s"] == pytest.approx(930, abs=1)
    assert rest_b["end_s"] - rest_b["start_s"] == pytest.approx(900, abs=1)
    rec = data.subjects[0]
    assert rec.label_rate == 480.0 and len(rec.labels) == len(rec.signals["ecg"])
    i = round(500 * rec.label_rate)
    assert rec.labels[i] == 0 and rec.labels[round(1200 * rec.label_rate)] == 1 and rec.labels[0] == UNLABELLED


@needs_drivedb
@pytest.mark.shared_data
def test_drivedb_one_driver_with_fs_override():
    data = load(
        path=str(DRIVEDB),
        labels="marker",
        marker_classes=DRIVE17,
        channels=["ecg", "hand_gsr"],
        subject_of=r"^drive\d+",
        fs_override={"drive17a": 15.5},
    )
    assert data.subject_ids() == ["drive17"]
    rec = data.subjects[0]
    assert rec.rates == {"ecg": 496.0, "hand_gsr": 31.0}
    parts = rec.meta["records"]
    assert [p["record"] for p in parts] == ["drive17a", "drive17b"]
    assert parts[0]["header_fs"] == 15.0 and parts[0]["fs"] == 15.5
    gap_start = parts[0]["duration_s"]
    assert parts[1]["start_s"] == pytest.approx(gap_start + RECORD_GAP_S)
    # with 15.5 Hz both rest periods last the protocol's 15 minutes
    for p in parts:
        rest = p["segments"][1]
        assert rest["class"] == "rest" and rest["end_s"] - rest["start_s"] == pytest.approx(900, abs=1)
    mid = gap_start + RECORD_GAP_S / 2
    assert np.isnan(rec.signals["ecg"][round(mid * 496)]) and rec.labels[round(mid * 496)] == UNLABELLED
    assert rec.duration_s() == pytest.approx(parts[1]["start_s"] + parts[1]["duration_s"], abs=0.01)
    counts = np.bincount(rec.labels[rec.labels >= 0], minlength=2)
    assert counts[0] / 496 == pytest.approx(1800, abs=2)  # two 15-minute rests


@needs_drivedb
@pytest.mark.shared_data
def test_drivedb_join_needs_equal_rates():
    with pytest.raises(UserError, match="fs_override"):
        load(path=str(DRIVEDB), channels=["ecg"], subject_of={"drive17a": "d17", "drive17b": "d17"})


@needs_drivedb
@pytest.mark.shared_data
def test_drivedb_route_preset_skips_partial_records():
    with (
        pytest.warns(UserWarning, match=r"skipping record drive17[ab]: marker_classes 'drivedb' needs 6 or 8"),
        pytest.raises(UserError, match="no usable record"),
    ):
        load(path=str(DRIVEDB), labels="marker", marker_classes="drivedb", channels=["hr"])


# ---- generated records --------------------------------------------------------------------------------------------


def write_record(
    folder: Path,
    name: str,
    *,
    fs: float = 10.0,
    seconds: float = 60.0,
    spf: tuple[int, ...] = (4, 1),
    names: tuple[str, ...] = ("ECG", "foot GSR"),
    start: dt.datetime | None = None,
    marker_at: tuple[float, ...] | None = None,
) -> Path:
    """A record with one channel per name (the first ``spf[i]`` samples per frame), optionally a marker channel."""
    n = round(seconds * fs)
    rng = np.random.default_rng(len(name))
    e = [rng.integers(-500, 500, size=n * k) for k in spf]
    spf, names = list(spf), list(names)
    if marker_at is not None:
        m = np.full(n, 1000) + rng.integers(-20, 20, size=n)
        for t in marker_at:
            i = round(t * fs)
            m[i : i + 3] = 4000
        e.append(m)
        spf.append(1)
        names.append("marker")
    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"] * len(e),
        sig_name=names,
        e_d_signal=e,
        samps_per_frame=spf,
        fmt=["16"] * len(e),
        adc_gain=[100.0] * len(e),
        baseline=[0] * len(e),
        write_dir=str(folder),
        base_datetime=start,
    )
    return folder / f"{name}.hea"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    folder = tmp_path / "db"
    folder.mkdir()
    write_record(folder, "rec1", start=dt.datetime(2020, 1, 2, 3, 4, 5))
    write_record(folder, "rec2")
    return folder


def test_multifrequency_record_roundtrip(db: Path):
    data = load(path=str(db))
    assert data.subject_ids() == ["rec1", "rec2"]
    rec = data.subjects[0]
    assert rec.rates == {"ecg": 40.0, "foot_gsr": 10.0}
    assert len(rec.signals["ecg"]) == 2400 and len(rec.signals["foot_gsr"]) == 600
    raw = wfdb.rdrecord(str(db / "rec1"), smooth_frames=False)
    np.testing.assert_allclose(rec.signals["ecg"], raw.e_p_signal[0], rtol=1e-6)
    assert rec.t0 == dt.datetime(2020, 1, 2, 3, 4, 5, tzinfo=dt.UTC).timestamp()
    assert data.subjects[1].t0 is None
    assert rec.meta["channel_names"] == {"ecg": "ECG", "foot_gsr": "foot GSR"}
    # channels by either name form; the label rate follows the fastest loaded channel
    only = load(path=str(db / "rec2.hea"), channels=["foot GSR"])  # one record's header works too
    assert list(only.subjects[0].signals) == ["foot_gsr"] and only.subjects[0].label_rate == 10.0


def test_normalise_names():
    assert normalise_names(["ECG", "foot GSR", "Resp.", "2 x", "ecg", "", "MLII"]) == [
        "ecg",
        "foot_gsr",
        "resp",
        "ch_2_x",
        "ecg_2",
        "ch",
        "mlii",
    ]


def test_invalid_samples_become_nan(tmp_path: Path):
    d = np.arange(100, dtype=np.int64)
    d[10:20] = -32768
    wfdb.wrsamp(
        "r",
        fs=10,
        units=["mV"],
        sig_name=["ECG"],
        d_signal=d.reshape(-1, 1),
        fmt=["16"],
        adc_gain=[10.0],
        baseline=[0],
        write_dir=str(tmp_path),
    )
    x = load(path=str(tmp_path)).subjects[0].signals["ecg"]
    assert np.isnan(x[10:20]).all() and x[20] == pytest.approx(2.0)


def _annotate(folder: Path, name: str, samples, symbols, notes, fs=None, ext="atr"):
    wfdb.wrann(name, ext, np.asarray(samples), symbol=list(symbols), aux_note=list(notes), fs=fs, write_dir=str(folder))


def test_annotation_labels(db: Path):
    # frames at 10 Hz: (A at 5 s, a beat (ignored), (B at 20 s, ~ (unlabelled) at 30 s, (A at 40 s
    _annotate(db, "rec1", [50, 100, 200, 300, 400], ["+", "N", "+", "~", "+"], ["(A", "", "(B", "", "(A"])
    mapping = {"(A": "alpha", "(B": "beta", "~": None}
    data = load(path=str(db), records=["rec1"], labels="annotations", annotation_classes=mapping)
    assert data.class_names == ["alpha", "beta"]
    rec = data.subjects[0]
    assert rec.label_rate == 40.0 and len(rec.labels) == 2400
    at = lambda t: rec.labels[round(t * 40)]  # noqa: E731
    assert [at(1), at(6), at(15), at(25), at(35), at(45), at(59.9)] == [-1, 0, 0, 1, -1, 0, 0]
    assert any(s.endswith("rec1.atr") for s in data.sources)
    # classes selects and orders: beta only, alpha becomes unlabelled
    only = load(path=str(db), records=["rec1"], labels="annotations", annotation_classes=mapping, classes=["beta"])
    assert only.class_names == ["beta"] and set(np.unique(only.subjects[0].labels)) == {-1, 0}


def test_annotation_time_resolution_and_overrun(db: Path):
    _annotate(db, "rec1", [50, 100], ["+", "+"], ["(A", "(B"], fs=40)  # the ECG rate: a high-resolution file
    rec = load(path=str(db), records=["rec1"], labels="annotations", annotation_classes={"(A": "a", "(B": "b"})
    assert rec.subjects[0].labels[(2 * 40)] == 0 and rec.subjects[0].labels[round(1.0 * 40)] == -1
    _annotate(db, "rec1", [50, 100], ["+", "+"], ["(A", "(B"], fs=123)
    with pytest.raises(UserError, match=r"rec1\.atr: time resolution 123 Hz.*contradict"):
        load(path=str(db), records=["rec1"], labels="annotations", annotation_classes={"(A": "a"})
    _annotate(db, "rec2", [50, 5000], ["+", "+"], ["(A", "(B"])
    with pytest.raises(UserError, match=r"rec2\.atr: an annotation lies at 500\.0 s, after the record's end"):
        load(path=str(db), records=["rec2"], labels="annotations", annotation_classes={"(A": "a"})


def test_annotation_errors(db: Path):
    with pytest.raises(UserError, match=r"rec2\.atr: annotation file not found"):
        load(path=str(db), records=["rec2"], labels="annotations", annotation_classes={"(A": "a"})
    with pytest.raises(UserError, match="needs annotation_classes"):
        load(path=str(db), labels="annotations")
    (db / "rec2.atr").write_bytes(b"\x01")
    with pytest.raises(UserError, match=r"rec2\.atr: not a readable WFDB annotation file"):
        load(path=str(db), records=["rec2"], labels="annotations", annotation_classes={"(A": "a"})


def test_record_without_labels_is_skipped(db: Path):
    _annotate(db, "rec1", [50], ["+"], ["(A"])
    _annotate(db, "rec2", [50], ["N"], [""])
    with pytest.warns(UserWarning, match="skipping record rec2: no labelled samples"):
        data = load(path=str(db), labels="annotations", annotation_classes={"(A": "a"})
    assert data.subject_ids() == ["rec1"] and "rec2" in data.skipped
    _annotate(db, "rec1", [50], ["N"], [""])
    with pytest.warns(UserWarning), pytest.raises(UserError, match="no usable record"):
        load(path=str(db), labels="annotations", annotation_classes={"(A": "a"})


def test_table_labels(db: Path, tmp_path: Path):
    table = tmp_path / "labels.csv"
    table.write_text(
        "subject,start,end,label\nrec1,0,10,calm\nrec1,2020-01-02T03:04:25,2020-01-02T03:04:35,tense\nrec2,30,40,tense\n"
    )
    data = load(path=str(db), labels="table", label_table=str(table))
    assert data.class_names == ["calm", "tense"] and str(table) in data.sources
    r1, r2 = data.subjects
    assert r1.labels[(5 * 40)] == 0 and r1.labels[(25 * 40)] == 1 and r1.labels[(15 * 40)] == -1
    assert r2.labels[(35 * 40)] == 1 and r2.labels[(5 * 40)] == -1
    # rows may name a subject; a subject of several records needs absolute times
    table.write_text("subject,start,end,label\nboth,0,10,calm\n")
    with pytest.raises(UserError, match=r"labels\.csv:2: subject 'both' has several records"):
        load(path=str(db), labels="table", label_table=str(table), subject_of={"rec1": "both", "rec2": "both"})
    table.write_text("subject,start,end,label\nrec1,0,10,calm\nrec9,0,10,calm\n")
    with pytest.raises(UserError, match=r"labels\.csv:3: subject 'rec9' is not in the data"):
        load(path=str(db), labels="table", label_table=str(table))
    with pytest.raises(UserError, match="needs label_table"):
        load(path=str(db), labels="table")


def test_marker_labels_on_generated_record(tmp_path: Path):
    write_record(tmp_path, "m1", seconds=120, marker_at=(20.0, 70.0))
    data = load(path=str(tmp_path), labels="marker", marker_classes=["a", "b", None])
    rec = data.subjects[0]
    assert rec.meta["records"][0]["markers_s"] == pytest.approx([20.1, 70.1], abs=0.2)
    assert [rec.labels[round(t * 40)] for t in (10, 30, 80)] == [0, 1, UNLABELLED]
    with (
        pytest.warns(UserWarning, match=r"2 marker events at \[20\.\d, 70\.\d\] s make 3 segments"),
        pytest.raises(UserError, match="no usable record"),
    ):
        load(path=str(tmp_path), labels="marker", marker_classes=["a", "b"])
    with pytest.raises(UserError, match="needs marker_classes"):
        load(path=str(tmp_path), labels="marker")


def test_find_markers_merges_and_ignores_glitches():
    rate = 10.0
    x = np.full(3000, 5.0)
    x[1000] = 50.0  # one-sample glitch
    x[1500:1503] = 20.0
    x[1540:1543] = 30.0  # 4 s later: same event, higher peak
    x[2500:2502] = 25.0
    assert find_markers(x, rate, 4.0) == pytest.approx([154.0, 250.0])


def test_subject_mapping(db: Path):
    data = load(path=str(db), subject_of={"rec1": "p1", "rec2": "p1"})
    assert data.subject_ids() == ["p1"]
    rec = data.subjects[0]
    assert [r["record"] for r in rec.meta["records"]] == ["rec1", "rec2"]
    assert rec.duration_s() == pytest.approx(60 + RECORD_GAP_S + 60)
    assert np.isnan(rec.signals["foot_gsr"][(90 * 10)])
    assert load(path=str(db), subject_of=r"^rec").subject_ids() == ["rec"]
    assert load(path=str(db), subject_of=r"^(r)ec1").subject_ids() == ["r", "rec2"]
    with pytest.raises(UserError, match="subject_of names record"):
        load(path=str(db), subject_of={"rec7": "p"})
    with pytest.raises(UserError, match="not a regular expression"):
        load(path=str(db), subject_of="(")


def test_records_file_and_missing_records(db: Path):
    (db / "RECORDS").write_text("rec1\nrec2\nrec3\n")
    with pytest.warns(UserWarning, match="skipping record rec3"):
        data = load(path=str(db))
    assert data.subject_ids() == ["rec1", "rec2"] and "rec3" in data.skipped
    assert str(db / "RECORDS") in data.sources
    with pytest.raises(UserError, match=r"record\(s\) 'rec3' not found"):
        load(path=str(db), records=["rec3"])


def test_channel_selection_errors(db: Path, tmp_path: Path):
    with pytest.warns(UserWarning, match="skipping record"), pytest.raises(UserError, match=r"resp in no record"):
        load(path=str(db), channels=["resp"])
    write_record(db, "rec3", names=("ECG", "Resp"))
    with pytest.warns(UserWarning, match=r"skipping record rec[12]: no channel\(s\) resp"):
        data = load(path=str(db), channels=["resp"])
    assert data.subject_ids() == ["rec3"]


# ---- bad input ----------------------------------------------------------------------------------------------------


def test_bad_paths(db: Path, tmp_path: Path):
    with pytest.raises(KeyedError, match=r"^data\.params\.path: required: the folder holding the database's \.hea"):
        load()
    with pytest.raises(UserError, match="not found"):
        load(path=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"rec1\.dat: is not a \.hea file or a folder"):
        load(path=str(db / "rec1.dat"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no WFDB records"):
        load(path=str(empty))
    with pytest.raises(UserError, match="fs_override names record"):
        load(path=str(db), fs_override={"nope": 10})
    with pytest.raises(UserError, match="never occur"):
        load(path=str(db), labels="marker", marker_classes=["a", "b"], classes=["c"])
    assert load(path=db, records=("rec1",)).subject_ids() == ["rec1"]  # a Path and a tuple are fine


@pytest.mark.parametrize(
    ("bad", "key", "problem"),
    [
        ({"path": ""}, "path", "required: the folder holding the database's .hea and .dat files"),
        ({"records": "rec1"}, "records", "expected a list, got 'rec1'"),
        ({"channels": ["ecg", ""]}, "channels", "expected names (strings), got ['ecg', '']"),
        ({"records": ["rec1", "rec1"]}, "records", "lists a name twice"),
        ({"classes": ["a", "a"]}, "classes", "lists a name twice: ['a', 'a']"),
        ({"labels": "auto"}, "labels", "expected one of none, annotations, marker, table, got 'auto'"),
        ({"subject_of": 3}, "subject_of", "expected a mapping record -> subject or a regular expression, got 3"),
        ({"subject_of": {"rec1": ""}}, "subject_of", "rec1 must be a subject id, got ''"),
        ({"subject_of": "("}, "subject_of", "'(' is not a regular expression"),
        ({"annotator": ""}, "annotator", "expected a non-empty string"),
        ({"labels": "annotations"}, "annotation_classes", "labels 'annotations' needs annotation_classes"),
        ({"labels": "annotations", "annotation_classes": {}}, "annotation_classes", "labels 'annotations' needs"),
        ({"annotation_classes": {"(A": 1}}, "annotation_classes", "(A must be a class name or null, got 1"),
        ({"marker_channel": ""}, "marker_channel", "expected a non-empty string"),
        ({"labels": "marker"}, "marker_classes", "labels 'marker' needs marker_classes"),
        ({"marker_classes": "route"}, "marker_classes", "expected a list, a mapping or 'drivedb', got 'route'"),
        ({"marker_classes": []}, "marker_classes", "expected a non-empty list of class names or nulls, got []"),
        ({"marker_classes": {"rec1": ["a", 2]}}, "marker_classes", "rec1: expected class names or nulls"),
        ({"marker_threshold": 0}, "marker_threshold", "expected a positive number, got 0.0"),
        ({"marker_threshold": float("inf")}, "marker_threshold", "expected a positive number, got inf"),
        ({"marker_threshold": True}, "marker_threshold", "expected a number, got true"),
        ({"labels": "table"}, "label_table", "labels 'table' needs label_table"),
        ({"fs_override": {"rec1": 0}}, "fs_override", "rec1 must be a positive frame rate in Hz, got 0"),
        ({"fs_override": {"rec1": "15.5"}}, "fs_override", "rec1 must be a positive frame rate in Hz, got '15.5'"),
        ({"fs_override": [15.5]}, "fs_override", "expected a mapping, got a list"),
        ({"require_labels": "no"}, "require_labels", "expected true or false, got 'no'"),
    ],
)
def test_bad_params(db: Path, bad: dict, key: str, problem: str):
    with pytest.raises(KeyedError, match=re.escape(f"data.params.{key}: {problem}")) as err:
        load(**{"path": str(db), **bad})
    assert err.value.keys == [("data", "params", key)]


@pytest.mark.parametrize("fmt", ["16", "212"])
def test_truncated_dat(tmp_path: Path, fmt: str):
    d = np.arange(-300, 301, dtype=np.int64).reshape(-1, 1)  # 601 samples: format 212 ends on a half word
    wfdb.wrsamp(
        "r",
        fs=10,
        units=["mV"],
        sig_name=["ECG"],
        d_signal=d,
        fmt=[fmt],
        adc_gain=[10.0],
        baseline=[0],
        write_dir=str(tmp_path),
    )
    assert load(path=str(tmp_path)).subjects[0].signals["ecg"][-1] == pytest.approx(30.0)
    dat = tmp_path / "r.dat"
    os.truncate(dat, dat.stat().st_size - 3)
    with pytest.raises(UserError, match=rf"r\.dat: \d+ bytes, but .*r\.hea says 601 frames .*{fmt}.* truncated") as exc:
        load(path=str(tmp_path))
    assert "\n" not in str(exc.value)


def test_missing_dat(db: Path):
    (db / "rec2.dat").unlink()
    with pytest.raises(UserError, match=r"rec2\.dat: data file named by .*rec2\.hea not found"):
        load(path=str(db))


def test_header_contradicting_the_data(db: Path):
    hea = db / "rec2.hea"
    lines = hea.read_text().splitlines()
    lines[0] = lines[0].replace(" 600", " 500")  # header: fewer frames than the file holds
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="contradict the data"):
        load(path=str(db), records=["rec2"])
    lines[0] = lines[0].replace(" 500", " 600")
    lines[1] = lines[1].replace("16x4", "16x3")
    lines[2] = lines[2].replace("16x1", "16x2")  # same bytes per frame, but the samples go to other channels
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"checksum of the data is .* the header says"):
        load(path=str(db), records=["rec2"])


def test_corrupt_data_checksum(db: Path):
    dat = db / "rec1.dat"
    raw = bytearray(dat.read_bytes())
    raw[10] ^= 0xFF
    dat.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"rec1\.hea: signal 1 \(ECG\): checksum"):
        load(path=str(db), records=["rec1"])


def test_bad_header(db: Path):
    (db / "rec2.hea").write_text("rec2 x y z\n")
    with pytest.raises(UserError, match=r"rec2\.hea: not a valid WFDB header"):
        load(path=str(db), records=["rec2"])


# ---- digital → physical: wfdb's conversion gives what the WFDB definition says -----------------------------------


def test_physical_values_follow_the_wfdb_definition(tmp_path: Path):
    """(digital - baseline) / gain per channel (gain 0 read as 200), NaN where the format's "no sample" value is,
    float32; a multi-frequency record keeps every sample of every channel."""
    rng = np.random.default_rng(7)
    spf, gains, baselines = [3, 1, 2], [123.4, 7.0, 0.5], [-17, 1000, 3]
    digital = [rng.integers(-30000, 30000, size=50 * k) for k in spf]
    digital[0][[4, 40, 149]] = -32768  # format 16's invalid value
    wfdb.wrsamp(
        "r",
        fs=10,
        units=["mV", "uV", "mS"],
        sig_name=["ECG", "Resp", "EDA"],
        e_d_signal=digital,
        samps_per_frame=spf,
        fmt=["16", "16", "24"],
        adc_gain=gains,
        baseline=baselines,
        write_dir=str(tmp_path),
    )
    hea = tmp_path / "r.hea"
    hea.write_text(hea.read_text().replace("0.5(3)/mS", "0(3)/mS"))  # gain 0: uncalibrated, read as 200
    gains[2] = 200.0
    rec = load(path=str(tmp_path)).subjects[0]
    assert rec.rates == {"ecg": 30.0, "resp": 10.0, "eda": 20.0}
    for ch, d, gain, base in zip(["ecg", "resp", "eda"], digital, gains, baselines, strict=True):
        want = ((d.astype(np.float64) - base) / gain).astype(np.float32)
        want[d == -32768] = np.nan
        got = rec.signals[ch]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)  # bit for bit, NaN where invalid
    assert np.isnan(rec.signals["ecg"][[4, 40, 149]]).all() and np.isfinite(rec.signals["ecg"]).sum() == 147


def test_checksum_written_signed_is_accepted(tmp_path: Path):
    d = np.full((100, 1), 400, dtype=np.int64)  # sum 40000: a 16-bit checksum ≥ 32768
    wfdb.wrsamp(
        "r", fs=10, units=["mV"], sig_name=["ECG"], d_signal=d, fmt=["16"], adc_gain=[10.0], baseline=[0],
        write_dir=str(tmp_path),
    )  # fmt: skip
    hea = tmp_path / "r.hea"
    fields = hea.read_text().splitlines()[1].split()
    assert int(fields[6]) == 40000
    hea.write_text(hea.read_text().replace(" 40000 ", f" {40000 - 65536} "))
    assert load(path=str(tmp_path)).subjects[0].signals["ecg"][0] == pytest.approx(40.0)


def test_multi_segment_record_with_different_gains(tmp_path: Path):
    d = np.arange(200, dtype=np.int64).reshape(100, 2)
    for i, gain in enumerate([10.0, 4.0]):  # wfdb converts each segment with its own gain
        wfdb.wrsamp(
            f"s{i}", fs=10, units=["mV", "mV"], sig_name=["ECG", "X"], d_signal=d, fmt=["16", "16"],
            adc_gain=[gain, 5.0], baseline=[0, 1], write_dir=str(tmp_path),
        )  # fmt: skip
    (tmp_path / "m.hea").write_text("m/2 2 10 200\ns0 100\ns1 100\n")
    (tmp_path / "RECORDS").write_text("m\n")
    data = load(path=str(tmp_path))
    rec = data.subjects[0]
    assert data.subject_ids() == ["m"] and rec.duration_s() == pytest.approx(20.0)
    ecg = np.concatenate([d[:, 0] / 10.0, d[:, 0] / 4.0]).astype(np.float32)
    np.testing.assert_array_equal(rec.signals["ecg"], ecg)
    np.testing.assert_array_equal(rec.signals["x"], np.tile((d[:, 1] - 1) / 5.0, 2).astype(np.float32))
    assert sorted(Path(s).name for s in data.sources) == ["RECORDS", "m.hea", "s0.hea", "s1.hea"]
