"""Beats and beat intervals: ECG/PPG beat detection, intervals, RR cleaning, one recording's clean intervals.

Conventions: an interval is stamped with the time of the beat that *ends* it (as in
``SubjectRecording.events``); intervals in seconds. Nothing is interpolated: a dropped interval leaves a gap.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import ndimage
from scipy import signal as sps

from ape_nas.data.filters import bandpass_bridged

MIN_RR_S = 0.3
MAX_RR_S = 2.0
ECG_BAND_HZ = (5.0, 20.0)  # QRS energy
PPG_BAND_HZ = (0.5, 8.0)  # the pulse wave and its first harmonics

_KINDS = {"ecg": "ecg", "ppg": "ppg", "bvp": "ppg"}


# ---------------------------------------------------------------------------------------------------------------
# beat detection
# ---------------------------------------------------------------------------------------------------------------


def _local_level(values: np.ndarray, bad: np.ndarray, rate: float, block_s: float, blocks: int, how: str) -> np.ndarray:
    """A slowly varying amplitude reference at every sample: per-block maximum (or range) of ``values`` over
    ``block_s`` blocks, then the median over ``blocks`` neighbouring blocks (robust to a few artefact blocks)."""
    n = values.size
    b = max(1, round(block_s * rate))
    nb = -(-n // b)
    pad = nb * b - n
    v = np.pad(values, (0, pad), mode="edge").reshape(nb, b)
    m = np.pad(bad, (0, pad), mode="edge").reshape(nb, b)
    level = v.max(axis=1) - (v.min(axis=1) if how == "range" else 0.0)
    level[m.mean(axis=1) > 0.5] = np.nan  # mostly-gap blocks carry no information
    half = blocks // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(level, half, constant_values=np.nan), 2 * half + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(windows, axis=1)
    ok = np.isfinite(med)
    if not ok.any():
        return np.full(n, np.inf)
    med = np.interp(np.arange(nb), np.flatnonzero(ok), med[ok])  # fill gap blocks from their neighbours
    centres = (np.arange(nb) + 0.5) * b
    return np.interp(np.arange(n), centres, med)


def _near_gap(idx: np.ndarray, bad: np.ndarray, margin: int) -> np.ndarray:
    """True for sample indices within ``margin`` samples of a gap (NaN) sample."""
    if not bad.any() or idx.size == 0:
        return np.zeros(idx.size, dtype=bool)
    cs = np.concatenate([[0], np.cumsum(bad)])
    lo = np.clip(idx - margin, 0, bad.size)
    hi = np.clip(idx + margin + 1, 0, bad.size)
    return (cs[hi] - cs[lo]) > 0


def _parabolic(y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Sub-sample peak positions by a parabola through each peak and its two neighbours."""
    i = np.clip(idx, 1, y.size - 2)
    a, b, c = y[i - 1], y[i], y[i + 1]
    den = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(den < 0, 0.5 * (a - c) / den, 0.0)
    return idx + np.where((idx == i) & (np.abs(off) <= 0.5), off, 0.0)


def _thin(pos: np.ndarray, height: np.ndarray, distance: int) -> np.ndarray:
    """Keep the highest of positions closer than ``distance`` (same rule as ``find_peaks(distance=...)``)."""
    order = np.argsort(-height, kind="stable")
    keep = np.ones(pos.size, dtype=bool)
    for i in order:  # only runs on the rare collisions; positions are few
        if not keep[i]:
            continue
        near = (np.abs(pos - pos[i]) < distance) & keep
        near[i] = False
        keep[near] = False
    return pos[keep]


def _detect_ecg(f: np.ndarray, bad: np.ndarray, rate: float) -> np.ndarray:
    d = np.gradient(f) * rate
    env = ndimage.uniform_filter1d(d * d, size=max(1, round(0.12 * rate)), mode="nearest")  # centred integration
    # adaptive threshold: 30 % of the median of 2 s block maxima over ±4 blocks (HR > 30 bpm: a beat per block)
    thr = 0.3 * _local_level(env, bad, rate, 2.0, 9, "max")
    refractory = max(1, round(0.25 * rate))
    cand, props = sps.find_peaks(env, height=thr, distance=refractory)
    if cand.size == 0:
        return np.empty(0)
    # T-wave check (Pan & Tompkins): a peak < 0.36 s after the previous one with < half its energy is a T wave
    h = props["peak_heights"]
    close = np.diff(cand) < 0.36 * rate
    drop = np.zeros(cand.size, dtype=bool)
    drop[1:] = close & (h[1:] < 0.5 * h[:-1])
    cand = cand[~drop]
    # refine to the extreme of the band-passed signal within ±75 ms; polarity chosen once per recording by the
    # majority of beats (a deep S wave in some beats must not flip single beats)
    w = max(1, round(0.075 * rate))
    offs = np.arange(-w, w + 1)
    idx = np.clip(cand[:, None] + offs[None, :], 0, f.size - 1)
    seg = f[idx]
    sign = 1.0 if np.median(seg.max(axis=1) + seg.min(axis=1)) >= 0 else -1.0
    peak = idx[np.arange(idx.shape[0]), np.argmax(sign * seg, axis=1)]
    peak = np.unique(peak)
    # two envelope peaks may refine to nearby extremes: keep the larger within the refractory period
    if peak.size > 1 and np.any(np.diff(peak) < refractory):
        peak = _thin(peak, sign * f[peak], refractory)
    peak = peak[~_near_gap(peak, bad, max(1, round(0.1 * rate)))]
    return _parabolic(sign * f, peak) / rate


def _detect_ppg(f: np.ndarray, bad: np.ndarray, rate: float) -> np.ndarray:
    # local pulse amplitude: median over ±3 blocks of the peak-to-trough range of 2 s blocks
    amp = _local_level(f, bad, rate, 2.0, 7, "range")
    peaks, _ = sps.find_peaks(
        f, distance=max(1, round(0.33 * rate)), prominence=0.35 * amp, wlen=max(3, round(3.0 * rate))
    )
    peaks = peaks[~_near_gap(peaks, bad, max(1, round(0.2 * rate)))]
    return _parabolic(f, peaks) / rate


def detect_beats(signal: np.ndarray, rate: float, kind: str) -> np.ndarray:
    """Beat times in seconds from the first sample, sorted.

    ``kind="ecg"``: R peaks. Band-pass 5-20 Hz (:func:`ape_nas.data.filters.bandpass`, the windows' filter),
    squared derivative integrated over 120 ms, peaks above 30 % of a robust local level (median of 2 s block
    maxima over ±8 s) at least 0.25 s apart, T waves rejected, each peak refined to the extreme of the
    band-passed ECG within ±75 ms (polarity from the majority of beats, so inverted leads work) and to a
    sub-sample position by parabolic interpolation.

    ``kind="ppg"`` or ``"bvp"``: systolic peaks. Band-pass 0.5-8 Hz, peaks at least 0.33 s apart with a
    prominence of at least 35 % of the local pulse amplitude (median 2 s peak-to-trough range over ±6 s).

    NaN/inf samples are gaps: they are bridged for filtering only, and no beat is returned within 0.1 s (ECG) or
    0.2 s (PPG) of one.
    """
    k = _KINDS.get(str(kind).lower())
    if k is None:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate!r}")
    x = np.asarray(signal, dtype=np.float64).ravel()
    if x.size < round(2.0 * rate) or not np.isfinite(x).any():
        return np.empty(0)
    f, bad = detection_signal(x, rate, k)
    return _detect_ecg(f, bad, rate) if k == "ecg" else _detect_ppg(f, bad, rate)


def detection_signal(signal: np.ndarray, rate: float, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The band-passed signal :func:`detect_beats` looks for beats in (gaps bridged) and the gap mask.

    It is :func:`ape_nas.data.filters.bandpass` with :data:`ECG_BAND_HZ` or :data:`PPG_BAND_HZ`: the windows of a
    ``data`` section with ``bandpass_hz`` set to the same band hold the same values at every valid sample.
    """
    band = ECG_BAND_HZ if _KINDS[str(kind).lower()] == "ecg" else PPG_BAND_HZ
    return bandpass_bridged(np.asarray(signal, dtype=np.float64).ravel(), rate, band)


# ---------------------------------------------------------------------------------------------------------------
# intervals
# ---------------------------------------------------------------------------------------------------------------


def intervals_from_beats(beat_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Beat times (s) → (times, rr): each interval in s, stamped with the time of the beat that ends it."""
    b = np.asarray(beat_times, dtype=np.float64).ravel()
    b = np.unique(b[np.isfinite(b)])
    return b[1:].copy(), np.diff(b)


def clean_rr(
    times: np.ndarray,
    rr: np.ndarray,
    *,
    min_rr: float = MIN_RR_S,
    max_rr: float = MAX_RR_S,
    max_deviation: float = 0.2,
    median_window: int = 11,
) -> tuple[np.ndarray, np.ndarray]:
    """Drop impossible intervals (outside ``[min_rr, max_rr]`` s) and ectopic/artefact intervals (deviating more than
    ``max_deviation`` from the median of the ``median_window`` surrounding plausible intervals).

    A premature beat removes both the short and the compensatory interval, a missed beat the doubled one, a false
    beat both halves. Nothing is interpolated or invented; the remaining intervals keep their times, so the gaps
    stay visible (see :func:`ape_nas.hrv.window_features`).
    """
    t = np.asarray(times, dtype=np.float64).ravel()
    r = np.asarray(rr, dtype=np.float64).ravel()
    if t.shape != r.shape:
        raise ValueError(f"times and rr differ in length: {t.size} vs {r.size}")
    ok = np.isfinite(t) & np.isfinite(r) & (r >= min_rr) & (r <= max_rr)
    t, r = t[ok], r[ok]
    if r.size >= 3 and max_deviation is not None:
        med = ndimage.median_filter(r, size=min(median_window, r.size | 1), mode="nearest")
        ok = np.abs(r - med) <= max_deviation * med
        t, r = t[ok], r[ok]
    order = np.argsort(t, kind="stable")
    return t[order], r[order]


def rr_from_signal(signal: np.ndarray, rate: float, kind: str, offset_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """detect_beats → intervals_from_beats → clean_rr; times shifted by ``offset_s`` (the channel's start)."""
    t, r = intervals_from_beats(detect_beats(signal, rate, kind))
    return clean_rr(t + offset_s, r)


def channel_kind(name: str) -> str | None:
    n = name.lower()
    if "ecg" in n or "ekg" in n:
        return "ecg"
    if "ppg" in n or "bvp" in n:
        return "ppg"
    return None


def recording_rr(rec: Any, channel: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Clean (times, rr) for one ``SubjectRecording``, times in s after ``t0`` (the windows' ``starts_s`` timeline).

    ``channel``: an events channel (beat time, interval), an ECG channel (name contains "ecg"/"ekg") or a PPG
    channel (name contains "ppg"/"bvp"). ``None`` picks the first events channel, else the first ECG channel,
    else the first PPG channel; a recording without any raises ``ValueError``.
    """
    if channel is None:
        candidates = [*rec.events, *(c for c in rec.signals if channel_kind(c) == "ecg")]
        candidates += [c for c in rec.signals if channel_kind(c) == "ppg"]
        if not candidates:
            raise ValueError(
                f"subject {rec.subject}: no beat source (events channel, or a signal named ecg/ppg/bvp) among "
                f"{', '.join(rec.channel_names()) or 'no channels'}"
            )
        channel = candidates[0]
    if channel in rec.events:
        ev = np.asarray(rec.events[channel], dtype=np.float64).reshape(-1, 2)
        return clean_rr(ev[:, 0], ev[:, 1])
    if channel not in rec.signals:
        raise ValueError(f"subject {rec.subject}: no channel {channel!r}")
    kind = channel_kind(channel)
    if kind is None:
        raise ValueError(f"channel {channel!r}: cannot tell ECG from PPG by its name; pass it as an events channel")
    return rr_from_signal(rec.signals[channel], rec.rates[channel], kind, rec.offsets.get(channel, 0.0))
