"""Lomb–Scargle band powers of many windows of one uneven series at once (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def lomb_band_powers(
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
