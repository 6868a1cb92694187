"""Beat-synchronous saliency: relevance averaged over the cardiac cycle, aligned on detected beats, per class.

Each beat ``b_i`` with a successor ``b_{i+1}`` in the same window gives one cycle, from ``PRE`` of its interval
before the peak to ``1 - PRE`` after (``[b_i - PRE·RR_i, b_i + (1 - PRE)·RR_i)``), resampled to ``BINS`` phase
bins, so beats of different length line up on the peak (R peak or systolic peak) and on the fractions of the
interval after it (the T wave / dicrotic notch). Before averaging, each window's map is divided by its mean
absolute relevance (windows weigh alike; a value of 1 is the window's average attention) and the signal is
z-scored within the window. Two numbers say how much the shape of the beat explains:

* ``phase_locking`` — the share of the maps' variance within windows (over the beats' samples, each window's mean
  removed) that the class's phase profile (about its mean) explains:
  near 1, the model looks at the same point of every beat (morphology); near 0, its relevance is not tied to
  the cardiac cycle (beat-to-beat timing, slow trends, or artefacts);
* ``between_beats`` — the share of absolute relevance that falls outside any complete cycle: in gaps longer than
  twice the window's median interval (missed beats, artefacts) and before the first / after the last beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BINS = 100
PRE = 0.3  # fraction of the interval shown before the peak
MIN_BEATS = 3


@dataclass
class BeatProfile:
    phase: np.ndarray  # (BINS,) in [−PRE, 1 − PRE): fraction of the interval relative to the peak
    ms: np.ndarray  # (BINS,) the same in ms at the median interval of the windows
    saliency: dict[str, np.ndarray]  # class name → (BINS,) mean normalised relevance
    signal: dict[str, np.ndarray]  # class name → (BINS,) mean z-scored signal
    beats: dict[str, int]  # class name → number of cycles averaged
    phase_locking: float
    between_beats: float
    median_rr_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase.round(4).tolist(),
            "ms": self.ms.round(1).tolist(),
            "saliency": {k: v.round(4).tolist() for k, v in self.saliency.items()},
            "signal": {k: v.round(4).tolist() for k, v in self.signal.items()},
            "beats": self.beats,
            "phase_locking": round(self.phase_locking, 4),
            "between_beats": round(self.between_beats, 4),
            "median_rr_s": round(self.median_rr_s, 4),
        }


def _cycles(beats: np.ndarray, length: int) -> list[tuple[float, float, float]]:
    """(start, peak, end) in samples of every complete cycle inside the window (gaps > 2 × median skipped)."""
    b = np.sort(np.asarray(beats, dtype=float))
    if len(b) < MIN_BEATS:
        return []
    rr = np.diff(b)
    med = float(np.median(rr))
    out = []
    for peak, interval in zip(b[:-1], rr, strict=True):
        if interval > 2.0 * med:
            continue
        start, end = peak - PRE * interval, peak + (1.0 - PRE) * interval
        if start >= 0 and end <= length - 1:
            out.append((start, peak, end))
    return out


def beat_profile(
    maps: np.ndarray, signal: np.ndarray, beats: list[np.ndarray], groups: list[str], rate: float
) -> BeatProfile:
    """``maps`` (n, T) relevance, ``signal`` (n, T) the beat channel, ``beats`` per window (samples), ``groups``
    per window (class name) → the profile per class."""
    n, length = maps.shape
    grid = np.arange(length, dtype=float)
    phase = np.linspace(-PRE, 1.0 - PRE, BINS, endpoint=False)
    sal: dict[str, list[np.ndarray]] = {}
    sig: dict[str, list[np.ndarray]] = {}
    rrs: list[float] = []
    inside_total, total = 0.0, 0.0
    per_sample: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (map values, bin index, group) for locking
    for i in range(n):
        scale = float(np.mean(np.abs(maps[i])))
        m = maps[i] / scale if scale > 0 else np.zeros(length)
        s = (signal[i] - signal[i].mean()) / (signal[i].std() or 1.0)
        cycles = _cycles(beats[i], length)
        covered = np.zeros(length, dtype=bool)
        for start, peak, end in cycles:
            interval = (end - start) / 1.0
            at = peak + phase * interval  # sample positions of the bins
            sal.setdefault(groups[i], []).append(np.interp(at, grid, m))
            sig.setdefault(groups[i], []).append(np.interp(at, grid, s))
            rrs.append(interval / rate)
            lo, hi = int(np.ceil(start)), int(np.floor(end))
            covered[lo : hi + 1] = True
            idx = np.arange(lo, hi + 1)
            bins = np.clip(((idx - peak) / interval + PRE) * BINS, 0, BINS - 1).astype(int)
            per_sample.append((m[idx] - m.mean(), bins, np.full(len(idx), groups[i], dtype=object)))
        a = np.abs(m)
        inside_total += float(a[covered].sum())
        total += float(a.sum())
    median_rr = float(np.median(rrs)) if rrs else float("nan")
    profiles = {g: np.mean(v, axis=0) for g, v in sal.items()}
    signals = {g: np.mean(v, axis=0) for g, v in sig.items()}
    return BeatProfile(
        phase=phase,
        ms=phase * median_rr * 1000.0,
        saliency=profiles,
        signal=signals,
        beats={g: len(v) for g, v in sal.items()},
        phase_locking=_locking(per_sample, profiles),
        between_beats=1.0 - inside_total / total if total > 0 else float("nan"),
        median_rr_s=median_rr,
    )


def _locking(per_sample: list[tuple[np.ndarray, np.ndarray, np.ndarray]], profiles: dict[str, np.ndarray]) -> float:
    """Share of the variance of the cycles' relevance that the class's phase profile explains (R², ≥ 0)."""
    if not per_sample:
        return float("nan")
    # within windows (each window's mean removed) against each class's profile about its own mean: a class-wide
    # offset (one class's maps mostly negative) is not phase locking
    values = np.concatenate([v for v, _, _ in per_sample])
    centred = {g: p - p.mean() for g, p in profiles.items()}
    fitted = np.concatenate([centred[g[0]][b] if len(g) else b * 0.0 for _, b, g in per_sample])
    var = float(np.var(values))
    if var <= 0:
        return float("nan")
    return float(max(0.0, 1.0 - np.mean((values - fitted) ** 2) / var))
