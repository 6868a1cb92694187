"""The ``stress-predict`` benchmark: Empatica E4 recordings of a ~60 min lab stress protocol (Iqbal et al. 2022).

Layout (a copy of the public Stress-Predict dataset; never downloaded)::

    <path>/Raw_data/SXX/{BVP.csv, HR.csv, IBI.csv, tags_SXX.csv}     one E4 session per subject (see readers.e4)
    <path>/Processed_data/Improved_All_Combined_hr_rsp_binary.csv    authors' per-second stress labels (S02..)
    <path>/Processed_data/Time_logs.csv                              clock times of every protocol phase

Tasks (labels at 1 Hz; ``t0`` = the session start of the E4 files):

* ``binary`` — ``["no-stress", "stress"]``. The authors' per-second labels (``Label`` at unix second ``Time(sec)``
  labels ``[T, T + 1)``), placed by their unix times: ``label_offset = first T - t0`` (9 s). Their definition,
  checked against the E4 button presses: stress = the Stroop, Interview and Hyperventilation tasks, no-stress =
  every other second of the recording. A subject without rows there (S01) is labelled the same way from
  Time_logs: stress inside those three phases, no-stress elsewhere inside the logged session (first phase start
  to last phase end), unlabelled outside it. On S02..S28 the Time_logs-derived labels agree with the authors' on
  95.2 % of the seconds (minute-resolution clock times vs button presses).
* ``phases`` — ``["baseline", "stroop", "interview", "hyperventilation", "relax"]`` from Time_logs: the
  "Baseline/Questionnaire" column is *baseline*, every "Relax" column and the closing "Relax/Baseline" are
  *relax*; Consent and the later Questionnaire phase (writing, neither rest nor a stressor), the gaps between
  phases and the time outside the session are unlabelled.

Time_logs quirks handled by :func:`read_time_logs`: two header rows (phase names, then Start/End); a 12-hour
clock without am/pm (``01:05:00`` after ``12:55:00`` is 13:05): the Start Time is read in lab hours (08:00-19:59,
so 1-7 o'clock is pm, 12 is noon) and every other time of the row is the reading nearest to it; columns are not
assumed to be in chronological order (S01's Baseline/Questionnaire column lies after its Stroop and Relax);
times are UTC on the row's ``Date``; the End Time column is not used (S17's reads 03:11, the session ends 04:08).
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ape_nas.data.ids import natural_sorted
from ape_nas.data.readers.e4 import NoDataError, name_list, path_param, read_session, skip_subject
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import UserError

NAME = "stress-predict"
VERSION = 1

BINARY_FILE = "Processed_data/Improved_All_Combined_hr_rsp_binary.csv"
TIME_LOGS = "Processed_data/Time_logs.csv"
TASKS: dict[str, list[str]] = {
    "binary": ["no-stress", "stress"],
    "phases": ["baseline", "stroop", "interview", "hyperventilation", "relax"],
}
CHANNELS = ("bvp", "hr", "ibi")
STRESS_PHASES = ("stroop", "interview", "hyperventilation")
# Time_logs phase header (lower case, spelling as in the file and corrected) -> class in the phases task
PHASE_KINDS: dict[str, str | None] = {
    "consent": None,
    "baseline/questionniare": "baseline",
    "baseline/questionnaire": "baseline",
    "baseline": "baseline",
    "stroop test": "stroop",
    "stroop": "stroop",
    "relax": "relax",
    "interview": "interview",
    "hyperventilation": "hyperventilation",
    "questionniare": None,
    "questionnaire": None,
    "relax/baseline": "relax",
}
LAB_DAY_START_H = 8  # a Start Time hour below this (1-7) is pm
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


@dataclass(frozen=True)
class Phase:
    """One protocol phase of one subject: header as in the file, its class (None = unlabelled), unix times."""

    column: str
    kind: str | None
    start: float
    end: float


@dataclass
class TimeLog:
    """One row of Time_logs.csv."""

    subject: str
    line: int
    date: str
    session_id: str
    day: str
    phases: list[Phase] = field(default_factory=list)

    @property
    def start(self) -> float:
        return min(p.start for p in self.phases)

    @property
    def end(self) -> float:
        return max(p.end for p in self.phases)


def _clock(text: str, where: str) -> tuple[int, int]:
    """``HH:MM[:SS]`` → (hour, seconds after the full hour)."""
    m = _CLOCK.match(text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
        raise UserError(f"{where}: {text!r} is not a clock time; expected HH:MM:SS")
    return int(m.group(1)), int(m.group(2)) * 60 + int(m.group(3) or 0)


def _anchor(hour: int, rest: int) -> int:
    """The session Start Time in seconds of the day, read in lab hours (08:00-19:59)."""
    if 0 < hour < LAB_DAY_START_H:
        hour += 12
    return hour * 3600 + rest


def _nearest(hour: int, rest: int, anchor: int) -> int:
    """A 12-hour clock reading → the seconds of the day (am or pm) nearest to ``anchor``."""
    if hour > 12:
        return hour * 3600 + rest
    candidates = [(hour % 12) * 3600 + rest, (hour % 12 + 12) * 3600 + rest]
    return min(candidates, key=lambda s: abs(s - anchor))


def read_time_logs(path: str | Path) -> dict[str, TimeLog]:
    """Read Time_logs.csv → subject → its phases in unix seconds (quirks: see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found; expected the Stress-Predict phase time log")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise UserError(f"{p}: {len(rows)} line(s); expected two header rows (phase names, then Start/End) and data")
    names = [c.strip() for c in rows[0]]
    subs = [c.strip().lower() for c in rows[1]] + [""] * len(names)
    lower = [n.lower() for n in names]
    for need in ("s. id.", "start time", "date"):
        if need not in lower:
            raise UserError(f"{p}:1: no {need!r} column; expected the Stress-Predict Time_logs header")
    c_id, c_start, c_date = lower.index("s. id."), lower.index("start time"), lower.index("date")
    c_session = lower.index("session id") if "session id" in lower else None
    phase_cols: list[tuple[int, str, str | None]] = []
    counts: dict[str, int] = {}
    for c, name in enumerate(names):
        if subs[c] != "start":
            continue
        if subs[c + 1] != "end" or (c + 1 < len(names) and names[c + 1]):
            raise UserError(f"{p}:2: phase {name!r} has no End column right after its Start; expected Start,End pairs")
        if name.lower() not in PHASE_KINDS:
            raise UserError(f"{p}:1: unknown phase {name!r}; expected one of {', '.join(sorted(set(PHASE_KINDS)))}")
        counts[name] = counts.get(name, 0) + 1
        label = name if counts[name] == 1 else f"{name} #{counts[name]}"
        phase_cols.append((c, label, PHASE_KINDS[name.lower()]))
    if not phase_cols:
        raise UserError(f"{p}:2: no Start/End phase columns; expected the Stress-Predict Time_logs header")
    out: dict[str, TimeLog] = {}
    for lineno, row in enumerate(rows[2:], start=3):
        if not row or all(not c.strip() for c in row):
            continue
        row = [c.strip() for c in row] + [""] * (len(names) - len(row))
        where = f"{p}:{lineno}"
        sid = row[c_id]
        if not re.fullmatch(r"S\d+", sid):
            raise UserError(f"{where}: subject {sid!r} is not an id like S01")
        if sid in out:
            raise UserError(f"{where}: subject {sid} appears twice (first on line {out[sid].line})")
        try:
            day = datetime.fromisoformat(row[c_date]).replace(tzinfo=UTC)
        except ValueError:
            raise UserError(f"{where}: Date {row[c_date]!r} is not a date; expected YYYY-MM-DD") from None
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        anchor = _anchor(*_clock(row[c_start], f"{where}: Start Time"))
        log = TimeLog(sid, lineno, day.date().isoformat(), row[c_session] if c_session is not None else "", "")
        log.day = next((c for c in row if c.lower().startswith("day ")), "")
        for c, label, kind in phase_cols:
            a_text, b_text = row[c], row[c + 1]
            if not a_text and not b_text:
                continue
            if not a_text or not b_text:
                raise UserError(f"{where}: phase {label!r} has only one of Start/End; expected both or neither")
            a = midnight + _nearest(*_clock(a_text, f"{where}: {label} Start"), anchor)
            b = midnight + _nearest(*_clock(b_text, f"{where}: {label} End"), anchor)
            if b <= a:
                raise UserError(f"{where}: phase {label!r} ends ({b_text}) before it starts ({a_text})")
            log.phases.append(Phase(label, kind, a, b))
        if not log.phases:
            raise UserError(f"{where}: subject {sid} has no phase times")
        out[sid] = log
    return out


def read_binary_labels(path: str | Path) -> dict[str, tuple[float, np.ndarray]]:
    """Read the authors' per-second file → subject ("S02") → (unix time of the first second, 0/1 labels).

    Seconds missing between a participant's rows are ``UNLABELLED``.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found; expected the authors' per-second labels (Participant,Time(sec),Label)")
    layout = "Participant,…,Time(sec),Label with integer participant, unix second and 0/1 label"
    try:
        frame = pd.read_csv(p, skip_blank_lines=True, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise UserError(f"{p}: empty file; expected {layout}") from None
    cols = {str(c).strip().lower(): c for c in frame.columns}
    for need in ("participant", "time(sec)", "label"):
        if need not in cols:
            raise UserError(f"{p}:1: no {need!r} column; expected {layout}")
    data = {}
    for need in ("participant", "time(sec)", "label"):
        col = frame[cols[need]]
        num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(num)
        if bad.any():
            i = int(np.argmax(bad))
            raise UserError(f"{p}:{i + 2}: {cols[need]} {col.iloc[i]!r} is not a number; expected {layout}")
        data[need] = num
    bad = ~np.isin(data["label"], (0, 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{p}:{i + 2}: Label {data['label'][i]:g} is not 0 or 1; expected {layout}")
    out = {}
    for who in np.unique(data["participant"]):
        rows = np.flatnonzero(data["participant"] == who)
        t, lab = data["time(sec)"][rows], data["label"][rows].astype(np.int64)
        first = float(t.min())
        idx = np.round(t - first).astype(np.int64)
        labels = np.full(int(idx.max()) + 1, UNLABELLED, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        dup = np.flatnonzero((np.diff(idx[order]) == 0) & (np.diff(lab[order]) != 0))
        if dup.size:
            raise UserError(f"{p}:{rows[order[dup[0] + 1]] + 2}: second labelled twice with different labels")
        labels[idx] = lab
        out[f"S{int(who):02d}"] = (first, labels)
    return out


def time_log_labels(log: TimeLog, task: str, t0: float, duration_s: float, rate: float = 1.0) -> np.ndarray:
    """Per-sample labels over ``[0, duration_s)`` after ``t0`` from the logged phases (see the module docstring)."""
    n = round(duration_s * rate)
    labels = np.full(n, UNLABELLED, dtype=np.int64)

    def span(a: float, b: float) -> slice:
        return slice(min(n, max(0, round((a - t0) * rate))), min(n, max(0, round((b - t0) * rate))))

    if task == "binary":
        labels[span(log.start, log.end)] = 0
        for ph in log.phases:
            if ph.kind in STRESS_PHASES:
                labels[span(ph.start, ph.end)] = 1
        return labels
    names = TASKS[task]
    for ph in log.phases:
        if ph.kind is not None:
            labels[span(ph.start, ph.end)] = names.index(ph.kind)
    return labels


def _root(path: str | None) -> Path:
    expected = "the Stress-Predict folder holding Raw_data/ and Processed_data/ (the data is never downloaded)"
    root = path_param(NAME, path, expected)
    if not (root / "Raw_data").is_dir():
        raise UserError(f"{NAME}: {root} has no Raw_data/ folder; expected {expected}")
    return root


def _labels_from_front(labels: np.ndarray, offset: float) -> tuple[np.ndarray, float]:
    """Drop labels before ``t0`` so that ``label_offset`` is never negative."""
    if offset >= 0:
        return labels, offset
    cut = int(np.ceil(-offset - 1e-9))
    return labels[cut:], offset + cut


def load(
    *,
    path: str | None = None,
    task: str = "binary",
    channels: Sequence[str] = CHANNELS,
    subjects: Sequence[str] | None = None,
    require_labels: bool = True,
) -> BenchmarkData:
    """Load the Stress-Predict benchmark (labels and quirks: see the module docstring and docs/DATA_FORMATS.md).

    ``channels``: some of ``bvp`` (64 Hz), ``hr`` (1 Hz, starts 10 s after BVP), ``ibi`` (beat events, gaps kept).
    ``subjects``: ids like ``"S05"`` (default: every ``Raw_data/SXX`` folder). A subject with missing or
    truncated files or without labelled seconds is skipped with a warning and its reason in ``skipped``.
    ``require_labels=False`` (prediction, inspection): the label files under ``Processed_data/`` are optional, and
    a subject without labelled seconds is kept, ``UNLABELLED``, rather than skipped.
    """
    root = _root(path)
    if not isinstance(task, str) or task not in TASKS:
        raise UserError(f"{NAME}: unknown task {task!r}; expected one of {', '.join(TASKS)}")
    channels = name_list(NAME, "channels", channels, CHANNELS)
    if not isinstance(require_labels, bool):
        raise UserError(f"{NAME}: require_labels must be true or false, got {require_labels!r}")
    raw = (d.name for d in (root / "Raw_data").iterdir() if d.is_dir() and re.fullmatch(r"S\d+", d.name))
    found = natural_sorted(raw)
    ids = found if subjects is None else name_list(NAME, "subjects", subjects, found)
    if not ids:
        raise UserError(f"{NAME}: {root / 'Raw_data'} has no subject folders (S01, S02, …)")
    label_files = [TIME_LOGS, *([BINARY_FILE] if task == "binary" else [])]
    absent = [f for f in label_files if not (root / f).is_file()]
    no_labels = ""
    if absent and not require_labels:  # labels from the files that exist (Time_logs alone gives both tasks)
        label_files = [f for f in label_files if f not in absent]
        if not label_files:
            no_labels = f"{NAME}: no label files ({', '.join(str(root / f) for f in absent)} not found)"
    logs = read_time_logs(root / TIME_LOGS) if TIME_LOGS in label_files else {}
    binary: dict[str, tuple[float, np.ndarray]] = {}
    if BINARY_FILE in label_files:
        binary = read_binary_labels(root / BINARY_FILE)
    sources = [str(root / f) for f in label_files]
    recs: list[SubjectRecording] = []
    skipped: dict[str, str] = {}
    for sid in ids:
        try:
            rec = read_session(root / "Raw_data" / sid, channels, subject=sid)
        except NoDataError as err:
            skip_subject(skipped, NAME, sid, str(err))
            continue
        sources += rec.meta.pop("files")
        log = logs.get(sid)
        duration = rec.duration_s()
        assert rec.t0 is not None
        if log is not None:
            rec.meta.update(date=log.date, day=log.day, session_id=log.session_id)
            rec.meta["phases"] = [(ph.column, ph.kind, ph.start - rec.t0, ph.end - rec.t0) for ph in log.phases]
            if abs(log.start - rec.t0) > 3600:
                warnings.warn(
                    f"{NAME}: {sid}: Time_logs session starts {(log.start - rec.t0) / 3600:+.1f} h from the "
                    "recording start; check its clock times",
                    UserWarning,
                    stacklevel=2,
                )
        if task == "binary" and sid in binary:
            first, lab = binary[sid]
            rec.labels, rec.label_offset = _labels_from_front(lab, first - rec.t0)
            rec.meta["label_source"] = Path(BINARY_FILE).name
        elif log is not None:
            rec.labels, rec.label_offset = time_log_labels(log, task, rec.t0, duration), 0.0
            rec.meta["label_source"] = Path(TIME_LOGS).name
        else:
            rec.labels = np.empty(0, dtype=np.int64)
        rec.label_rate = 1.0
        if not rec.is_labelled():
            if not label_files:
                reason = no_labels
            elif log is None and not (task == "binary" and sid in binary):
                where = f"no rows in {Path(BINARY_FILE).name} and " if task == "binary" else ""
                reason = f"no labelled data: {where}no row in {Path(TIME_LOGS).name}"
            else:
                reason = f"no labelled data: its {task} labels lie outside the recording"
            if require_labels:
                skip_subject(skipped, NAME, sid, reason)
                continue
            rec.set_unlabelled()
            rec.meta["no_labels"] = reason
        recs.append(rec)
    if not recs:
        raise UserError(f"{NAME}: no usable subject in {root}: " + "; ".join(f"{s}: {r}" for s, r in skipped.items()))
    if not no_labels and not any(rec.is_labelled() for rec in recs):
        no_labels = f"{NAME}: the {task} labels cover no second of the recordings"
    params = {"path": str(root), "task": task, "channels": list(channels), "subjects": ids}
    return BenchmarkData(
        NAME, recs, list(TASKS[task]), params=params, sources=sources, skipped=skipped, no_labels=no_labels
    )
