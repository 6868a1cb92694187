"""Signal-quality rejection of windows: NaN runs, flat lines, clipping. Counts are reported, never silent.

All checks work on one subject's windows at once: ``windows`` is ``(n, channels, time)`` before normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ape_nas.data.runs import longest_true_run

REASONS = ("nan", "flat", "clipped", "gaps")


@dataclass(frozen=True)
class QualityConfig:
    max_nan_frac: float = 0.0  # share of NaN samples allowed in a continuous channel
    flat_s: float = 2.0  # a run of identical values at least this long = flat line (sensor off)
    clip_frac: float = 0.05  # share of samples at the subject's extreme values that marks saturation
    max_gap_frac: float = 0.25  # beat-interval channels: share of a window inside beat gaps allowed

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> QualityConfig:
        return cls(**(d or {}))


def _longest_equal_run(x: np.ndarray) -> np.ndarray:
    """Longest run of consecutive equal values along the last axis, for each row of ``x`` (n, time)."""
    return longest_true_run(np.diff(x, axis=-1) == 0) + 1


def reject(
    windows: np.ndarray, rate: float, kinds: list[str], extremes: list[tuple[float, float]], cfg: QualityConfig
) -> tuple[np.ndarray, dict[str, int]]:
    """Mask of windows to keep and counts of rejections per reason (a window counts under its first reason).

    ``kinds[c]`` is ``"signal"`` or ``"events"`` (a resampled beat-interval channel, where NaN marks gaps);
    ``extremes[c]`` is the subject's (min, max) of channel ``c`` for the clipping check.
    """
    n = windows.shape[0]
    keep = np.ones(n, dtype=bool)
    counts = dict.fromkeys(REASONS, 0)
    if n == 0:
        return keep, counts
    flat_len = max(5, round(cfg.flat_s * rate))  # at low rates (HR at 1 Hz) a few equal values are normal
    for c, kind in enumerate(kinds):
        x = windows[:, c, :]
        nan = np.isnan(x)
        if kind == "events":
            bad = nan.mean(axis=1) > cfg.max_gap_frac
            counts["gaps"] += int((bad & keep).sum())
            keep &= ~bad
            continue
        bad = nan.mean(axis=1) > cfg.max_nan_frac
        counts["nan"] += int((bad & keep).sum())
        keep &= ~bad
        filled = np.where(nan, 0.0, x)
        bad = _longest_equal_run(filled) >= flat_len
        counts["flat"] += int((bad & keep).sum())
        keep &= ~bad
        lo, hi = extremes[c]
        if hi > lo:
            # clipping = plateaus at the subject's extreme values: a share of samples there, in runs of >= 3
            rail = np.isclose(x, hi) | np.isclose(x, lo)
            plateau = longest_true_run(rail) >= 3
            bad = plateau & (rail.mean(axis=1) > cfg.clip_frac)
            counts["clipped"] += int((bad & keep).sum())
            keep &= ~bad
    return keep, counts
