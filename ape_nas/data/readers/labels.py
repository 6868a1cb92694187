"""Label tables shared by readers: labelled intervals → per-sample labels.

Interval table (CSV with a header naming at least ``subject,start,end,label``; other columns are ignored)::

    subject,start,end,label
    S01,0,300,baseline
    S01,2022-02-07T09:39:00,2022-02-07T09:43:00,stress
    S02,1644227574,1644227874,baseline

``start``/``end`` are seconds after the recording's start (a number below 1e9), unix times (a number of at
least 1e9) or ISO-8601 date-times (UTC unless they carry an offset). Absolute times need the recording's ``t0``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ape_nas.data.types import UNLABELLED
from ape_nas.errors import UserError

UNIX_MIN = 1e9  # 2001-09-09: numbers at least this large are unix times


@dataclass(frozen=True)
class Interval:
    subject: str
    start: float
    end: float
    label: str
    absolute: bool  # unix seconds (True) or seconds after the recording start (False)
    line: int


def parse_time(text: str, where: str) -> tuple[float, bool]:
    """A time cell → (seconds, absolute?)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise UserError(
                f"{where}: {text!r} is not a time; expected seconds, a unix time or an ISO-8601 date-time"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp(), True
    if not math.isfinite(value):
        raise UserError(f"{where}: {text!r} is not a finite time")
    return value, value >= UNIX_MIN


def read_interval_table(path: str | Path) -> list[Interval]:
    """Read an interval table; problems name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: label table not found")
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise UserError(f"{p}: empty file; expected a header subject,start,end,label")
        cols = [h.strip().lower() for h in header]
        missing = [c for c in ("subject", "start", "end", "label") if c not in cols]
        if missing:
            raise UserError(f"{p}:1: header lacks column(s) {', '.join(missing)}; expected subject,start,end,label")
        idx = {c: cols.index(c) for c in ("subject", "start", "end", "label")}
        out = []
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(cols):
                raise UserError(f"{p}:{lineno}: expected {len(cols)} columns, got {len(row)}")
            where = f"{p}:{lineno}"
            start, abs_s = parse_time(row[idx["start"]], where)
            end, abs_e = parse_time(row[idx["end"]], where)
            if abs_s != abs_e:
                raise UserError(f"{where}: start and end mix relative seconds and absolute times")
            if end <= start:
                raise UserError(f"{where}: end {row[idx['end']]} is not after start {row[idx['start']]}")
            label = row[idx["label"]].strip()
            if not label:
                raise UserError(f"{where}: empty label")
            out.append(Interval(row[idx["subject"]].strip(), start, end, label, abs_s, lineno))
    return out


def check_subjects(intervals: list[Interval], known: list[str], path: str | Path) -> None:
    """A table naming subjects that are not in the data is an error (typo or wrong folder), with the line."""
    for iv in intervals:
        if iv.subject not in known:
            raise UserError(f"{path}:{iv.line}: subject {iv.subject!r} is not in the data; known: {', '.join(known)}")


def intervals_to_labels(
    intervals: list[Interval],
    class_names: list[str],
    t0: float | None,
    duration_s: float,
    rate: float,
    path: str | Path = "labels",
) -> np.ndarray:
    """Per-sample labels at ``rate`` over ``[0, duration_s)`` after ``t0``; UNLABELLED outside every interval.

    Overlapping intervals with different labels are an error (ambiguous ground truth).
    """
    n = round(duration_s * rate)
    labels = np.full(n, UNLABELLED, dtype=np.int64)
    owner = np.full(n, -1, dtype=np.int64)
    for iv in intervals:
        if iv.label not in class_names:
            raise UserError(
                f"{path}:{iv.line}: label {iv.label!r} is not a class; expected one of {', '.join(class_names)}"
            )
        if iv.absolute:
            if t0 is None:
                raise UserError(
                    f"{path}:{iv.line}: absolute times need a recording start time, which this "
                    "recording lacks; use seconds after the start"
                )
            start, end = iv.start - t0, iv.end - t0
        else:
            start, end = iv.start, iv.end
        a, b = max(0, round(start * rate)), min(n, round(end * rate))
        if b <= a:
            continue
        k = class_names.index(iv.label)
        clash = (owner[a:b] >= 0) & (labels[a:b] != k)
        if clash.any():
            raise UserError(
                f"{path}:{iv.line}: interval overlaps another with a different label (line {int(owner[a:b][clash][0])})"
            )
        labels[a:b] = k
        owner[a:b] = iv.line
    return labels
