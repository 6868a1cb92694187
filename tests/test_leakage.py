"""The evaluation cannot leak: what a test subject is, or which label a window carries, never reaches the search.

On the embedded synthetic benchmark with tiny budgets:

* permuting the test subjects' labels leaves every trial's score, best epoch and pruning decision and the best
  trial unchanged; only ``test_*`` metrics move;
* changing a test subject's raw recording leaves every other subject's windows, labels and HRV features
  bit-identical (so the per-subject normalisation, the class weights and the HRV statistics fitted on them too);
* labels shuffled across windows give chance-level test scores, where the true labels give clearly better ones;
* ``ape-nas reproduce`` in a fresh process with another torch thread count says MATCH.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from _common import QUICKSTART, ROOT, SMALL, SMALL_SETS

import ape_nas.objective
from ape_nas.data.prepare import WindowSet, prepare_windows
from ape_nas.data.splits import make_splits
from ape_nas.data.synthetic import generate
from ape_nas.experiments import load_experiment
from ape_nas.models import arch_defaults
from ape_nas.objective import run_trial
from ape_nas.reporting import TrialPruned
from ape_nas.space import load_space
from ape_nas.spec import TrialSpec

Relabel = Callable[[WindowSet], np.ndarray]


def _base(*sets: str) -> dict[str, Any]:
    return load_experiment(QUICKSTART, [*SMALL_SETS, *sets]).base()


def _test_windows(ws: WindowSet, protocol: dict[str, Any]) -> np.ndarray:
    return ws.indices(make_splits(protocol, ws.subjects)[0].test)


def _relabelled(monkeypatch: pytest.MonkeyPatch, relabel: Relabel) -> None:
    """Every trial from now on trains on the real windows with the labels ``relabel(windows)``."""

    def prepare(data: dict[str, Any], cache_dir: Path | None = None) -> WindowSet:
        ws = prepare_windows(data, cache_dir)
        y = relabel(ws)
        assert (y != ws.y).any(), "the relabelling must change some label, or the test proves nothing"
        return WindowSet(**{**ws.__dict__, "y": y})

    monkeypatch.setattr(ape_nas.objective, "prepare_windows", prepare)


class _Report:
    """Optuna's public report / should_prune, as a sweep's trial handle answers them."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def report(self, value: float, step: int) -> bool:
        self.trial.report(value, step)
        return self.trial.should_prune()


def _sweep(base: dict[str, Any], cache: Path, trials: int = 4) -> list[dict[str, Any]]:
    """A small TPE sweep with a median pruner over the quickstart space: per trial what the search saw."""
    space = load_space(ROOT / "search_spaces" / "quickstart.yaml")
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0), pruner=pruner)
    out = []
    for _ in range(trials):
        trial = study.ask()
        spec = space.sample(trial, base, arch_defaults())
        record: dict[str, Any] = {"spec": spec.digest(), "values": None}
        try:
            result = run_trial(spec, _Report(trial), cache_dir=cache)
        except TrialPruned as exc:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            record |= {"state": "pruned", "at": exc.step}
        else:
            study.tell(trial, result.score)
            record |= {"state": "complete", "score": result.score, "best_epoch": result.best_epoch}
            record |= {"val": result.val_metrics, "test": result.test_metrics}
        record["values"] = study.trials[-1].intermediate_values
        out.append(record)
    out.append({"best": study.best_trial.number})
    return out


def test_permuting_test_labels_moves_only_test_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    base = _base("data.params.minutes_per_state=2.0", "training.max_epochs=4", "training.patience=4")
    honest = _sweep(base, tmp_path)

    def permute_test(ws: WindowSet) -> np.ndarray:
        y, test = ws.y.copy(), _test_windows(ws, base["protocol"])
        y[test] = np.random.default_rng(0).permutation(y[test])
        return y

    _relabelled(monkeypatch, permute_test)
    permuted = _sweep(base, tmp_path)
    assert {t["state"] for t in honest[:-1]} == {"complete", "pruned"}, "the pruner must decide both ways"
    assert permuted[-1] == honest[-1], "the best trial"
    moved = 0
    for a, b in zip(honest[:-1], permuted[:-1], strict=True):
        test_a, test_b = a.pop("test", None), b.pop("test", None)
        assert a == b, "score, best epoch, validation metrics, intermediate values and pruning decision"
        moved += test_a != test_b
    assert moved, "the permutation reached the test metrics"


def _write_folder(root: Path, bench: Any) -> None:
    """The synthetic subjects as a data set in the generic folder format (``ecg.npy`` + an interval table)."""
    fs = bench.params["fs"]
    root.mkdir()
    (root / "dataset.yaml").write_text(
        f"class_names: [{', '.join(bench.class_names)}]\nlabel_rate: {fs}\nchannels:\n  ecg: {{rate: {fs}}}\n"
    )
    rows = ["subject,start,end,label"]
    for rec in bench.subjects:
        (root / rec.subject).mkdir()
        np.save(root / rec.subject / "ecg.npy", rec.signals["ecg"])
        change = np.flatnonzero(np.diff(np.concatenate([[-2], rec.labels, [-2]])))
        for a, b in itertools.pairwise(change):
            if rec.labels[a] >= 0:
                rows.append(f"{rec.subject},{a / fs:.10g},{b / fs:.10g},{bench.class_names[rec.labels[a]]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def test_a_test_subjects_recording_changes_nothing_fitted_on_the_others(tmp_path: Path):
    bench = generate(subjects=6, minutes_per_state=1.0, fs=128.0, seed=3)
    _write_folder(tmp_path / "a", bench)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    base = _base()
    data = {**base["data"], "benchmark": "folder", "params": {"path": str(tmp_path / "a")}}
    before = prepare_windows(data, tmp_path / "cache")
    test = make_splits(base["protocol"], before.subjects)[0].test
    ecg = tmp_path / "b" / test[0] / "ecg.npy"
    signal = np.load(ecg)
    np.save(ecg, 3.0 * signal[::-1] + 0.2 * np.sin(np.arange(signal.size) / 7.0))  # another recording
    after = prepare_windows({**data, "params": {"path": str(tmp_path / "b")}}, tmp_path / "cache")

    assert after.fingerprint != before.fingerprint and after.subjects == before.subjects
    assert make_splits(base["protocol"], after.subjects) == make_splits(base["protocol"], before.subjects)
    changed = before.indices([test[0]])
    assert not np.array_equal(after.X[changed], before.X[changed]), "the change reached that subject's windows"
    others = before.indices([s for s in before.subjects if s != test[0]])
    assert np.array_equal(after.indices([s for s in after.subjects if s != test[0]]), others)
    for name in ("X", "y", "starts_s", "groups"):
        assert np.array_equal(getattr(after, name)[others], getattr(before, name)[others]), name
    assert np.array_equal(after.hrv[others], before.hrv[others], equal_nan=True)
    assert np.isfinite(before.hrv[others]).any()


def test_labels_shuffled_across_windows_score_at_chance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sets = ["data.params.subjects=12", "data.params.minutes_per_state=2.0", "protocol.test_subjects=4"]
    base = _base(*sets, "training.max_epochs=8", "training.patience=8")
    arch = {**arch_defaults()["cnn1d"], "depth": 3, "width": 8, "kernel_size": 7, "pool": 4}
    spec = TrialSpec.from_dict({"model": "cnn1d", "arch": arch, "optim": {"lr": 3e-3, "batch_size": 32}, **base})
    honest = run_trial(spec, cache_dir=tmp_path).test_metrics
    _relabelled(monkeypatch, lambda ws: np.random.default_rng(1).permutation(ws.y))
    shuffled = run_trial(spec, cache_dir=tmp_path).test_metrics
    # the real labels are learnable, so chance below is the shuffle's doing
    assert honest["test_auroc"] > 0.75 and honest["test_balanced_accuracy"] > 0.6, honest
    assert abs(shuffled["test_balanced_accuracy"] - 0.5) < 0.12 and abs(shuffled["test_auroc"] - 0.5) < 0.15, shuffled


def test_reproduce_in_a_fresh_process_with_other_threads_matches(tmp_path: Path):
    def cli(threads: int, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        argv = [sys.executable, "-m", "ape_nas", *args, QUICKSTART, "--workdir", str(tmp_path), *SMALL]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)

    swept = cli(1, "sweep", "--trials", "1", "--no-progress")
    assert swept.returncode == 0, swept.stderr[-2000:]
    again = cli(2, "reproduce", "--json")
    assert again.returncode == 0, again.stderr[-2000:]
    out = json.loads(again.stdout)
    assert out["verdict"] == "MATCH" and out["abs_diff"] <= 1e-6, out
