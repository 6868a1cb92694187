"""Preprocessing of one subject's recording into labelled windows (no torch).

Steps, in order: pick channels → band-pass (optional, per channel; :func:`ape_nas.data.filters.bandpass`, the
HRV beat detector's filter) → resample to a common rate (beat-interval events become an evenly sampled interval
series with NaN in gaps) → align channels on their common time span → cut fixed-length windows → window labels
by majority with a purity threshold (transitions and unlabelled stretches fall out) → signal-quality rejection
(NaN runs, flat lines, clipping, beat gaps) → per-subject z-score (statistics from that subject's own kept data
only) → gaps set to 0 after normalisation.

Derived channels: ``<signal>_ibi`` (``bvp_ibi``, ``ppg_ibi``, ``ecg_ibi``), when the recording has no channel of
that name, is the beat-interval series of the beats detected on ``<signal>``
(:func:`ape_nas.hrv.recording_rr`: the HRV baseline's detector and RR cleaning, on the raw signal whatever
``bandpass_hz`` says), windowed exactly as a reader's beat-interval channel (gaps kept, never invented).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import signal

from ape_nas.data.filters import bandpass
from ape_nas.data.intervals import MAX_BEAT_GAP_S, continuous
from ape_nas.data.quality import QualityConfig, reject
from ape_nas.data.types import UNLABELLED, SubjectRecording
from ape_nas.errors import UserError

__all__ = [
    "IBI_SUFFIX",
    "MAX_BEAT_GAP_S",
    "SubjectWindows",
    "beat_events",
    "channel_band",
    "channel_rate",
    "derived_source",
    "events_to_series",
    "has_channel",
    "window_subject",
]

IBI_SUFFIX = "_ibi"  # <signal>_ibi: the beat intervals detected on <signal> (a derived channel)


@dataclass
class SubjectWindows:
    windows: np.ndarray  # (n, channels, time) float32
    labels: np.ndarray  # (n,) int64
    starts_s: np.ndarray  # (n,) window start, seconds after the recording's t0
    dropped: dict[str, int] = field(default_factory=dict)  # windows dropped, by reason


def _resample(x: np.ndarray, rate: float, target: float) -> np.ndarray:
    if abs(rate - target) < 1e-9:
        return x
    ratio = Fraction(target / rate).limit_denominator(1000)
    if np.isnan(x).any():  # resample_poly would smear NaNs: resample the mask separately
        mask = np.isnan(x)
        y = signal.resample_poly(np.where(mask, 0.0, x), ratio.numerator, ratio.denominator)
        m = signal.resample_poly(mask.astype(float), ratio.numerator, ratio.denominator) > 0.01
        y[m] = np.nan
        return y
    return signal.resample_poly(x, ratio.numerator, ratio.denominator)


def events_to_series(events: np.ndarray, rate: float, end_s: float) -> np.ndarray:
    """Beat events (time, interval) → interval value held from one beat to the next, sampled at ``rate`` from 0 s.

    Samples before the first beat, after the last, and inside gaps (:func:`ape_nas.data.intervals.continuous`: an
    interval longer than MAX_BEAT_GAP_S or beats missing between two events) are NaN: gaps are marked, never
    invented.
    """
    n = max(0, int(end_s * rate))
    out = np.full(n, np.nan)
    if len(events) < 2 or n == 0:
        return out
    times, ivals = events[:, 0], events[:, 1]
    t = np.arange(n) / rate
    k = np.searchsorted(times, t, side="right")  # index of the next beat after each sample
    inside = (k > 0) & (k < len(times))
    nxt = np.clip(k, 1, len(times) - 1)
    # the interval ending at the next beat describes the time since the previous beat, unless there is a gap
    ok = inside & continuous(times, ivals)[nxt - 1]
    out[ok] = ivals[nxt][ok]
    return out


def derived_source(rec: SubjectRecording, ch: str) -> str | None:
    """The signal whose beats make the derived channel ``ch`` (``bvp_ibi`` → ``bvp``); None when ``ch`` is a
    channel of the recording itself or not a derived name."""
    if ch in rec.signals or ch in rec.events or not ch.endswith(IBI_SUFFIX):
        return None
    source = ch[: -len(IBI_SUFFIX)]
    return source if source in rec.signals else None


def has_channel(rec: SubjectRecording, ch: str) -> bool:
    """Whether the recording has channel ``ch``, or can derive it (:func:`derived_source`)."""
    return ch in rec.signals or ch in rec.events or derived_source(rec, ch) is not None


def beat_events(rec: SubjectRecording, ch: str) -> np.ndarray:
    """Beat events ``(n, 2)`` (time after ``t0``, interval) of an events channel, or of a derived ``<signal>_ibi``."""
    if ch in rec.events:
        return np.asarray(rec.events[ch], dtype=float).reshape(-1, 2)
    source = derived_source(rec, ch)
    if source is None:
        raise UserError(f"subject {rec.subject}: no beat-interval channel {ch}")
    from ape_nas.hrv.beats import recording_rr

    try:
        times, rr = recording_rr(rec, source)
    except ValueError as exc:
        raise UserError(f"data.channels: {ch}: {exc}") from None
    return np.column_stack([times, rr])


def channel_rate(rec: SubjectRecording, channels: list[str], rate_hz: float | None) -> float:
    missing = [c for c in channels if not has_channel(rec, c)]
    if missing:
        raise UserError(
            f"data.channels: subject {rec.subject} has no channel(s) {', '.join(missing)}; "
            f"available: {', '.join(rec.channel_names())} (and <signal>{IBI_SUFFIX}: the beat intervals of an ECG/PPG "
            "signal)"
        )
    if rate_hz is not None:
        return float(rate_hz)
    rates = {rec.rates[c] for c in channels if c in rec.signals}
    if len(rates) != 1:
        what = f"different rates {sorted(rates)}" if rates else "no fixed rate (beat intervals only)"
        raise UserError(
            f"data.rate_hz: channels {', '.join(channels)} have {what}; set data.rate_hz to resample them to one rate"
        )
    return float(rates.pop())


def channel_band(cfg: dict[str, Any], ch: str) -> list[float] | None:
    """The band-pass ``[low, high]`` Hz the ``data`` section ``cfg`` sets for channel ``ch`` (None: unfiltered)."""
    band = cfg.get("bandpass_hz")
    if isinstance(band, dict):
        return band.get(ch)
    return band


def window_subject(
    rec: SubjectRecording, cfg: dict[str, Any], require_labels: bool = True
) -> tuple[SubjectWindows, float]:
    """Turn one recording into windows according to the experiment's ``data`` section.

    ``require_labels=False`` (prediction on new recordings) keeps every window that passes the quality checks;
    its label is the majority label where the purity threshold holds, else UNLABELLED.
    """
    channels: list[str] = cfg["channels"]
    fs = channel_rate(rec, channels, cfg.get("rate_hz"))
    rows, kinds, begins = [], [], []
    end_s = rec.duration_s()
    for ch in channels:
        if ch in rec.events or derived_source(rec, ch) is not None:
            rows.append(events_to_series(beat_events(rec, ch), fs, end_s))
            kinds.append("events")
            begins.append(0.0)
            continue
        x = np.asarray(rec.signals[ch], dtype=np.float64)
        rate = rec.rates[ch]
        band = channel_band(cfg, ch)
        if band:
            try:
                x = bandpass(x, rate, band)
            except ValueError as exc:
                raise UserError(f"data.bandpass_hz: channel {ch}: {exc}") from None
        rows.append(_resample(x, rate, fs))
        kinds.append("signal")
        begins.append(rec.offsets.get(ch, 0.0))
    # align on the common span: channel c's sample j is at begins[c] + j / fs
    start = max(begins)
    shifts = [round((start - b) * fs) for b in begins]
    n = min(len(r) - s for r, s in zip(rows, shifts, strict=True))
    if n <= 0:
        raise UserError(f"subject {rec.subject}: channels {', '.join(channels)} do not overlap in time")
    data = np.stack([r[s : s + n] for r, s in zip(rows, shifts, strict=True)])  # (channels, time)

    win = round(cfg["window_s"] * fs)
    stride = max(1, round(cfg["stride_s"] * fs))
    starts = np.arange(0, n - win + 1, stride)
    lab = np.asarray(rec.labels)
    # label index range of each window: window time (s after t0) → label samples
    t_start = start + starts / fs
    l0 = np.floor((t_start - rec.label_offset) * rec.label_rate).astype(int)
    l1 = np.floor((t_start + cfg["window_s"] - rec.label_offset) * rec.label_rate).astype(int)
    keep, labels = [], []
    for i, (a, b) in enumerate(zip(l0, l1, strict=True)):
        a, b = max(a, 0), min(b, len(lab))
        seg = lab[a:b] if b > a else lab[:0]
        seg = seg[seg != UNLABELLED]
        label = UNLABELLED
        if len(seg):
            values, counts = np.unique(seg, return_counts=True)
            best = counts.argmax()
            if counts[best] / (l1[i] - l0[i]) >= cfg["label_purity"]:
                label = int(values[best])
        if label != UNLABELLED or not require_labels:
            keep.append(i)
            labels.append(label)
    dropped = {"label": len(starts) - len(keep)}
    idx = np.asarray(keep, dtype=int)
    labels_arr = np.asarray(labels, dtype=np.int64)
    if len(idx):
        view = np.lib.stride_tricks.sliding_window_view(data, win, axis=1)[:, starts[idx]]
        windows = np.ascontiguousarray(view.transpose(1, 0, 2))  # (n, channels, time)
    else:
        windows = np.zeros((0, len(channels), win))
    extremes = [(float(np.nanmin(r)), float(np.nanmax(r))) if np.isfinite(r).any() else (0.0, 0.0) for r in data]
    ok, counts = reject(windows, fs, kinds, extremes, QualityConfig.from_dict(cfg.get("quality")))
    dropped.update(counts)
    windows, labels_arr, idx = windows[ok], labels_arr[ok], idx[ok]
    windows = _normalise(windows, cfg.get("normalize", "subject"))
    out = SubjectWindows(
        windows=np.nan_to_num(windows, nan=0.0).astype(np.float32),
        labels=labels_arr,
        starts_s=(start + starts[idx] / fs).astype(np.float64),
        dropped=dropped,
    )
    return out, fs


def _normalise(windows: np.ndarray, how: str) -> np.ndarray:
    if how == "none" or len(windows) == 0:
        return windows
    axes = (0, 2) if how == "subject" else (2,)  # subject: one mean/std per channel over all its kept windows
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(windows, axis=axes, keepdims=True)
        std = np.nanstd(windows, axis=axes, keepdims=True)
    return (windows - np.nan_to_num(mean)) / (np.nan_to_num(std) + 1e-6)
