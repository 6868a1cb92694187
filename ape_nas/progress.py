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
from ape_nas.metrics import COST_METRICS, human

_STYLE = {
    "complete": "green",
    "pruned": "yellow",
    "rejected": "magenta",
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
        elif record.state == "rejected":
            note = f"  [magenta]{record.attrs.get('rejected', '')}: not trained[/magenta]"
        # one line per trial, with or without the live bar (logs, CI, Slurm)
        self.console.print(
            f"  trial {record.number:>4}  [{style}]{record.state:<8}[/{style}] "
            f"{self.metric} {fmt(record.value)}  {fmt(record.duration_s, 1)} s  "
            f"{record.model}{note}"
        )
        self._progress.update(  # a rejected spec does not use the budget the bar counts
            self._task,
            advance=0 if record.state == "rejected" else 1,
            description=f"last: trial {record.number} {record.state} · {self._best_text()}",
        )


TEST_HEADER = "test {metric} (not used)"
"""Column of the held-out test subjects' score: shown for information, never used to select, prune or rank."""
TEST_NOTE = "test: held-out subjects, scored once per trial; never used to select, prune or rank trials"
GAP_WARN = 0.05
"""Warn when the best trial's test score is worse than its validation score by more than this (5 points)."""


def held_out_score(record: TrialRecord, metric: str) -> float | None:
    """The trial's ``test_<metric>`` from its ``test_metrics`` attribute, or None when it has none."""
    value = (record.attrs.get("test_metrics") or {}).get(f"test_{metric}")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def held_out_interval(record: TrialRecord, metric: str) -> tuple[float, float] | None:
    """The trial's test 95% interval of ``metric`` (attribute ``test_ci``: {metric: [low, high]}), if recorded."""
    ci = (record.attrs.get("test_ci") or {}).get(metric)
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(isinstance(v, int | float) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def held_out_gap(best: TrialRecord, metric: str, direction: str) -> float | None:
    """How much worse the trial's test score is than its validation score (> 0: worse), or None."""
    test = held_out_score(best, metric)
    if test is None or best.value is None:
        return None
    return (best.value - test) if direction == "maximize" else (test - best.value)


def summary_table(records: Sequence[TrialRecord], direction: str, metric: str, limit: int = 20) -> Table:
    """The end-of-sweep table: trials sorted best first (complete), then pruned and failed.

    Each trial's test score stands beside its validation score under :data:`TEST_HEADER`: the sort, like the
    search, uses the validation score only.
    """
    table = Table(title=f"trials (best val {metric} first)", show_lines=False)
    val_col, test_col = f"val {metric}", TEST_HEADER.format(metric=metric)
    for col in ("trial", "state", val_col, test_col, "seconds", "model", "MLflow run"):
        table.add_column(col, justify="right" if col in ("trial", val_col, test_col, "seconds") else "left")
    sign = -1 if direction == "maximize" else 1
    order = {"complete": 0, "pruned": 1, "rejected": 2, "running": 3, "failed": 4, "waiting": 5, "interrupted": 6}

    def key(r: TrialRecord) -> tuple[int, float, int]:
        return order.get(r.state, 5), sign * (r.value if r.value is not None else 0.0), r.number

    rows = sorted(records, key=key)
    for r in rows[:limit]:
        style = _STYLE.get(r.state, "")
        twin = r.attrs.get("duplicate_of")
        state = f"[{style}]{r.state}[/{style}]" + (f" (= trial {twin}, not retrained)" if twin is not None else "")
        test = f"[dim]{fmt(held_out_score(r, metric))}[/dim]"
        table.add_row(str(r.number), state, fmt(r.value), test, fmt(r.duration_s, 1), r.model, r.run_id or "—")
    notes = [TEST_NOTE]
    if len(rows) > limit:
        notes.append(f"{len(rows) - limit} more trials: ape-nas status")
    table.caption = "\n".join(notes)
    return table


def best_lines(best: TrialRecord, metric: str, direction: str) -> list[str]:
    """The best trial under the table: validation score (what selected it), fold scores when the protocol has
    folds, the test score beside it (never used for selection) with its 95% interval when recorded, and a warning
    when the test score is more than :data:`GAP_WARN` worse than the validation score."""
    run = f"  (MLflow run {best.run_id})" if best.run_id else ""
    lines = [f"best: trial {best.number}  val {metric} = {fmt(best.value)}{run}"]
    folds = best.attrs.get("fold_scores")
    if isinstance(folds, list | tuple) and len(folds) > 1:
        lines.append(f"  validation folds: {', '.join(fmt(v, 3) for v in folds)}")
    test = held_out_score(best, metric)
    if test is not None:
        ci = held_out_interval(best, metric)
        ci_text = f"  (95% CI {fmt(ci[0], 3)}–{fmt(ci[1], 3)}, subject bootstrap)" if ci else ""
        lines.append(f"  test {metric} = {fmt(test)}{ci_text}  — test subjects, never used for selection")
    gap = held_out_gap(best, metric, direction)
    if gap is not None and gap > GAP_WARN:
        size = f"{100 * gap:.1f} points below" if direction == "maximize" else f"{gap:.4f} worse than"
        lines.append(
            f"[yellow]warning: the best trial's test {metric} is {size} its validation score: the validation "
            "subjects flatter it (a small or unrepresentative validation set, or selection among many trials); "
            "trust the test score, and select on more subjects (protocol.kind: kfold)[/yellow]"
        )
    return lines


def selection_noise_line(records: Sequence[TrialRecord], best: TrialRecord, direction: str) -> str | None:
    """How many complete trials cannot be told apart from the best one on their fold scores (one-sided paired
    t-test over the same folds, α = 0.05, :func:`ape_nas.stats.indistinguishable`); None without fold scores."""
    from ape_nas.stats import indistinguishable

    folds = best.attrs.get("fold_scores")
    if not isinstance(folds, list | tuple) or len(folds) < 2:
        return None
    others = {
        r.number: r.attrs["fold_scores"]
        for r in records
        if r.state == "complete" and r.number != best.number and isinstance(r.attrs.get("fold_scores"), list | tuple)
    }
    if not others:
        return None
    tied = indistinguishable(list(folds), {k: list(v) for k, v in others.items()}, direction)
    return (
        f"  {len(tied)} of the {len(others)} other complete trials are statistically indistinguishable from the best "
        f"(paired t-test over {len(folds)} folds, α 0.05)"
        + (
            ": the choice among them is noise — prefer the simplest, or an ensemble (export --ensemble K)"
            if tied
            else ""
        )
    )


def cost_text(name: str, value: Any) -> str:
    """A cost as people read it: ``48.2k`` parameters, ``3.1M`` MACs, ``0.412`` ms, ``1.25`` MB."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    if name in ("params", "macs"):
        return human(value)
    return f"{value:.3g}"


def pareto_table(points: Sequence[TrialRecord], objectives: Sequence[str], metric: str) -> Table:
    """The Pareto front: per point the trial, every objective, the other measured costs and the test score."""
    costs = COST_METRICS
    table = Table(title=f"Pareto front ({len(points)} trials: val {' vs '.join(objectives)})")
    columns = ["trial", f"val {objectives[0]}", *costs, TEST_HEADER.format(metric=metric), "model", "MLflow run"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "MLflow run") else "right")
    for r in points:
        cost = r.attrs.get("cost") or {}
        cells = [
            f"[bold]{cost_text(c, cost.get(c))}[/bold]" if c in objectives else cost_text(c, cost.get(c)) for c in costs
        ]
        test = f"[dim]{fmt(held_out_score(r, metric))}[/dim]"
        table.add_row(str(r.number), fmt(r.value), *cells, test, r.model, r.run_id or "—")
    table.caption = "bold: searched objectives · " + TEST_NOTE
    return table
