"""The transfer protocols choose calibration and test windows without leakage (no torch, fast)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ape_nas.errors import UserError
from ape_nas.transfer.protocols import (
    first_k_per_class,
    parse_shots,
    personal_split,
    personalise_episodes,
    population_episodes,
)

NAMES = ["no-stress", "stress"]


@st.composite
def recordings(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    """A subject's labelled windows: starts on a stride grid with holes (rejected windows), labels in blocks."""
    window = draw(st.sampled_from([10.0, 30.0, 60.0]))
    stride = draw(st.sampled_from([window / 3, window / 2, window]))
    n = draw(st.integers(20, 300))
    keep = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    keep[: 2 * n // 3 : 3] = True  # enough windows survive
    starts = (np.arange(n) * stride)[keep]
    blocks = draw(st.lists(st.integers(0, 1), min_size=2, max_size=12))
    labels = np.asarray(blocks)[(np.arange(len(starts)) * len(blocks)) // len(starts)]
    shuffle = np.random.default_rng(draw(st.integers(0, 99))).permutation(len(starts))
    return labels[shuffle], starts[shuffle], window  # the protocol must not rely on the order it is given


@settings(max_examples=200, deadline=None)
@given(recordings(), st.integers(1, 20), st.sampled_from([None, 0.0, 5.0, 45.0]), st.sampled_from([None, 0, 3, 20]))
def test_personal_split_never_tests_near_a_calibration_window(rec, k, gap, more) -> None:
    labels, starts, window = rec
    test_after = None if more is None else k + more  # the largest K of a run: its test windows serve every K
    try:
        cal, test = personal_split(labels, starts, k, window, "S01", NAMES, gap, test_after)
    except UserError as err:  # too few windows of a class, or nothing left after the gap: said in one line
        assert "\n" not in str(err) and "S01" in str(err)
        return
    if test_after is not None:  # the common test set is exactly the largest K's
        assert np.array_equal(test, personal_split(labels, starts, test_after, window, "S01", NAMES, gap)[1])
    gap_s = window if gap is None else gap
    assert len(set(cal.tolist()) & set(test.tolist())) == 0
    for c in range(2):  # the FIRST k windows of each class in time order
        of_class = np.sort(starts[labels == c])
        assert np.array_equal(np.sort(starts[cal][labels[cal] == c]), of_class[:k])
    # no test window within one window length (the gap) of any calibration window
    cal_end = starts[cal] + window
    distance = starts[test][:, None] - cal_end[None, :]
    assert (distance >= gap_s - 1e-9).all()
    if gap_s >= window:
        assert (np.abs(starts[test][:, None] - starts[cal][None, :]) >= window - 1e-9).all()  # no shared sample
    # every window after the gap is tested (none wasted) when the test set is this K's own
    if test_after is None:
        later = np.flatnonzero(starts >= cal_end.max() + gap_s - 1e-9)
        assert np.array_equal(np.sort(test), later)


def test_first_k_takes_the_earliest_windows_per_class() -> None:
    starts = np.array([50.0, 0.0, 10.0, 40.0, 20.0, 30.0])
    labels = np.array([1, 0, 0, 1, 1, 0])
    assert sorted(starts[first_k_per_class(labels, starts, 2, "S1", NAMES)].tolist()) == [0.0, 10.0, 20.0, 40.0]
    labels[5] = 1  # two no-stress windows left
    with pytest.raises(
        UserError, match="subject S1: 2 labelled window\\(s\\) of class 'no-stress', fewer than --shots 3"
    ):
        first_k_per_class(labels, starts, 3, "S1", NAMES)


def test_nothing_after_the_gap_is_one_line() -> None:
    starts = np.arange(10) * 10.0
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    with pytest.raises(UserError, match="no labelled window starts 30 s after its calibration windows"):
        personal_split(labels, starts, 5, 30.0, "S2", NAMES)


def test_personalise_repeats_share_windows_and_population_draws_differ() -> None:
    rng = np.random.default_rng(0)
    subjects = {f"S{i}": (rng.integers(0, 2, 60), np.arange(60) * 10.0) for i in range(6)}
    eps = personalise_episodes(subjects, 3, 2, 30.0, NAMES)
    assert len(eps) == 2 and all(len(e) == 6 for e in eps)
    for a, b in zip(eps[0], eps[1], strict=True):
        assert a.calibration.keys() == b.calibration.keys()
        assert all(np.array_equal(a.calibration[s], b.calibration[s]) for s in a.calibration)
    pop = population_episodes(subjects, 3, 4, 2, NAMES, seed=1)
    draws = [tuple(e[0].adapt_subjects) for e in pop]
    assert len(set(draws)) == 4  # distinct adaptation subjects per repeat
    for (episode,) in pop:
        assert not set(episode.calibration) & set(episode.test)  # a person calibrates or tests, never both
        assert set(episode.calibration) | set(episode.test) == set(subjects)
    for k in (1, 5):  # the draw does not depend on K: a curve over K compares the same people
        again = population_episodes(subjects, k, 4, 2, NAMES, seed=1)
        assert [tuple(e[0].adapt_subjects) for e in again] == draws
    common = [personalise_episodes(subjects, k, 1, 30.0, NAMES, test_after=5)[0] for k in (1, 3, 5)]
    for by_k in zip(*common, strict=True):  # one subject's episodes for K = 1, 3, 5: one test set
        assert all(np.array_equal(e.test[s], by_k[0].test[s]) for e in by_k for s in e.test)
    with pytest.raises(UserError, match="--adapt-subjects 6"):
        population_episodes(subjects, 3, 1, 6, NAMES, seed=1)


@pytest.mark.parametrize("text", ["", "0,5", "a", "-1"])
def test_bad_shots(text: str) -> None:
    with pytest.raises(UserError, match="--shots"):
        parse_shots(text)


def test_shots_sorted_distinct() -> None:
    assert parse_shots("20,1,5,5") == [1, 5, 20]
