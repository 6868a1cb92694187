"""Marker-channel labels: brief spikes on a marker channel (like drivedb's) cut a record into segments."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ape_nas.data.readers.wfdb.labels import segments_to_labels
from ape_nas.data.readers.wfdb.names import normalise_name
from ape_nas.data.readers.wfdb.params import DRIVEDB_ROUTE
from ape_nas.data.readers.wfdb.records import Record
from ape_nas.data.runs import true_runs
from ape_nas.data.types import UNLABELLED

MARKER_BASELINE_S = 10.0  # block length of the marker channel's running-median baseline
MARKER_MERGE_S = 10.0  # marker events closer than this are one event
MARKER_MIN_WIDTH = 2  # samples above threshold for a marker event (shorter = glitch)


def find_markers(x: np.ndarray, rate: float, threshold: float) -> np.ndarray:
    """Times (s) of marker spikes: runs ≥ MARKER_MIN_WIDTH samples more than ``threshold`` above a running median."""
    x = np.asarray(x, dtype=np.float64)
    baseline = _running_median(x, max(1, round(MARKER_BASELINE_S * rate / 2)))
    if baseline is None:
        return np.zeros(0)
    dev = np.nan_to_num(x - baseline, nan=-np.inf)
    starts, ends = true_runs(dev > threshold)
    wide = (ends - starts) >= MARKER_MIN_WIDTH
    peak_idx = np.array([s + int(np.argmax(dev[s:e])) for s, e in zip(starts[wide], ends[wide], strict=True)], int)
    if len(peak_idx) == 0:
        return np.zeros(0)
    peaks, times = dev[peak_idx], peak_idx / rate
    # merge events closer than MARKER_MERGE_S: keep the highest peak of each cluster
    cluster = np.concatenate(([0], np.cumsum(np.diff(times) >= MARKER_MERGE_S)))
    out = []
    for c in range(int(cluster[-1]) + 1):
        members = np.flatnonzero(cluster == c)
        out.append(times[members[np.argmax(peaks[members])]])
    return np.asarray(out)


def _running_median(x: np.ndarray, block: int) -> np.ndarray | None:
    """Medians of ``block``-sample blocks, interpolated between block centres (None: no finite sample)."""
    n = len(x)
    if n == 0:
        return None
    nb = -(-n // block)
    padded = np.full(nb * block, np.nan)
    padded[:n] = x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks
        med = np.nanmedian(padded.reshape(nb, block), axis=1)
    ok = np.isfinite(med)
    if not ok.any():
        return None
    return np.interp(np.arange(n), ((np.arange(nb) + 0.5) * block)[ok], med[ok])


def label_marker(
    rec: Record, marker_channel: str, threshold: float, marker_classes: Any, subject: str, names: list[str], rate: float
) -> tuple[np.ndarray | None, str]:
    """Labels at ``rate`` from the marker events, or (None, why not); the events and segments go in ``rec.extra``."""
    ch = normalise_name(marker_channel)
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
    codes = [names.index(c) if c in names else UNLABELLED for c in lst]
    rec.extra["segments"] = [
        {"start_s": float(a), "end_s": float(b), "class": c}
        for a, b, c in zip([0.0, *events], [*events, rec.duration_s], lst, strict=True)
    ]
    return segments_to_labels(list(events), codes, round(rec.duration_s * rate), rate), ""


def _marker_list(marker_classes: Any, rec: Record, subject: str, n_events: int) -> list[str | None] | str:
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


def _fmt_times(times: np.ndarray) -> str:
    return "[" + ", ".join(f"{t:.1f}" for t in times) + "]"
