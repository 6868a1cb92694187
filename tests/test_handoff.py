"""Hand-off: sweep → `export` a bundle → `predict` / `evaluate` from it with onnxruntime only.

One tiny quickstart sweep (the SMALL overrides of test_sweep_e2e.py, 2 trials) is exported once per module; the
synthetic subjects it trained on are written as a generic folder data set (signals as .npy, labels at the
sample rate, so the windows equal the training windows) and fed back through the bundle.
"""

from __future__ import annotations

import csv
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import QUICKSTART, SMALL, SMALL_SETS
from mlflow.tracking import MlflowClient

from ape_nas.data.synthetic import generate
from ape_nas.handoff import bundle as B

pytestmark = pytest.mark.slow

# the synthetic benchmark of SMALL (quickstart params with SMALL's overrides)
SYNTH = {
    "subjects": 8,
    "minutes_per_state": 1.0,
    "fs": 128.0,
    "states": ["baseline", "stress"],
    "cohort": "typical",
    "seed": 7,
}
START = "2024-05-02T09:30:00Z"


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def _write_folder(
    root: Path,
    subjects: list[str] | None = None,
    *,
    channel: str = "ecg",
    decimate: int = 1,
    labels: bool = True,
    start: str | None = None,
) -> None:
    """The synthetic subjects as a generic folder data set: ECG as .npy, labels at the sample rate."""
    bench = generate(**SYNTH)
    fs = int(SYNTH["fs"])
    root.mkdir(parents=True)
    chosen = [r for r in bench.subjects if subjects is None or r.subject in subjects]
    config = (
        f"name: handoff\nclass_names: [baseline, stress]\nlabel_rate: {fs}\n"
        f"channels:\n  {channel}: {{rate: {fs // decimate}, unit: mV}}\n"
    )
    if start:
        config += "subjects:\n" + "".join(f"  {r.subject}: {{start: '{start}'}}\n" for r in chosen)
    (root / "dataset.yaml").write_text(config)
    rows = ["subject,start,end,label"]
    for rec in chosen:
        (root / rec.subject).mkdir()
        np.save(root / rec.subject / f"{channel}.npy", rec.signals["ecg"][::decimate].astype(np.float64))
        lab = rec.labels
        change = np.flatnonzero(np.diff(np.concatenate([[-2], lab, [-2]])))
        for a, b in itertools.pairwise(change):
            if lab[a] >= 0:
                rows.append(f"{rec.subject},{a / fs:.10g},{b / fs:.10g},{bench.class_names[lab[a]]}")
    if labels:
        (root / "labels.csv").write_text("\n".join(rows) + "\n")


def _cli(argv: list[str]) -> int:
    from ape_nas.cli import main

    return main(argv)


def _predict(bundle: Path, data: Path, out: Path) -> int:
    return _cli(["predict", str(bundle), "--data", str(data), "--out", str(out)])


def _evaluate(bundle: Path, data: Path, out: Path | None, labelled_only: bool = False) -> int:
    argv = ["evaluate", str(bundle), "--data", str(data), *(["--out", str(out)] if out else [])]
    return _cli(argv + (["--labelled-only"] if labelled_only else []))


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ---------------------------------------------------------------------------------------------------------------
# fixtures: one sweep, one export
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from ape_nas.cli import main

    root = tmp_path_factory.mktemp("handoff")
    workdir = root / "w"
    assert main(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "2", "--no-progress", *SMALL]) == 0
    bundle = root / "bundle"
    assert _cli(["export", QUICKSTART, "--out", str(bundle), "--workdir", str(workdir), *SMALL]) == 0
    data_all, data_test = root / "data-all", root / "data-test"
    _write_folder(data_all, start=START)
    info = json.loads((bundle / B.INFO).read_text())
    test_subjects = json.loads((bundle / B.METRICS).read_text())["split"]["test"]
    _write_folder(data_test, test_subjects)
    return {"root": root, "workdir": workdir, "bundle": bundle, "info": info, "all": data_all, "test": data_test}


@pytest.fixture(scope="module")
def torch_model(exported: dict[str, Any]) -> Any:
    """The PyTorch model of the exported run, rebuilt from the run's plain checkpoint (model.pt)."""
    import torch

    from ape_nas.models import build_model

    info = exported["info"]
    client = MlflowClient(info["source"]["tracking_uri"])
    path = client.download_artifacts(info["source"]["run_id"], "model.pt", str(exported["root"] / "ckpt"))
    ckpt = torch.load(path, weights_only=True)
    net = build_model(ckpt["spec"]["model"], ckpt["in_channels"], ckpt["num_classes"], **ckpt["spec"]["arch"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------


def test_bundle_layout_checksums_and_no_pickles(exported: dict[str, Any]):
    bundle = exported["bundle"]
    names = {p.name for p in bundle.iterdir()}
    assert names == {*B.FILES, B.SUMS}
    assert B.pickle_files(bundle) == []
    assert not any(p.suffix in (".pt", ".pkl", ".pth", ".ckpt") for p in bundle.rglob("*"))
    sums = B.read_checksums(bundle)
    assert set(sums) == set(B.FILES)
    assert all(B.sha256_file(bundle / n) == d for n, d in sums.items())
    check = subprocess.run(["sha256sum", "-c", B.SUMS], cwd=bundle, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    info = exported["info"]
    assert info["format"] == B.BUNDLE_FORMAT and info["source"]["run_id"]
    assert info["source"]["tracking_uri"].startswith("sqlite:///") and len(info["spec_digest"]) == 16
    assert info["checks"]["onnx_parity_max_abs"] <= 1e-4 and info["checks"]["opset"] >= 17
    prep = json.loads((bundle / B.PREPROCESSING).read_text())
    assert prep["channels"] == ["ecg"] and prep["rate_hz"] == 128.0 and prep["window_samples"] == 1280
    assert prep["stride_samples"] == 640 and prep["bandpass_hz"] == [0.5, 40.0] and prep["normalize"] == "subject"
    assert prep["class_names"] == ["baseline", "stress"] and prep["quality"]["flat_s"] == 2.0
    assert prep["input"]["name"] == "x" and prep["input"]["shape"][:2] == ["batch", 1]
    from ape_nas.data.filters import description  # the words come from the filter the windows went through

    assert prep["steps"][1] == f"2. band-pass each sampled channel at its native rate: {description([0.5, 40.0])}"


def test_onnx_graph_has_dynamic_batch_and_reports_its_time_axis_truthfully(exported: dict[str, Any]):
    import onnx
    import onnxruntime as ort

    bundle = exported["bundle"]
    model = onnx.load(str(bundle / B.MODEL_ONNX))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    session = ort.InferenceSession(str(bundle / B.MODEL_ONNX), providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[0], str) and shape[1] == 1
    prep = json.loads((bundle / B.PREPROCESSING).read_text())
    x = np.random.default_rng(0).standard_normal((3, 1, 700)).astype(np.float32)
    if prep["input"]["accepts_other_lengths"]:
        assert session.run(None, {"x": x})[0].shape == (3, 2)
    else:
        with pytest.raises(Exception):  # noqa: B017 (onnxruntime raises its own exception types)
            session.run(None, {"x": x})
    card = (bundle / B.CARD).read_text()
    assert ("dynamic time axis" in card) == prep["input"]["accepts_other_lengths"]


def test_model_card_covers_subjects_metrics_baseline_and_limitations(exported: dict[str, Any]):
    bundle, info = exported["bundle"], exported["info"]
    card = (bundle / B.CARD).read_text()
    metrics = json.loads((bundle / B.METRICS).read_text())
    for part in ("train", "val", "test"):
        assert all(s in card for s in metrics["split"][part])
    for heading in ("## Data and subjects", "## Protocol", "### Test subjects", "### Confusion matrix", "HRV baseline"):
        assert heading in card
    assert "## Known limitations" in card and "Subject-independent" in card and "Simulated ECG" in card
    assert f"{info['checks']['onnx_parity_max_abs']:.2e}" in card and "Latency" in card and "median" in card
    assert f"{metrics['parameters']:,}" in card
    assert set(metrics["test"]["per_subject"]) == set(metrics["split"]["test"])
    assert set(metrics["validation"]["per_subject"]) == set(metrics["split"]["val"])
    assert {"val", "test"} <= set(metrics["hrv_baseline"])
    # the recomputed pooled test metrics equal the ones the trial logged
    for m, v in metrics["checks"]["recomputed_vs_logged_test"].items():
        assert v["recomputed"] == pytest.approx(v["logged"], abs=1e-5), m
    assert metrics["latency_ms"]["1_thread"]["median_ms"] > 0
    # the pooled test metrics carry subject-bootstrap intervals, shown in the card with what they mean
    f1 = metrics["test"]["intervals"]["f1_macro"]
    assert f1["low"] <= f1["point"] <= f1["high"] and f1["n_subjects"] == len(metrics["split"]["test"])
    assert f"F1 macro {f1['point']:.3f} [{f1['low']:.3f}, {f1['high']:.3f}]" in card and "±10-point" in card
    assert info["source"]["kind"] == "trial" and "ensemble" not in info


def test_export_logs_the_bundle_and_registers_a_model_version(exported: dict[str, Any]):
    info = exported["info"]
    client = MlflowClient(info["source"]["tracking_uri"])
    run_id = info["source"]["run_id"]
    logged = {a.path for a in client.list_artifacts(run_id, "bundle")}
    assert {f"bundle/{n}" for n in (*B.FILES, B.SUMS)} == logged
    versions = client.search_model_versions("name='ape-nas-quickstart'")
    assert [v.run_id for v in versions] == [run_id]
    assert versions[0].source == f"runs:/{run_id}/bundle"
    assert versions[0].tags["sha256.model.onnx"] == B.read_checksums(exported["bundle"])[B.MODEL_ONNX]
    assert client.get_run(run_id).data.tags["ape_nas.registered_model"] == f"ape-nas-quickstart/{versions[0].version}"


def test_export_refuses_a_used_folder_and_an_unknown_run(exported: dict[str, Any], capsys: pytest.CaptureFixture[str]):
    workdir = str(exported["workdir"])
    out = exported["bundle"]
    rc = _cli(
        ["export", exported["info"]["source"]["run_id"], "--out", str(out), "--workdir", workdir, "--no-register"]
    )
    _one_line_error(capsys, rc, "not an empty folder")
    missing = "0" * 32
    new = exported["root"] / "never"
    rc = _cli(["export", missing, "--out", str(new), "--workdir", workdir, "--no-register"])
    _one_line_error(capsys, rc, "no MLflow run")
    assert not new.exists()


# ---------------------------------------------------------------------------------------------------------------
# predict and evaluate
# ---------------------------------------------------------------------------------------------------------------


def test_predict_writes_rows_equal_to_the_pytorch_model(
    exported: dict[str, Any], torch_model: Any, capsys: pytest.CaptureFixture[str]
):
    import torch

    from ape_nas.data.benchmarks import get_loader
    from ape_nas.data.windows import window_subject

    out = exported["root"] / "predictions.csv"
    capsys.readouterr()
    assert _predict(exported["bundle"], exported["all"], out) == 0
    printed = capsys.readouterr().out
    rows = _read_csv(out)
    assert list(rows[0]) == ["subject", "start_s", "start_utc", "p_baseline", "p_stress", "predicted"]
    assert {r["subject"] for r in rows} == {f"S0{i}" for i in range(1, 9)}
    assert all(s in printed for s in ("S01", "S08", "mean p(stress)", "baseline %"))
    assert rows[1]["start_utc"] == "2024-05-02T09:30:05.000Z"
    # the same windows through the PyTorch model (state dict of the run's model.pt)
    prep = json.loads((exported["bundle"] / B.PREPROCESSING).read_text())
    cfg = {k: prep[k] for k in ("channels", "rate_hz", "bandpass_hz", "normalize", "window_s", "stride_s")}
    cfg |= {"label_purity": prep["label_purity"], "quality": prep["quality"]}
    worst = 0.0
    for rec in get_loader("folder")(path=str(exported["all"])).subjects:
        sw, _ = window_subject(rec, cfg, require_labels=False)
        mine = [r for r in rows if r["subject"] == rec.subject]
        assert [float(r["start_s"]) for r in mine] == pytest.approx(sw.starts_s.tolist())
        with torch.no_grad():
            ref = torch_model(torch.from_numpy(sw.windows)).softmax(dim=1).numpy()
        got = np.array([[float(r["p_baseline"]), float(r["p_stress"])] for r in mine])
        worst = max(worst, float(np.abs(got - ref).max()))
        assert [r["predicted"] for r in mine] == [prep["class_names"][k] for k in got.argmax(axis=1)]
    assert worst <= 1e-4


def test_predict_imports_no_torch(exported: dict[str, Any], tmp_path: Path):
    out = tmp_path / "p.csv"
    script = (
        "import sys\n"
        "from ape_nas.cli import main\n"
        f"assert main(['predict', {str(exported['bundle'])!r}, '--data', {str(exported['test'])!r}, "
        f"'--out', {str(out)!r}]) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'torchmetrics'))\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(_read_csv(out)) > 0


def test_evaluate_reports_metrics_and_reproduces_the_card(exported: dict[str, Any]):
    bundle = exported["bundle"]
    assert _evaluate(bundle, exported["test"], None) == 0
    report = json.loads((bundle.parent / "evaluation" / "evaluation.json").read_text())
    assert (bundle.parent / "evaluation" / "evaluation.png").stat().st_size > 1000
    assert set(report["per_subject"]) == set(json.loads((bundle / B.METRICS).read_text())["split"]["test"])
    for m in ("f1_macro", "balanced_accuracy", "auroc"):
        assert 0.0 <= report["overall"][m] <= 1.0
    assert np.sum(report["overall"]["confusion"]) == report["overall"]["windows"]
    # normalising with labelled windows only, as in training, reproduces the card's test numbers exactly
    out = exported["root"] / "eval-labelled"
    assert _evaluate(bundle, exported["test"], out, labelled_only=True) == 0
    again = json.loads((out / "evaluation.json").read_text())
    card = json.loads((bundle / B.METRICS).read_text())["test"]
    for subject, m in card["per_subject"].items():
        assert again["per_subject"][subject]["windows"] == m["windows"]
        assert again["per_subject"][subject]["f1_macro"] == pytest.approx(m["f1_macro"], abs=1e-6)
    for m in ("f1_macro", "balanced_accuracy", "auroc"):
        assert again["overall"][m] == pytest.approx(card["pooled"][m], abs=1e-5)


def test_predict_reads_a_folder_without_labels(exported: dict[str, Any], tmp_path: Path):
    data = tmp_path / "unlabelled"
    _write_folder(data, ["S01"], labels=False)
    assert _predict(exported["bundle"], data, tmp_path / "p.csv") == 0
    rows = _read_csv(tmp_path / "p.csv")
    assert {r["subject"] for r in rows} == {"S01"} and all(r["start_utc"] == "" for r in rows)


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------


def test_an_altered_byte_in_model_onnx_is_a_checksum_error(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    bundle = tmp_path / "bundle"
    shutil.copytree(exported["bundle"], bundle)
    onnx_file = bundle / B.MODEL_ONNX
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    capsys.readouterr()
    rc = _predict(bundle, exported["test"], tmp_path / "p.csv")
    _one_line_error(capsys, rc, "checksum mismatch: model.onnx (bundle altered or corrupted)")
    assert not (tmp_path / "p.csv").exists()


def test_a_deleted_preprocessing_json_is_an_error(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    bundle = tmp_path / "bundle"
    shutil.copytree(exported["bundle"], bundle)
    (bundle / B.PREPROCESSING).unlink()
    capsys.readouterr()
    _one_line_error(capsys, _predict(bundle, exported["test"], tmp_path / "p.csv"), "missing file: preprocessing.json")
    (bundle / B.SUMS).unlink()
    _one_line_error(capsys, _predict(bundle, exported["test"], tmp_path / "p.csv"), "SHA256SUMS")


def test_recordings_without_the_bundle_channel_are_an_error(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    data = tmp_path / "ppg-only"
    _write_folder(data, ["S01"], channel="ppg")
    capsys.readouterr()
    _one_line_error(capsys, _predict(exported["bundle"], data, tmp_path / "p.csv"), "no channel(s) ecg", "ppg")


def test_a_rate_too_low_for_the_band_pass_is_an_error(
    exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    data = tmp_path / "low-rate"
    _write_folder(data, ["S01"], decimate=2)  # 64 Hz: the 40 Hz band edge would be capped at 0.45 × 64 = 28.8 Hz
    capsys.readouterr()
    _one_line_error(capsys, _predict(exported["bundle"], data, tmp_path / "p.csv"), "64 Hz", "at least 88.9 Hz")


def test_an_empty_folder_is_an_error(exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    _one_line_error(capsys, _predict(exported["bundle"], empty, tmp_path / "p.csv"), "empty folder")
    _one_line_error(capsys, _evaluate(exported["bundle"], empty, tmp_path / "e"), "empty folder")


def test_evaluate_needs_labels(exported: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = tmp_path / "unlabelled"
    _write_folder(data, ["S01"], labels=False)
    capsys.readouterr()
    _one_line_error(capsys, _evaluate(exported["bundle"], data, tmp_path / "e"), "no labelled window")


# ---------------------------------------------------------------------------------------------------------------
# exporter fallback
# ---------------------------------------------------------------------------------------------------------------


def test_onnx_export_of_every_family_keeps_a_dynamic_time_axis(tmp_path: Path):
    """cnn1d's ceil-mode max-pool and inception's padded max-pool make torch.export specialise the time axis;
    the exporter chain must still end with a graph that accepts other lengths and matches PyTorch."""
    import torch

    from ape_nas.handoff.convert import Probabilities, check_lengths, export_onnx
    from ape_nas.handoff.onnx_session import ort_probs, ort_session
    from ape_nas.models import build_model

    x = np.random.default_rng(1).standard_normal((4, 1, 640)).astype(np.float32)
    for name, arch in (("cnn1d", {"depth": 3, "width": 8, "pool": 4}), ("inception_time", {"depth": 3})):
        model = Probabilities(build_model(name, 1, 2, **arch)).eval()
        info = export_onnx(model, torch.from_numpy(x[:2]), tmp_path / f"{name}.onnx")
        assert info["opset"] >= 17 and info["attempts"][-1]["ok"]
        session = ort_session(tmp_path / f"{name}.onnx")
        with torch.no_grad():
            assert np.abs(ort_probs(session, x) - model(torch.from_numpy(x)).numpy()).max() <= 1e-4
        assert check_lengths(lambda a, s=session: ort_probs(s, a), model, x)["dynamic_time"], info


# ---------------------------------------------------------------------------------------------------------------
# where the exported trial comes from, and the model card from fixed records
# ---------------------------------------------------------------------------------------------------------------


def test_the_best_trial_comes_from_the_store_without_the_study_or_a_backend(exported: dict[str, Any], tmp_path: Path):
    """The study's storage deleted: ``export EXPERIMENT`` still finds the best trial, from the sweep's parent run,
    and imports neither ``sweep`` nor a backend."""
    workdir = tmp_path / "w"
    shutil.copytree(exported["workdir"], workdir, ignore=shutil.ignore_patterns("optuna.db*", "cache"))
    script = (
        "import sys\n"
        "from ape_nas.handoff.source import resolve_source\n"
        f"s = resolve_source({QUICKSTART!r}, workdir={str(workdir)!r}, overrides={SMALL_SETS!r})\n"
        "print(s.run_id)\n"
        "print(s.how)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('ape_nas.sweep', 'ape_nas.backends', 'optuna', 'ray')))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_id, how = proc.stdout.splitlines()[-2:]
    assert run_id == exported["info"]["source"]["run_id"]
    assert how == exported["info"]["source"]["how"] and how.startswith("best trial ")


def test_export_of_an_experiment_never_swept_here_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    rc = _cli(["export", QUICKSTART, "--out", str(tmp_path / "b"), "--workdir", str(tmp_path / "w"), *SMALL])
    _one_line_error(capsys, rc, "no sweep of experiment 'quickstart'", "--tracking-uri")
    assert not (tmp_path / "b").exists()


def _card_records() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """bundle.json, preprocessing.json and metrics.json of a small two-class bundle (fixed values)."""

    def scores(windows: int, counts: list[int], f1: float, cm: list[list[int]]) -> dict[str, Any]:
        return {
            "f1_macro": f1,
            "balanced_accuracy": 0.75,
            "auroc": None if 0 in counts else 0.8,
            "windows": windows,
            "accuracy": 0.7,
            "counts": counts,
            "confusion": cm,
        }

    def intervals(point: float, low: float, high: float) -> dict[str, Any]:
        one = {"point": point, "low": low, "high": high, "level": 0.95, "n_subjects": 2, "n_boot": 1000}
        return {m: dict(one) for m in ("f1_macro", "balanced_accuracy", "auroc")}

    lengths = {"641": {"runs": True, "max_abs_diff": 2e-8, "ok": True}, "2560": {"runs": False, "ok": False}}
    lat = {
        "1_thread": {"median_ms": 0.5, "p90_ms": 0.75, "runs": 50},
        "default_threads": {"median_ms": 0.25, "p90_ms": 0.5, "runs": 50},
        "cpu": "Test CPU",
    }
    info = {
        "title": "cnn1d · baseline/stress from ecg (demo, trial 3)",
        "created": "2024-01-02T03:04:05Z",
        "source": {
            "run_id": "a" * 32,
            "how": "MLflow run " + "a" * 32,
            "tracking_uri": "sqlite:///m.db",
            "git_commit": "0123abc",
            "fold": 0,
            "folds": 3,
            "checkpoint_artifact": "checkpoints/fold0/model.pt",
        },
        "spec": {
            "model": "cnn1d",
            "arch": {"depth": 2, "width": 8},
            "seed": 5,
            "training": {"metric": "f1_macro", "max_epochs": 4},
            "protocol": {"kind": "kfold", "seed": 1},
            "data": {"benchmark": "stress_predict", "params": {"path": "/data"}},
        },
        "spec_digest": "0" * 16,
        "data_fingerprint": "f" * 20,
        "best_epoch": 2,
        "versions": {"onnxruntime": "1.0"},
    }
    prep = {
        "class_names": ["baseline", "stress"],
        "channels": ["ecg"],
        "rate_hz": 128.0,
        "bandpass_hz": [0.5, 40.0],
        "normalize": "subject",
        "window_s": 10.0,
        "stride_s": 5.0,
        "window_samples": 1280,
        "label_purity": 0.8,
        "min_rate_hz": {"ecg": {"hz": 80.0, "why": "band"}},
        "input": {"name": "x", "shape": ["batch", 1, 1280], "accepts_other_lengths": False},
        "output": {"name": "probabilities"},
    }
    metrics = {
        "split": {"train": ["S1", "S2"], "val": ["S3"], "test": ["S4", "S5"]},
        "windows_per_subject": {"S1": 10, "S2": 12, "S3": 8, "S4": 6, "S5": 4},
        "validation": {
            "per_subject": {"S3": scores(8, [4, 4], 0.5, [[2, 2], [2, 2]])},
            "pooled": scores(8, [4, 4], 0.5, [[2, 2], [2, 2]]),
        },
        "test": {
            "per_subject": {
                "S4": scores(6, [6, 0], 0.25, [[6, 0], [0, 0]]),
                "S5": scores(4, [0, 4], 0.5, [[0, 0], [4, 0]]),
            },
            "pooled": scores(10, [6, 4], 0.375, [[6, 0], [4, 0]]),
            "intervals": intervals(0.375, 0.25, 0.5),
            "subject_distribution": {
                "f1_macro": {
                    "per_subject": {"S4": 0.25, "S5": 0.5},
                    "n_subjects": 2,
                    "min": 0.25,
                    "median": 0.375,
                    "max": 0.5,
                    "mean": 0.375,
                    "sd": 0.17677669529663687,
                },
            },
        },
        "hrv_baseline": {
            "val": {"f1_macro": 0.4, "balanced_accuracy": 0.5, "auroc": 0.6},
            "test": {"f1_macro": 0.5, "balanced_accuracy": 0.5, "auroc": 0.5},
            "this_split": {"test": {"f1_macro": 0.5}, "intervals": intervals(0.5, 0.25, 0.75)},
        },
        "checks": {
            "onnx_export": {
                "exporter": "legacy",
                "opset": 18,
                "attempts": [{"exporter": "dynamo", "ok": False, "error": "E: x"}, {"exporter": "legacy", "ok": True}],
            },
            "parity_windows": 10,
            "parity_subjects": ["S4", "S5"],
            "onnx_parity_max_abs": 1.5e-7,
            "parity_tolerance": 1e-4,
            "torchscript_parity_max_abs": 0.0,
            "onnx_other_lengths": {"lengths": lengths},
            "recomputed_vs_logged_test": {"f1_macro": {"recomputed": 0.375, "logged": 0.37501}},
        },
        "latency_ms": lat,
        "parameters": 12345,
    }
    return info, prep, metrics


def test_the_model_card_renders_its_template_from_the_records():
    from ape_nas.handoff.card import render_card

    info, prep, metrics = _card_records()
    card = render_card(info, prep, metrics)
    lines = card.splitlines()
    expected = [
        "# Model card: cnn1d · baseline/stress from ecg (demo, trial 3)",
        f"Exported 2024-01-02T03:04:05Z from MLflow run `{'a' * 32}` (MLflow run {'a' * 32}; tracking URI "
        f"`sqlite:///m.db`). Spec digest `{'0' * 16}`, data fingerprint `{'f' * 20}`, code commit `0123abc`.",
        "| model family | `cnn1d` (depth=2, width=8) |",
        "| parameters | 12,345 |",
        "| task | 2-class window classification: baseline, stress |",
        "| input | `x` float32 ['batch', 1, 1280] = (batch, channels ecg, time); 10 s windows at 128 Hz = 1280 "
        "samples |",
        "| trained | best epoch 2 of at most 4, selected on validation f1_macro; seed 5 |",
        "- Data set: `stress_predict` with parameters `{'path': '/data'}`.",
        "- train subjects (2, 22 windows): S1 (10), S2 (12)",
        "- test subjects (2, 10 windows): S4 (6), S5 (4)",
        "**Multi-fold trial (3 folds): this bundle holds the fold-0 model only** (`checkpoints/fold0/model.pt`). "
        "The trial's search score averaged all folds; the numbers below are fold 0's.",
        "| subject | windows | baseline windows | stress windows | F1 macro | balanced acc. | AUROC | accuracy |",
        "| S4 | 6 | 6 | 0 | 0.250 | 0.750 | n/a | 0.700 |",
        "| **pooled** | 10 | 6 | 4 | 0.375 | 0.750 | 0.800 | 0.700 |",
        "Spread over test subjects: F1 macro 0.250–0.500, balanced accuracy 0.750–0.750. With 2 test subject(s) "
        "these estimates are uncertain; expect other people to fall outside this range.",
        "Check against the values logged by the trial (pooled test windows): f1_macro 0.3750 (logged 0.3750).",
        "Pooled test metrics with 95 % confidence intervals from a subject bootstrap (1000 resamples of the 2 test "
        "subjects, each drawn with all its windows; windows of one person are not independent): F1 macro 0.375 "
        "[0.250, 0.500], balanced acc. 0.375 [0.250, 0.500], AUROC 0.375 [0.250, 0.500]. Per-subject distribution: "
        "F1 macro median 0.375 (min 0.250, max 0.500, sd 0.177, 2 subject(s)). With 6–7 test subjects a ±10-point "
        "interval is normal: it is the honest size of the uncertainty, not a defect of this model; differences "
        "between models smaller than that are not established by these numbers.",
        "- HRV baseline: F1 macro 0.500 [0.250, 0.750], balanced acc. 0.500 [0.250, 0.750], AUROC 0.500 [0.250, 0.750]",
        "| stress | 4 (100 %) | 0 (0 %) |",
        "**Warning: on the test subjects the model never predicts stress** — it has not learnt to separate the "
        "classes there.",
        "| | f1_macro | balanced_accuracy | auroc |",
        "| HRV baseline, test | 0.500 | 0.500 | 0.500 |",
        "On f1_macro the model beats the baseline on the validation subjects and **does not beat** it on the test "
        "subjects. A product could use the cheaper HRV model instead.",
        "- Other window lengths: **the ONNX graph has a fixed time axis of 1280 samples** (feed exactly that); tried "
        "641 samples (ok, 2.0e-08), 2560 samples (failed). The model was trained and validated only on 1280-sample "
        "windows: other lengths run, but their accuracy is unknown.",
        "- Latency (onnxruntime 1.0, CPU `Test CPU`, batch 1, one window of 1280 samples): median 0.500 ms on 1 "
        "thread, 0.250 ms with default threads (median of 50 runs; p90 0.750 ms / 0.500 ms). Preprocessing time is "
        "not included.",
        "- Parameters: 12,345. Exporter attempts: dynamo: E: x; legacy: ok.",
        "- **Subject-independent, small sample.** Trained on 2 subjects, selected on 1, tested on 2. The test numbers "
        "are the only unbiased estimate, and they rest on few people.",
        "- **Data it was trained on.** Only recordings of `stress_predict`: other populations, sensors, placements, "
        "protocols and stressors are untested.",
        "- **Other sample rates.** Recordings are band-passed and resampled to the model's rate; rates below ecg 80 "
        "Hz are refused. Only the training data's native rate was tested.",
    ]
    for line in expected:
        assert line in lines, line
    headings = [line for line in lines if line.startswith("#")]
    assert headings == [
        "# Model card: cnn1d · baseline/stress from ecg (demo, trial 3)",
        "## Intended use",
        "## Data and subjects",
        "## Protocol",
        "## Results",
        "### Validation subjects (used to select the model: optimistic)",
        "### Test subjects (held out)",
        "### Confusion matrix (test subjects, windows; rows: true class)",
        "### Comparison with the HRV baseline",
        "## Export checks",
        "## Known limitations",
        "## Files",
    ]
    assert "$" not in card and card.endswith("stays in MLflow).\n") and "\n\n\n" not in card
    # without a baseline, a fold or a commit, those parts say so or disappear
    info["source"].update(fold=None, git_commit=None)
    metrics["hrv_baseline"] = {}
    card = render_card(info, prep, metrics)
    assert "Multi-fold" not in card and "code commit" not in card and "\n\n\n" not in card
    assert "No HRV baseline was recorded for this sweep" in card


def test_the_card_of_a_refit_and_of_an_ensemble_says_what_the_bundle_holds():
    from ape_nas.handoff.card import render_card

    info, prep, metrics = _card_records()
    metrics["split"]["val"], metrics["validation"] = [], {"per_subject": {}, "pooled": None, "logged": None}
    info["source"].update(
        kind="final",
        fold=None,
        final={"refit_run_id": "b" * 32, "epochs": 3, "epochs_from": "best_epoch", "trained_on": "..."},
    )
    card = render_card(info, prep, metrics)
    lines = card.splitlines()
    assert (
        "| trained | refitted for 3 epoch(s) on every non-test subject (no validation, no early stopping); seed 5 |"
        in (lines)
    )
    assert "**Refitted model.** The trial was cross-validated (3 folds); this bundle holds its spec" in card
    assert f"for 3 epochs (the trial's recorded best epoch + 1), MLflow run `{'b' * 32}`" in card
    assert "None: this model was trained on every non-test subject" in card and "this model, validation" not in card
    assert "Trained on 2 subjects, no validation subjects (refitted or ensembled), tested on 2." in card
    assert "On f1_macro the model **does not beat** the baseline on the test subjects." in card
    assert "$" not in card and "\n\n\n" not in card
    # an ensemble of two trials: its members, their scores, each checked against its trial's logged value
    info["source"].update(kind="top_k", final=None)
    info["ensemble"] = {
        "kind": "top_k",
        "size": 2,
        "members": [{"model": "cnn1d"}, {"model": "resnet1d"}],
    }
    member = {
        "run_id": "c" * 32,
        "trial_number": 4,
        "fold": None,
        "folds": 1,
        "model": "cnn1d",
        "arch": {"depth": 2},
        "val_score": 0.61,
        "test": {"f1_macro": 0.5, "balanced_accuracy": 0.5, "auroc": 0.75},
        "logged_test": {"f1_macro": 0.5},
    }
    metrics["members"] = [member, {**member, "trial_number": 7, "model": "resnet1d", "run_id": "d" * 32}]
    metrics["checks"]["recomputed_vs_logged_test"] = {}
    metrics["checks"]["ensemble_vs_mean_of_members_max_abs"] = 3e-8
    card = render_card(info, prep, metrics)
    lines = card.splitlines()
    assert "| model family | ensemble of 2 (`cnn1d`, `resnet1d`): mean of the members' softmax probabilities |" in lines
    assert f"| trial 7 | `{'d' * 32}` | `resnet1d` (depth=2) | 0.6100 | 0.500 | 0.500 | 0.750 |" in lines
    assert "mean of these members' probabilities by at most 3.00e-08):" in card
    assert (
        "Check of each member against the values its trial logged (pooled test windows, f1_macro): trial 4 0.5000 "
        "(logged 0.5000); trial 7 0.5000 (logged 0.5000)."
    ) in lines
    assert "### Ensemble members" in lines and "$" not in card and "\n\n\n" not in card


def test_a_parity_gap_above_the_tolerance_stops_the_export():
    import torch

    from ape_nas.errors import UserError
    from ape_nas.handoff.convert import Probabilities, check_parity, torch_probs

    model = Probabilities(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))).eval()
    x = np.random.default_rng(2).standard_normal((5, 1, 64)).astype(np.float32)
    expected = torch_probs(model, x)
    with pytest.raises(UserError, match=r"ONNX parity check failed: .* up to 1\.00e-03 on the 5 test windows"):
        check_parity(lambda a: torch_probs(model, a) + 1e-3, model, x, expected, "ONNX", "onnxruntime and PyTorch")
    parity, lengths = check_parity(lambda a: torch_probs(model, a) + 1e-6, model, x, expected, "ONNX", "a and b")
    assert parity == pytest.approx(1e-6, rel=0.1)  # float32 rounding of p + 1e-6
    assert not lengths["dynamic_time"]  # a linear layer fixes the window length
