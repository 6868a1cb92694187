"""The end-of-sweep summary (issue 10): each trial's test score beside its validation score, marked as never used
for selection; the best trial's test interval and fold scores when recorded; a warning when its test score is far
below its validation score."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ape_nas.backends.base import TrialRecord
from ape_nas.progress import (
    GAP_WARN,
    best_lines,
    held_out_gap,
    held_out_interval,
    held_out_score,
    summary_table,
)


def _record(number: int, value: float | None, test: float | None = None, state: str = "complete", **attrs: Any):
    if test is not None:
        attrs["test_metrics"] = {"test_f1_macro": test, "test_auroc": 0.9}
    return TrialRecord(number=number, state=state, value=value, duration_s=3.0, params={"model": "cnn1d"}, attrs=attrs)


def _render(renderable: Any) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(renderable)
    return console.export_text()


def _rows(text: str) -> dict[str, list[str]]:
    """Table body rows by trial number → their cells (rich's box characters as separators)."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0].isdigit():
            rows[cells[0]] = cells
    return rows


def test_table_shows_test_beside_validation_under_a_header_that_says_it_is_not_used():
    records = [
        _record(0, 0.70, 0.66),
        _record(1, 0.81, 0.52),  # best by validation although its test score is the worst
        _record(2, 0.60, 0.79),
        _record(3, None, state="failed"),
    ]
    text = _render(summary_table(records, "maximize", "f1_macro"))
    assert "val f1_macro" in text and "test f1_macro (not used)" in text
    assert "never used to select, prune or rank trials" in " ".join(text.split())
    rows = _rows(text)
    assert rows["1"][2:4] == ["0.8100", "0.5200"]
    assert rows["2"][2:4] == ["0.6000", "0.7900"]
    assert rows["3"][2:4] == ["—", "—"]  # a failed trial has neither
    order = [line.split("│")[1].strip() for line in text.splitlines() if line.count("│") > 3]
    assert [o for o in order if o.isdigit()] == ["1", "0", "2", "3"]  # sorted by validation only, test ignored


def test_table_keeps_its_more_trials_note_beside_the_test_note():
    records = [_record(n, 0.5 + n / 100, 0.5) for n in range(5)]
    text = _render(summary_table(records, "maximize", "f1_macro", limit=3))
    assert "2 more trials: ape-nas status" in text and "never used to select" in " ".join(text.split())
    assert len(_rows(text)) == 3


def test_scores_and_interval_read_with_absent_attributes():
    bare = _record(0, 0.7)
    assert held_out_score(bare, "f1_macro") is None and held_out_interval(bare, "f1_macro") is None
    assert held_out_gap(bare, "f1_macro", "maximize") is None
    rec = _record(1, 0.7, 0.6, test_ci={"f1_macro": [0.5, 0.72]})
    assert held_out_score(rec, "f1_macro") == 0.6 and held_out_score(rec, "balanced_accuracy") is None
    assert held_out_interval(rec, "f1_macro") == (0.5, 0.72) and held_out_interval(rec, "auroc") is None
    assert abs(held_out_gap(rec, "f1_macro", "maximize") - 0.1) < 1e-12
    loss = TrialRecord(2, "complete", 0.40, 1.0, attrs={"test_metrics": {"test_loss": 0.55}})
    assert abs(held_out_gap(loss, "loss", "minimize") - 0.15) < 1e-12  # higher loss on test is worse


def test_best_lines_show_test_with_its_interval_and_folds_and_no_warning_when_close():
    best = _record(4, 0.78, 0.75, test_ci={"f1_macro": [0.66, 0.83]}, fold_scores=[0.74, 0.81, 0.79])
    best.attrs["mlflow_run_id"] = "abc"
    lines = best_lines(best, "f1_macro", "maximize")
    text = "\n".join(lines)
    assert lines[0].startswith("best: trial 4  val f1_macro = 0.7800")
    assert "validation folds: 0.740, 0.810, 0.790" in text
    assert "test f1_macro = 0.7500  (95% CI 0.660–0.830, subject bootstrap)" in text
    assert "never used for selection" in text
    assert "warning" not in text


def test_best_lines_warn_when_test_is_more_than_five_points_below_validation():
    text = "\n".join(best_lines(_record(1, 0.71, 0.33), "f1_macro", "maximize"))
    assert "warning: the best trial's test f1_macro is 38.0 points below its validation score" in text
    assert "95% CI" not in text and "folds" not in text  # not recorded: not shown
    # exactly at the threshold: no warning; just past it: a warning
    assert "warning" not in "\n".join(best_lines(_record(1, 0.70, 0.70 - GAP_WARN + 1e-9), "f1_macro", "maximize"))
    assert "warning" in "\n".join(best_lines(_record(1, 0.70, 0.70 - GAP_WARN - 1e-3), "f1_macro", "maximize"))
    # a test score above validation is never a warning
    assert "warning" not in "\n".join(best_lines(_record(1, 0.60, 0.80), "f1_macro", "maximize"))


def test_best_lines_without_test_metrics_show_validation_only():
    lines = best_lines(_record(2, 0.64), "f1_macro", "maximize")
    assert lines == ["best: trial 2  val f1_macro = 0.6400"]


def test_sweep_command_prints_test_beside_validation_and_the_warning(monkeypatch, capsys):
    """``ape-nas sweep``'s final output (run_sweep stubbed: no training): the table with both scores, the best
    trial's test score and interval, and the warning line when test is far below validation."""
    from types import SimpleNamespace

    import ape_nas.sweep as sweep_module
    from ape_nas.commands.sweep import run_sweep_command

    best = _record(3, 0.80, 0.62, test_ci={"f1_macro": [0.55, 0.70]}, mlflow_run_id="r3")
    records = [_record(0, 0.70, 0.71, mlflow_run_id="r0"), best]
    backend = {"name": "optuna", "sampler": "tpe", "pruner": "median"}
    exp = SimpleNamespace(
        name="q",
        budget={"trials": 2},
        objective={"metric": "f1_macro"},
        direction="maximize",
        objectives=["f1_macro"],
        directions=["maximize"],
        multi_objective=False,
        backend=backend,
        protocol={"kind": "holdout"},
    )
    plan = SimpleNamespace(experiment=exp, space=SimpleNamespace(name="s", family_names=["cnn1d"]))
    outcome = SimpleNamespace(
        records=records,
        best=best,
        baseline=None,
        new_trials=records,
        storage="sqlite:///x/optuna.db",
        tracking_uri="sqlite:///x/mlflow.db",
        parent_run_id="p",
        interrupted=False,
    )
    monkeypatch.setattr(sweep_module, "prepare_from_args", lambda args, **kw: plan)
    monkeypatch.setattr(sweep_module, "run_sweep", lambda plan, progress: outcome)
    args = SimpleNamespace(new_study=False, no_progress=True, workdir="x", outer_fold=None)
    capsys.readouterr()
    assert run_sweep_command(args) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "val f1_macro" in out and "test f1_macro (not used)" in out
    assert "best: trial 3 val f1_macro = 0.8000 (MLflow run r3)" in out
    assert "test f1_macro = 0.6200 (95% CI 0.550–0.700, subject bootstrap)" in out
    assert "warning: the best trial's test f1_macro is 18.0 points below its validation score" in out
