"""Prediction and inspection without labels (issue 8): raw Empatica E4 folders of another study, built-in
benchmarks by name, natural order of subject ids, and `evaluate` refusing unlabelled data in one line.

Two small bundles are trained once per module: one on wrist BVP (a labelled E4 study written in Empatica's own
CSV layout) and one on the synthetic benchmark's ECG (the quickstart, made smaller).
"""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import QUICKSTART, ROOT, SMALL_SETS, set_args

from ape_nas.cli import main
from ape_nas.data.ids import natural_key, natural_sorted
from ape_nas.data.readers import e4, folder
from ape_nas.data.synthetic import generate
from ape_nas.data.types import UNLABELLED
from ape_nas.errors import UserError

T0 = 1644226061  # 2022-02-07 09:27:41 UTC
FS = 64  # Empatica E4 BVP rate
UNLABELLED_IDS = ["S2", "S10", "S9"]  # natural order S2, S9, S10; plain string order S10, S2, S9


# ---------------------------------------------------------------------------------------------------------------
# an E4 study exactly as E4 connect exports it
# ---------------------------------------------------------------------------------------------------------------


def write_e4_session(folder_: Path, ppg: np.ndarray, beats_s: np.ndarray, t0: float = T0, seed: int = 0) -> Path:
    """One E4 session folder: BVP (64 Hz), HR (1 Hz from t0 + 10 s), IBI, EDA and TEMP (4 Hz), ACC (32 Hz, x,y,z),
    an empty tags.csv and info.txt, in Empatica's layout (line 1 = start unix time, line 2 = rate)."""
    folder_.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    seconds = len(ppg) // FS

    def signal(name: str, rate: float, rows: list[str], width: int = 1) -> None:
        head = [", ".join([f"{t0:.6f}"] * width), ", ".join([f"{rate:.6f}"] * width)]
        (folder_ / name).write_text("\n".join(head + rows) + "\n")

    signal("BVP.csv", FS, [f"{x:.2f}" for x in 60.0 * ppg])
    ibi = np.diff(beats_s)
    signal("HR.csv", 1, [f"{x:.2f}" for x in 60.0 / np.interp(np.arange(10, seconds), beats_s[1:], ibi)])
    rows = [f"{t:.6f},{i:.6f}" for t, i in zip(beats_s[1:], ibi, strict=True) if not 40 < t < 50]  # movement gap
    (folder_ / "IBI.csv").write_text("\n".join([f"{t0:.6f}, IBI", *rows]) + "\n")
    signal("EDA.csv", 4, [f"{x:.6f}" for x in 0.3 + 0.01 * rng.standard_normal(seconds * 4).cumsum()])
    signal("TEMP.csv", 4, [f"{x:.2f}" for x in 33.0 + 0.05 * rng.standard_normal(seconds * 4)])
    acc = rng.integers(-64, 64, size=(seconds * 32, 3))
    signal("ACC.csv", 32, [",".join(map(str, r)) for r in acc], width=3)
    (folder_ / "tags.csv").write_text("")
    (folder_ / "info.txt").write_text(
        "Empatica E4 connect export\n.csv files in this archive are in the following format:\n"
        "The first row is the initial time of the session expressed as unix timestamp in UTC.\n"
        "The second row is the sample rate expressed in Hz.\n"
    )
    return folder_


def write_e4_study(root: Path, ids: list[str], seed: int, labels: bool) -> Path:
    """Simulated PPG (synthetic benchmark, baseline vs stress) as E4 sessions; ``labels``: also labels.csv."""
    bench = generate(subjects=len(ids), minutes_per_state=1.0, fs=float(FS), ppg=True, seed=seed)
    root.mkdir(parents=True)
    rows = ["subject,start,end,label"]
    for sid, rec in zip(ids, bench.subjects, strict=True):
        beats = np.asarray(rec.meta["r_peaks"]) / FS
        write_e4_session(root / sid, rec.signals["ppg"], beats, seed=seed)
        lab = rec.labels
        change = np.flatnonzero(np.diff(np.concatenate([[-2], lab, [-2]])))
        for a, b in itertools.pairwise(change):
            if lab[a] >= 0:
                rows.append(f"{sid},{a / FS:.10g},{b / FS:.10g},{bench.class_names[lab[a]]}")
    if labels:
        (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("ape-nas: error: "), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def unlabelled_e4(tmp_path: Path) -> Path:
    return write_e4_study(tmp_path / "other-study", UNLABELLED_IDS, seed=21, labels=False)


# ---------------------------------------------------------------------------------------------------------------
# natural order, readers, inspect (no training)
# ---------------------------------------------------------------------------------------------------------------


def test_natural_sort_counts_digits_as_numbers():
    assert natural_sorted(["S10", "S2", "S1", "S02b", "s3"]) == ["S1", "S2", "S02b", "s3", "S10"]
    records = ["drive17b", "drive17a", "drive2", "drive10"]
    assert natural_sorted(records) == ["drive2", "drive10", "drive17a", "drive17b"]
    assert natural_sorted(["S02", "S2"]) == ["S02", "S2"]  # same number: the exact text breaks the tie
    # zero-padded ids keep their plain string order (S01 … S28, the synthetic benchmark's S01 …)
    padded = [f"S{i:02d}" for i in range(1, 29)]
    assert natural_sorted(reversed(padded)) == sorted(padded)
    assert natural_key("P10") > natural_key("P9") and natural_key("10") > natural_key("9")


def test_e4_reads_an_unlabelled_study_only_when_labels_are_optional(unlabelled_e4: Path):
    with pytest.raises(UserError, match=r"e4: no labels: .*labels\.csv not found"):
        e4.e4(path=str(unlabelled_e4))  # training still needs labels
    bench = e4.e4(path=str(unlabelled_e4), require_labels=False)
    assert bench.subject_ids() == ["S2", "S9", "S10"]
    assert not bench.is_labelled() and "--set labels=PATH" in bench.no_labels and bench.class_names == []
    for rec in bench.subjects:
        assert rec.signals["bvp"].shape == (120 * FS,) and rec.rates == {"bvp": 64.0, "hr": 1.0}
        assert rec.labels.shape == (round(rec.duration_s()),) and (rec.labels == UNLABELLED).all()
        assert len(rec.events["ibi"]) > 100


def test_e4_reads_one_session_folder_as_one_subject(unlabelled_e4: Path):
    session = unlabelled_e4 / "S10"
    bench = e4.e4(path=str(session), channels=["bvp", "eda", "temp", "acc_x", "ibi"], require_labels=False)
    assert bench.subject_ids() == ["S10"]
    assert bench.subjects[0].rates == {"bvp": 64.0, "eda": 4.0, "temp": 4.0, "acc_x": 32.0}
    with pytest.raises(UserError, match=r"S10 is one session folder"):
        e4.e4(path=str(session))  # a training data set has one session folder per subject


def test_e4_keeps_subjects_a_label_table_leaves_out_when_labels_are_optional(unlabelled_e4: Path):
    (unlabelled_e4 / "labels.csv").write_text("subject,start,end,label\nS9,0,60,stress\n")
    with pytest.warns(UserWarning) as caught:
        assert e4.e4(path=str(unlabelled_e4)).subject_ids() == ["S9"]  # training: the others are skipped
    skipped = sorted(str(w.message).split(":")[1].strip() for w in caught)
    assert skipped == ["skipping subject S10", "skipping subject S2"]
    bench = e4.e4(path=str(unlabelled_e4), require_labels=False)
    assert bench.subject_ids() == ["S2", "S9", "S10"] and bench.is_labelled() and bench.no_labels == ""
    by_id = {r.subject: r for r in bench.subjects}
    assert not by_id["S2"].is_labelled() and "no labelled data" in by_id["S2"].meta["no_labels"]
    assert (by_id["S9"].labels[:60] == 0).all()


def test_folder_format_without_labels_is_unlabelled_over_the_whole_recording(tmp_path: Path):
    root = tmp_path / "study"
    for sid in ("S10", "S2"):
        (root / sid).mkdir(parents=True)
        np.save(root / sid / "ecg.npy", np.sin(np.arange(128 * 30) / 10.0))
    (root / "dataset.yaml").write_text("class_names: [calm, stress]\nchannels:\n  ecg: {rate: 128}\n")
    with pytest.raises(UserError, match=r"labels\.csv: label table not found"):
        folder.load(path=str(root))
    bench = folder.load(path=str(root), require_labels=False)
    assert bench.subject_ids() == ["S2", "S10"] and "no label table" in bench.no_labels
    assert all(r.labels.shape == (30,) and (r.labels == UNLABELLED).all() for r in bench.subjects)


def test_inspect_reports_an_unlabelled_e4_study(unlabelled_e4: Path, capsys: pytest.CaptureFixture[str]):
    capsys.readouterr()
    assert main(["data", "inspect", str(unlabelled_e4), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == "e4" and report["n_subjects"] == 3
    assert [s["subject"] for s in report["subjects"]] == ["S2", "S9", "S10"]
    assert report["labelled"] is False and report["label_balance"] is None
    assert "--set labels=PATH" in report["no_labels"]
    for s in report["subjects"]:
        assert s["labelled"] is False and s["duration_s"] == pytest.approx(120.0)
        assert s["unlabelled_s"] == pytest.approx(120.0)
        assert s["channels"]["bvp"]["rate_hz"] == 64.0 and s["channels"]["hr"]["rate_hz"] == 1.0
        assert s["channels"]["ibi"]["gaps"] >= 1  # the movement gap is reported, not filled
    # the table: subjects in natural order, "unlabelled" instead of a label balance
    assert main(["data", "inspect", str(unlabelled_e4)]) == 0
    out = capsys.readouterr().out
    assert "3 subjects" in out and "unlabelled" in out and "label balance: none" in out
    assert out.index("S2 ") < out.index("S9 ") < out.index("S10 ")
    # one session folder, and the channels of a --set list
    argv = ["data", "inspect", str(unlabelled_e4 / "S9"), "--json", "--set", "channels=[eda,temp,acc_x]"]
    assert main(argv) == 0
    one = json.loads(capsys.readouterr().out)
    assert [s["subject"] for s in one["subjects"]] == ["S9"]
    assert {ch: info["rate_hz"] for ch, info in one["subjects"][0]["channels"].items()} == {
        "eda": 4.0,
        "temp": 4.0,
        "acc_x": 32.0,
    }


def test_hints_name_what_the_user_can_type(unlabelled_e4: Path, capsys: pytest.CaptureFixture[str]):
    capsys.readouterr()
    rc = main(["data", "inspect", str(unlabelled_e4), "--set", f"data.params.labels={unlabelled_e4}/x.csv"])
    _one_line_error(capsys, rc, "reader 'e4' has no parameter(s) data.params.labels", "--set labels=VALUE")
    rc = main(["data", "inspect", str(unlabelled_e4), "--set", "require_labels=true"])
    _one_line_error(capsys, rc, "no parameter(s) require_labels")
    rc = main(["data", "inspect", str(unlabelled_e4), "--set", f"labels={unlabelled_e4}/missing.csv"])
    _one_line_error(capsys, rc, "missing.csv: label file not found")


# ---------------------------------------------------------------------------------------------------------------
# bundles: one trained on E4 BVP, one on synthetic ECG
# ---------------------------------------------------------------------------------------------------------------


def _bvp_experiment(path: Path, data: Path) -> Path:
    path.write_text(
        f"""name: e4-bvp
seed: 3
space: {ROOT / "search_spaces" / "bvp.yaml"}
data:
  benchmark: e4
  params: {{path: {data}, channels: [bvp]}}
  channels: [bvp]
  rate_hz: 32.0
  bandpass_hz: {{bvp: [0.5, 8.0]}}
  normalize: subject
  window_s: 10.0
  stride_s: 5.0
  label_purity: 0.9
  hrv_source: bvp
protocol: {{kind: holdout, test_subjects: 2, val_subjects: 2}}
objective: {{metric: f1_macro}}
training: {{max_epochs: 2, patience: 2}}
budget: {{trials: 1, timeout_s: 300}}
backend: {{name: optuna, sampler: random}}
"""
    )
    return path


def _train_and_export(experiment: str, root: Path, sets: list[str]) -> Path:
    workdir, bundle = root / "w", root / "bundle"
    argv = [experiment, "--workdir", str(workdir), *set_args(sets)]
    assert main(["sweep", *argv, "--trials", "1", "--no-progress"]) == 0
    assert main(["export", *argv, "--out", str(bundle), "--latency-runs", "5", "--no-register"]) == 0
    return bundle


@pytest.fixture(scope="module")
def bvp_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bvp")
    train = write_e4_study(root / "train", [f"P{i:02d}" for i in range(1, 9)], seed=5, labels=True)
    return _train_and_export(str(_bvp_experiment(root / "e4_bvp.yaml", train)), root, [])


@pytest.fixture(scope="module")
def ecg_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sets = [*SMALL_SETS, "training.max_epochs=1"]
    return _train_and_export(QUICKSTART, tmp_path_factory.mktemp("ecg"), sets)


@pytest.mark.slow
def test_predict_on_an_unlabelled_e4_study(
    bvp_bundle: Path, unlabelled_e4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "p.csv"
    capsys.readouterr()
    assert main(["predict", str(bvp_bundle), "--data", str(unlabelled_e4), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = _read_csv(out)
    classes = json.loads((bvp_bundle / "preprocessing.json").read_text())["class_names"]
    subjects = list(dict.fromkeys(r["subject"] for r in rows))
    assert subjects == ["S2", "S9", "S10"]  # every subject, in natural order
    for sid in subjects:
        mine = [r for r in rows if r["subject"] == sid]
        assert len(mine) >= 10  # 120 s of 10-s windows every 5 s (minus rejected ones)
        assert mine[0]["start_utc"].startswith("2022-02-07T09:2")  # the E4 start time is kept
    for r in rows:
        p = np.array([float(r[f"p_{c}"]) for c in classes])
        assert p.sum() == pytest.approx(1.0, abs=1e-5) and (p >= 0).all()
        assert r["predicted"] == classes[int(p.argmax())]
    # the per-subject summary is in natural order too
    assert printed.index("│ S2 ") < printed.index("│ S9 ") < printed.index("│ S10 ")
    # one session folder on its own works the same way, and prediction imports no torch
    one = tmp_path / "one.csv"
    script = (
        "import sys\n"
        "from ape_nas.cli import main\n"
        f"assert main(['predict', {str(bvp_bundle)!r}, '--data', {str(unlabelled_e4 / 'S10')!r}, "
        f"'--out', {str(one)!r}]) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'torchmetrics'))\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    alone = _read_csv(one)
    assert {r["subject"] for r in alone} == {"S10"}
    assert [r["p_stress"] for r in alone] == [r["p_stress"] for r in rows if r["subject"] == "S10"]


@pytest.mark.slow
def test_evaluate_on_unlabelled_data_says_labels_are_needed(
    bvp_bundle: Path, unlabelled_e4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    capsys.readouterr()
    rc = main(["evaluate", str(bvp_bundle), "--data", str(unlabelled_e4), "--out", str(tmp_path / "e")])
    _one_line_error(capsys, rc, "evaluate needs labels", "no labelled window", "--set labels=PATH")
    assert not (tmp_path / "e").exists()
    # with a label table given the way the hint says, evaluate scores the labelled subjects
    (tmp_path / "l.csv").write_text("subject,start,end,label\nS2,0,120,baseline\nS10,0,120,stress\n")
    argv = ["evaluate", str(bvp_bundle), "--data", str(unlabelled_e4), "--out", str(tmp_path / "e")]
    assert main([*argv, "--set", f"labels={tmp_path / 'l.csv'}"]) == 0
    report = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert list(report["per_subject"]) == ["S2", "S10"]


@pytest.mark.slow
def test_predict_and_evaluate_a_builtin_benchmark_by_name(
    ecg_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "p.csv"
    sets = ["--set", "subjects=3", "--set", "minutes_per_state=1.0", "--set", "seed=99"]
    assert main(["predict", str(ecg_bundle), "--data", "synthetic", "--out", str(out), *sets]) == 0
    rows = _read_csv(out)
    assert list(dict.fromkeys(r["subject"] for r in rows)) == ["S01", "S02", "S03"]
    assert all(sum(float(v) for k, v in r.items() if k.startswith("p_")) == pytest.approx(1.0, abs=1e-5) for r in rows)
    assert main(["evaluate", str(ecg_bundle), "--data", "synthetic", "--out", str(tmp_path / "e"), *sets]) == 0
    report: dict[str, Any] = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert list(report["per_subject"]) == ["S01", "S02", "S03"] and report["reader"] == "synthetic"
    # a reader parameter the benchmark lacks is one line that names the ones it has
    capsys.readouterr()
    rc = main(["predict", str(ecg_bundle), "--data", "synthetic", "--set", "labels=x.csv"])
    _one_line_error(capsys, rc, "reader 'synthetic' has no parameter(s) labels", "subjects")
