"""Records → subjects: which subject a record belongs to, and one subject's records joined on one timeline."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ape_nas.data.readers.wfdb.records import Record
from ape_nas.data.types import UNLABELLED, SubjectRecording
from ape_nas.errors import UserError

RECORD_GAP_S = 60.0  # NaN/UNLABELLED gap between concatenated records of one subject


def subject_fn(subject_of: dict[str, str] | str | None, known: list[str]) -> Callable[[str], str]:
    """record name → subject id: by a mapping (its records must be ``known``), a regular expression, or itself."""
    if subject_of is None:
        return lambda name: name
    if isinstance(subject_of, dict):
        unknown = [k for k in subject_of if k not in known]
        if unknown:
            raise UserError(
                f"wfdb: subject_of names record(s) {', '.join(map(repr, unknown))} not in the folder; known: "
                f"{', '.join(known[:20])}"
            )
        return lambda name: subject_of.get(name, name)
    pattern = re.compile(subject_of)

    def by_regex(name: str) -> str:
        m = pattern.match(name)
        if not m:
            return name
        return (m.group(1) if pattern.groups else m.group(0)) or name

    return by_regex


def join(subject: str, parts: list[Record], label_rate: float) -> SubjectRecording:
    """One subject's labelled records in order, separated by :data:`RECORD_GAP_S` s of NaN and ``UNLABELLED``."""
    first = parts[0]
    _check_joinable(subject, parts)
    starts, t = [], 0.0
    for rec in parts:
        starts.append(t)
        t += rec.duration_s + RECORD_GAP_S
    total = starts[-1] + parts[-1].duration_s
    signals = {}
    for ch in first.signals:
        if len(parts) == 1:
            signals[ch] = first.signals[ch]
        else:
            signals[ch] = _place(np.full(round(total * first.rates[ch]), np.nan, dtype=np.float32), parts, starts, ch)
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


def _check_joinable(subject: str, parts: list[Record]) -> None:
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


def _place(out: np.ndarray, parts: list[Record], starts: list[float], ch: str) -> np.ndarray:
    """Channel ``ch`` of each record written into ``out`` at its start time."""
    rate = parts[0].rates[ch]
    for s, rec in zip(starts, parts, strict=True):
        a = round(s * rate)
        x = rec.signals[ch][: len(out) - a]
        out[a : a + len(x)] = x
    return out


def _record_meta(rec: Record, start: float) -> dict[str, Any]:
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
