"""The rules that tell a run of real heartbeats from a detection gap, for beat events ``(time, interval)``.

An interval is stamped with the time of the beat that *ends* it (as in ``SubjectRecording.events``). Interval
``k`` *follows* interval ``k - 1`` when it starts at ``k - 1``'s end beat, within :data:`CONSECUTIVE_TOL_S`:
otherwise beats are missing between them. An interval longer than :data:`MAX_BEAT_GAP_S` is a detection gap,
not a heartbeat. Windowing, data inspection and the HRV features all use these two rules.
"""

from __future__ import annotations

import numpy as np

MAX_BEAT_GAP_S = 3.0  # a beat interval longer than this is a detection gap, not a heartbeat
CONSECUTIVE_TOL_S = 0.05  # interval k follows interval k - 1 when it starts within this of k - 1's end beat


def follows_previous(times: np.ndarray, intervals: np.ndarray, tol: float = CONSECUTIVE_TOL_S) -> np.ndarray:
    """Shape ``(n - 1,)``: element ``k - 1`` is True when interval ``k`` starts at the end beat of interval ``k - 1``.

    ``times`` are the (sorted) end-beat times of the intervals, ``intervals`` their lengths, both in seconds.
    """
    t = np.asarray(times, dtype=np.float64).ravel()
    r = np.asarray(intervals, dtype=np.float64).ravel()
    return np.abs(np.diff(t) - r[1:]) <= tol


def continuous(times: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Shape ``(n - 1,)``: element ``k - 1`` is True when the time from beat ``k - 1`` to beat ``k`` is heartbeat,
    not gap: interval ``k`` follows interval ``k - 1`` and the two beats are at most :data:`MAX_BEAT_GAP_S` apart."""
    t = np.asarray(times, dtype=np.float64).ravel()
    return (np.diff(t) <= MAX_BEAT_GAP_S) & follows_previous(t, intervals)
