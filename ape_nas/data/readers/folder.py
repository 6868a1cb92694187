"""The generic folder format: how a user brings their own recordings (full reference: docs/DATA_FORMATS.md).

::

    my-study/
      dataset.yaml          channels (rate, unit), class names, optional per-subject start times and metadata
      labels.csv            interval table subject,start,end,label (readers.labels format)
      S01/ecg.csv           one file per channel: <channel>.csv or <channel>.npy
      S01/ibi.csv           beat intervals (kind: events): time_s,ibi_s
      S02/...               one sub-folder per subject (folder name = subject id)

``dataset.yaml``::

    name: my-study                  # optional (default: the folder name)
    class_names: [baseline, stress] # required; label index = position
    labels: labels.csv              # optional (default labels.csv), relative to the folder
    label_rate: 1                   # optional, Hz of the per-sample labels built from the table (default 1)
    check_durations: true           # optional: channels of a subject must last about as long as each other
    channels:                       # required
      ecg: {rate: 256, unit: mV}    # kind: signal (default) needs rate (Hz)
      ibi: {kind: events, unit: s}  # irregular beat events: no rate
    subjects:                       # optional; start = unix seconds or ISO-8601 (UTC unless it has an offset)
      S01: {start: "2024-05-02T09:30:00Z", age: 34}

Signal files: one number per line (samples at ``rate`` from the subject start), or two columns ``time_s,value``
(seconds after the subject start, evenly spaced at ``1 / rate``: checked); an optional header line. ``.npy``:
shape ``(n,)`` or ``(n, 2)`` the same way. Event files: ``time_s,ibi_s`` (beat time after the start, interval),
only the detected beats (gaps stay gaps). No missing values: cut or fill the recording first.

A subject whose channel file is missing or has no samples, or without any labelled interval inside its recording,
is skipped with a warning and its reason in ``skipped``. Everything else wrong (a key in dataset.yaml, a
non-numeric row, a rate that contradicts the time column or the other channels, a label table naming an unknown
subject) stops with a one-line :class:`~ape_nas.errors.UserError` naming the file and key or line.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.ids import natural_sorted
from ape_nas.data.readers import params
from ape_nas.data.readers.e4 import NoDataError, path_param, read_numbers, skip_subject
from ape_nas.data.readers.labels import UNIX_MIN, check_subjects, intervals_to_labels, parse_time, read_interval_table
from ape_nas.data.types import BenchmarkData, SubjectRecording
from ape_nas.errors import UserError
from ape_nas.schema import Field, check_mapping, describe
from ape_nas.yamlio import Document, load_yaml

NAME = "folder"
VERSION = 2  # 2: subjects in natural order of their ids (S2 before S10)
CONFIG = "dataset.yaml"
RATE_TOLERANCE = 0.01  # relative: declared rate vs the rate of a time column
DURATION_TOLERANCE = (0.10, 5.0)  # channels of one subject may differ in length by 10 % or 5 s, whichever is larger
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def _positive(value: Any) -> str | None:
    return None if value > 0 and math.isfinite(value) else "expected a positive number"


def _names(value: Any) -> str | None:
    if not value or not all(isinstance(v, str) and v.strip() for v in value):
        return "expected a non-empty list of class names"
    if len(set(value)) != len(value):
        return "expected distinct class names"
    return None


TOP = {
    "name": Field(str, None, nullable=True, doc="data set name (default: folder name)"),
    "class_names": Field(list, doc="label names; label index = position", check=_names),
    "labels": Field(str, "labels.csv", doc="interval table, relative to the folder"),
    "label_rate": Field(float, 1.0, check=_positive, doc="Hz of the per-sample labels"),
    "check_durations": Field(bool, True, doc="channels of a subject must have about the same duration"),
    "channels": Field(dict, doc="channel name -> {kind, rate, unit}"),
    "subjects": Field(dict, dict, doc="subject id -> {start, any metadata}"),
}
FIELDS = {  # the loader's keyword parameters (data.params)
    "path": params.path(f"a folder with {CONFIG}"),
    "channels": Field(list, None, nullable=True, check=params.names()),  # some of the declared channels
    "require_labels": params.REQUIRE_LABELS,
}
CHANNEL = {
    "kind": Field(str, "signal", choices=("signal", "events")),
    "rate": Field(float, None, nullable=True, check=_positive),
    "unit": Field(str, ""),
}


def read_config(path: str | Path) -> tuple[Document, dict[str, Any]]:
    """Read and validate ``dataset.yaml``; problems are one line naming the file, line and key."""
    doc = load_yaml(path)
    cfg = check_mapping(doc, (), doc.data, TOP)
    if not cfg["channels"]:
        raise doc.error(("channels",), "expected at least one channel")
    chans = {}
    for ch, spec in cfg["channels"].items():
        if not _NAME_RE.match(ch):
            raise doc.error(("channels", ch), "expected a channel name of letters, digits, _ or - (the file name)")
        c = check_mapping(doc, ("channels", ch), spec, CHANNEL)
        if c["kind"] == "signal" and c["rate"] is None:
            raise doc.error(("channels", ch, "rate"), "missing: a signal channel needs its sample rate in Hz")
        if c["kind"] == "events" and c["rate"] is not None:
            raise doc.error(("channels", ch, "rate"), "events (beat intervals) have no rate; remove it")
        chans[ch] = c
    cfg["channels"] = chans
    subjects = {}
    for sid, meta in cfg["subjects"].items():
        key = ("subjects", str(sid))
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise doc.error(key, f"expected a mapping like {{start: 2024-05-02T09:30:00Z}}, got {describe(meta)}")
        meta = dict(meta)
        if "start" in meta:
            meta["start"] = _start_time(doc, (*key, "start"), meta["start"])
        subjects[str(sid)] = meta
    cfg["subjects"] = subjects
    return doc, cfg


def _start_time(doc: Document, key: tuple, value: Any) -> float:
    expected = "expected a unix time in seconds or an ISO-8601 date-time like 2024-05-02T09:30:00Z"
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise doc.error(key, f"{expected}, got {describe(value)}")
    try:
        seconds, absolute = parse_time(str(value), doc.where(key))
    except UserError:
        raise doc.error(key, f"{expected}, got {value!r}") from None
    if not absolute or seconds < UNIX_MIN:
        raise doc.error(key, f"{expected}, got {value!r}")
    return seconds


def _channel_file(folder: Path, ch: str) -> Path:
    found = [folder / f"{ch}{ext}" for ext in (".csv", ".npy") if (folder / f"{ch}{ext}").is_file()]
    if len(found) > 1:
        raise UserError(f"{folder}: both {ch}.csv and {ch}.npy exist; expected one file per channel")
    if not found:
        raise NoDataError(f"{folder}: no {ch}.csv or {ch}.npy; expected one file per declared channel")
    return found[0]


def read_channel_file(path: str | Path, columns: Sequence[int], expected: str) -> tuple[np.ndarray, int]:
    """A ``.csv`` (optional header line) or ``.npy`` of numbers → ``(n, k)`` float array and the first data line.

    ``columns``: allowed numbers of columns. Problems name the file and line (``.npy``: row).
    """
    p = Path(path)
    if p.suffix == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"{p}: not a readable .npy array ({exc}); expected {expected}") from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] not in columns or not np.issubdtype(arr.dtype, np.number):
            raise UserError(f"{p}: array of shape {arr.shape} and type {arr.dtype}; expected {expected}")
        arr = arr.astype(np.float64)
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise UserError(f"{p}: row {int(np.argmax(bad))} is not finite; expected {expected}")
        if len(arr) == 0:
            raise NoDataError(f"{p}: no samples; expected {expected}")
        return arr, 0
    with p.open(encoding="utf-8-sig", errors="replace") as fh:
        first = fh.readline()
    cells = [c.strip() for c in first.split(",")]
    try:
        [float(c) for c in cells]
        skip = 0
    except ValueError:
        skip = 1  # a header line
    if not first.strip():
        raise NoDataError(f"{p}: empty file; expected {expected}")
    data = read_numbers(p, skip=skip, columns=None, expected=expected)
    if len(data) == 0:
        raise NoDataError(f"{p}: no samples after the header line (truncated file?); expected {expected}")
    if data.shape[1] not in columns:
        raise UserError(f"{p}:{skip + 1}: {data.shape[1]} values per line; expected {expected}")
    return data, skip + 1


def _at(p: Path, line0: int, i: int) -> str:
    """Where data row ``i`` is: ``file:line`` for CSV, ``file: row i`` for .npy."""
    return f"{p}: row {i}" if p.suffix == ".npy" else f"{p}:{line0 + i}"


def _check_time_column(p: Path, t: np.ndarray, rate: float, first_line: int, key: str) -> None:
    """A time column must step by ``1 / rate`` (the rate declared in dataset.yaml)."""
    step = np.diff(t)
    if len(step) == 0:
        return
    back = np.flatnonzero(step <= 0)
    if back.size:
        raise UserError(f"{_at(p, first_line, int(back[0]) + 1)}: time does not increase; expected time_s,value rows")
    actual = (len(t) - 1) / (t[-1] - t[0])
    if abs(actual / rate - 1) > RATE_TOLERANCE:
        raise UserError(
            f"{p}: the time column steps {1 / actual:.6g} s ({actual:.6g} Hz) but {CONFIG} {key} declares "
            f"{rate:g} Hz; expected the two to agree (fix the rate or the file)"
        )
    odd = np.flatnonzero(np.abs(step * rate - 1) > 0.5)
    if odd.size:
        i = int(odd[0])
        raise UserError(
            f"{_at(p, first_line, i + 1)}: time step {step[i]:.6g} s, expected {1 / rate:.6g} s at {rate:g} Hz "
            "(a gap or uneven sampling); expected evenly spaced samples"
        )


def read_subject(root: Path, sid: str, cfg: dict[str, Any], channels: Sequence[str]) -> SubjectRecording:
    """Read one subject folder's channels (labels are added by :func:`load`); ``meta["files"]`` = files read."""
    folder = root / sid
    signals, rates, offsets, events, files = {}, {}, {}, {}, []
    for ch in channels:
        spec = cfg["channels"][ch]
        p = _channel_file(folder, ch)
        files.append(str(p))
        if spec["kind"] == "events":
            expected = "two columns time_s,ibi_s (beat time in s after the start, interval in s)"
            data, line0 = read_channel_file(p, (2,), expected)
            bad = np.flatnonzero(data[:, 1] <= 0)
            if bad.size:
                raise UserError(
                    f"{_at(p, line0, int(bad[0]))}: interval {data[bad[0], 1]:g} is not positive; {expected}"
                )
            back = np.flatnonzero(np.diff(data[:, 0]) <= 0)
            if back.size:
                raise UserError(f"{_at(p, line0, int(back[0]) + 1)}: beat time does not increase; expected {expected}")
            events[ch] = data
            continue
        rate = spec["rate"]
        expected = "one sample per line, or two columns time_s,value"
        data, line0 = read_channel_file(p, (1, 2), expected)
        if data.shape[1] == 2:
            _check_time_column(p, data[:, 0], rate, line0, f"channels.{ch}.rate")
            offsets[ch] = float(data[0, 0])
        signals[ch] = np.ascontiguousarray(data[:, -1], dtype=np.float32)
        rates[ch] = rate
    if cfg["check_durations"] and len(signals) > 1:
        ends = {ch: offsets.get(ch, 0.0) + len(x) / rates[ch] for ch, x in signals.items()}
        longest = max(ends, key=ends.__getitem__)
        for ch, end in ends.items():
            if ends[longest] - end > max(DURATION_TOLERANCE[0] * ends[longest], DURATION_TOLERANCE[1]):
                raise UserError(
                    f"{_channel_file(folder, ch)}: {len(signals[ch])} samples at the declared {rates[ch]:g} Hz end "
                    f"at {end:.1f} s but {_channel_file(folder, longest).name} ends at {ends[longest]:.1f} s; expected "
                    f"similar durations (check channels.{ch}.rate in {CONFIG}, or set check_durations: false)"
                )
    meta = {k: v for k, v in cfg["subjects"].get(sid, {}).items() if k != "start"}
    meta["units"] = {ch: cfg["channels"][ch]["unit"] for ch in channels}
    meta["files"] = files
    return SubjectRecording(
        subject=sid,
        signals=signals,
        rates=rates,
        labels=np.empty(0, dtype=np.int64),
        label_rate=cfg["label_rate"],
        meta=meta,
        offsets=offsets,
        t0=cfg["subjects"].get(sid, {}).get("start"),
        events=events,
    )


def load(
    *, path: str | None = None, channels: Sequence[str] | None = None, require_labels: bool = True
) -> BenchmarkData:
    """Load a data set in the generic folder format (``dataset.yaml`` + one folder per subject + labels.csv).

    ``channels``: some of the channels declared in dataset.yaml (default: all of them, in declared order).
    Subjects are read in natural order of their ids (S2 before S10). ``require_labels=False`` (prediction,
    inspection): the label table is optional; without it every subject is read ``UNLABELLED``
    (``BenchmarkData.no_labels`` says why), and a subject without labelled data is kept rather than skipped.
    """
    p = params.check({"path": path, "channels": channels, "require_labels": require_labels}, FIELDS)
    expected = f"a folder with {CONFIG}, labels.csv and one sub-folder per subject (docs/DATA_FORMATS.md)"
    root = path_param(NAME, p["path"], expected)
    if not (root / CONFIG).is_file():
        raise UserError(f"{NAME}: {root} has no {CONFIG}; expected {expected}")
    require_labels = p["require_labels"]
    doc, cfg = read_config(root / CONFIG)
    declared = list(cfg["channels"])
    chosen = declared if p["channels"] is None else params.check_names("channels", p["channels"], declared)
    folders = natural_sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        raise UserError(f"{NAME}: {root} has no subject sub-folders; expected {expected}")
    for sid in cfg["subjects"]:
        if sid not in folders:
            raise doc.error(("subjects", sid), f"no folder {root / sid}; expected one of {', '.join(folders)}")
    label_path = root / cfg["labels"]
    table_read = require_labels or label_path.is_file()
    intervals = read_interval_table(label_path) if table_read else []
    check_subjects(intervals, folders, label_path)
    names = list(cfg["class_names"])
    recs, skipped, sources = [], {}, [str(root / CONFIG), *([str(label_path)] if table_read else [])]
    for sid in folders:
        try:
            rec = read_subject(root, sid, cfg, chosen)
        except NoDataError as err:
            skip_subject(skipped, NAME, sid, str(err))
            continue
        sources += rec.meta.pop("files")
        mine = [iv for iv in intervals if iv.subject == sid]
        duration = rec.duration_s()
        rec.labels = intervals_to_labels(mine, names, rec.t0, duration, cfg["label_rate"], label_path)
        if not rec.is_labelled():
            why = "has no interval" if not mine else "has intervals only outside the recording"
            reason = f"no labelled data: {label_path} {why} for it (0-{duration:.0f} s)"
            if require_labels:
                skip_subject(skipped, NAME, sid, reason)
                continue
            if table_read:
                rec.meta["no_labels"] = reason
        recs.append(rec)
    if not recs:
        raise UserError(f"{NAME}: no usable subject in {root}: " + "; ".join(f"{s}: {r}" for s, r in skipped.items()))
    no_labels = ""
    if not table_read:
        no_labels = f"{NAME}: no label table: {label_path} not found (its name is the labels key of {CONFIG})"
    elif not any(rec.is_labelled() for rec in recs):
        no_labels = f"{NAME}: {label_path} labels no second inside any recording"
    out = {"path": str(root), "channels": chosen}
    return BenchmarkData(
        cfg["name"] or root.name, recs, names, params=out, sources=sources, skipped=skipped, no_labels=no_labels
    )
