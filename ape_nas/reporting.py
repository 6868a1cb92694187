"""The two narrow channels from a running trial back to orchestration.

A :class:`Reporter` receives each validation score and answers whether to stop (prune). A :class:`TrialTracker`
records what happened (params, metrics, tags, artifacts). ``run_trial`` knows only these protocols, never
Optuna, Ray or MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class TrialPruned(Exception):
    """Raised by run_trial when the reporter asked to stop; the backend turns it into its own pruned state."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"pruned at epoch {step} (value {value:.4f})")
        self.step = step
        self.value = value


class TrialRejected(TrialPruned):
    """A spec over a cost constraint, rejected before training (no epoch run); recorded as ``rejected``."""

    def __init__(self, reason: str) -> None:
        Exception.__init__(self, f"rejected before training: {reason}")
        self.step = -1
        self.value = float("nan")
        self.reason = reason


class Reporter(Protocol):
    def report(self, value: float, step: int) -> bool:
        """Record an intermediate validation value at ``step`` (epoch); True means: stop, this trial is pruned."""
        ...


class TrialTracker(Protocol):
    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def set_tags(self, tags: dict[str, Any]) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...
    def log_text(self, text: str, name: str) -> None: ...


class NullReporter:
    def report(self, value: float, step: int) -> bool:
        return False


class MemoryTracker:
    """Keeps everything in memory: for tests, ``reproduce`` dry runs and library use without MLflow."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.metrics: list[tuple[str, float, int | None]] = []
        self.tags: dict[str, Any] = {}
        self.artifacts: list[tuple[Path, str | None]] = []
        self.texts: dict[str, str] = {}

    def log_params(self, params: dict[str, Any]) -> None:
        self.params.update(params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.extend((k, float(v), step) for k, v in metrics.items())

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.tags.update(tags)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.artifacts.append((Path(path), artifact_path))

    def log_text(self, text: str, name: str) -> None:
        self.texts[name] = text

    def history(self, key: str) -> list[float]:
        return [v for k, v, _ in self.metrics if k == key]
