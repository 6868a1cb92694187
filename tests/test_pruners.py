"""Every pruner an experiment may name is seen pruning, and a trial's ``report`` gives both answers.

Two paths. The pruners' decisions: ``OptunaBackend.run`` (built from the quickstart experiment with
``backend.pruner=<name>``, so with ape-nas's own pruner defaults) drives a cheap trial function that reports fixed
learning curves -- good and bad trials alternate -- through the backend's trial handle, as the real objective does,
and stops when ``handle.report`` says so. The real path: one tiny end-to-end ``ape-nas sweep`` that trains models,
with a threshold no model reaches, so that each trial is pruned by the pruner and recorded as pruned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _common import QUICKSTART, SMALL, status_json, sweep_runs

from ape_nas.backends.base import TrialHandle, TrialRecord
from ape_nas.cli import main
from ape_nas.reporting import TrialPruned
from ape_nas.search_names import PRUNERS
from ape_nas.sweep import prepare_sweep

EPOCHS = 8
# options each pruner needs beyond ape-nas's defaults ("{}": the defaults alone)
PRUNER_OPTIONS = {
    "median": "{}",
    "percentile": "{}",
    "hyperband": "{}",
    "successive_halving": "{}",
    "threshold": "{lower: 0.5}",
    "wilcoxon": "{}",
    "none": "{}",
}


def good(number: int) -> list[float]:
    """A learning curve that rises; a later good trial is a little better than every earlier one."""
    return [0.7 + 0.02 * step + 0.001 * number for step in range(EPOCHS)]


def bad(number: int) -> list[float]:
    return [0.2] * EPOCHS


class CurveTrials:
    """A stand-in for the trial runner: trial ``n`` reports ``curves[n](n)`` epoch by epoch and
    stops (pruned) when the handle answers True, as ``ape_nas.objective`` does. Records every answer."""

    def __init__(self, curves: list[Callable[[int], list[float]]]) -> None:
        self.curves = curves
        self.answers: dict[int, list[bool]] = {}

    def __call__(self, handle: TrialHandle, on_start: Callable[[int, str], None] | None = None) -> float:
        curve = self.curves[handle.number](handle.number)
        answers = self.answers.setdefault(handle.number, [])
        for step, value in enumerate(curve):
            answers.append(handle.report(value, step))
            if answers[-1]:
                raise TrialPruned(step, value)
        return max(curve)


def _backend(tmp_path: Path, pruner: str, options: str) -> Any:
    overrides = [f"backend.pruner={pruner}", f"backend.pruner_options={options}", f"training.max_epochs={EPOCHS}"]
    backend = prepare_sweep(QUICKSTART, overrides=overrides, workdir=tmp_path).backend
    backend.open(create=True)
    return backend


def _run(backend: Any, trials: CurveTrials) -> list[TrialRecord]:
    backend.run(trials, n_trials=len(trials.curves), timeout_s=None)
    return backend.records()


def test_every_configurable_pruner_has_a_case_here():
    assert set(PRUNER_OPTIONS) == set(PRUNERS)


@pytest.mark.parametrize("name", list(PRUNER_OPTIONS))
def test_the_pruner_prunes_bad_trials_of_a_sweep_and_never_a_good_one(name: str, tmp_path: Path):
    curves = [good if n % 2 == 0 else bad for n in range(12)]
    trials = CurveTrials(curves)
    records = _run(_backend(tmp_path, name, PRUNER_OPTIONS[name]), trials)
    assert len(records) == len(curves)
    pruned = [r.number for r in records if r.state == "pruned"]
    assert {r.state for r in records} <= {"complete", "pruned"}
    assert all(curves[n] is bad for n in pruned), f"{name} pruned a good trial: {pruned}"
    if name == "none":
        assert pruned == []
        return
    assert pruned, f"{name} pruned no trial: {trials.answers}"
    for n in pruned:  # stopped at the first True, before the last epoch
        assert trials.answers[n][-1] is True and not any(trials.answers[n][:-1])
        assert len(trials.answers[n]) < EPOCHS


def test_report_answers_prune_for_a_clearly_bad_curve_and_not_for_a_good_one(tmp_path: Path):
    # the quickstart's own median pruner: 3 start-up trials, 2 warm-up epochs
    backend = _backend(tmp_path, "median", "{n_startup_trials: 3, n_warmup_steps: 2}")
    trials = CurveTrials([good, good, good, bad, good])
    records = _run(backend, trials)
    assert [r.state for r in records] == ["complete", "complete", "complete", "pruned", "complete"]
    assert trials.answers[3] == [False, False, True]  # warm-up epochs 0 and 1, then pruned
    assert trials.answers[4] == [False] * EPOCHS
    assert all(trials.answers[n] == [False] * EPOCHS for n in range(3))  # start-up trials are never pruned


@pytest.mark.slow
def test_a_real_sweep_records_the_trials_its_pruner_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """End to end: real training, Optuna's ThresholdPruner with a bound no model reaches (F1 > 1.01) and its
    default 1 warm-up epoch: each trial trains epochs 0 and 1 of 3, then the pruner stops it."""
    workdir = tmp_path / "w"
    pruner = ["--set", "backend.pruner=threshold", "--set", "backend.pruner_options={lower: 1.01}"]
    args = ["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "2", "--no-progress", *SMALL, *pruner]
    assert main(args) == 0  # a sweep whose trials were all pruned still succeeds
    status = status_json(workdir, capsys, *SMALL, *pruner)
    assert [t["state"] for t in status["trials"]] == ["pruned", "pruned"]
    client, _, runs = sweep_runs(status)
    assert len(runs) == 2
    for run in runs:
        assert run.data.tags["ape_nas.state"] == "pruned"
        history = client.get_metric_history(run.info.run_id, "val_f1_macro")
        assert sorted(m.step for m in history) == [0, 1]  # max_epochs is 3: stopped after epoch 1
