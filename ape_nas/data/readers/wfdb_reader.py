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
    is a run of at least ``MARKER_MIN_WIDTH`` samples more than ``marker_threshold`` (physical units) above
    the channel's running baseline (medians of ``MARKER_BASELINE_S`` s blocks, interpolated); events less than
    ``MARKER_MERGE_S`` s apart are one event, at its highest sample. ``k`` events cut a record into ``k + 1``
    segments, and ``marker_classes`` names them in order: one list for every record, a mapping from record (or
    subject) to its list, or ``"drivedb"``. ``null`` in a list leaves that segment unlabelled. ``"drivedb"`` is
    Healey & Picard's route (``DRIVEDB_ROUTE``: rest, city, highway, city, highway, city, rest) for a record
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
Records of one subject are concatenated in record order, separated by ``RECORD_GAP_S`` seconds of NaN
signal and ``UNLABELLED`` labels: splits treat subjects as the unit of independence, so one driver's records
must never land in different partitions, and no window of up to ``RECORD_GAP_S`` s can hold samples of two
records. They must then have the same channels at the same rates. ``t0`` is the first record's header start
time (UTC; ``None`` when the header has no date and time): later records sit after the gap, not at their clock
time; ``meta["records"]`` gives each record's span on the subject's timeline and its own ``t0``.

The constants named above live with the code that uses them: ``MARKER_*`` in
:mod:`ape_nas.data.readers.wfdb.markers`, ``DRIVEDB_ROUTE`` in :mod:`~ape_nas.data.readers.wfdb.params`,
``RECORD_GAP_S`` in :mod:`~ape_nas.data.readers.wfdb.subjects`.

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

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.data.readers.labels import Interval, check_subjects, intervals_to_labels, read_interval_table
from ape_nas.data.readers.wfdb import params as wfdb_params
from ape_nas.data.readers.wfdb.labels import class_names, label_annotations
from ape_nas.data.readers.wfdb.markers import label_marker
from ape_nas.data.readers.wfdb.names import normalise_name
from ape_nas.data.readers.wfdb.records import Record, discover, read_record
from ape_nas.data.readers.wfdb.subjects import join, subject_fn
from ape_nas.data.types import UNLABELLED, BenchmarkData
from ape_nas.errors import UserError

NAME = "wfdb"
VERSION = 1  # bump whenever the data produced for the same files and parameters changes (used in cache keys)
PATH_PARAMS = ("path", "label_table")  # parameters naming raw data files or folders (content-hashed for caching)


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
    given = {
        "path": path,
        "records": records,
        "channels": channels,
        "labels": labels,
        "classes": classes,
        "subject_of": subject_of,
        "annotator": annotator,
        "annotation_classes": annotation_classes,
        "marker_channel": marker_channel,
        "marker_classes": marker_classes,
        "marker_threshold": marker_threshold,
        "label_table": label_table,
        "fs_override": fs_override,
    }
    p = wfdb_params.check({**given, "require_labels": require_labels})
    root, records = _root(Path(p["path"]), p["records"])
    available, absent, listing = discover(root)
    sources: list[str] = [str(listing)] if listing else []
    skipped: dict[str, str] = {}
    for name in absent if records is None else []:
        _skip(skipped, name, f"listed in {listing} but {name}.hea is not in {root}")
    selected = _select(root, records, available)
    known = sorted({*available, *selected})
    unknown = [k for k in p["fs_override"] or {} if k not in known]
    if unknown:
        raise UserError(f"wfdb: fs_override names record(s) {', '.join(map(repr, unknown))} not in {root}")
    subject = subject_fn(p["subject_of"], known)
    table: list[Interval] = []
    if labels == "table":
        table = _read_table(label_table, known, subject)
        sources.append(str(label_table))
    p["classes"] = class_names(labels, p["classes"], annotation_classes, marker_classes, table)

    wanted = None if channels is None else [normalise_name(c) for c in channels]
    groups: dict[str, list[Record]] = {}
    label_rates: dict[str, float] = {}
    seen_channels: set[str] = set()
    for name in selected:
        rec, files = read_record(root, name, (fs_override or {}).get(name))
        sources += files
        seen_channels |= set(rec.signals)
        keep = list(rec.signals) if wanted is None else wanted
        lacking = [c for c in keep if c not in rec.signals]
        if lacking:
            _skip(skipped, name, f"no channel(s) {', '.join(lacking)} (it has {', '.join(rec.signals)})")
            continue
        rate = max(rec.rates[c] for c in keep)
        lab, reason = _label(rec, root, subject(name), p, table, rate, sources)
        if lab is None:
            if p["require_labels"]:
                _skip(skipped, name, reason)
                continue
            lab = np.full(round(rec.duration_s * rate), UNLABELLED, dtype=np.int64)
        rec.keep(keep)
        rec.labels, rec.label_rate = lab, rate
        groups.setdefault(subject(name), []).append(rec)
        label_rates[subject(name)] = max(label_rates.get(subject(name), 0.0), rate)
    never = [c for c in wanted or [] if c not in seen_channels]
    if never:
        raise UserError(
            f"wfdb: channel(s) {', '.join(never)} in no record of {root}; available: {', '.join(sorted(seen_channels))}"
        )
    subjects = [join(sid, parts, label_rates[sid]) for sid, parts in groups.items()]
    if not subjects:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise UserError(f"wfdb: no usable record in {root}: {reasons}")
    no_labels = ""
    if not any(s.is_labelled() for s in subjects):
        no_labels = (
            "wfdb: read without labels (labels: none); choose a label source with labels=annotations, marker or table"
            if labels == "none"
            else f"wfdb: the {labels} labels label no sample of the classes {', '.join(p['classes'])}"
        )
    return BenchmarkData(
        name=NAME,
        subjects=subjects,
        class_names=p["classes"],
        params={**given, "path": str(path), "classes": p["classes"]},
        sources=list(dict.fromkeys(sources)),
        skipped=skipped,
        no_labels=no_labels,
    )


def _root(root: Path, records: list[str] | None) -> tuple[Path, list[str] | None]:
    """The database folder, and the records to read (one record's ``.hea`` as ``path`` selects that record)."""
    if root.is_file() and root.suffix == ".hea":
        return root.parent, records or [root.stem]
    if not root.is_dir():
        what = "is not a .hea file or a folder" if root.exists() else "not found"
        raise UserError(f"wfdb: path {root}: {what}; expected the folder holding the .hea and .dat files")
    return root, records


def _select(root: Path, records: list[str] | None, available: list[str]) -> list[str]:
    if records is None:
        selected = list(available)
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
    return selected


def _read_table(label_table: str, known: list[str], subject: Any) -> list[Interval]:
    """The interval table; its rows name records or subjects, and a subject of several records needs clock times."""
    table = read_interval_table(label_table)
    members: dict[str, list[str]] = {}
    for name in known:
        members.setdefault(subject(name), []).append(name)
    check_subjects(table, sorted({*known, *members}), label_table)
    for iv in table:
        if iv.subject not in known and len(members[iv.subject]) > 1 and not iv.absolute:
            raise UserError(
                f"{label_table}:{iv.line}: subject {iv.subject!r} has several records "
                f"({', '.join(members[iv.subject])}); name the record, or use absolute times"
            )
    return table


def _label(
    rec: Record, root: Path, sid: str, p: dict[str, Any], table: list[Interval], rate: float, sources: list[str]
) -> tuple[np.ndarray | None, str]:
    """The record's labels at ``rate`` from the chosen source, or (None, why it has no labelled sample)."""
    labels, names = p["labels"], p["classes"]
    if labels == "none":
        return np.full(round(rec.duration_s * rate), UNLABELLED, dtype=np.int64), ""
    reason = ""
    if labels == "annotations":
        lab, file = label_annotations(rec, root, p["annotator"], p["annotation_classes"], names, rate)
        sources.append(file)
    elif labels == "marker":
        lab, reason = label_marker(
            rec, p["marker_channel"], p["marker_threshold"], p["marker_classes"], sid, names, rate
        )
    else:
        rows = [iv for iv in table if iv.subject in (rec.name, sid) and iv.label in names]
        lab = intervals_to_labels(rows, names, rec.t0, rec.duration_s, rate, p["label_table"])
    if lab is not None and (lab != UNLABELLED).any():
        return lab, ""
    return None, reason or f"no labelled samples from the {labels} labels for classes {', '.join(names)}"


def _skip(skipped: dict[str, str], name: str, reason: str) -> None:
    skipped[name] = reason
    warnings.warn(f"wfdb: skipping record {name}: {reason}", stacklevel=3)
