"""The ``stress-predict`` benchmark: Empatica E4 recordings of a ~60 min lab stress protocol (Iqbal et al. 2022).

Layout (a copy of the public Stress-Predict dataset; never downloaded)::

    <path>/Raw_data/SXX/{BVP.csv, HR.csv, IBI.csv, tags_SXX.csv}     one E4 session per subject (see readers.e4)
    <path>/Processed_data/Improved_All_Combined_hr_rsp_binary.csv    authors' per-second stress labels (S02..)
    <path>/Processed_data/Time_logs.xlsx                             clock times of every protocol phase

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

Files: the phase time log is the authors' ``Processed_data/Time_logs.xlsx``, as distributed (a converted
``Time_logs.csv`` is also accepted; when both are there they must agree: see :mod:`~ape_nas.data.readers.time_logs`,
which also lists the time log's quirks). Subjects labelled from the per-second file do not need the time log: a
folder without one still gives S02.. in the ``binary`` task (S01 is skipped, with its reason). The download's
other files (``ACC.csv``, ``EDA.csv``, ``TEMP.csv`` per subject, ``Questionnaires_scores.xlsx``, ``Readme.docx``)
are not read.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ape_nas.data.ids import natural_sorted
from ape_nas.data.readers import params, time_logs
from ape_nas.data.readers.e4 import NoDataError, path_param, read_session, skip_subject
from ape_nas.data.readers.time_logs import Phase, TimeLog, read_folder_time_logs, read_time_logs
from ape_nas.data.types import UNLABELLED, BenchmarkData, SubjectRecording
from ape_nas.errors import UserError
from ape_nas.schema import Field

NAME = "stress-predict"
VERSION = 1

BINARY_FILE = "Processed_data/Improved_All_Combined_hr_rsp_binary.csv"
TIME_LOGS, TIME_LOGS_CSV = time_logs.XLSX, time_logs.CSV  # the authors' spreadsheet; a converted copy
TASKS: dict[str, list[str]] = {
    "binary": ["no-stress", "stress"],
    "phases": ["baseline", "stroop", "interview", "hyperventilation", "relax"],
}
CHANNELS = ("bvp", "hr", "ibi")
STRESS_PHASES = ("stroop", "interview", "hyperventilation")
NO_TIME_LOG = "no time log (Processed_data/Time_logs.xlsx or Time_logs.csv)"
FIELDS = {
    "path": params.path("the Stress-Predict folder (Raw_data/, Processed_data/)"),
    "task": Field(str, "binary", choices=tuple(TASKS)),
    "channels": Field(list, list(CHANNELS), check=params.names(CHANNELS)),
    "subjects": Field(list, None, nullable=True, check=params.names()),
    "require_labels": params.REQUIRE_LABELS,
}

__all__ = [
    "BINARY_FILE",
    "NAME",
    "TASKS",
    "TIME_LOGS",
    "TIME_LOGS_CSV",
    "Phase",
    "TimeLog",
    "load",
    "read_binary_labels",
    "read_time_logs",
]


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


def _labels(
    root: Path, task: str, require_labels: bool
) -> tuple[dict[str, TimeLog], dict[str, tuple[float, np.ndarray]], list[Path], str]:
    """The label files of a folder: (time logs, authors' per-second labels, files read, why there are no labels).

    The ``phases`` task needs the time log; ``binary`` needs the per-second file, and the time log only for the
    subjects without rows there. Without ``require_labels`` every label file is optional.
    """
    logs, files = read_folder_time_logs(root)
    if task == "phases" and not files and require_labels:
        raise UserError(f"{root / time_logs.XLSX}: {time_logs.NOT_FOUND}")
    binary: dict[str, tuple[float, np.ndarray]] = {}
    if task == "binary" and (require_labels or (root / BINARY_FILE).is_file()):
        binary = read_binary_labels(root / BINARY_FILE)
        files.append(root / BINARY_FILE)
    no_labels = ""
    if not files:
        wanted = [f"{root / time_logs.XLSX} (or .csv)", *([str(root / BINARY_FILE)] if task == "binary" else [])]
        no_labels = f"{NAME}: no label files ({', '.join(wanted)} not found)"
    return logs, binary, files, no_labels


def _label_subject(
    rec: SubjectRecording, task: str, log: TimeLog | None, binary: dict[str, tuple[float, np.ndarray]], log_name: str
) -> None:
    """Labels (1 Hz) and the time log's facts of one recording: authors' per-second labels first, else the log."""
    assert rec.t0 is not None
    if log is not None:
        rec.meta.update(date=log.date, day=log.day, session_id=log.session_id)
        rec.meta["phases"] = [(ph.column, ph.kind, ph.start - rec.t0, ph.end - rec.t0) for ph in log.phases]
        if abs(log.start - rec.t0) > 3600:
            warnings.warn(
                f"{NAME}: {rec.subject}: {log_name} session starts {(log.start - rec.t0) / 3600:+.1f} h from the "
                "recording start; check its clock times",
                UserWarning,
                stacklevel=3,
            )
    if task == "binary" and rec.subject in binary:
        first, lab = binary[rec.subject]
        rec.labels, rec.label_offset = _labels_from_front(lab, first - rec.t0)
        rec.meta["label_source"] = Path(BINARY_FILE).name
    elif log is not None:
        rec.labels, rec.label_offset = time_log_labels(log, task, rec.t0, rec.duration_s()), 0.0
        rec.meta["label_source"] = log_name
    else:
        rec.labels = np.empty(0, dtype=np.int64)
    rec.label_rate = 1.0


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

    Example:
        >>> data = load(path="../shared/data/stress-predict", subjects=["S02"], channels=["hr"])  # doctest: +SKIP
        >>> data.subjects[0].meta["label_source"]  # doctest: +SKIP
        'Improved_All_Combined_hr_rsp_binary.csv'
    """
    p = params.check(
        {"path": path, "task": task, "channels": channels, "subjects": subjects, "require_labels": require_labels},
        FIELDS,
    )
    root, task, channels, require_labels = _root(p["path"]), p["task"], p["channels"], p["require_labels"]
    raw = (d.name for d in (root / "Raw_data").iterdir() if d.is_dir() and re.fullmatch(r"S\d+", d.name))
    found = natural_sorted(raw)
    ids = found if p["subjects"] is None else params.check_names("subjects", p["subjects"], found)
    if not ids:
        raise UserError(f"{NAME}: {root / 'Raw_data'} has no subject folders (S01, S02, …)")
    logs, binary, label_files, no_labels = _labels(root, task, require_labels)
    log_name = next((f.name for f in label_files if f.name.startswith("Time_logs")), "")
    sources = [str(f) for f in label_files]
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
        _label_subject(rec, task, log, binary, log_name)
        if not rec.is_labelled():
            if not label_files:
                reason = no_labels
            elif log is None and not (task == "binary" and sid in binary):
                where = f"no rows in {Path(BINARY_FILE).name} and " if task == "binary" else ""
                reason = f"no labelled data: {where}" + (f"no row in {log_name}" if log_name else NO_TIME_LOG)
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
    out = {"path": str(root), "task": task, "channels": list(channels), "subjects": ids}
    return BenchmarkData(
        NAME, recs, list(TASKS[task]), params=out, sources=sources, skipped=skipped, no_labels=no_labels
    )
