"""Stress-Predict as its authors distribute it: Time_logs.xlsx (no csv), Questionnaires_scores.xlsx, Readme.docx,
ACC/EDA/TEMP files per subject. The reader, ``data inspect``, and (slow) ``sweep`` → ``export`` → ``predict`` →
``evaluate`` all work on that layout. Needs ../shared/data/stress-predict (skipped when absent, failed in CI)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from _common import ROOT, SHARED_DATA, needs_shared, set_args
from _stress_download import download_layout

from ape_nas.cli import main
from ape_nas.data.inspect import detect_format
from ape_nas.data.readers import stress_predict

SHARED = SHARED_DATA / "stress-predict"
pytestmark = needs_shared(SHARED / "Raw_data")
EXPERIMENT = str(ROOT / "experiments" / "stress_predict.yaml")


@pytest.fixture(scope="module")
def download(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return download_layout(SHARED, tmp_path_factory.mktemp("download") / "Stress-Predict-Dataset")


def test_the_layout_is_the_download(download: Path):
    processed = {p.name for p in (download / "Processed_data").iterdir()}
    assert processed == {"Improved_All_Combined_hr_rsp_binary.csv", "Time_logs.xlsx", "Questionnaires_scores.xlsx"}
    assert {p.name for p in (download / "Raw_data" / "S05").iterdir()} >= {"ACC.csv", "EDA.csv", "TEMP.csv", "BVP.csv"}
    assert detect_format(download) == "stress-predict"


@pytest.mark.parametrize("task", ["binary", "phases"])
def test_reader_gives_what_the_shared_copy_gives(download: Path, task: str):
    mine, theirs = stress_predict.load(path=str(download), task=task), stress_predict.load(path=str(SHARED), task=task)
    assert mine.subject_ids() == theirs.subject_ids() == [f"S{i:02d}" for i in range(1, 29)]
    assert mine.skipped == {}
    for a, b in zip(mine.subjects, theirs.subjects, strict=True):
        assert np.array_equal(a.labels, b.labels) and a.label_offset == b.label_offset, a.subject
        assert a.meta["phases"] == b.meta["phases"] and a.t0 == b.t0, a.subject
    assert mine.subjects[0].meta["label_source"] == "Time_logs.xlsx"  # S01: no rows in the per-second file
    assert not any("Time_logs.csv" in s or "ACC.csv" in s for s in mine.sources)


def test_data_inspect_on_the_download(download: Path, capsys: pytest.CaptureFixture[str]):
    capsys.readouterr()
    assert main(["data", "inspect", str(download), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "stress-predict" and report["n_subjects"] == 28 and report["labelled"]
    assert report["skipped"] == {} and 0.30 < report["label_balance"]["stress"] < 0.36
    assert main(["data", "inspect", str(download), "--set", "task=phases", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["class_names"][:2] == ["baseline", "stroop"]


# 8 of the 28 subjects, one trial of one epoch: the mechanics on the download layout, not a result
SUBJECTS = ["S01", "S02", "S03", "S05", "S06", "S07", "S09", "S10"]


@pytest.mark.slow
def test_sweep_export_predict_evaluate_on_the_download(
    download: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    sets = set_args(
        [
            f"data.params.path={download}",
            f"data.params.subjects=[{','.join(SUBJECTS)}]",
            "protocol.kind=holdout",
            "protocol.folds=null",
            "protocol.test_subjects=2",
            "protocol.val_subjects=2",
            "training.max_epochs=1",
        ]
    )
    workdir, bundle = tmp_path / "w", tmp_path / "bundle"
    assert main(["sweep", EXPERIMENT, "--workdir", str(workdir), "--trials", "1", "--no-progress", *sets]) == 0
    assert main(["export", EXPERIMENT, "--out", str(bundle), "--workdir", str(workdir), "--no-register", *sets]) == 0
    test = json.loads((bundle / "metrics.json").read_text())["split"]["test"]
    assert set(test) <= set(SUBJECTS)
    pick = ["--set", f"subjects=[{','.join(test)}]"]

    out = tmp_path / "predictions.csv"
    assert main(["predict", str(bundle), "--data", str(download), "--out", str(out), *pick]) == 0
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["subject"] for r in rows} == set(test) and len(rows) > 100

    evaluation = tmp_path / "evaluation"
    capsys.readouterr()
    argv = ["evaluate", str(bundle), "--data", str(download), "--out", str(evaluation), "--labelled-only", *pick]
    assert main(argv) == 0
    report = json.loads((evaluation / "evaluation.json").read_text())
    assert set(report["per_subject"]) == set(test) and 0.0 <= report["overall"]["balanced_accuracy"] <= 1.0
