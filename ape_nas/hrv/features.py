"""HRV features per window: time domain, Poincaré and Lomb–Scargle band powers; per-subject normalisation.

Conventions
-----------
* Intervals come as (times, rr): each interval in s, stamped with the time of the beat that *ends* it.
* Units: intervals and SDs in ms, powers in ms², HR in bpm, pNN50 and HF n.u. in %.
* A window gets an all-NaN row when it has fewer than ``min_intervals`` (4) intervals or its intervals cover less
  than ``min_coverage`` (50 %) of it. RMSSD, pNN50, SD1 and SD2 are NaN when it has fewer than 2 successive
  differences; a successive difference is only taken between intervals that follow each other
  (:func:`ape_nas.data.intervals.follows_previous`, the rule the windows' beat series use too).
* Frequency domain: Lomb–Scargle periodogram of the linearly detrended, uneven RR series of each window (no
  resampling, so gaps are not filled in), scaled to a one-sided PSD in ms²/Hz (a sinusoidal modulation of
  amplitude A ms gives a band power of A²/2) and integrated over LF 0.04–0.15 Hz and HF 0.15–0.4 Hz.
  **Short windows:** a band is only estimated when the window holds at least two cycles of the band's lowest
  frequency: HF needs ``window_s`` ≥ 2 / 0.15 ≈ 13.3 s, LF (and so lf_hf, hf_nu) needs ``window_s`` ≥ 2 / 0.04
  = 50 s. Below that the columns are NaN for every window (e.g. 10 s windows: time domain and Poincaré only);
  the baseline (:func:`ape_nas.baseline.fit_evaluate`) drops feature columns that are NaN for every training
  window. Even at 60 s, LF rests on a handful of Mayer-wave cycles; the Task Force (1996) recommends ≥ 2 min for
  LF and 1 min for HF.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ape_nas.data.intervals import follows_previous
from ape_nas.hrv.beats import recording_rr
from ape_nas.hrv.lomb import lomb_band_powers

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


def _range_sum(cs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return cs[hi] - cs[lo]


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
    consec = follows_previous(t, r)
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
        pw = lomb_band_powers(t, rr_ms - ref, lo[wi], hi[wi], bands, df)
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
