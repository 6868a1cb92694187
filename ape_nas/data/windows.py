"""Preprocessing of one subject's recording into labelled windows (no torch).

Steps, in order: pick channels → band-pass (optional) → resample to a common rate → per-subject z-score
(statistics from that subject only) → fixed-length windows → window labels by majority with a purity threshold
(windows below it, e.g. transitions or unlabelled stretches, are dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from scipy import signal

from ape_nas.data.types import UNLABELLED, SubjectRecording
from ape_nas.errors import UserError


@dataclass
class SubjectWindows:
    windows: np.ndarray  # (n, channels, time) float32
    labels: np.ndarray  # (n,) int64
    starts_s: np.ndarray  # (n,) window start times in seconds
    dropped: int  # windows dropped for label purity


def _resample(x: np.ndarray, rate: float, target: float) -> np.ndarray:
    if abs(rate - target) < 1e-9:
        return x
    ratio = Fraction(target / rate).limit_denominator(1000)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator)


def common_rate(rec: SubjectRecording, channels: list[str], rate_hz: float | None) -> float:
    missing = [c for c in channels if c not in rec.signals]
    if missing:
        raise UserError(
            f"data.channels: subject {rec.subject} has no channel(s) {', '.join(missing)}; "
            f"available: {', '.join(rec.signals)}"
        )
    if rate_hz is not None:
        return float(rate_hz)
    rates = {rec.rates[c] for c in channels}
    if len(rates) > 1:
        raise UserError(
            f"data.rate_hz: channels {', '.join(channels)} have different rates {sorted(rates)}; "
            "set data.rate_hz to resample them to one rate"
        )
    return float(rates.pop())


def window_subject(rec: SubjectRecording, cfg: dict[str, Any]) -> tuple[SubjectWindows, float]:
    """Turn one recording into windows according to the experiment's ``data`` section."""
    channels: list[str] = cfg["channels"]
    fs = common_rate(rec, channels, cfg.get("rate_hz"))
    rows = []
    for ch in channels:
        x = np.asarray(rec.signals[ch], dtype=np.float64)
        if cfg.get("bandpass_hz"):
            low, high = cfg["bandpass_hz"]
            nyq = rec.rates[ch] / 2
            sos = signal.butter(2, [low / nyq, min(high / nyq, 0.99)], btype="bandpass", output="sos")
            x = signal.sosfiltfilt(sos, x)
        rows.append(_resample(x, rec.rates[ch], fs))
    n = min(len(r) for r in rows)
    data = np.stack([r[:n] for r in rows])  # (channels, time)
    if cfg.get("normalize") == "subject":
        data = (data - data.mean(axis=1, keepdims=True)) / (data.std(axis=1, keepdims=True) + 1e-8)

    win = round(cfg["window_s"] * fs)
    stride = max(1, round(cfg["stride_s"] * fs))
    starts = np.arange(0, n - win + 1, stride)
    lab = np.asarray(rec.labels)
    # label index range of each window, at the label rate
    l0 = np.floor(starts / fs * rec.label_rate).astype(int)
    l1 = np.minimum(np.floor((starts + win) / fs * rec.label_rate).astype(int), len(lab))
    keep, labels = [], []
    for i, (a, b) in enumerate(zip(l0, l1, strict=True)):
        seg = lab[a:b]
        seg = seg[seg != UNLABELLED] if len(seg) else seg
        if len(seg) == 0:
            continue
        values, counts = np.unique(seg, return_counts=True)
        best = counts.argmax()
        if counts[best] / max(1, b - a) >= cfg["label_purity"]:
            keep.append(i)
            labels.append(int(values[best]))
    idx = np.asarray(keep, dtype=int)
    # (n_windows, channels, time) via a strided view, copied once
    view = np.lib.stride_tricks.sliding_window_view(data, win, axis=1)[:, starts[idx]] if len(idx) else None
    windows = (
        np.ascontiguousarray(view.transpose(1, 0, 2), dtype=np.float32)
        if view is not None
        else np.zeros((0, len(channels), win), np.float32)
    )
    if cfg.get("normalize") == "window" and len(windows):
        windows = (windows - windows.mean(axis=2, keepdims=True)) / (windows.std(axis=2, keepdims=True) + 1e-6)
    out = SubjectWindows(
        windows=windows,
        labels=np.asarray(labels, dtype=np.int64),
        starts_s=starts[idx] / fs,
        dropped=len(starts) - len(idx),
    )
    return out, fs
