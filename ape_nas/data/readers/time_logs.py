"""Stress-Predict's phase time log: ``Processed_data/Time_logs.xlsx`` (as distributed) or a converted ``.csv``.

Both hold the same table: two header rows (phase names, merged over their Start and End cells in the
spreadsheet, then Start/End), one row per subject. :func:`read_time_logs` reads either file into the same
:class:`TimeLog` per subject; :func:`read_folder_time_logs` picks the files of a dataset folder: the authors'
``Time_logs.xlsx`` when present, and a ``Time_logs.csv`` beside it must agree with it (same subjects, phases and
times; a difference is an error naming both files), so neither can be edited alone by mistake. Locations in
errors are ``file:row`` (the spreadsheet's row number, or the CSV's line, which are the same).

Quirks handled: a 12-hour clock without am/pm (``01:05:00`` after ``12:55:00`` is 13:05): the Start Time is read
in lab hours (08:00-19:59, so 1-7 o'clock is pm, 12 is noon) and every other time of the row is the reading
nearest to it; columns are not assumed to be in chronological order (S01's Baseline/Questionnaire column lies
after its Stroop and Relax); times are UTC on the row's ``Date``; the End Time column is not used (S17's reads
03:11, the session ends 04:08). Spreadsheet cells hold times and dates as such (openpyxl gives
``datetime.time`` / ``datetime``), the CSV holds them as text; both are read as the same clock readings.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ape_nas.errors import UserError

XLSX = "Processed_data/Time_logs.xlsx"  # as the authors distribute it
CSV = "Processed_data/Time_logs.csv"  # a converted copy, also accepted
FILES = (XLSX, CSV)  # in order of precedence
# phase header (lower case, spelling as in the file and corrected) -> class in the phases task
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
NOT_FOUND = "file not found; expected the Stress-Predict phase time log (Time_logs.xlsx as distributed, or a csv)"
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
    """One subject's row of the time log (``line``: its row in the file)."""

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


def _hms(seconds: float) -> str:
    h, rest = divmod(round(seconds), 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"


def cell_text(value: Any) -> str:
    """A spreadsheet cell as the CSV export writes it: times ``HH:MM:SS``, dates ``YYYY-MM-DD HH:MM:SS``."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat(sep=" ")
    if isinstance(value, dt.time):  # rounded: Excel stores a time as a fraction of a day
        return _hms(value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6)
    if isinstance(value, dt.timedelta):  # a duration-formatted cell ([h]:mm:ss)
        return _hms(value.total_seconds())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _csv_rows(p: Path) -> list[list[str]]:
    with p.open(newline="", encoding="utf-8-sig") as fh:
        return [[c.strip() for c in row] for row in csv.reader(fh)]


def _xlsx_rows(p: Path) -> list[list[str]]:
    """The first sheet's rows from row 1 (empty rows kept, so that positions are spreadsheet row numbers)."""
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = openpyxl.load_workbook(p, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise UserError(f"{p}: not a readable .xlsx workbook ({exc}); expected the Stress-Predict time log") from None
    try:
        sheet = book.worksheets[0]
        return [[cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


def read_time_logs(path: str | Path) -> dict[str, TimeLog]:
    """Read ``Time_logs.xlsx`` or ``Time_logs.csv`` → subject → its phases in unix seconds (see the module doc)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: {NOT_FOUND}")
    return parse_time_logs(_xlsx_rows(p) if p.suffix.lower() == ".xlsx" else _csv_rows(p), p)


def _phase_columns(names: list[str], subs: list[str], p: Path) -> list[tuple[int, str, str | None]]:
    """(column of Start, label, class) per phase; a repeated name gets ``#2``, ``#3`` …"""
    out: list[tuple[int, str, str | None]] = []
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
        out.append((c, label, PHASE_KINDS[name.lower()]))
    if not out:
        raise UserError(f"{p}:2: no Start/End phase columns; expected the Stress-Predict Time_logs header")
    return out


def parse_time_logs(rows: list[list[str]], p: Path) -> dict[str, TimeLog]:
    """The time-log table as text cells (row 1 first) → subject → :class:`TimeLog`; errors name ``p`` and row."""
    while rows and not any(rows[-1]):
        rows = rows[:-1]
    if len(rows) < 2:
        raise UserError(f"{p}: {len(rows)} line(s); expected two header rows (phase names, then Start/End) and data")
    names = list(rows[0])
    subs = [c.lower() for c in rows[1]] + [""] * len(names)
    lower = [n.lower() for n in names]
    for need in ("s. id.", "start time", "date"):
        if need not in lower:
            raise UserError(f"{p}:1: no {need!r} column; expected the Stress-Predict Time_logs header")
    c_id, c_start, c_date = lower.index("s. id."), lower.index("start time"), lower.index("date")
    c_session = lower.index("session id") if "session id" in lower else None
    phase_cols = _phase_columns(names, subs, p)
    out: dict[str, TimeLog] = {}
    for lineno, row in enumerate(rows[2:], start=3):
        if not any(row):
            continue
        row = list(row) + [""] * (len(names) - len(row))
        where = f"{p}:{lineno}"
        sid = row[c_id]
        if not re.fullmatch(r"S\d+", sid):
            raise UserError(f"{where}: subject {sid!r} is not an id like S01")
        if sid in out:
            raise UserError(f"{where}: subject {sid} appears twice (first on line {out[sid].line})")
        try:
            day = dt.datetime.fromisoformat(row[c_date]).replace(tzinfo=dt.UTC)
        except ValueError:
            raise UserError(f"{where}: Date {row[c_date]!r} is not a date; expected YYYY-MM-DD") from None
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
        anchor = _anchor(*_clock(row[c_start], f"{where}: Start Time"))
        day_name = next((c for c in row if c.lower().startswith("day ")), "")
        log = TimeLog(sid, lineno, day.date().isoformat(), row[c_session] if c_session is not None else "", day_name)
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


def _difference(a: dict[str, TimeLog], b: dict[str, TimeLog]) -> str:
    """The first way two readings of the time log differ ('' when they agree; row numbers may differ)."""
    if sorted(a) != sorted(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        return f"subjects differ (only in the first: {only_a or 'none'}, only in the second: {only_b or 'none'})"
    for sid in sorted(a):
        x, y = a[sid], b[sid]
        for what in ("date", "session_id", "day"):
            if getattr(x, what) != getattr(y, what):
                return f"{sid}: {what} {getattr(x, what)!r} vs {getattr(y, what)!r}"
        if x.phases != y.phases:
            mine = {ph.column: ph for ph in x.phases}
            theirs = {ph.column: ph for ph in y.phases}
            for col in [*mine, *theirs]:
                if mine.get(col) != theirs.get(col):
                    return f"{sid}: phase {col!r} differs"
    return ""


def present_files(root: Path) -> list[Path]:
    """The time-log files in a dataset folder, in order of precedence (xlsx first); possibly none."""
    return [root / f for f in FILES if (root / f).is_file()]


def read_folder_time_logs(root: Path) -> tuple[dict[str, TimeLog], list[Path]]:
    """A dataset folder's time log and the files read: the xlsx (else the csv); a csv beside the xlsx must agree.

    Without either file: ``({}, [])``.
    """
    files = present_files(root)
    if not files:
        return {}, []
    logs = read_time_logs(files[0])
    for other in files[1:]:
        problem = _difference(logs, read_time_logs(other))
        if problem:
            raise UserError(
                f"{other}: disagrees with {files[0].name} ({problem}); expected the same time log: remove the "
                f"converted {other.name} (the authors' {files[0].name} is read) or make the two agree"
            )
    return logs, files
