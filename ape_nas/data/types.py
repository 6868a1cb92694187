"""Plain containers shared by every reader and by preprocessing. No torch.

Time convention: every recording has a start instant ``t0`` (unix seconds, or ``None`` when the source has no
clock). A channel ``ch`` starts ``offsets.get(ch, 0.0)`` seconds after ``t0`` and has one sample every
``1 / rates[ch]`` seconds. Labels start at ``label_offset`` seconds after ``t0``. Beat-interval series (IBI/RR)
are irregular events, kept in ``events[name]`` as an ``(n, 2)`` array of (beat time in s after ``t0``,
interval in s); preprocessing resamples them evenly and marks gaps instead of inventing beats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

UNLABELLED = -1


@dataclass
class SubjectRecording:
    """One subject's signals and per-sample labels (``UNLABELLED`` = -1 where no label applies)."""

    subject: str
    signals: dict[str, np.ndarray]
    rates: dict[str, float]
    labels: np.ndarray
    label_rate: float
    meta: dict[str, Any] = field(default_factory=dict)
    offsets: dict[str, float] = field(default_factory=dict)
    label_offset: float = 0.0
    t0: float | None = None
    events: dict[str, np.ndarray] = field(default_factory=dict)

    def channel_names(self) -> list[str]:
        return [*self.signals, *self.events]

    def is_labelled(self) -> bool:
        return bool((np.asarray(self.labels) != UNLABELLED).any())

    def set_unlabelled(self, label_rate: float = 1.0) -> None:
        """Labels ``UNLABELLED`` over the whole recording at ``label_rate`` (recordings read without labels)."""
        self.labels = np.full(round(self.duration_s() * label_rate), UNLABELLED, dtype=np.int64)
        self.label_rate, self.label_offset = float(label_rate), 0.0

    def duration_s(self) -> float:
        ends = [self.offsets.get(c, 0.0) + len(x) / self.rates[c] for c, x in self.signals.items()]
        ends += [float(e[-1, 0]) for e in self.events.values() if len(e)]
        return max(ends) if ends else 0.0


@dataclass
class BenchmarkData:
    """All subjects of one benchmark, with the class names that label indices refer to.

    ``sources`` lists the raw files read (their content keys the preprocessing cache); ``skipped`` maps
    subjects a reader could not use to the reason (reported, never silent). ``no_labels`` says why a reader
    called with ``require_labels=False`` found no labels (what is missing, and how to give it); empty otherwise.
    """

    name: str
    subjects: list[SubjectRecording]
    class_names: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    no_labels: str = ""

    def is_labelled(self) -> bool:
        """Whether any subject has a labelled sample."""
        return any(s.is_labelled() for s in self.subjects)

    def subject_ids(self) -> list[str]:
        return [s.subject for s in self.subjects]

    def channels(self) -> list[str]:
        return self.subjects[0].channel_names() if self.subjects else []
