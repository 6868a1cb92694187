"""The one band-pass filter: the windows of the deep models and the HRV beat detector filter through it.

Zero-phase Butterworth (``scipy.signal.sosfiltfilt`` over second-order sections, default odd-extension padding at
the ends), order :data:`ORDER`. The high edge is capped at :data:`HIGH_EDGE_FRACTION` of the sampling rate (a
filter with its edge at Nyquist is ill-conditioned); a band whose low edge is at or above that cap is refused.
Gaps (NaN or infinite samples) are bridged by a straight line between the neighbouring valid samples for
filtering, and are gaps again in the output: a gap neither grows nor pulls the samples beside it towards a fill
value (a constant fill would put a step at each edge that the filter rings on).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import signal

ORDER = 2
HIGH_EDGE_FRACTION = 0.45  # of the sampling rate: 0.9 × Nyquist


def description(band: Sequence[float]) -> str:
    """What :func:`bandpass` does with ``band``, in words (for a bundle's ``preprocessing.json``)."""
    return (
        f"Butterworth order {ORDER}, {list(band)} Hz, zero phase (scipy.signal.sosfiltfilt, second-order sections), "
        f"high edge capped at {HIGH_EDGE_FRACTION:g} × the sampling rate; NaN samples bridged by linear "
        "interpolation between their valid neighbours for filtering and set back to NaN"
    )


def bridge_gaps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-finite samples → straight line between the neighbouring valid samples (held flat beyond the first and
    last valid sample); returns (bridged copy, gap mask). An all-gap signal stays as it is."""
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if not bad.any() or bad.all():
        return x.copy(), bad
    good = np.flatnonzero(~bad)
    out = x.copy()
    out[bad] = np.interp(np.flatnonzero(bad), good, x[good])
    return out, bad


def bandpass_sos(rate: float, band: Sequence[float]) -> np.ndarray:
    """Second-order sections of the band-pass for ``band = (low, high)`` Hz at ``rate`` Hz (ValueError if none)."""
    low, high = float(band[0]), min(float(band[1]), HIGH_EDGE_FRACTION * rate)
    if not 0 < low < high:
        raise ValueError(
            f"a {band[0]:g}-{band[1]:g} Hz band-pass needs a rate above {float(band[0]) / HIGH_EDGE_FRACTION:g} Hz "
            f"(its low edge must stay below {HIGH_EDGE_FRACTION:g} × the rate); the signal is at {rate:g} Hz"
        )
    nyq = rate / 2.0
    return signal.butter(ORDER, [low / nyq, high / nyq], btype="bandpass", output="sos")


def bandpass_bridged(x: np.ndarray, rate: float, band: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Band-passed ``x`` with its gaps still bridged (for detectors that need a gap-free array), and the gap mask.

    At every valid sample the value equals :func:`bandpass`'s."""
    sos = bandpass_sos(rate, band)
    bridged, bad = bridge_gaps(x)
    if bad.all():
        return bridged, bad
    return signal.sosfiltfilt(sos, bridged), bad


def bandpass(x: np.ndarray, rate: float, band: Sequence[float]) -> np.ndarray:
    """Band-passed ``x`` (1-D), NaN exactly where ``x`` is NaN or infinite. See the module docstring for the rules."""
    out, bad = bandpass_bridged(x, rate, band)
    out[bad] = np.nan
    return out
