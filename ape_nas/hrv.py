"""HRV baseline: beat detection → beat intervals → per-window HRV features → a linear model. No torch.

Every sweep reports this cheap reference beside the deep models, on exactly the same windows and splits.

Pipeline
--------
1. :func:`detect_beats` finds beat times (s) in an ECG (R peaks) or a PPG/BVP (systolic peaks) signal.
   :func:`recording_rr` does steps 1-2 for one :class:`~ape_nas.data.types.SubjectRecording` (a signal channel
   or an events channel of (beat time, interval) pairs), on the recording's timeline (s after ``t0``, channel
   offsets applied), the timeline of the windows' ``starts_s``.
2. :func:`intervals_from_beats` turns beat times into intervals; :func:`clean_rr` drops physiologically
   impossible and ectopic/artefact intervals. Nothing is interpolated: a dropped interval leaves a gap, and
   successive differences (RMSSD, pNN50, SD1) are only taken between intervals that really follow each other.
3. :func:`window_features` computes :data:`FEATURE_NAMES` for each window ``[start, start + window_s)`` from the
   intervals whose (ending) beat lies in it. :func:`windowset_features` does it for all windows of a benchmark.
4. :func:`fit_evaluate` fits ``log1p → standardise → LogisticRegression(class_weight="balanced")`` on training
   windows and scores evaluation windows with the deep models' metric definitions (:func:`classification_metrics`).

Conventions
-----------
* An interval is stamped with the time of the beat that *ends* it (as in ``SubjectRecording.events``).
* Units: intervals and SDs in ms, powers in ms², HR in bpm, pNN50 and HF n.u. in %.
* A window gets an all-NaN row when it has fewer than ``min_intervals`` (4) intervals or its intervals cover less
  than ``min_coverage`` (50 %) of it. RMSSD, pNN50, SD1 and SD2 are NaN when it has fewer than 2 successive
  differences.
* Frequency domain: Lomb–Scargle periodogram of the linearly detrended, uneven RR series of each window (no
  resampling, so gaps are not filled in), scaled to a one-sided PSD in ms²/Hz (a sinusoidal modulation of
  amplitude A ms gives a band power of A²/2) and integrated over LF 0.04–0.15 Hz and HF 0.15–0.4 Hz.
  **Short windows:** a band is only estimated when the window holds at least two cycles of the band's lowest
  frequency: HF needs ``window_s`` ≥ 2 / 0.15 ≈ 13.3 s, LF (and so lf_hf, hf_nu) needs ``window_s`` ≥ 2 / 0.04
  = 50 s. Below that the columns are NaN for every window (e.g. 10 s windows: time domain and Poincaré only);
  :func:`fit_evaluate` drops feature columns that are NaN for every training window. Even at 60 s, LF rests on
  a handful of Mayer-wave cycles; the Task Force (1996) recommends ≥ 2 min for LF and 1 min for HF.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from scipy import signal as sps

from ape_nas.metrics import classification_metrics

FEATURE_NAMES: tuple[str, ...] = (
    "mean_rr",  # ms
    "sdnn",  # ms, SD of the intervals (ddof 1)
    "rmssd",  # ms, root mean square of successive differences
    "pnn50",  # %, successive differences > 50 ms
    "mean_hr",  # bpm, 60 / mean RR
    "sd1",  # ms, Poincaré SD1 = sqrt(var(successive differences) / 2)
    "sd2",  # ms, Poincaré SD2 = sqrt(2 SDNN² - SD1²)
    "lf",  # ms², 0.04-0.15 Hz
    "hf",  # ms², 0.15-0.4 Hz
    "lf_hf",  # LF / HF
    "hf_nu",  # %, 100 HF / (LF + HF)
)
LF_BAND = (0.04, 0.15)
HF_BAND = (0.15, 0.4)
MIN_CYCLES = 2.0  # a band is estimated only when a window holds this many cycles of its lowest frequency

MIN_RR_S = 0.3
MAX_RR_S = 2.0
_CONSECUTIVE_TOL_S = 0.05  # interval i+1 follows interval i when it starts within this of i's end beat

_KINDS = {"ecg": "ecg", "ppg": "ppg", "bvp": "ppg"}


# ---------------------------------------------------------------------------------------------------------------
# beat detection
# ---------------------------------------------------------------------------------------------------------------


def _bandpass(x: np.ndarray, rate: float, low: float, high: float, order: int = 2) -> np.ndarray:
    nyq = rate / 2.0
    high = min(high, 0.45 * rate)
    if high <= low:
        raise ValueError(f"sampling rate {rate} Hz is too low for a {low}-{high} Hz band-pass")
    sos = sps.butter(order, [low / nyq, high / nyq], btype="bandpass", output="sos")
    return sps.sosfiltfilt(sos, x)


def _fill_gaps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN/inf samples → linear interpolation between the neighbouring valid samples; returns (filled, bad mask)."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return x, bad
    good = np.flatnonzero(~bad)
    out = x.copy()
    out[bad] = np.interp(np.flatnonzero(bad), good, x[good])
    return out, bad


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


def _detect_ecg(x: np.ndarray, bad: np.ndarray, rate: float) -> np.ndarray:
    f = _bandpass(x, rate, 5.0, 20.0)
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


def _detect_ppg(x: np.ndarray, bad: np.ndarray, rate: float) -> np.ndarray:
    f = _bandpass(x, rate, 0.5, 8.0)
    # local pulse amplitude: median over ±3 blocks of the peak-to-trough range of 2 s blocks
    amp = _local_level(f, bad, rate, 2.0, 7, "range")
    peaks, _ = sps.find_peaks(
        f, distance=max(1, round(0.33 * rate)), prominence=0.35 * amp, wlen=max(3, round(3.0 * rate))
    )
    peaks = peaks[~_near_gap(peaks, bad, max(1, round(0.2 * rate)))]
    return _parabolic(f, peaks) / rate


def detect_beats(signal: np.ndarray, rate: float, kind: str) -> np.ndarray:
    """Beat times in seconds from the first sample, sorted.

    ``kind="ecg"``: R peaks. Band-pass 5-20 Hz (zero phase), squared derivative integrated over 120 ms, peaks
    above 30 % of a robust local level (median of 2 s block maxima over ±8 s) at least 0.25 s apart, T waves
    rejected, each peak refined to the extreme of the band-passed ECG within ±75 ms (polarity from the majority of
    beats, so inverted leads work) and to a sub-sample position by parabolic interpolation.

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
    x, bad = _fill_gaps(x)
    return _detect_ecg(x, bad, rate) if k == "ecg" else _detect_ppg(x, bad, rate)


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
    stay visible (see :func:`window_features`).
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


def _channel_kind(name: str) -> str | None:
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
        candidates = [*rec.events, *(c for c in rec.signals if _channel_kind(c) == "ecg")]
        candidates += [c for c in rec.signals if _channel_kind(c) == "ppg"]
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
    kind = _channel_kind(channel)
    if kind is None:
        raise ValueError(f"channel {channel!r}: cannot tell ECG from PPG by its name; pass it as an events channel")
    return rr_from_signal(rec.signals[channel], rec.rates[channel], kind, rec.offsets.get(channel, 0.0))


# ---------------------------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------------------------


def _range_sum(cs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return cs[hi] - cs[lo]


def _lomb_band_powers(
    t: np.ndarray,
    y: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    bands: Sequence[tuple[float, float]],
    df: float,
    freq_chunk: int = 32,
) -> np.ndarray:
    """Lomb–Scargle band powers of the linearly detrended series ``y[lo:hi]`` at times ``t[lo:hi]`` for every
    window, shape (n_windows, len(bands)), in units of ``y``² × count (scaled to a PSD by the caller).

    Classic Lomb–Scargle (Scargle 1982; time offset τ per frequency, so it is shift invariant) on a midpoint grid
    of step ≈ ``df``, summed × df over each band. Every sum it needs (Σ y cos ωt, Σ t cos ωt, Σ cos 2ωt, …, and the
    detrending sums) is a range sum over beats, taken from cumulative sums: the cost is O((beats + windows) ×
    frequencies), independent of how much the windows overlap.
    """
    f_lo = min(b[0] for b in bands)
    f_hi = max(b[1] for b in bands)
    nf = max(1, round((f_hi - f_lo) / df))
    step = (f_hi - f_lo) / nf
    freqs = f_lo + (np.arange(nf) + 0.5) * step
    in_band = np.stack([(freqs >= a) & (freqs < b) for a, b in bands], axis=1).astype(np.float64)  # (F, B)

    def csum(v: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros((1, *v.shape[1:])), np.cumsum(v, axis=0)])

    def rsum(cs: np.ndarray) -> np.ndarray:
        return cs[hi] - cs[lo]

    tt = t - t[0]
    n = (hi - lo).astype(np.float64)
    st, stt = rsum(csum(tt)), rsum(csum(tt * tt))
    sy, sty = rsum(csum(y)), rsum(csum(tt * y))
    mt, my = st / n, sy / n
    sxx = stt - n * mt * mt
    slope = np.where(sxx > 1e-12, (sty - n * mt * my) / np.where(sxx > 1e-12, sxx, 1.0), 0.0)
    icpt = my - slope * mt  # residual y - icpt - slope t
    out = np.zeros((lo.size, len(bands)))
    for s in range(0, nf, freq_chunk):
        w = 2.0 * np.pi * freqs[s : s + freq_chunk]
        arg = tt[:, None] * w[None, :]  # (beats, F)
        ca, sa = np.cos(arg), np.sin(arg)
        sc, ss_ = rsum(csum(ca)), rsum(csum(sa))
        syc = rsum(csum(y[:, None] * ca)) - icpt[:, None] * sc - slope[:, None] * rsum(csum(tt[:, None] * ca))
        sys_ = rsum(csum(y[:, None] * sa)) - icpt[:, None] * ss_ - slope[:, None] * rsum(csum(tt[:, None] * sa))
        c2 = rsum(csum(ca * ca - sa * sa))  # Σ cos 2ωt
        s2 = rsum(csum(2.0 * ca * sa))  # Σ sin 2ωt
        wt = 0.5 * np.arctan2(s2, c2)  # ωτ
        cb, sb = np.cos(wt), np.sin(wt)
        yc = cb * syc + sb * sys_
        ys = cb * sys_ - sb * syc
        # Σ cos²(ωt - ωτ) = (N + cos 2ωτ Σ cos 2ωt + sin 2ωτ Σ sin 2ωt) / 2, and Σ sin² = N - Σ cos²
        cc = 0.5 * (n[:, None] + np.cos(2.0 * wt) * c2 + np.sin(2.0 * wt) * s2)
        ssq = n[:, None] - cc
        with np.errstate(divide="ignore", invalid="ignore"):
            p = 0.5 * (np.where(cc > 1e-9, yc * yc / cc, 0.0) + np.where(ssq > 1e-9, ys * ys / ssq, 0.0))
        out += p @ in_band[s : s + freq_chunk] * step
    return out


def window_features(
    rr_times: np.ndarray,
    rr: np.ndarray,
    starts_s: np.ndarray,
    window_s: float,
    *,
    min_intervals: int = 4,
    min_coverage: float = 0.5,
) -> np.ndarray:
    """HRV features (:data:`FEATURE_NAMES`) of each window ``[start, start + window_s)``, shape (n_windows, n_features).

    Uses the intervals whose (ending) beat time lies in the window; ``rr`` in seconds (e.g. from :func:`clean_rr`).
    Intervals are consecutive when one starts where the previous one ended (within 50 ms); successive differences
    are only taken between consecutive intervals, never across a gap. See the module docstring for NaN rules and
    what short windows get in the frequency domain. Vectorised: time-domain features by cumulative sums,
    Lomb–Scargle over all windows at once (in chunks).
    """
    t = np.asarray(rr_times, dtype=np.float64).ravel()
    r = np.asarray(rr, dtype=np.float64).ravel()
    if t.shape != r.shape:
        raise ValueError(f"rr_times and rr differ in length: {t.size} vs {r.size}")
    ok = np.isfinite(t) & np.isfinite(r) & (r > 0)
    t, r = t[ok], r[ok]
    order = np.argsort(t, kind="stable")
    t, r = t[order], r[order]
    starts = np.asarray(starts_s, dtype=np.float64).ravel()
    out = np.full((starts.size, len(FEATURE_NAMES)), np.nan)
    if starts.size == 0 or t.size == 0:
        return out
    col = {name: i for i, name in enumerate(FEATURE_NAMES)}

    lo = np.searchsorted(t, starts, side="left")
    hi = np.searchsorted(t, starts + window_s, side="left")
    n = hi - lo
    rr_ms = r * 1000.0
    ref = float(np.median(rr_ms))
    c = rr_ms - ref  # centred for accurate sums of squares
    cs1 = np.concatenate([[0.0], np.cumsum(c)])
    cs2 = np.concatenate([[0.0], np.cumsum(c * c)])
    csr = np.concatenate([[0.0], np.cumsum(r)])
    s1, s2 = _range_sum(cs1, lo, hi), _range_sum(cs2, lo, hi)
    covered = _range_sum(csr, lo, hi)
    valid = (n >= max(2, min_intervals)) & (covered >= min_coverage * window_s)
    nv = np.where(valid, n, 1).astype(np.float64)
    mean = ref + s1 / nv
    var = np.maximum((s2 - s1 * s1 / nv) / np.maximum(nv - 1.0, 1.0), 0.0)
    out[valid, col["mean_rr"]] = mean[valid]
    out[valid, col["sdnn"]] = np.sqrt(var[valid])
    out[valid, col["mean_hr"]] = 60000.0 / mean[valid]

    # successive differences between consecutive intervals: difference k joins intervals k and k+1
    d = np.diff(rr_ms)
    consec = np.abs((t[1:] - r[1:]) - t[:-1]) <= _CONSECUTIVE_TOL_S
    dv = np.where(consec, d, 0.0)
    csd_n = np.concatenate([[0.0], np.cumsum(consec)])
    csd_1 = np.concatenate([[0.0], np.cumsum(dv)])
    csd_2 = np.concatenate([[0.0], np.cumsum(dv * dv)])
    csd_50 = np.concatenate([[0.0], np.cumsum(consec & (np.abs(d) > 50.0))])
    # differences k with lo <= k and k + 1 <= hi - 1 (the diff cumsums have t.size entries)
    dlo = np.minimum(lo, t.size - 1)
    dhi = np.maximum(np.minimum(hi - 1, t.size - 1), dlo)
    nd = _range_sum(csd_n, dlo, dhi)
    dvalid = valid & (nd >= 2)
    ndv = np.where(dvalid, nd, 2.0)
    sd2_sum = _range_sum(csd_2, dlo, dhi)
    sd1_sum = _range_sum(csd_1, dlo, dhi)
    rmssd = np.sqrt(sd2_sum / ndv)
    var_d = np.maximum((sd2_sum - sd1_sum * sd1_sum / ndv) / (ndv - 1.0), 0.0)
    sd1 = np.sqrt(var_d / 2.0)
    sd2 = np.sqrt(np.maximum(2.0 * var - sd1 * sd1, 0.0))
    out[dvalid, col["rmssd"]] = rmssd[dvalid]
    out[dvalid, col["pnn50"]] = 100.0 * _range_sum(csd_50, dlo, dhi)[dvalid] / ndv[dvalid]
    out[dvalid, col["sd1"]] = sd1[dvalid]
    out[dvalid, col["sd2"]] = sd2[dvalid]

    # frequency domain
    has_hf = window_s >= MIN_CYCLES / HF_BAND[0]
    has_lf = window_s >= MIN_CYCLES / LF_BAND[0]
    wi = np.flatnonzero(valid)
    if has_hf and wi.size:
        df = min(0.005, 1.0 / (4.0 * window_s))
        bands = [LF_BAND, HF_BAND]
        pw = _lomb_band_powers(t, rr_ms - ref, lo[wi], hi[wi], bands, df)
        # one-sided PSD scaling: 2 × P × mean sampling interval (the mean RR, s)
        pw *= 2.0 * (mean[wi] / 1000.0)[:, None]
        lf, hf = pw[:, 0], pw[:, 1]
        out[wi, col["hf"]] = hf
        if has_lf:
            out[wi, col["lf"]] = lf
            with np.errstate(divide="ignore", invalid="ignore"):
                out[wi, col["lf_hf"]] = np.where(hf > 0, lf / hf, np.nan)
                out[wi, col["hf_nu"]] = np.where(lf + hf > 0, 100.0 * hf / (lf + hf), np.nan)
    return out


def windowset_features(
    recordings: Sequence[Any],
    groups: np.ndarray,
    starts_s: np.ndarray,
    window_s: float,
    *,
    channel: str | None = None,
    rr: Mapping[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Features of all windows of a benchmark: window i belongs to ``recordings[groups[i]]`` and starts at
    ``starts_s[i]`` (s after that recording's ``t0``), i.e. ``WindowSet.groups`` / ``WindowSet.starts_s`` with the
    ``BenchmarkData.subjects`` the windows were built from. ``rr`` may supply precomputed (times, rr) per group.
    """
    groups = np.asarray(groups).ravel()
    starts = np.asarray(starts_s, dtype=np.float64).ravel()
    out = np.full((groups.size, len(FEATURE_NAMES)), np.nan)
    for g in np.unique(groups):
        sel = np.flatnonzero(groups == g)
        times, ivals = rr[int(g)] if rr is not None and int(g) in rr else recording_rr(recordings[int(g)], channel)
        out[sel] = window_features(times, ivals, starts[sel], window_s)
    return out


def subject_normalise(X: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Z-score every feature within each subject (NaN-aware; uses no labels). Optional, transductive: it uses the
    evaluation subject's own unlabelled windows, like the deep models' per-subject signal normalisation does."""
    X = np.asarray(X, dtype=np.float64)
    out = np.full_like(X, np.nan)
    groups = np.asarray(groups).ravel()
    for g in np.unique(groups):
        sel = groups == g
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mu = np.nanmean(X[sel], axis=0)
            sd = np.nanstd(X[sel], axis=0)
        out[sel] = (X[sel] - mu) / np.where(sd > 0, sd, 1.0)
    return out


# ---------------------------------------------------------------------------------------------------------------
# baseline model and metrics
# ---------------------------------------------------------------------------------------------------------------


def _log1p_signed(X: np.ndarray) -> np.ndarray:
    return np.sign(X) * np.log1p(np.abs(X))


def fit_evaluate(
    X_train: np.ndarray,
    y_train: np.ndarray,
    evals: Mapping[str, tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    seed: int,
    *,
    C: float = 1.0,
    log_transform: bool = True,
) -> dict[str, dict[str, float]]:
    """Fit the HRV baseline on training windows and score every evaluation set.

    Model: ``sign(x)·log1p(|x|)`` (HRV powers and SDs are log-normal; the time-domain features barely change) →
    ``StandardScaler`` → ``LogisticRegression(class_weight="balanced", C=C)`` (lbfgs, multinomial; deterministic,
    ``random_state=seed``). Feature columns that are NaN in every training window (e.g. LF on short windows)
    are dropped; training windows with any NaN are dropped; at evaluation, NaNs are imputed with the training
    medians so that every window is scored. If the usable training windows hold a single class, that class is
    predicted for everything; with none, class probabilities are uniform.

    Returns ``{name: {"f1_macro", "balanced_accuracy", "auroc", "n", "n_nan", "n_train", "n_features"}}``:
    metrics as in :func:`classification_metrics`; ``n`` windows scored, ``n_nan`` of them with at least one NaN
    feature (imputed); ``n_train`` training windows used, ``n_features`` feature columns used.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    Xt = np.asarray(X_train, dtype=np.float64)
    yt = np.asarray(y_train).astype(np.int64).ravel()
    if Xt.ndim != 2 or Xt.shape[0] != yt.size:
        raise ValueError(f"X_train must be (n, features) matching y_train: got {Xt.shape} and {yt.shape}")
    cols = np.flatnonzero(np.isfinite(Xt).any(axis=0))
    Xt = Xt[:, cols]
    rows = np.isfinite(Xt).all(axis=1)
    Xt, yt = Xt[rows], yt[rows]
    if log_transform:
        Xt = _log1p_signed(Xt)
    classes = np.unique(yt)
    if len(cols) and classes.size >= 2:
        medians = np.median(Xt, axis=0)
        scaler = StandardScaler().fit(Xt)
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=seed)
        model.fit(scaler.transform(Xt), yt)
    else:
        medians = np.median(Xt, axis=0) if Xt.shape[0] else np.zeros(len(cols))
        scaler = model = None

    results: dict[str, dict[str, float]] = {}
    for name, (Xe_raw, ye_raw) in evals.items():
        Xe = np.asarray(Xe_raw, dtype=np.float64)
        ye = np.asarray(ye_raw).astype(np.int64).ravel()
        if Xe.ndim != 2 or Xe.shape[0] != ye.size:
            raise ValueError(f"evals[{name!r}]: X must be (n, features) matching y: got {Xe.shape} and {ye.shape}")
        nan_rows = ~np.isfinite(Xe[:, cols]).all(axis=1) if len(cols) else np.zeros(ye.size, dtype=bool)
        probs = np.zeros((ye.size, num_classes))
        if model is not None and ye.size:
            Xe = Xe[:, cols]
            if log_transform:
                Xe = _log1p_signed(Xe)
            Xe = np.where(np.isfinite(Xe), Xe, medians[None, :])
            probs[:, model.classes_] = model.predict_proba(scaler.transform(Xe))
        elif classes.size == 1:
            probs[:, classes[0]] = 1.0
        else:
            probs[:] = 1.0 / num_classes
        metrics = classification_metrics(ye, probs, num_classes)
        metrics.update(
            n=float(ye.size), n_nan=float(nan_rows.sum()), n_train=float(yt.size), n_features=float(len(cols))
        )
        results[name] = metrics
    return results
