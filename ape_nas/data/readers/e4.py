"""Empatica E4 session folders (the CSV export of E4 connect): signals, beat intervals, tags, and a loader.

One session folder holds one CSV per sensor. Signal files (``BVP.csv``, ``HR.csv``, ``EDA.csv``, ``TEMP.csv``,
``ACC.csv``): line 1 = session start as a unix time (UTC; one value per column, e.g. three for ACC), line 2 = the
sample rate in Hz (again one per column), then one sample per line (ACC: ``x,y,z`` in 1/64 g). ``IBI.csv``:
header ``start, IBI`` (the start unix time and the word IBI), then ``seconds_since_start, ibi_seconds`` for every
beat the device detected; beats it could not detect (movement) are simply absent, so the series has gaps, which
are kept (never filled). ``tags*.csv``: one unix time per button press (possibly none).

Channel names: ``bvp`` (photoplethysmogram), ``hr`` (heart rate, bpm, starts ~10 s after BVP), ``eda`` (µS),
``temp`` (°C), ``acc_x``/``acc_y``/``acc_z`` (1/64 g) and ``ibi`` (beat events, ``events["ibi"]``).
``t0`` of a session is the earliest start of the files read; each channel's own start is kept in ``offsets``.

Error policy: every reader raises :class:`~ape_nas.errors.UserError` with one line naming the file (and line).
Missing or empty/truncated files raise its subclass :class:`NoDataError`; loaders skip such a subject with a
warning and record the reason in ``BenchmarkData.skipped``. Malformed content (a non-numeric row, a bad rate
line) stops the load: the file needs fixing. The layout and label formats are documented in docs/DATA_FORMATS.md.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ape_nas.data.ids import natural_sorted
from ape_nas.data.readers import params
from ape_nas.data.readers.labels import (
    UNIX_MIN,
    Interval,
    check_subjects,
    intervals_to_labels,
    read_interval_table,
)
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import UserError
from ape_nas.schema import Field

NAME = "e4"
VERSION = 2  # 2: subjects in natural order of their ids (S2 before S10)
PATH_PARAMS = ("path", "labels")  # parameters naming raw data files or folders (content-hashed for caching)

E4_LAYOUT = "an Empatica E4 CSV: line 1 = session start (unix time), line 2 = sample rate (Hz), then samples"

# channel -> (file, column)
SIGNAL_FILES: dict[str, tuple[str, int]] = {
    "bvp": ("BVP.csv", 0),
    "hr": ("HR.csv", 0),
    "eda": ("EDA.csv", 0),
    "temp": ("TEMP.csv", 0),
    "acc_x": ("ACC.csv", 0),
    "acc_y": ("ACC.csv", 1),
    "acc_z": ("ACC.csv", 2),
}
EVENT_FILES: dict[str, str] = {"ibi": "IBI.csv"}
UNITS = {"bvp": "a.u.", "hr": "bpm", "eda": "uS", "temp": "degC", "acc_x": "g/64", "acc_y": "g/64", "acc_z": "g/64"}
CHANNELS = [*SIGNAL_FILES, *EVENT_FILES]
FIELDS = {
    "path": params.path("a folder of per-subject E4 session folders"),
    "labels": params.path("label CSV (default <path>/labels.csv)"),
    "channels": Field(list, ["bvp", "hr", "ibi"], check=params.names(CHANNELS)),
    "label_rate": params.positive(1.0, "Hz of the labels built from an interval table"),
    "class_names": Field(list, None, nullable=True, check=params.names()),
    "require_labels": params.REQUIRE_LABELS,
}
# files that make a folder an E4 session folder (one of them is enough)
SESSION_FILES = ("BVP.csv", "HR.csv", "IBI.csv", "EDA.csv", "TEMP.csv", "ACC.csv")


class NoDataError(UserError):
    """A file that is missing, empty or truncated before its first sample: the subject has no usable data."""


@dataclass
class E4Signal:
    """One E4 signal file: start (unix s), rate (Hz) and samples, shape ``(n,)`` or ``(n, columns)``."""

    start: float
    rate: float
    data: np.ndarray
    path: Path


# ---- generic numeric CSV parsing (shared with the folder format) --------------------------------------------------


def _field_count_error(path: Path, skip: int, expected: str) -> UserError:
    """Slow path after a tokenizer error: find the first data line whose number of fields differs."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        rows = csv.reader(fh)
        width = None
        for lineno, row in enumerate(rows, start=1):
            if lineno <= skip or not row:
                continue
            if width is None:
                width = len(row)
            elif len(row) != width:
                return UserError(
                    f"{path}:{lineno}: {len(row)} values, but line {skip + 1} has {width}; expected {expected}"
                )
    return UserError(f"{path}: cannot parse the rows as CSV; expected {expected}")


def read_numbers(path: str | Path, *, skip: int, columns: int | None, expected: str) -> np.ndarray:
    """Numeric CSV rows after ``skip`` header lines → float64 array ``(n, columns)``.

    Every problem names the file and line: a non-numeric or non-finite value, an empty line inside the data, a
    row with the wrong number of values. Blank lines at the end are ignored. ``expected`` says what a row should be.
    """
    p = Path(path)
    try:
        frame = pd.read_csv(
            p,
            header=None,
            skiprows=skip,
            skip_blank_lines=False,
            keep_default_na=False,
            na_values=[""],
            engine="c",
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        return np.empty((0, columns or 1))
    except pd.errors.ParserError:
        raise _field_count_error(p, skip, expected) from None
    except UnicodeDecodeError:
        raise UserError(f"{p}: not a UTF-8 text file; expected {expected}") from None
    empty = frame.isna().all(axis=1).to_numpy()
    n = len(frame) - (int(np.argmin(empty[::-1])) if not empty.all() else len(frame))
    frame = frame.iloc[:n]
    if n == 0:
        return np.empty((0, columns or frame.shape[1]))
    if columns is not None and frame.shape[1] != columns:
        raise UserError(f"{p}:{skip + 1}: {frame.shape[1]} values per line; expected {expected}")
    values = np.empty(frame.shape, dtype=np.float64)
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        if col.dtype == object:
            conv = pd.to_numeric(col.str.strip(), errors="coerce")
            bad = conv.isna().to_numpy() & col.notna().to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise UserError(f"{p}:{skip + i + 1}: {col.iloc[i]!r} is not a number; expected {expected}")
            col = conv
        values[:, j] = col.to_numpy(dtype=np.float64, na_value=np.nan)
    bad_rows = ~np.isfinite(values).all(axis=1)
    if bad_rows.any():
        i = int(np.argmax(bad_rows))
        if empty[i]:
            raise UserError(f"{p}:{skip + i + 1}: empty line inside the data; expected {expected}")
        if frame.iloc[i].isna().any():
            raise UserError(f"{p}:{skip + i + 1}: missing value(s); expected {expected}")
        raise UserError(f"{p}:{skip + i + 1}: non-finite value; expected {expected}")
    return values


def _header_lines(p: Path, what: str) -> tuple[str, str | None]:
    if not p.is_file():
        raise NoDataError(f"{p}: file not found; expected {what}")
    with p.open(encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
        second = fh.readline()
    if not first.strip():
        raise NoDataError(f"{p}: empty file; expected {what}")
    return first.strip(), (second.strip() or None)


def _unix_start(p: Path, text: str) -> tuple[float, int]:
    """Line 1 of an E4 file → (start unix time, number of columns)."""
    cells = [c.strip() for c in text.split(",")]
    try:
        value = float(cells[0])
    except ValueError:
        raise UserError(f"{p}:1: session start {cells[0]!r} is not a number; expected {E4_LAYOUT}") from None
    if not math.isfinite(value) or value < UNIX_MIN:
        raise UserError(
            f"{p}:1: session start {cells[0]!r} is not a unix time (seconds since 1970); expected {E4_LAYOUT}"
        )
    return value, len(cells)


# ---- E4 files ------------------------------------------------------------------------------------------------------


def read_signal(path: str | Path) -> E4Signal:
    """Read one E4 signal file (``BVP.csv``, ``HR.csv``, ``ACC.csv`` …); ``data`` is 1-D for one column."""
    p = Path(path)
    first, second = _header_lines(p, E4_LAYOUT)
    start, width = _unix_start(p, first)
    if second is None:
        raise NoDataError(f"{p}:2: missing the sample-rate line (truncated file?); expected {E4_LAYOUT}")
    rate_text = second.split(",")[0].strip()
    try:
        rate = float(rate_text)
    except ValueError:
        rate = float("nan")
    if not (math.isfinite(rate) and rate > 0):
        raise UserError(
            f"{p}:2: sample rate {rate_text!r} is not a positive number; expected line 2 = sample rate in Hz"
        )
    what = f"{width} comma-separated number(s) per line" if width > 1 else "one number per line"
    data = read_numbers(p, skip=2, columns=width, expected=what)
    if len(data) == 0:
        raise NoDataError(f"{p}: no samples after the 2-line header (truncated file?); expected {E4_LAYOUT}")
    return E4Signal(start=start, rate=rate, data=data[:, 0] if width == 1 else data, path=p)


def read_ibi(path: str | Path) -> tuple[float, np.ndarray]:
    """Read ``IBI.csv`` → (start unix time, ``(n, 2)`` array of (beat time in s after start, interval in s)).

    Only the beats in the file: where the device detected none, the series has gaps (none are invented). A file
    with the header only (no beat detected) gives an empty ``(0, 2)`` array.
    """
    p = Path(path)
    layout = "IBI.csv: header 'start, IBI', then 'seconds_since_start, ibi_seconds' per beat"
    first, _ = _header_lines(p, layout)
    start, _ = _unix_start(p, first)
    beats = read_numbers(p, skip=1, columns=2, expected=layout)
    if len(beats):
        bad = np.flatnonzero(beats[:, 1] <= 0)
        if bad.size:
            raise UserError(f"{p}:{int(bad[0]) + 2}: interval {beats[bad[0], 1]} s is not positive; expected {layout}")
        back = np.flatnonzero(np.diff(beats[:, 0]) <= 0)
        if back.size:
            raise UserError(f"{p}:{int(back[0]) + 3}: beat time does not increase; expected {layout}")
    return start, beats


def read_tags(path: str | Path) -> np.ndarray:
    """Read a ``tags*.csv`` file → unix times of the button presses (possibly none)."""
    p = Path(path)
    if not p.is_file():
        raise NoDataError(f"{p}: file not found; expected one unix time per line")
    times = read_numbers(p, skip=0, columns=1, expected="one unix time per line")[:, 0]
    low = np.flatnonzero(times < UNIX_MIN)
    if low.size:
        raise UserError(f"{p}:{int(low[0]) + 1}: {times[low[0]]} is not a unix time; expected one unix time per line")
    return times


def read_session(
    folder: str | Path, channels: Sequence[str] = ("bvp", "hr", "ibi"), subject: str | None = None
) -> SubjectRecording:
    """Read the chosen channels of one E4 session folder into a :class:`SubjectRecording` without labels.

    ``t0`` is the earliest start of the files read, ``offsets`` every signal's start after it (HR ≈ 10 s);
    ``events["ibi"]`` holds the detected beats. Button presses (``tags*.csv``) go to ``meta["tags"]`` in seconds
    after ``t0``; ``meta["files"]`` lists every file read. ``labels`` is empty (``label_rate`` 1 Hz).
    """
    root = Path(folder)
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise UserError(
            f"E4 channel(s) {', '.join(map(repr, unknown))} unknown; expected some of {', '.join(CHANNELS)}"
        )
    if not channels:
        raise UserError(f"no channels chosen for {root}; expected some of {', '.join(CHANNELS)}")
    files: dict[str, E4Signal] = {}
    starts, signals, rates, event_raw = {}, {}, {}, {}
    for ch in channels:
        if ch in EVENT_FILES:
            p = root / EVENT_FILES[ch]
            start, beats = read_ibi(p)
            event_raw[ch] = (start, beats)
            starts[ch] = start
            continue
        name, col = SIGNAL_FILES[ch]
        if name not in files:
            files[name] = read_signal(root / name)
        sig = files[name]
        x = sig.data if sig.data.ndim == 1 else sig.data[:, col]
        signals[ch] = np.ascontiguousarray(x, dtype=np.float32)
        rates[ch] = sig.rate
        starts[ch] = sig.start
    t0 = min(starts.values())
    offsets = {ch: float(starts[ch] - t0) for ch in signals}
    events = {}
    for ch, (start, beats) in event_raw.items():
        ev = beats.copy()
        ev[:, 0] += start - t0
        events[ch] = ev
    read = [str(f.path) for f in files.values()] + [str(root / EVENT_FILES[c]) for c in event_raw]
    tags = []
    for tag_file in sorted(root.glob("tags*.csv")):
        tags.append(read_tags(tag_file))
        read.append(str(tag_file))
    meta: dict[str, Any] = {
        "device": "Empatica E4",
        "folder": str(root),
        "units": {ch: UNITS[ch] for ch in signals} | ({"ibi": "s"} if "ibi" in events else {}),
        "tags": np.sort(np.concatenate(tags)) - t0 if tags else np.empty(0),
        "files": read,
    }
    return SubjectRecording(
        subject=subject or root.name,
        signals=signals,
        rates=rates,
        labels=np.empty(0, dtype=np.int64),
        label_rate=1.0,
        meta=meta,
        offsets=offsets,
        t0=t0,
        events=events,
    )


# ---- labels for the loader -----------------------------------------------------------------------------------------


@dataclass
class SecondLabels:
    """A per-second label table: one row per (subject, second)."""

    path: Path
    subject: np.ndarray  # str
    time: np.ndarray  # float: seconds after t0 (< 1e9) or unix seconds
    label: np.ndarray  # str
    line: np.ndarray  # int: line in the file


def _label_sort(names: set[str]) -> list[str]:
    """Sorted class names; numerically when every name is an integer ("2" before "10")."""
    try:
        return sorted(names, key=int)
    except ValueError:
        return sorted(names)


def read_second_labels(path: str | Path) -> SecondLabels:
    """Read a per-second label CSV with header ``subject,time,label``: row = label of ``[time, time + 1)``.

    ``time`` is seconds after the recording start, a unix time (≥ 1e9) or an ISO-8601 date-time (UTC unless it
    carries an offset); other columns are ignored.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: label file not found")
    layout = "header subject,time,label, then one row per labelled second"
    try:
        frame = pd.read_csv(p, dtype=str, keep_default_na=False, skip_blank_lines=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise UserError(f"{p}: empty file; expected {layout}") from None
    except pd.errors.ParserError:
        raise _field_count_error(p, 1, layout) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("subject", "time", "label") if c not in frame.columns]
    if missing:
        raise UserError(f"{p}:1: header lacks column(s) {', '.join(missing)}; expected {layout}")
    frame = frame.fillna("")
    lines = np.arange(len(frame)) + 2
    blank = (frame[["subject", "time", "label"]].apply(lambda c: c.str.strip()) == "").all(axis=1).to_numpy()
    frame, lines = frame[~blank], lines[~blank]
    subject = frame["subject"].str.strip().to_numpy(dtype=str)
    label = frame["label"].str.strip().to_numpy(dtype=str)
    text = frame["time"].str.strip()
    time = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    nan = np.isnan(time)
    if nan.any():
        iso = pd.to_datetime(text[nan], errors="coerce", utc=True, format="ISO8601")
        ok = iso.notna().to_numpy()
        if not ok.all():
            i = int(np.flatnonzero(nan)[np.argmin(ok)])
            raise UserError(
                f"{p}:{lines[i]}: time {text.iloc[i]!r} is not a time; expected seconds, a unix time or ISO-8601"
            )
        time[nan] = iso.astype("int64").to_numpy() / 1e9
    for name, col in (("subject", subject), ("label", label)):
        empty = np.flatnonzero(col == "")
        if empty.size:
            raise UserError(f"{p}:{lines[empty[0]]}: empty {name}; expected {layout}")
    if not np.isfinite(time).all():
        i = int(np.argmin(np.isfinite(time)))
        raise UserError(f"{p}:{lines[i]}: time is not finite; expected {layout}")
    return SecondLabels(p, subject, time, label, lines)


def second_labels_for(
    table: SecondLabels, subject: str, class_names: list[str], t0: float | None, duration_s: float
) -> tuple[np.ndarray, float]:
    """One subject's rows → (per-second labels, label_offset in s after ``t0``), clipped to ``[0, duration_s)``."""
    p = table.path
    rows = np.flatnonzero(table.subject == subject)
    if rows.size == 0:
        return np.empty(0, dtype=np.int64), 0.0
    time, lab, lines = table.time[rows], table.label[rows], table.line[rows]
    absolute = time >= UNIX_MIN
    if absolute.any() and not absolute.all():
        i = int(np.argmax(absolute != absolute[0]))
        raise UserError(f"{p}:{lines[i]}: subject {subject} mixes seconds after the start and absolute times")
    if absolute.all():
        if t0 is None:
            raise UserError(f"{p}:{lines[0]}: absolute times need a recording start time; use seconds after the start")
        time = time - t0
    unknown = ~np.isin(lab, class_names)
    if unknown.any():
        i = int(np.argmax(unknown))
        raise UserError(
            f"{p}:{lines[i]}: label {str(lab[i])!r} is not a class; expected one of {', '.join(class_names)}"
        )
    pos = time - time.min()
    off = np.abs(pos - np.round(pos)) > 1e-3
    if off.any():
        i = int(np.argmax(off))
        raise UserError(f"{p}:{lines[i]}: time is not on the 1-second grid of the subject's first row")
    inside = (time >= -1e-6) & (time < duration_s)
    time, lab, lines = time[inside], lab[inside], lines[inside]
    if time.size == 0:
        return np.empty(0, dtype=np.int64), 0.0
    first = max(0.0, float(time.min()))
    idx = np.round(time - first).astype(np.int64)
    codes = pd.Series(lab).map({c: k for k, c in enumerate(class_names)}).to_numpy(dtype=np.int64)
    out = np.full(int(idx.max()) + 1, UNLABELLED, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    sidx, scodes = idx[order], codes[order]
    dup = np.flatnonzero((np.diff(sidx) == 0) & (np.diff(scodes) != 0))
    if dup.size:
        raise UserError(f"{p}:{lines[order[dup[0] + 1]]}: second labelled twice with different labels")
    out[sidx] = scodes
    return out, first


def _is_interval_table(path: Path) -> bool:
    if not path.is_file():
        raise UserError(f"{path}: label file not found")
    with path.open(encoding="utf-8-sig", errors="replace") as fh:
        header = [h.strip().lower() for h in fh.readline().split(",")]
    if "start" in header and "end" in header:
        return True
    if "time" in header:
        return False
    raise UserError(
        f"{path}:1: header has neither start,end nor time; expected subject,start,end,label (intervals) "
        "or subject,time,label (one label per second)"
    )


def path_param(loader: str, path: Any, expected: str) -> Path:
    """Validate a loader's ``path`` parameter: an existing folder (errors say what is expected there)."""
    if path is None:
        raise UserError(
            f"{loader}: no path; set data.params.path to {expected} (on the command line: give the folder, "
            "or --set path=FOLDER)"
        )
    if not isinstance(path, str | Path):
        raise UserError(f"{loader}: path must be a string, got {path!r}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"{loader}: {root}: folder not found; expected {expected}")
    return root


def skip_subject(skipped: dict[str, str], name: str, subject: str, reason: str) -> None:
    """Record and announce a subject a loader cannot use (never silent)."""
    skipped[subject] = reason
    warnings.warn(f"{name}: skipping subject {subject}: {reason}", UserWarning, stacklevel=3)


def _read_labels(label_path: Path, known: list[str]) -> tuple[list[Interval] | None, SecondLabels | None, set[str]]:
    """A label table of either kind (interval or per-second), checked against the subject ids in the data."""
    if _is_interval_table(label_path):
        intervals = read_interval_table(label_path)
        check_subjects(intervals, known, label_path)
        return intervals, None, {iv.label for iv in intervals}
    second = read_second_labels(label_path)
    unknown = np.flatnonzero(~np.isin(second.subject, known))
    if unknown.size:
        i = int(unknown[0])
        raise UserError(
            f"{label_path}:{second.line[i]}: subject {str(second.subject[i])!r} is not in the data; "
            f"known: {', '.join(known)}"
        )
    return None, second, set(second.label.tolist())


def e4(
    *,
    path: str | None = None,
    labels: str | None = None,
    channels: Sequence[str] = ("bvp", "hr", "ibi"),
    label_rate: float = 1.0,
    class_names: Sequence[str] | None = None,
    require_labels: bool = True,
) -> BenchmarkData:
    """Load a folder of per-subject E4 session folders (sub-folder name = subject id) with labels.

    ``labels`` (default ``<path>/labels.csv``) is an interval table ``subject,start,end,label`` (turned into
    labels at ``label_rate`` Hz from ``t0``) or a per-second table ``subject,time,label`` (1 Hz). Class names are
    ``class_names`` when given, else the table's labels sorted (numerically when all are integers). A subject
    whose files are missing or truncated, or that has no labelled second inside its recording, is skipped with a
    warning and its reason in ``skipped``; a label table naming an unknown subject is an error (file:line).
    Subjects are read in natural order of their ids (S2 before S10).

    ``require_labels=False`` (prediction, inspection): labels are optional. Without a label file every subject is
    read ``UNLABELLED`` (``BenchmarkData.no_labels`` says why), a subject without labelled data is kept rather
    than skipped, and ``path`` may also be one session folder (the folder holds ``BVP.csv`` …; the subject id is
    the folder's name).
    """
    p = params.check(
        {
            "path": path,
            "labels": labels,
            "channels": channels,
            "label_rate": label_rate,
            "class_names": class_names,
            "require_labels": require_labels,
        },
        FIELDS,
    )
    root = path_param(NAME, p["path"], "a folder of per-subject E4 session folders")
    labels, channels, label_rate, class_names = p["labels"], p["channels"], p["label_rate"], p["class_names"]
    require_labels = p["require_labels"]
    single = any((root / f).is_file() for f in SESSION_FILES)
    if single and require_labels:
        raise UserError(f"e4: {root} is one session folder; expected a folder with one E4 session folder per subject")
    if single:
        folders = [root]
    else:
        subs = {d.name: d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
        folders = [subs[name] for name in natural_sorted(subs)]
    if not folders:
        raise UserError(
            f"e4: {root} has no sub-folders; expected one E4 session folder per subject "
            f"(each holding {', '.join(SESSION_FILES[:3])} …)"
        )
    known = [d.name for d in folders]
    label_path = Path(labels).expanduser() if labels is not None else root / "labels.csv"
    intervals = second = None
    names: list[str] = list(class_names) if class_names is not None else []
    no_labels = ""
    if labels is not None or label_path.is_file():
        intervals, second, found = _read_labels(label_path, known)
        names = names or _label_sort(found)
        if not names:
            raise UserError(f"{label_path}: no labelled rows; expected at least one")
    elif require_labels:
        raise UserError(f"e4: no labels: {label_path} not found; set data.params.labels to a label CSV")
    else:
        no_labels = (
            f"e4: no label file: {label_path} not found; give one with --set labels=PATH "
            "(a CSV subject,start,end,label or subject,time,label)"
        )
    by_subject: dict[str, list[Interval]] = {}
    for iv in intervals or []:
        by_subject.setdefault(iv.subject, []).append(iv)
    subjects, skipped = [], {}
    table_read = intervals is not None or second is not None
    sources = [str(label_path)] if table_read else []
    for folder in folders:
        sid = folder.name
        try:
            rec = read_session(folder, channels, subject=sid)
        except NoDataError as err:
            skip_subject(skipped, NAME, sid, str(err))
            continue
        sources += rec.meta.pop("files")
        duration = rec.duration_s()
        if not table_read:
            rec.set_unlabelled(label_rate)
            subjects.append(rec)
            continue
        if intervals is not None:
            has_rows = sid in by_subject
            lab = intervals_to_labels(by_subject.get(sid, []), names, rec.t0, duration, label_rate, label_path)
            rec.labels, rec.label_rate, rec.label_offset = lab, float(label_rate), 0.0
        else:
            assert second is not None
            has_rows = bool(np.any(second.subject == sid))
            lab, first = second_labels_for(second, sid, names, rec.t0, duration)
            rec.labels, rec.label_rate, rec.label_offset = lab, 1.0, first
        if not rec.is_labelled():
            why = "has no rows" if not has_rows else "has rows only outside the recording"
            reason = f"no labelled data: {label_path} {why} for it (0-{duration:.0f} s)"
            if require_labels:
                skip_subject(skipped, NAME, sid, reason)
                continue
            rec.set_unlabelled(label_rate)
            rec.meta["no_labels"] = reason
        subjects.append(rec)
    if not subjects:
        raise UserError(f"e4: no usable subject in {root}: " + "; ".join(f"{s}: {r}" for s, r in skipped.items()))
    if table_read and not any(rec.is_labelled() for rec in subjects):
        no_labels = f"e4: {label_path} labels no second inside any recording"
    out = {
        "path": str(root),
        "labels": str(label_path) if table_read else None,
        "channels": list(channels),
        "label_rate": label_rate,
    }
    return BenchmarkData(NAME, subjects, names, params=out, sources=sources, skipped=skipped, no_labels=no_labels)
