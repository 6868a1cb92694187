"""Runs of True in boolean masks: the one run-length helper (numpy only).

A *run* is a maximal stretch of consecutive True values. ``true_runs`` gives where each run starts and ends in a
1-D mask, ``run_lengths`` how long each is, ``longest_true_run`` the longest along the last axis of any array
(one value per row of a batch of windows).
"""

from __future__ import annotations

import numpy as np


def true_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of True in a 1-D mask, in order; ``ends`` are exclusive (``mask[s:e]`` is a run)."""
    m = np.asarray(mask, dtype=bool).ravel()
    edges = np.diff(np.concatenate(([0], m.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def run_lengths(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in a 1-D mask, in order (empty when there is none)."""
    starts, ends = true_runs(mask)
    return ends - starts


def longest_true_run(mask: np.ndarray) -> np.ndarray:
    """Longest run of True along the last axis of ``mask`` (shape ``(..., n)`` → ``(...)``); 0 where there is none."""
    m = np.asarray(mask, dtype=bool)
    if m.shape[-1] == 0:
        return np.zeros(m.shape[:-1], dtype=int)
    idx = np.arange(m.shape[-1])
    last_false = np.maximum.accumulate(np.where(m, -1, idx), axis=-1)
    return np.where(m, idx - last_false, 0).max(axis=-1)
