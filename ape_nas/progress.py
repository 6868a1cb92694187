"""Readable sweep output: a live progress bar, one line per finished trial, a summary table at the end."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ape_nas.backends.base import TrialRecord
from ape_nas.console import make_console

_STYLE = {
    "complete": "green",
    "pruned": "yellow",
    "failed": "red",
    "running": "cyan",
    "waiting": "dim",
    "interrupted": "magenta",
}


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def best_of(records: Sequence[TrialRecord], direction: str) -> TrialRecord | None:
    done = [r for r in records if r.state == "complete" and r.value is not None]
    if not done:
        return None
    return (max if direction == "maximize" else min)(done, key=lambda r: r.value)


class SweepProgress:
    """Live bar (trial n/N, last state and value, best so far) with a printed line per finished trial."""

    def __init__(
        self, total: int, direction: str, metric: str, console: Console | None = None, enabled: bool = True
    ) -> None:
        self.console = console or make_console(stderr=True)
        self.direction, self.metric, self.total = direction, metric, total
        self.best: TrialRecord | None = None
        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}"),
            console=self.console,
            transient=True,
            disable=not enabled,
        )
        self._task = self._progress.add_task("starting", total=total)

    def __enter__(self) -> SweepProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def trial_started(self, number: int, model: str) -> None:
        self._progress.update(self._task, description=f"trial {number} ({model}) running · {self._best_text()}")

    def _best_text(self) -> str:
        if self.best is None:
            return "best —"
        return f"best {self.metric} {fmt(self.best.value)} (trial {self.best.number})"

    def trial_finished(self, record: TrialRecord) -> None:
        if (
            record.state == "complete"
            and record.value is not None
            and (self.best is None or best_of([self.best, record], self.direction) is record)
        ):
            self.best = record
        style = _STYLE.get(record.state, "")
        note = ""
        if record.state == "failed" and record.attrs.get("error"):
            note = f"  [red]{record.attrs['error'][:120]}[/red]"
        # one line per trial, with or without the live bar (logs, CI, Slurm)
        self.console.print(
            f"  trial {record.number:>4}  [{style}]{record.state:<8}[/{style}] "
            f"{self.metric} {fmt(record.value)}  {fmt(record.duration_s, 1)} s  "
            f"{record.model}{note}"
        )
        self._progress.update(
            self._task, advance=1, description=f"last: trial {record.number} {record.state} · {self._best_text()}"
        )


def summary_table(records: Sequence[TrialRecord], direction: str, metric: str, limit: int = 20) -> Table:
    """The end-of-sweep table: trials sorted best first (complete), then pruned and failed."""
    table = Table(title=f"trials (best {metric} first)", show_lines=False)
    for col in ("trial", "state", metric, "seconds", "model", "MLflow run"):
        table.add_column(col, justify="right" if col in ("trial", metric, "seconds") else "left")
    sign = -1 if direction == "maximize" else 1
    order = {"complete": 0, "pruned": 1, "running": 2, "failed": 3, "waiting": 4, "interrupted": 5}

    def key(r: TrialRecord) -> tuple[int, float, int]:
        return order.get(r.state, 5), sign * (r.value if r.value is not None else 0.0), r.number

    rows = sorted(records, key=key)
    for r in rows[:limit]:
        style = _STYLE.get(r.state, "")
        twin = r.attrs.get("duplicate_of")
        state = f"[{style}]{r.state}[/{style}]" + (f" (= trial {twin}, not retrained)" if twin is not None else "")
        table.add_row(str(r.number), state, fmt(r.value), fmt(r.duration_s, 1), r.model, r.run_id or "—")
    if len(rows) > limit:
        table.caption = f"{len(rows) - limit} more trials: ape-nas status"
    return table
