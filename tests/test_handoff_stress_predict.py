"""Hand-off on real data: a small Stress-Predict sweep, `export` of its best trial, then `evaluate` on the
test subjects it never saw. The model card's numbers must equal what MLflow recorded for that trial.

Needs ../shared/data/stress-predict (skipped when absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _common import ROOT, needs_shared, set_args
from mlflow.tracking import MlflowClient

from ape_nas.cli import main

SHARED = ROOT.parent / "shared" / "data" / "stress-predict"
EXPERIMENT = str(ROOT / "experiments" / "stress_predict.yaml")
pytestmark = [
    pytest.mark.slow,
    needs_shared(SHARED / "Raw_data"),  # skipped when absent; fails in CI
]
# 12 of the 28 subjects, one short trial: the mechanics, not a result (README has the full sweep's numbers)
SUBJECTS = [f"S{n:02d}" for n in (2, 3, 5, 6, 7, 9, 10, 12, 14, 16, 18, 20)]
SETS = [
    f"data.params.path={SHARED}",
    f"data.params.subjects=[{','.join(SUBJECTS)}]",
    "protocol.kind=holdout",  # the shipped experiment selects with grouped CV; one holdout fold is enough here
    "protocol.folds=null",
    "protocol.test_subjects=3",
    "protocol.val_subjects=3",
    "training.max_epochs=2",
    "budget.trials=1",
]


def test_export_then_evaluate_on_unseen_stress_predict_subjects(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    workdir, bundle = tmp_path / "w", tmp_path / "bundle"
    assert main(["sweep", EXPERIMENT, "--workdir", str(workdir), "--no-progress", *set_args(SETS)]) == 0
    assert main(["export", EXPERIMENT, "--out", str(bundle), "--workdir", str(workdir), *set_args(SETS)]) == 0
    metrics = json.loads((bundle / "metrics.json").read_text())
    info = json.loads((bundle / "bundle.json").read_text())
    split = metrics["split"]
    assert not set(split["test"]) & (set(split["train"]) | set(split["val"]))
    assert len(split["test"]) == 3 and set(split["test"]) <= set(SUBJECTS)

    # the card's numbers are MLflow's numbers for the exported trial
    run = MlflowClient(info["source"]["tracking_uri"]).get_run(info["source"]["run_id"])
    for m in ("f1_macro", "balanced_accuracy", "auroc"):
        assert metrics["test"]["pooled"][m] == pytest.approx(run.data.metrics[f"test_{m}"], abs=1e-5), m
        assert f"{metrics['test']['pooled'][m]:.3f}" in (bundle / "model_card.md").read_text()

    # evaluate reads the raw recordings of the unseen subjects with the bundled preprocessing (onnxruntime)
    out = tmp_path / "evaluation"
    capsys.readouterr()
    argv = ["evaluate", str(bundle), "--data", str(SHARED), "--out", str(out), "--labelled-only"]
    argv += ["--set", f"subjects=[{','.join(split['test'])}]", "--set", "channels=[bvp]"]
    assert main(argv) == 0
    report = json.loads((out / "evaluation.json").read_text())
    assert set(report["per_subject"]) == set(split["test"])
    assert (out / "evaluation.png").stat().st_size > 1000
    for subject, m in metrics["test"]["per_subject"].items():
        assert report["per_subject"][subject]["windows"] == m["windows"], subject
    for m in ("f1_macro", "balanced_accuracy", "auroc"):
        assert report["overall"][m] == pytest.approx(metrics["test"]["pooled"][m], abs=1e-4), m
