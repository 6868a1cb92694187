"""Benchmark ``wfdb``: any PhysioNet-format (WFDB) database folder, read through the ``wfdb`` package.

Records
-------
``path`` is the folder holding the ``.hea`` headers and their ``.dat`` files, or one record's ``.hea`` file.
Records are those listed in the folder's ``RECORDS`` file (entries whose header is missing are skipped with a
warning), else every ``*.hea`` under the folder; ``records`` picks some by name (a named record that is not there
is an error). Multi-frequency records
(several samples per frame, like drivedb's ECG) are read with ``smooth_frames=False``: channel ``c`` has rate
``fs × samples_per_frame[c]``. Before reading, the ``.dat`` sizes are checked against the header (a shorter file is
truncated, a longer one means the header's length, format or samples per frame contradict the data), and after
reading each signal's checksum is compared with the header's. Invalid samples (the format's "no data" value)
become NaN. ``fs_override: {record: frame rate}`` corrects a header's frame rate (``fs``); every channel rate
scales with it (see drivedb below).

Channels are renamed to lower-case identifiers: every run of characters other than ``a-z0-9`` becomes ``_``
(``"ECG"`` → ``"ecg"``, ``"foot GSR"`` → ``"foot_gsr"``, ``"MLII"`` → ``"mlii"``); a name starting with a digit gets
``ch_`` in front, a repeated name ``_2``, ``_3``… ``meta["channel_names"]`` maps the new names to the header's, and
``channels`` may use either form. A record lacking a requested channel is skipped with a warning.

Labels (``labels``)
-------------------
``"none"``
    no labels (every sample ``UNLABELLED``, ``class_names`` empty): for inspecting a database.
``"annotations"``
    the annotation file ``<record>.<annotator>`` (``wfdb.rdann``). ``annotation_classes`` maps annotation aux
    notes or symbols to class names (the aux note, stripped, is tried first, then the symbol). Each mapped
    annotation starts a segment of its class that lasts until the next mapped annotation or the record's end; a
    key mapped to ``null`` starts an unlabelled segment, and annotations whose key is not mapped (beat labels,
    say) are ignored. Annotation times use the annotation file's own time resolution when it stores one (it must
    be the frame rate or one of the channel rates, else the file and header contradict each other), else the
    frame rate.
``"marker"``
    a marker channel (``marker_channel``) whose brief spikes flag segment changes, like drivedb's. A marker event
    is a run of at least :data:`MARKER_MIN_WIDTH` samples more than ``marker_threshold`` (physical units) above
    the channel's running baseline (medians of :data:`MARKER_BASELINE_S` s blocks, interpolated); events less than
    :data:`MARKER_MERGE_S` s apart are one event, at its highest sample. ``k`` events cut a record into ``k + 1``
    segments, and ``marker_classes`` names them in order: one list for every record, a mapping from record (or
    subject) to its list, or ``"drivedb"``. ``null`` in a list leaves that segment unlabelled. ``"drivedb"`` is
    Healey & Picard's route (:data:`DRIVEDB_ROUTE`: rest, city, highway, city, highway, city, rest) for a record
    whose 6 transitions are all marked (7 segments), or whose start and end are marked too (9 segments, the
    first and last unlabelled). A record whose number of segments differs from its list is skipped with a
    warning that gives the event times, so the list can be fixed.
``"table"``
    an interval table (``label_table``, see :mod:`ape_nas.data.readers.labels`) whose ``subject`` column names a
    record or a subject. Relative times count from that record's start; a row naming a subject made of several
    records must use absolute times (each record is labelled from its own header start time). A name that is
    neither a record in the folder nor a subject is an error. Rows of records not selected are ignored.

``classes`` (optional) chooses and orders the classes; mapped names not in it become ``UNLABELLED``. Without it,
the classes are the mapped names in order of first appearance (``annotation_classes`` values, ``marker_classes``
lists, table rows). A record left with no labelled sample is skipped with a warning (unless ``labels`` is
``"none"``). Labels are sampled at the record's fastest loaded channel rate.

Subjects
--------
The subject id is the record name, unless ``subject_of`` maps it: a mapping ``{record: subject}`` or a regular
expression matched at the start of the record name whose first group (or whole match) is the subject id
(``"^drive\\d+"`` turns drive17a and drive17b into drive17); records it does not match keep their names.
Records of one subject are concatenated in record order, separated by :data:`RECORD_GAP_S` seconds of NaN
signal and ``UNLABELLED`` labels: splits treat subjects as the unit of independence, so one driver's records
must never land in different partitions, and no window of up to :data:`RECORD_GAP_S` s can hold samples of two
records. They must then have the same channels at the same rates. ``t0`` is the first record's header start
time (UTC; ``None`` when the header has no date and time): later records sit after the gap, not at their clock
time; ``meta["records"]`` gives each record's span on the subject's timeline and its own ``t0``.

drivedb (PhysioNet "Stress Recognition in Automobile Drivers")
-------------------------------------------------------------
Channels ECG (frame rate × 32 ≈ 496 Hz), EMG (× 1), foot GSR and hand GSR (× 2), HR (× 1), marker (× 1) and RESP
(× 2). Header frame rates: 15.5 Hz, except drive17a's 15 Hz. drive17a's header rate looks wrong: with 15 Hz
its ECG beat count gives 72.2 bpm against 74.8 bpm on its own HR channel (drive17b: 71.6 vs 71.8), and its rest
period between the two markers lasts 930 s; with 15.5 Hz it lasts 900.0 s, the protocol's 15 minutes. Use
``fs_override: {drive17a: 15.5}`` (needed anyway to join drive17a and drive17b into one subject, whose ECG rates
must agree). Marker events found with the defaults: drive17a at 26.7 s and 956.7 s (header rate; rest between
them, then city driving), drive17b at 610.3 s and 1509.9 s (driving, then the final 15 min rest).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.readers.labels import Interval, check_subjects, intervals_to_labels, read_interval_table
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import UserError

NAME = "wfdb"
VERSION = 1  # bump whenever the data produced for the same files and parameters changes (used in cache keys)

PATH_PARAMS = ("path", "label_table")  # parameters naming raw data files or folders (content-hashed for caching)
LABEL_MODES = ("none", "annotations", "marker", "table")
RECORD_GAP_S = 60.0  # NaN/UNLABELLED gap between concatenated records of one subject
MARKER_BASELINE_S = 10.0  # block length of the marker channel's running-median baseline
MARKER_MERGE_S = 10.0  # marker events closer than this are one event
MARKER_MIN_WIDTH = 2  # samples above threshold for a marker event (shorter = glitch)
DRIVEDB_ROUTE = ("rest", "city", "highway", "city", "highway", "city", "rest")

# bytes per sample of the WFDB storage formats whose size can be checked (FLAC formats 508/516/524 cannot)
_BYTES_PER_SAMPLE = {
    "8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0, "212": 1.5, "310": 4 / 3, "311": 4 / 3,
}  # fmt: skip
# digital value meaning "no sample" per format
_INVALID = {
    "8": -128, "16": -32768, "24": -(2**23), "32": -(2**31), "61": -32768, "80": -128, "160": -32768, "212": -2048,
    "310": -512, "311": -512, "508": -128, "516": -32768, "524": -(2**23),
}  # fmt: skip
_DEFAULT_GAIN = 200.0  # WFDB: an ADC gain of 0 means uncalibrated, read as 200


@dataclass
class _Record:
    """One record read and labelled, on its own timeline (seconds after its start)."""

    name: str
    signals: dict[str, np.ndarray]
    rates: dict[str, float]
    original: dict[str, str]  # normalised -> header name
    units: dict[str, str]
    fs: float
    header_fs: float
    duration_s: float
    t0: float | None
    comments: list[str]
    labels: np.ndarray | None = None
    label_rate: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------
# names


def normalise_names(names: Sequence[str]) -> list[str]:
    """Header channel names → unique lower-case identifiers ("foot GSR" → "foot_gsr")."""
    out: list[str] = []
    for name in names:
        base = re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_") or "ch"
        if base[0].isdigit():
            base = f"ch_{base}"
        new, k = base, 2
        while new in out:
            new, k = f"{base}_{k}", k + 1
        out.append(new)
    return out


def _norm1(name: str) -> str:
    return normalise_names([name])[0]


# ---------------------------------------------------------------------------------------------------------------
# parameters


def _check_params(
    path: Any,
    records: Any,
    channels: Any,
    labels: Any,
    classes: Any,
    subject_of: Any,
    annotator: Any,
    annotation_classes: Any,
    marker_channel: Any,
    marker_classes: Any,
    marker_threshold: Any,
    label_table: Any,
    fs_override: Any,
) -> None:
    if path is None or not isinstance(path, str | Path) or not str(path):
        raise UserError("wfdb: path is required: the folder holding the database's .hea and .dat files")

    def _names(key: str, value: Any) -> None:
        if value is not None and (
            isinstance(value, str)
            or not isinstance(value, list | tuple)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            raise UserError(f"wfdb: {key} must be a non-empty list of names, got {value!r}")

    _names("records", records)
    _names("channels", channels)
    _names("classes", classes)
    if labels not in LABEL_MODES:
        raise UserError(f"wfdb: labels must be one of {', '.join(LABEL_MODES)}, got {labels!r}")
    if subject_of is not None and not isinstance(subject_of, str | Mapping):
        raise UserError(
            f"wfdb: subject_of must be a mapping record -> subject or a regular expression, got {subject_of!r}"
        )
    if not isinstance(annotator, str) or not annotator:
        raise UserError(f"wfdb: annotator must be an annotation file extension such as 'atr', got {annotator!r}")
    if not isinstance(marker_channel, str) or not marker_channel:
        raise UserError(f"wfdb: marker_channel must be a channel name, got {marker_channel!r}")
    if (
        isinstance(marker_threshold, bool)
        or not isinstance(marker_threshold, int | float)
        or not math.isfinite(marker_threshold)
        or marker_threshold <= 0
    ):
        raise UserError(f"wfdb: marker_threshold must be a positive number, got {marker_threshold!r}")
    if fs_override is not None:
        if not isinstance(fs_override, Mapping):
            raise UserError(f"wfdb: fs_override must be a mapping record -> frame rate in Hz, got {fs_override!r}")
        for rec, fs in fs_override.items():
            if isinstance(fs, bool) or not isinstance(fs, int | float) or not math.isfinite(fs) or fs <= 0:
                raise UserError(f"wfdb: fs_override.{rec} must be a positive frame rate in Hz, got {fs!r}")
    if labels == "annotations":
        if not isinstance(annotation_classes, Mapping) or not annotation_classes:
            raise UserError(
                "wfdb: labels 'annotations' needs annotation_classes, a mapping from annotation aux notes or "
                "symbols to class names (null = unlabelled), e.g. {'(N': normal, '(AFIB': afib}"
            )
        for key, value in annotation_classes.items():
            if value is not None and not (isinstance(value, str) and value):
                raise UserError(f"wfdb: annotation_classes.{key} must be a class name or null, got {value!r}")
    if labels == "marker":
        if marker_classes is None:
            raise UserError(
                "wfdb: labels 'marker' needs marker_classes: a list of class names per marker segment in order "
                "(null = unlabelled), a mapping record -> such a list, or 'drivedb'"
            )
        if isinstance(marker_classes, str):
            if marker_classes != "drivedb":
                raise UserError(f"wfdb: marker_classes must be a list, a mapping or 'drivedb', got {marker_classes!r}")
        else:
            lists = marker_classes.items() if isinstance(marker_classes, Mapping) else [("", marker_classes)]
            for key, lst in lists:
                where = f"marker_classes.{key}" if key else "marker_classes"
                if isinstance(lst, str) or not isinstance(lst, list | tuple) or not lst:
                    raise UserError(f"wfdb: {where} must be a non-empty list of class names or nulls, got {lst!r}")
                if any(v is not None and not (isinstance(v, str) and v) for v in lst):
                    raise UserError(f"wfdb: {where} must hold class names or nulls, got {list(lst)!r}")
    if labels == "table" and (not isinstance(label_table, str | Path) or not str(label_table)):
        raise UserError("wfdb: labels 'table' needs label_table, the path of a CSV table subject,start,end,label")


# ---------------------------------------------------------------------------------------------------------------
# records


def _discover(root: Path) -> tuple[list[str], list[str], Path | None]:
    """(records with a header, records listed in RECORDS without one, the RECORDS file if any)."""
    listing = root / "RECORDS"
    if listing.is_file():
        names = [ln.strip().rstrip("/") for ln in listing.read_text(errors="replace").splitlines() if ln.strip()]
        present = [n for n in names if (root / f"{n}.hea").is_file()]
        absent = [n for n in names if not (root / f"{n}.hea").is_file()]
        return present, absent, listing
    names = sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.hea") if p.is_file())
    return names, [], None


def _t0(header: Any) -> float | None:
    date, time = getattr(header, "base_date", None), getattr(header, "base_time", None)
    if date is None or time is None:
        return None
    return datetime.combine(date, time, tzinfo=UTC).timestamp()


def _check_sizes(root: Path, name: str, header: Any, hea: Path) -> list[str]:
    """Compare each .dat file's size with what the header says; return the .dat paths."""
    files: dict[str, dict[str, Any]] = {}
    for i, fname in enumerate(header.file_name):
        entry = files.setdefault(fname, {"fmt": header.fmt[i], "spf": 0, "offset": 0})
        entry["spf"] += int(header.samps_per_frame[i] or 1)
        offsets = getattr(header, "byte_offset", None) or []
        if i < len(offsets) and offsets[i]:
            entry["offset"] = int(offsets[i])
    paths = []
    folder = (root / name).parent
    for fname, entry in files.items():
        dat = folder / fname
        paths.append(str(dat))
        if not dat.is_file():
            raise UserError(f"{dat}: data file named by {hea} not found; expected it next to the header")
        bps = _BYTES_PER_SAMPLE.get(str(entry["fmt"]))
        if bps is None or header.sig_len is None:
            continue
        n_samp = int(header.sig_len) * entry["spf"]
        need = entry["offset"] + math.floor(n_samp * bps)
        size = dat.stat().st_size
        frame = max(4, math.ceil(entry["spf"] * bps))
        if size < need:
            raise UserError(
                f"{dat}: {size} bytes, but {hea} says {header.sig_len} frames × {entry['spf']} samples in format "
                f"{entry['fmt']} = {need} bytes; the file is truncated (download it again)"
            )
        if size >= entry["offset"] + math.ceil(n_samp * bps) + frame:
            raise UserError(
                f"{dat}: {size} bytes, but {hea} says {header.sig_len} frames × {entry['spf']} samples in format "
                f"{entry['fmt']} = {need} bytes; the header's length, format or samples per frame contradict the data"
            )
    return paths


def _read_record(root: Path, name: str, fs_override: float | None) -> tuple[_Record, list[str]]:
    import wfdb  # deferred: only this benchmark needs it

    base = root / name
    hea = base.with_name(base.name + ".hea")
    if not hea.is_file():
        raise UserError(f"{hea}: header not found; expected a WFDB record {name!r} in {root}")
    try:
        header = wfdb.rdheader(str(base))
    except Exception as exc:  # wfdb raises assorted errors on malformed headers
        raise UserError(f"{hea}: not a valid WFDB header ({exc})") from None
    sources = [str(hea)]
    multi = hasattr(header, "seg_name")
    header_fs = float(header.fs) if header.fs is not None else float("nan")
    if not math.isfinite(header_fs) or header_fs <= 0:
        raise UserError(f"{hea}: line 1: sampling frequency {header.fs!r} is not a positive number")
    if not multi:
        if not header.n_sig:
            raise UserError(f"{hea}: the record has no signals; expected at least one signal line")
        sources += _check_sizes(root, name, header, hea)
    else:
        sources += [str(root / Path(name).parent / f"{s}.hea") for s in header.seg_name if s and s != "~"]
    try:
        rec = wfdb.rdrecord(str(base), physical=False, smooth_frames=False)
    except FileNotFoundError as exc:
        raise UserError(f"{hea}: a file of this record is missing ({exc.filename or exc})") from None
    except Exception as exc:
        raise UserError(f"{hea}: wfdb could not read the record ({exc})") from None
    if multi:
        sources += sorted({str((root / name).parent / f) for f in (rec.file_name or [])})
    digital = rec.e_d_signal
    if digital is None:
        raise UserError(f"{hea}: the record has no samples")
    checksums = getattr(rec, "checksum", None) if not multi else None
    for i, d in enumerate(digital):
        if checksums is not None and i < len(checksums) and checksums[i] is not None:
            got = int(np.sum(d, dtype=np.int64)) % 65536  # 16-bit sum; headers write it signed or unsigned
            if got != int(checksums[i]) % 65536:
                signed = got - 65536 * (got >= 32768)
                raise UserError(
                    f"{hea}: signal {i + 1} ({rec.sig_name[i]}): checksum of the data is {signed}, the header says "
                    f"{checksums[i]}; the .dat file does not match its header (corrupt, or wrong format or samples "
                    "per frame)"
                )
    fs = float(fs_override) if fs_override is not None else header_fs
    norm = normalise_names(rec.sig_name)
    signals, rates, units = {}, {}, {}
    for i, ch in enumerate(norm):
        d = np.asarray(digital[i])
        gain = float(rec.adc_gain[i]) or _DEFAULT_GAIN
        x = (d.astype(np.float64) - float(rec.baseline[i])) / gain
        bad = _INVALID.get(str(rec.fmt[i]) if rec.fmt else "")
        if bad is not None:
            x[d == bad] = np.nan
        signals[ch] = x.astype(np.float32)
        rates[ch] = fs * int(rec.samps_per_frame[i] or 1)
        units[ch] = str(rec.units[i] or "") if rec.units else ""
    n_frames = int(rec.sig_len)
    out = _Record(
        name=name,
        signals=signals,
        rates=rates,
        original=dict(zip(norm, rec.sig_name, strict=True)),
        units=units,
        fs=fs,
        header_fs=header_fs,
        duration_s=n_frames / fs,
        t0=_t0(header),
        comments=list(rec.comments or []),
    )
    return out, sources


# ---------------------------------------------------------------------------------------------------------------
# labels


def find_markers(x: np.ndarray, rate: float, threshold: float) -> np.ndarray:
    """Times (s) of marker spikes: runs ≥ MARKER_MIN_WIDTH samples more than ``threshold`` above a running median."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return np.zeros(0)
    block = max(1, round(MARKER_BASELINE_S * rate / 2))
    nb = -(-n // block)
    padded = np.full(nb * block, np.nan)
    padded[:n] = x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        med = np.nanmedian(padded.reshape(nb, block), axis=1)
    centres = (np.arange(nb) + 0.5) * block
    ok = np.isfinite(med)
    if not ok.any():
        return np.zeros(0)
    baseline = np.interp(np.arange(n), centres[ok], med[ok])
    dev = np.nan_to_num(x - baseline, nan=-np.inf)
    above = dev > threshold
    edges = np.diff(np.concatenate(([0], above.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    wide = (ends - starts) >= MARKER_MIN_WIDTH
    starts, ends = starts[wide], ends[wide]
    if len(starts) == 0:
        return np.zeros(0)
    peaks = np.maximum.reduceat(dev, starts)
    peak_idx = np.array([s + int(np.argmax(dev[s:e])) for s, e in zip(starts, ends, strict=True)])
    # merge events closer than MARKER_MERGE_S: keep the highest peak of each cluster
    times = peak_idx / rate
    cluster = np.concatenate(([0], np.cumsum(np.diff(times) >= MARKER_MERGE_S)))
    out = []
    for c in range(int(cluster[-1]) + 1):
        members = np.flatnonzero(cluster == c)
        out.append(times[members[np.argmax(peaks[members])]])
    return np.asarray(out)


def _segments_to_labels(bounds_s: Sequence[float], codes: Sequence[int], n: int, rate: float) -> np.ndarray:
    """Per-sample labels: segment ``i`` runs from ``bounds_s[i-1]`` (0 for i = 0) to ``bounds_s[i]``."""
    cuts = np.clip(np.round(np.asarray(bounds_s, dtype=np.float64) * rate), 0, n).astype(np.int64)
    seg = np.searchsorted(cuts, np.arange(n), side="right")
    return np.asarray(codes, dtype=np.int64)[seg]


def _label_annotations(
    rec: _Record, root: Path, annotator: str, mapping: Mapping[str, str | None], class_names: list[str], rate: float
) -> tuple[np.ndarray, str]:
    import wfdb

    base = root / rec.name
    file = base.with_name(f"{base.name}.{annotator}")
    if not file.is_file():
        raise UserError(f"{file}: annotation file not found; expected annotator {annotator!r} for record {rec.name}")
    try:
        ann = wfdb.rdann(str(base), annotator)
    except Exception as exc:
        raise UserError(f"{file}: not a readable WFDB annotation file ({exc})") from None
    n = round(rec.duration_s * rate)
    scale = rec.fs / rec.header_fs  # an fs_override applies to the annotation times too
    ann_fs = rec.header_fs
    if ann.fs is not None and float(ann.fs) > 0:
        allowed = {rec.header_fs} | {r / scale for r in rec.rates.values()}
        if not any(math.isclose(float(ann.fs), a, rel_tol=1e-6) for a in allowed):
            header_rates = ", ".join(f"{r / scale:g}" for r in sorted(set(rec.rates.values())))
            raise UserError(
                f"{file}: time resolution {float(ann.fs):g} Hz, but the record's header gives frame rate "
                f"{rec.header_fs:g} Hz and channel rates {header_rates} Hz; the annotation file and header "
                "contradict each other"
            )
        ann_fs = float(ann.fs)
    times = np.asarray(ann.sample, dtype=np.float64) / (ann_fs * scale)
    if len(times) and times.max() > rec.duration_s + 1.0 / rec.fs:
        raise UserError(
            f"{file}: an annotation lies at {times.max():.1f} s, after the record's end at {rec.duration_s:.1f} s; "
            "the annotation file and header disagree on the sample rate or length"
        )
    bounds, codes = [], [UNLABELLED]
    aux = ann.aux_note or [""] * len(times)
    for t, sym, note in zip(times, ann.symbol, aux, strict=True):
        note = (note or "").replace("\x00", "").strip()
        key = note if note and note in mapping else sym if sym in mapping else None
        if key is None:
            continue
        target = mapping[key]
        bounds.append(t)
        codes.append(class_names.index(target) if target in class_names else UNLABELLED)
    return _segments_to_labels(bounds, codes, n, rate), str(file)


def _marker_list(marker_classes: Any, rec: _Record, subject: str, n_events: int) -> list[str | None] | str:
    """The class list for this record, or a reason why there is none."""
    if marker_classes == "drivedb":
        if n_events == len(DRIVEDB_ROUTE) - 1:
            return list(DRIVEDB_ROUTE)
        if n_events == len(DRIVEDB_ROUTE) + 1:
            return [None, *DRIVEDB_ROUTE, None]
        return f"marker_classes 'drivedb' needs {len(DRIVEDB_ROUTE) - 1} or {len(DRIVEDB_ROUTE) + 1} marker events"
    if isinstance(marker_classes, Mapping):
        lst = marker_classes.get(rec.name, marker_classes.get(subject))
        if lst is None:
            return f"marker_classes has no entry for record {rec.name}"
        return list(lst)
    return list(marker_classes)


def _label_marker(
    rec: _Record,
    marker_channel: str,
    threshold: float,
    marker_classes: Any,
    subject: str,
    class_names: list[str],
    rate: float,
) -> tuple[np.ndarray | None, str]:
    ch = _norm1(marker_channel)
    if ch not in rec.signals:
        return None, f"no marker channel {marker_channel!r} (channels: {', '.join(rec.original.values())})"
    events = find_markers(rec.signals[ch], rec.rates[ch], threshold)
    rec.extra["markers_s"] = [float(t) for t in events]
    lst = _marker_list(marker_classes, rec, subject, len(events))
    if isinstance(lst, str):
        return None, f"{lst}; found {len(events)} at {_fmt_times(events)} s"
    if len(lst) != len(events) + 1:
        return None, (
            f"{len(events)} marker events at {_fmt_times(events)} s make {len(events) + 1} segments, but "
            f"marker_classes gives {len(lst)}: {lst}"
        )
    codes = [class_names.index(c) if c in class_names else UNLABELLED for c in lst]
    rec.extra["segments"] = [
        {"start_s": float(a), "end_s": float(b), "class": c}
        for a, b, c in zip([0.0, *events], [*events, rec.duration_s], lst, strict=True)
    ]
    n = round(rec.duration_s * rate)
    return _segments_to_labels(list(events), codes, n, rate), ""


def _fmt_times(times: np.ndarray) -> str:
    return "[" + ", ".join(f"{t:.1f}" for t in times) + "]"


def _class_names(
    labels: str, classes: Any, annotation_classes: Any, marker_classes: Any, table: list[Interval]
) -> list[str]:
    if labels == "none":
        found: list[str] = []
    elif labels == "annotations":
        found = [v for v in annotation_classes.values() if v is not None]
    elif labels == "marker":
        if marker_classes == "drivedb":
            found = list(DRIVEDB_ROUTE)
        elif isinstance(marker_classes, Mapping):
            found = [c for lst in marker_classes.values() for c in lst if c is not None]
        else:
            found = [c for c in marker_classes if c is not None]
    else:
        found = [iv.label for iv in table]
    found = list(dict.fromkeys(found))
    if classes is None:
        return found
    if labels != "none":
        unused = [c for c in classes if c not in found]
        if unused:
            raise UserError(
                f"wfdb: classes {', '.join(map(repr, unused))} never occur in the {labels} labels; they give: "
                f"{', '.join(found) or 'nothing'}"
            )
    if len(set(classes)) != len(classes):
        raise UserError(f"wfdb: classes must not repeat, got {list(classes)}")
    return list(classes)


# ---------------------------------------------------------------------------------------------------------------
# subjects


def _subject_fn(subject_of: Any, known: list[str]) -> Any:
    if subject_of is None:
        return lambda name: name
    if isinstance(subject_of, Mapping):
        unknown = [k for k in subject_of if k not in known]
        if unknown:
            raise UserError(
                f"wfdb: subject_of names record(s) {', '.join(map(repr, unknown))} not in the folder; known: "
                f"{', '.join(known[:20])}"
            )
        bad = [k for k, v in subject_of.items() if not isinstance(v, str) or not v]
        if bad:
            raise UserError(f"wfdb: subject_of.{bad[0]} must be a subject id, got {subject_of[bad[0]]!r}")
        return lambda name: subject_of.get(name, name)
    try:
        pattern = re.compile(subject_of)
    except re.error as exc:
        raise UserError(f"wfdb: subject_of {subject_of!r} is not a regular expression ({exc})") from None

    def by_regex(name: str) -> str:
        m = pattern.match(name)
        if not m:
            return name
        return (m.group(1) if pattern.groups else m.group(0)) or name

    return by_regex


def _record_meta(rec: _Record, start: float) -> dict[str, Any]:
    """A record's facts, with its marker events and segments moved onto the subject's timeline."""
    out: dict[str, Any] = {
        "record": rec.name,
        "start_s": start,
        "duration_s": rec.duration_s,
        "t0": rec.t0,
        "fs": rec.fs,
        "header_fs": rec.header_fs,
        "comments": rec.comments,
    }
    if "markers_s" in rec.extra:
        out["markers_s"] = [start + t for t in rec.extra["markers_s"]]
    if "segments" in rec.extra:
        out["segments"] = [
            {**g, "start_s": g["start_s"] + start, "end_s": g["end_s"] + start} for g in rec.extra["segments"]
        ]
    return out


def _join(subject: str, parts: list[_Record], label_rate: float) -> SubjectRecording:
    first = parts[0]
    chans = list(first.signals)
    for rec in parts[1:]:
        if list(rec.signals) != chans:
            raise UserError(
                f"wfdb: subject {subject}: records {first.name} and {rec.name} have different channels "
                f"({', '.join(chans)} vs {', '.join(rec.signals)}); choose common ones with channels"
            )
        for ch in chans:
            if not math.isclose(rec.rates[ch], first.rates[ch], rel_tol=1e-9):
                raise UserError(
                    f"wfdb: subject {subject}: channel {ch} is {first.rates[ch]:g} Hz in {first.name} but "
                    f"{rec.rates[ch]:g} Hz in {rec.name}; correct a wrong header rate with fs_override, or keep the "
                    "records as separate subjects"
                )
    starts, t = [], 0.0
    for rec in parts:
        starts.append(t)
        t += rec.duration_s + RECORD_GAP_S
    total = starts[-1] + parts[-1].duration_s
    signals = {}
    for ch in chans:
        rate = first.rates[ch]
        if len(parts) == 1:
            signals[ch] = first.signals[ch]
            continue
        out = np.full(round(total * rate), np.nan, dtype=np.float32)
        for s, rec in zip(starts, parts, strict=True):
            a = round(s * rate)
            x = rec.signals[ch][: len(out) - a]
            out[a : a + len(x)] = x
        signals[ch] = out
    labels = np.full(round(total * label_rate), UNLABELLED, dtype=np.int64)
    for s, rec in zip(starts, parts, strict=True):
        a = round(s * label_rate)
        lab = rec.labels[: len(labels) - a]
        labels[a : a + len(lab)] = lab
    meta = {
        "records": [_record_meta(rec, s) for s, rec in zip(starts, parts, strict=True)],
        "channel_names": dict(first.original),
        "units": dict(first.units),
        "record_gap_s": RECORD_GAP_S,
    }
    return SubjectRecording(
        subject=subject,
        signals=signals,
        rates=dict(first.rates),
        labels=labels,
        label_rate=label_rate,
        meta=meta,
        t0=first.t0,
    )


# ---------------------------------------------------------------------------------------------------------------
# loader


def load(
    *,
    path: str | None = None,
    records: list[str] | None = None,
    channels: list[str] | None = None,
    labels: str = "none",
    classes: list[str] | None = None,
    subject_of: dict[str, str] | str | None = None,
    annotator: str = "atr",
    annotation_classes: dict[str, str | None] | None = None,
    marker_channel: str = "marker",
    marker_classes: list[str | None] | dict[str, list[str | None]] | str | None = None,
    marker_threshold: float = 4.0,
    label_table: str | None = None,
    fs_override: dict[str, float] | None = None,
    require_labels: bool = True,
) -> BenchmarkData:
    """Load WFDB records from the folder ``path`` (see the module docstring for every parameter).

    ``require_labels=False`` (prediction, inspection): a record left with no labelled sample is kept,
    ``UNLABELLED``, rather than skipped.
    """
    if not isinstance(require_labels, bool):
        raise UserError(f"wfdb: require_labels must be true or false, got {require_labels!r}")
    _check_params(
        path,
        records,
        channels,
        labels,
        classes,
        subject_of,
        annotator,
        annotation_classes,
        marker_channel,
        marker_classes,
        marker_threshold,
        label_table,
        fs_override,
    )
    root = Path(path)
    if root.is_file() and root.suffix == ".hea":  # one record's header: read that record (unless records says)
        records = records or [root.stem]
        root = root.parent
    elif not root.is_dir():
        what = "is not a .hea file or a folder" if root.exists() else "not found"
        raise UserError(f"wfdb: path {root}: {what}; expected the folder holding the .hea and .dat files")
    available, absent, listing = _discover(root)
    sources: list[str] = [str(listing)] if listing else []
    skipped: dict[str, str] = {}
    if records is None:
        selected = list(available)
        for name in absent:
            _skip(skipped, name, f"listed in {listing} but {name}.hea is not in {root}")
    else:
        missing = [r for r in records if r not in available and not (root / f"{r}.hea").is_file()]
        if missing:
            raise UserError(
                f"wfdb: record(s) {', '.join(map(repr, missing))} not found in {root} (no .hea file); available: "
                f"{', '.join(available[:20]) or 'none'}"
            )
        selected = list(dict.fromkeys(records))
    if not selected:
        raise UserError(f"wfdb: no WFDB records in {root}; expected .hea header files (and a RECORDS list)")
    if fs_override:
        unknown = [k for k in fs_override if k not in available and k not in selected]
        if unknown:
            raise UserError(f"wfdb: fs_override names record(s) {', '.join(map(repr, unknown))} not in {root}")
    subject = _subject_fn(subject_of, sorted({*available, *selected}))

    table: list[Interval] = []
    if labels == "table":
        table = read_interval_table(label_table)
        sources.append(str(label_table))
        everything = sorted({*available, *selected})
        members: dict[str, list[str]] = {}
        for name in everything:
            members.setdefault(subject(name), []).append(name)
        check_subjects(table, sorted({*everything, *members}), label_table)
        for iv in table:
            if iv.subject not in everything and len(members[iv.subject]) > 1 and not iv.absolute:
                raise UserError(
                    f"{label_table}:{iv.line}: subject {iv.subject!r} has several records "
                    f"({', '.join(members[iv.subject])}); name the record, or use absolute times"
                )
    class_names = _class_names(labels, classes, annotation_classes, marker_classes, table)

    wanted = None if channels is None else [_norm1(c) for c in channels]
    groups: dict[str, list[_Record]] = {}
    label_rates: dict[str, float] = {}
    seen_channels: set[str] = set()
    for name in selected:
        rec, files = _read_record(root, name, (fs_override or {}).get(name))
        sources += files
        seen_channels |= set(rec.signals)
        sid = subject(name)
        keep = list(rec.signals) if wanted is None else wanted
        lacking = [c for c in keep if c not in rec.signals]
        if lacking:
            _skip(skipped, name, f"no channel(s) {', '.join(lacking)} (it has {', '.join(rec.signals)})")
            continue
        rate = max(rec.rates[c] for c in keep)
        reason = ""
        if labels == "none":
            lab = np.full(round(rec.duration_s * rate), UNLABELLED, dtype=np.int64)
        elif labels == "annotations":
            lab, file = _label_annotations(rec, root, annotator, annotation_classes, class_names, rate)
            sources.append(file)
        elif labels == "marker":
            lab, reason = _label_marker(rec, marker_channel, marker_threshold, marker_classes, sid, class_names, rate)
        else:
            rows = [iv for iv in table if iv.subject in (name, sid) and iv.label in class_names]
            lab = intervals_to_labels(rows, class_names, rec.t0, rec.duration_s, rate, label_table)
        if labels != "none" and (lab is None or not (lab != UNLABELLED).any()):
            if lab is not None:
                reason = f"no labelled samples from the {labels} labels for classes {', '.join(class_names)}"
            if require_labels:
                _skip(skipped, name, reason)
                continue
            lab = np.full(round(rec.duration_s * rate), UNLABELLED, dtype=np.int64)
        rec.signals = {c: rec.signals[c] for c in keep}
        rec.rates = {c: rec.rates[c] for c in keep}
        rec.original = {c: rec.original[c] for c in keep}
        rec.units = {c: rec.units[c] for c in keep}
        rec.labels, rec.label_rate = lab, rate
        groups.setdefault(sid, []).append(rec)
        label_rates[sid] = max(label_rates.get(sid, 0.0), rate)
    if wanted is not None:
        never = [c for c in wanted if c not in seen_channels]
        if never:
            raise UserError(
                f"wfdb: channel(s) {', '.join(never)} in no record of {root}; available: "
                f"{', '.join(sorted(seen_channels))}"
            )
    subjects = [_join(sid, parts, label_rates[sid]) for sid, parts in groups.items()]
    if not subjects:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise UserError(f"wfdb: no usable record in {root}: {reasons}")
    params = {
        "path": str(path),
        "records": records,
        "channels": channels,
        "labels": labels,
        "classes": class_names,
        "subject_of": subject_of,
        "annotator": annotator,
        "annotation_classes": annotation_classes,
        "marker_channel": marker_channel,
        "marker_classes": marker_classes,
        "marker_threshold": marker_threshold,
        "label_table": label_table,
        "fs_override": fs_override,
    }
    no_labels = ""
    if not any(s.is_labelled() for s in subjects):
        no_labels = (
            "wfdb: read without labels (labels: none); choose a label source with labels=annotations, marker or table"
            if labels == "none"
            else f"wfdb: the {labels} labels label no sample of the classes {', '.join(class_names)}"
        )
    return BenchmarkData(
        name=NAME,
        subjects=subjects,
        class_names=class_names,
        params=params,
        sources=list(dict.fromkeys(sources)),
        skipped=skipped,
        no_labels=no_labels,
    )


def _skip(skipped: dict[str, str], name: str, reason: str) -> None:
    skipped[name] = reason
    warnings.warn(f"wfdb: skipping record {name}: {reason}", stacklevel=3)
