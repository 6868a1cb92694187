"""Plain containers shared by every reader and by preprocessing. No torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

UNLABELLED = -1


@dataclass
class SubjectRecording:
    """One subject's signals and per-sample labels.

    ``signals[ch]`` is a 1-D float array sampled at ``rates[ch]`` Hz; all channels start at the same instant.
    ``labels`` is an int array at ``label_rate`` Hz over the same time span, ``UNLABELLED`` (-1) where no
    label applies (e.g. transitions).
    """

    subject: str
    signals: dict[str, np.ndarray]
    rates: dict[str, float]
    labels: np.ndarray
    label_rate: float
    meta: dict[str, Any] = field(default_factory=dict)

    def duration_s(self) -> float:
        ch = next(iter(self.signals))
        return len(self.signals[ch]) / self.rates[ch]


@dataclass
class BenchmarkData:
    """All subjects of one benchmark, with the class names that label indices refer to."""

    name: str
    subjects: list[SubjectRecording]
    class_names: list[str]
    params: dict[str, Any] = field(default_factory=dict)

    def subject_ids(self) -> list[str]:
        return [s.subject for s in self.subjects]

    def channels(self) -> list[str]:
        return list(self.subjects[0].signals) if self.subjects else []
