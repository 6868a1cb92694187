"""The one run-length helper and the one beat-interval rule (ape_nas.data.runs, ape_nas.data.intervals)."""

from __future__ import annotations

import numpy as np

from ape_nas.data.intervals import CONSECUTIVE_TOL_S, MAX_BEAT_GAP_S, continuous, follows_previous
from ape_nas.data.runs import longest_true_run, run_lengths, true_runs


def test_true_runs_finds_every_run_with_exclusive_ends() -> None:
    m = np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    starts, ends = true_runs(m)
    assert starts.tolist() == [0, 4, 6]
    assert ends.tolist() == [2, 5, 9]
    assert all(m[s:e].all() for s, e in zip(starts, ends, strict=True))
    assert run_lengths(m).tolist() == [2, 1, 3]


def test_no_runs_and_empty_masks() -> None:
    assert run_lengths(np.zeros(5, dtype=bool)).size == 0
    assert run_lengths(np.zeros(0, dtype=bool)).size == 0
    assert run_lengths(np.ones(4, dtype=bool)).tolist() == [4]
    assert longest_true_run(np.zeros((3, 0), dtype=bool)).tolist() == [0, 0, 0]


def test_longest_true_run_per_row_matches_the_1d_runs() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((50, 40)) < 0.6
    expected = [run_lengths(row).max(initial=0) for row in masks]
    assert longest_true_run(masks).tolist() == expected
    assert longest_true_run(np.array([0, 1, 1, 1, 0, 1], dtype=bool)) == 3


def test_follows_previous_is_the_50_ms_rule() -> None:
    times = np.array([1.0, 2.0, 3.0, 5.0, 6.0])
    # the interval ending at 5.0 is 1.0 s long: it starts at 4.0, a second after the beat at 3.0 (a missed beat)
    ivals = np.array([1.0, 1.0, 1.0 + CONSECUTIVE_TOL_S * 0.9, 1.0, 1.0])
    assert follows_previous(times, ivals).tolist() == [True, True, False, True]
    ivals[2] = 1.0 + CONSECUTIVE_TOL_S * 1.1
    assert follows_previous(times, ivals).tolist() == [True, False, False, True]


def test_continuous_also_refuses_intervals_longer_than_the_gap_limit() -> None:
    long = MAX_BEAT_GAP_S + 0.5
    times = np.array([0.0, long, long + 1.0])
    ivals = np.array([1.0, long, 1.0])  # the long interval is recorded exactly: it follows, but it is a gap
    assert follows_previous(times, ivals).tolist() == [True, True]
    assert continuous(times, ivals).tolist() == [False, True]
