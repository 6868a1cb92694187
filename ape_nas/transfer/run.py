"""The transfer experiment: every protocol × shots K × repeat × method on the same episodes.

For one K and repeat, every method adapts on exactly the same calibration windows with the same seed and is
tested on exactly the same windows, so differences between methods are the methods'. ``source`` (the source
network as it is, no adaptation) is added when the target's classes are the source's: the line every adapted
method has to beat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ape_nas.transfer.protocols import Episode, personalise_episodes, population_episodes
from ape_nas.transfer.source import TransferSource
from ape_nas.transfer.target import TargetData

SOURCE = "source"  # the un-adapted source network (target classes = source classes)
Plan = dict[tuple[str, int], list[list[Episode]]]  # (protocol, K) → per repeat, its episodes


@dataclass
class Outcome:
    """One method adapted on one episode: its test windows' labels and probabilities, per subject."""

    protocol: str
    method: str
    k: int
    repeat: int
    calibration: dict[str, list[float]]  # subject → start (s) of each calibration window
    seconds: float  # adaptation time (building + training), s
    trained_parameters: int
    test: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # subject → (y, probs)


@dataclass
class Kept:
    """The adapted network of the first repeat (for ``transfer --out``), with its episode."""

    adapted: Any
    episode: Episode
    outcome: Outcome


def episode_seed(seed: int, repeat: int, k: int, first_subject: str) -> int:
    digits = int.from_bytes(first_subject.encode()[:8].ljust(8, b"\0"), "little")
    return int(np.random.SeedSequence([seed, repeat, k, digits]).generate_state(1)[0])


def stack(target: TargetData, picks: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The windows ``picks`` names (subject → indices), concatenated: X, y, features."""
    subs = [target.subjects[s] for s in picks]
    X = np.concatenate([w.X[picks[w.subject]] for w in subs])
    y = np.concatenate([w.y[picks[w.subject]] for w in subs])
    has = subs[0].features is not None
    F = np.concatenate([w.features[picks[w.subject]] for w in subs]) if has else None  # type: ignore[index]
    return X, y, F


def source_matches(source: TransferSource, target: TargetData) -> bool:
    return list(source.bundle.class_names) == list(target.class_names)


def episodes_for(
    protocol: str,
    target: TargetData,
    k: int,
    repeats: int,
    window_s: float,
    adapt_subjects: int,
    seed: int,
    gap_s: float | None,
    test_after: int | None = None,
) -> list[list[Episode]]:
    """The episodes of one protocol and K; ``test_after``: the largest K of the run (personalise tests every K on
    the windows after that K's calibration; new-population draws the same subjects for every K)."""
    table = {s: (w.y, w.starts_s) for s, w in target.subjects.items()}
    if protocol == "personalise":
        return personalise_episodes(table, k, repeats, window_s, target.class_names, gap_s, test_after)
    return population_episodes(table, k, repeats, adapt_subjects, target.class_names, seed)


def plan_episodes(
    protocols: Sequence[str],
    target: TargetData,
    shots: Sequence[int],
    repeats: int,
    window_s: float,
    adapt_subjects: int,
    seed: int,
    gap_s: float | None,
) -> Plan:
    """Every episode of the run, made before any training: a subject too short for a K stops here."""
    top = max(shots)
    return {
        (p, k): episodes_for(p, target, k, repeats, window_s, adapt_subjects, seed, gap_s, top)
        for p in protocols
        for k in shots
    }


def run_episode(
    method: str,
    source: TransferSource,
    target: TargetData,
    protocol: str,
    k: int,
    episode: Episode,
    seed: int,
    steps: int | None,
) -> tuple[Outcome, Any]:
    from ape_nas.transfer import methods as M

    calibration = {s: target.subjects[s].starts_s[i].round(3).tolist() for s, i in episode.calibration.items()}
    t0 = time.perf_counter()
    if method == SOURCE:
        net, adapted, trained = source.net, None, 0
    else:
        X, y, F = stack(target, episode.calibration)
        adapted = M.adapt(method, source.net, len(target.class_names), build=source.build, seed=seed)
        M.fit(adapted, X, y, F, seed=seed, steps=steps)
        net, trained = adapted.net, adapted.trained_parameters()
    seconds = time.perf_counter() - t0
    outcome = Outcome(protocol, method, k, episode.repeat, calibration, seconds, trained)
    for s, idx in episode.test.items():
        w = target.subjects[s]
        probs = M.predict_proba(net, w.X[idx], None if w.features is None else w.features[idx])
        outcome.test[s] = (w.y[idx], probs)
    return outcome, adapted


def method_names(source: TransferSource, target: TargetData, methods: Sequence[str]) -> list[str]:
    """The methods a run compares: ``source`` first when the target's classes are the source's."""
    return ([SOURCE] if source_matches(source, target) else []) + list(methods)


def run_transfer(
    source: TransferSource,
    target: TargetData,
    plan: Plan,
    methods: Sequence[str],
    *,
    seed: int,
    steps: int | None = None,
    keep: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> tuple[list[Outcome], Kept | None]:
    """Every method on every episode of ``plan`` (:func:`plan_episodes`); ``keep``: also return the adapted network
    of the first episode (one method, one K)."""
    names = method_names(source, target, methods)
    outcomes: list[Outcome] = []
    kept: Kept | None = None
    for (protocol, k), per_repeat in plan.items():
        for episodes in per_repeat:
            for episode in episodes:
                s = episode_seed(seed, episode.repeat, k, episode.adapt_subjects[0])
                for method in names:
                    outcome, adapted = run_episode(method, source, target, protocol, k, episode, s, steps)
                    outcomes.append(outcome)
                    if keep and kept is None and adapted is not None:
                        kept = Kept(adapted, episode, outcome)
                    if progress is not None:
                        progress(f"{protocol} K={k} repeat {episode.repeat + 1} {method}", 1)
    return outcomes, kept


def total_adaptations(plan: Plan, methods: int) -> int:
    """Adaptations a run makes: every method (``source`` included) on every episode."""
    return methods * sum(len(episodes) for per_repeat in plan.values() for episodes in per_repeat)
