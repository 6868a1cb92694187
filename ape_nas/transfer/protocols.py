"""Calibration and test windows of the two transfer protocols, chosen without leakage. No torch.

* ``personalise`` — one person at a time, as a calibration at the start of a session: for each class the first
  K labelled windows in time order are the calibration set; the test set is every labelled window that starts at
  least ``gap_s`` (default: one window length, since windows overlap) after the end of the last calibration
  window. Never a random sample of windows: neighbouring windows share most of their samples, so a random split
  would test on what it calibrated on. When several K are compared, every K is tested on the windows after the
  *largest* K's calibration (``test_after``): a smaller K calibrates on a prefix of those windows, so the curve
  over K compares the same test windows.
* ``new-population`` — a few new people: ``adapt_subjects`` target subjects lend their first K labelled windows
  per class (time order), the other target subjects are the test set (all their labelled windows). Repeats draw
  other adaptation subjects; within a repeat every K uses the same subjects (the draw does not depend on K).

Every problem a user can fix (a subject with fewer than K windows of a class, no window left after the gap, too
few subjects) is a one-line :class:`~ape_nas.errors.UserError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ape_nas.errors import UserError

PROTOCOLS = ("personalise", "new-population")


@dataclass(frozen=True)
class Episode:
    """One adaptation: calibration windows (subject → indices into that subject's windows) and test windows."""

    repeat: int
    calibration: dict[str, np.ndarray]
    test: dict[str, np.ndarray]

    @property
    def adapt_subjects(self) -> list[str]:
        return list(self.calibration)


def check_protocol(name: str) -> str:
    if name not in PROTOCOLS:
        raise UserError(f"--protocol {name}: unknown protocol; choose one of {', '.join(PROTOCOLS)}")
    return name


def first_k_per_class(
    labels: np.ndarray, starts_s: np.ndarray, k: int, subject: str, names: Sequence[str]
) -> np.ndarray:
    """Indices of the first ``k`` windows of every class in time order (sorted by start); a class with fewer than
    ``k`` labelled windows is a UserError naming the subject and class."""
    order = np.argsort(starts_s, kind="stable")
    chosen = []
    for c, name in enumerate(names):
        of_class = order[labels[order] == c]
        if len(of_class) < k:
            raise UserError(
                f"subject {subject}: {len(of_class)} labelled window(s) of class {name!r}, fewer than --shots {k}; "
                "choose fewer shots, or leave the subject out with --subjects"
            )
        chosen.append(of_class[:k])
    return np.sort(np.concatenate(chosen))


def personal_split(
    labels: np.ndarray,
    starts_s: np.ndarray,
    k: int,
    window_s: float,
    subject: str,
    names: Sequence[str],
    gap_s: float | None = None,
    test_after: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, test) window indices of one subject: the first ``k`` windows per class, and the windows
    starting at least ``gap_s`` (default ``window_s``) after the last calibration window ends — the calibration of
    ``test_after`` windows per class when given (>= ``k``: the common test set of several K)."""
    gap = window_s if gap_s is None else gap_s
    cal = first_k_per_class(labels, starts_s, k, subject, names)
    last = cal if test_after is None else first_k_per_class(labels, starts_s, max(k, test_after), subject, names)
    end = float(starts_s[last].max()) + window_s
    test = np.flatnonzero(starts_s >= end + gap - 1e-9)
    if len(test) == 0:
        raise UserError(
            f"subject {subject}: no labelled window starts {gap:g} s after its calibration windows (the first "
            f"{max(k, test_after or 0)} per class end at {end:g} s of the recording); choose fewer shots, or leave the "
            "subject out with "
            "--subjects"
        )
    return cal, test


def personalise_episodes(
    subjects: dict[str, tuple[np.ndarray, np.ndarray]],
    k: int,
    repeats: int,
    window_s: float,
    names: Sequence[str],
    gap_s: float | None = None,
    test_after: int | None = None,
) -> list[list[Episode]]:
    """Per repeat, one episode per subject (its own calibration and test windows). ``subjects``: subject →
    (labels, starts_s). The windows do not change between repeats (time order decides them), only the seed."""
    splits = {s: personal_split(y, t, k, window_s, s, names, gap_s, test_after) for s, (y, t) in subjects.items()}
    return [[Episode(r, {s: cal}, {s: test}) for s, (cal, test) in splits.items()] for r in range(repeats)]


def population_episodes(
    subjects: dict[str, tuple[np.ndarray, np.ndarray]],
    k: int,
    repeats: int,
    adapt_subjects: int,
    names: Sequence[str],
    seed: int,
) -> list[list[Episode]]:
    """Per repeat, one episode: ``adapt_subjects`` subjects drawn (seeded; distinct draws while there are)
    calibrate with their first ``k`` windows per class, every other subject tests with all its windows."""
    ids = sorted(subjects)
    if adapt_subjects < 1 or adapt_subjects >= len(ids):
        raise UserError(
            f"--adapt-subjects {adapt_subjects}: the new-population protocol needs at least one adaptation and one "
            f"test subject among the {len(ids)} target subject(s); choose 1..{len(ids) - 1}"
        )
    rng = np.random.default_rng(seed)
    seen: set[tuple[str, ...]] = set()
    episodes = []
    for r in range(repeats):
        for _ in range(100):  # a new combination while there is one
            draw = tuple(sorted(rng.choice(ids, size=adapt_subjects, replace=False).tolist()))
            if draw not in seen:
                break
        seen.add(draw)
        cal = {s: first_k_per_class(*subjects[s], k, s, names) for s in draw}
        test = {s: np.arange(len(subjects[s][0])) for s in ids if s not in draw}
        episodes.append([Episode(r, cal, test)])
    return episodes


def parse_shots(text: str) -> list[int]:
    """``--shots 1,5,20`` → [1, 5, 20] (positive integers, sorted, distinct)."""
    try:
        shots = sorted({int(v) for v in str(text).split(",") if v.strip()})
    except ValueError:
        shots = []
    if not shots or shots[0] < 1:
        raise UserError(f"--shots {text}: expected labelled windows per class as positive integers, e.g. 1,5,20")
    return shots
