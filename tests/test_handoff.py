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
from _common import QUICKSTART, SMALL, SMALL_SETS, set_args
from mlflow.tracking import MlflowClient

from ape_nas.data.synthetic import generate
from ape_nas.handoff import bundle as B

pytestmark = pytest.mark.slow

# the synthetic benchmark of SMALL (quickstart params with SMALL's overrides)
SYNTH = {"subjects": 8, "minutes_per_state": 1.0, "fs": 128.0, "states": ["baseline", "stress"], "seed": 7}
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
    _write_folder(data, ["S01"], decimate=2)  # 64 Hz: Nyquist 32 Hz < the 40 Hz band edge
    capsys.readouterr()
    _one_line_error(capsys, _predict(exported["bundle"], data, tmp_path / "p.csv"), "64 Hz", "at least 80 Hz")


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


def test_a_multi_fold_trial_exports_fold_0_by_run_id_and_says_so(tmp_path: Path):
    from ape_nas.cli import main
    from ape_nas.progress import best_of
    from ape_nas.sweep import load_status

    kfold = ["protocol.kind=kfold", "protocol.folds=2", "protocol.val_subjects=null", "training.max_epochs=1"]
    sets = [*SMALL_SETS, *kfold]
    workdir = tmp_path / "w"
    flags = set_args(sets)
    assert main(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "1", "--no-progress", *flags]) == 0
    exp, backend = load_status(QUICKSTART, workdir=workdir, overrides=sets)
    run_id = best_of(backend.records(), exp.direction).run_id
    out = tmp_path / "bundle"
    assert _cli(["export", run_id, "--out", str(out), "--workdir", str(workdir), "--no-register"]) == 0
    info = json.loads((out / B.INFO).read_text())
    assert info["source"]["fold"] == 0 and info["source"]["folds"] == 2
    assert info["source"]["checkpoint_artifact"] == "checkpoints/fold0/model.pt"
    assert "fold-0 model only" in (out / B.CARD).read_text()
    assert B.verify_bundle(out).class_names == ["baseline", "stress"]
    client = MlflowClient(info["source"]["tracking_uri"])
    assert client.list_artifacts(run_id, "bundle") == [] and client.search_registered_models() == []


# ---------------------------------------------------------------------------------------------------------------
# exporter fallback
# ---------------------------------------------------------------------------------------------------------------


def test_onnx_export_of_every_family_keeps_a_dynamic_time_axis(tmp_path: Path):
    """cnn1d's ceil-mode max-pool and inception's padded max-pool make torch.export specialise the time axis;
    the exporter chain must still end with a graph that accepts other lengths and matches PyTorch."""
    import torch

    from ape_nas.handoff.convert import Probabilities, check_lengths, export_onnx, ort_probs, ort_session
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
