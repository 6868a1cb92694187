"""`ape-nas data inspect|prepare` on real shared data and on a user folder; a real-data sweep end to end."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from _common import needs_shared
from mlflow.tracking import MlflowClient

from ape_nas.cli import main
from ape_nas.data.prepare import clear_memo
from ape_nas.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
STRESS = SHARED / "stress-predict"
DRIVEDB = SHARED / "drivedb"
needs_stress = needs_shared(STRESS)  # skipped when absent; fails in CI
needs_drivedb = needs_shared(DRIVEDB)


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@needs_stress
@pytest.mark.shared_data
def test_inspect_stress_predict_reports_28_subjects_with_label_balance(capsys: pytest.CaptureFixture[str]):
    report = _json(capsys, ["data", "inspect", str(STRESS), "--json"])
    assert report["benchmark"] == "stress-predict" and report["n_subjects"] == 28
    assert [s["subject"] for s in report["subjects"]] == [f"S{i:02d}" for i in range(1, 29)]
    assert report["class_names"] == ["no-stress", "stress"]
    assert 0.30 < report["label_balance"]["stress"] < 0.36
    for s in report["subjects"]:
        assert s["label_seconds"]["stress"] > 600 and s["label_seconds"]["no-stress"] > 1200
        assert s["channels"]["bvp"]["rate_hz"] == 64.0 and s["channels"]["hr"]["rate_hz"] == 1.0
        assert s["channels"]["ibi"]["beats"] > 0
    assert report["skipped"] == {}


@needs_drivedb
@pytest.mark.shared_data
def test_inspect_drivedb_reports_both_records_with_every_channel_rate(capsys: pytest.CaptureFixture[str]):
    report = _json(capsys, ["data", "inspect", str(DRIVEDB), "--json"])
    assert report["benchmark"] == "wfdb"
    subjects = {s["subject"]: s for s in report["subjects"]}
    assert set(subjects) == {"drive17a", "drive17b"}
    rates = {name: {ch: info["rate_hz"] for ch, info in s["channels"].items()} for name, s in subjects.items()}
    assert set(rates["drive17b"]) == {"ecg", "emg", "foot_gsr", "hand_gsr", "hr", "marker", "resp"}
    assert rates["drive17b"] == {
        "ecg": 496.0,
        "emg": 15.5,
        "foot_gsr": 31.0,
        "hand_gsr": 31.0,
        "hr": 15.5,
        "marker": 15.5,
        "resp": 31.0,
    }
    assert rates["drive17a"]["ecg"] == 480.0 and rates["drive17a"]["resp"] == 30.0


def test_inspect_bad_targets_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["data", "inspect", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hello")
    assert main(["data", "inspect", str(tmp_path / "junk")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot tell the data format" in err
    assert main(["data", "inspect", "synthetic", "--set", "subjectz=3"]) == 2
    assert "subjectz" in capsys.readouterr().err


def _write_folder(root: Path, subjects: int = 5) -> None:
    """A user data set in the generic folder format, made of simulated ECG (baseline vs stress)."""
    bench = generate(subjects=subjects, minutes_per_state=1.0, fs=128.0, seed=3)
    root.mkdir(parents=True)
    (root / "dataset.yaml").write_text(
        "name: my-study\nclass_names: [baseline, stress]\nlabel_rate: 1\nchannels:\n  ecg: {rate: 128, unit: mV}\n"
    )
    rows = ["subject,start,end,label"]
    for rec in bench.subjects:
        (root / rec.subject).mkdir()
        np.savetxt(root / rec.subject / "ecg.csv", rec.signals["ecg"], fmt="%.5f", header="ecg", comments="")
        lab = rec.labels[:: int(rec.label_rate)]  # per second
        change = np.flatnonzero(np.diff(np.concatenate([[-2], lab, [-2]])))
        for a, b in itertools.pairwise(change):
            if lab[a] >= 0:
                rows.append(f"{rec.subject},{a},{b},{bench.class_names[lab[a]]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def _folder_experiment(tmp_path: Path, data: Path) -> Path:
    exp = (ROOT / "experiments" / "quickstart.yaml").read_text()
    exp = exp.replace("name: quickstart", "name: my-study")
    exp = exp.replace("space: ../search_spaces/quickstart.yaml", f"space: {ROOT / 'search_spaces/quickstart.yaml'}")
    exp = exp.replace("benchmark: synthetic", "benchmark: folder")
    exp = re.sub(r"params: \{subjects: .*\}", f"params: {{path: {data}}}", exp)
    exp = re.sub(r"test_subjects: \d+ ", "test_subjects: 1 ", exp)
    exp = re.sub(r"val_subjects: \d+ ", "val_subjects: 1 ", exp)
    path = tmp_path / "my_study.yaml"
    path.write_text(exp)
    assert "benchmark: folder" in exp and str(data) in exp
    return path


def test_reader_parameter_errors_name_where_they_were_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = tmp_path / "my-study"
    _write_folder(data, subjects=2)
    capsys.readouterr()
    assert main(["data", "inspect", str(data), "--set", "channels=[eda]"]) == 2
    assert capsys.readouterr().err.strip().endswith("--set channels: unknown 'eda'; expected some of ecg")
    exp = _folder_experiment(tmp_path, data)
    text = exp.read_text().replace(f"params: {{path: {data}}}", f"params: {{path: {data}, channels: [eda]}}")
    exp.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), start=1) if "channels: [eda]" in row)
    assert main(["sweep", str(exp), "--workdir", str(tmp_path / "w"), "--trials", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"my_study.yaml:{line}: data.params.channels: unknown 'eda'" in err and err.count("\n") == 1


def test_prepare_caches_once_and_a_changed_file_rebuilds(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = tmp_path / "my-study"
    _write_folder(data)
    exp = _folder_experiment(tmp_path, data)
    work = tmp_path / "w"
    clear_memo()
    assert main(["data", "prepare", str(exp), "--workdir", str(work)]) == 0
    entries = {p.name for p in (work / "cache").iterdir() if not p.name.startswith(".")}
    assert len(entries) == 1
    clear_memo()
    assert main(["data", "prepare", str(exp), "--workdir", str(work)]) == 0
    assert {p.name for p in (work / "cache").iterdir() if not p.name.startswith(".")} == entries
    ecg = data / "S02" / "ecg.csv"
    ecg.write_text(ecg.read_text().replace("\n0.", "\n1.", 1))
    clear_memo()
    assert main(["data", "prepare", str(exp), "--workdir", str(work)]) == 0
    after = {p.name for p in (work / "cache").iterdir() if not p.name.startswith(".")}
    assert len(after) == 2 and entries < after
    out = capsys.readouterr().out
    assert "S05" in out and "cache" in out


@pytest.mark.slow
def test_sweep_on_a_user_folder_records_protocol_and_hrv_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = tmp_path / "my-study"
    _write_folder(data, subjects=5)
    exp = _folder_experiment(tmp_path, data)
    args = ["--set", "training.max_epochs=2"]
    assert main(["sweep", str(exp), "--workdir", str(tmp_path / "w"), "--trials", "2", "--no-progress", *args]) == 0
    status = _json(capsys, ["status", str(exp), "--workdir", str(tmp_path / "w"), "--json", *args])
    client = MlflowClient(status["tracking_uri"])
    parent = client.get_run(status["parent_run_id"])
    for part in ("val", "test"):
        assert 0.0 <= parent.data.metrics[f"hrv_baseline_{part}_f1_macro"] <= 1.0
    assert "hrv_baseline.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    for t in status["trials"]:
        tags = client.get_run(t["mlflow_run_id"]).data.tags
        assert tags["split.protocol"] == "holdout"
        assert len(tags["split.test"].split(",")) == 1 and len(tags["split.val"].split(",")) == 1
        assert len(tags["split.train"].split(",")) == 3


@needs_stress
@pytest.mark.shared_data
@pytest.mark.slow
def test_stress_predict_sweep_runs_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    exp = str(ROOT / "experiments" / "stress_predict.yaml")
    small = [
        "--set",
        "data.params.subjects=[S01,S02,S03,S04,S05,S06,S07,S08]",
        "--set",
        "protocol.kind=holdout",
        "--set",
        "protocol.folds=null",
        "--set",
        "protocol.test_subjects=2",
        "--set",
        "protocol.val_subjects=2",
        "--set",
        "training.max_epochs=1",
    ]
    assert main(["sweep", exp, "--workdir", str(tmp_path), "--trials", "1", "--no-progress", *small]) == 0
    status = _json(capsys, ["status", exp, "--workdir", str(tmp_path), "--json", *small])
    client = MlflowClient(status["tracking_uri"])
    run = client.get_run(status["trials"][0]["mlflow_run_id"])
    subjects = set()
    for part in ("train", "val", "test"):
        subjects |= set(run.data.tags[f"split.{part}"].split(","))
    assert subjects == {f"S0{i}" for i in range(1, 9)}
    assert "hrv_baseline_test_balanced_accuracy" in client.get_run(status["parent_run_id"]).data.metrics
