"""Hybrid models (issue 10, point 4): the learned embedding of the window fused with its HRV feature vector.

The feature transform is the HRV baseline's (training subjects only; per subject where ``normalize: subject``);
every family exports to ONNX with the second input ``hrv_features`` and matches PyTorch within 1e-4; a trained
hybrid trial's checkpoint, bundle and ``predict`` (numpy + onnxruntime) compute the same features.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ape_nas.features import HrvTransform, attach, fit_transform, network_input
from ape_nas.hrv import FEATURE_NAMES, subject_normalise
from ape_nas.models import build_model, list_models
from ape_nas.models.heads import FUSIONS

NAMES = list(FEATURE_NAMES)
HYBRID = [(name, fusion) for name in list_models() for fusion in FUSIONS if fusion != "none"]


@pytest.fixture(autouse=True)
def _two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


def _features(seed: int = 0, n: int = 90) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HRV-like features of 3 subjects (30 windows each): positive, subject offsets, NaN scattered, LF-HF never."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(3), n // 3)
    X = np.abs(rng.standard_normal((n, len(NAMES)))) * 40 + 10 * groups[:, None]
    X[rng.random(X.shape) < 0.15] = np.nan
    X[:, NAMES.index("lf") :] = np.nan  # short windows: no LF (and lf_hf, hf_nu), HF kept
    y = rng.integers(0, 2, n)
    return X, groups, y


# ---------------------------------------------------------------------------------------------------------------
# the transform is the baseline's
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["training", "subject"])
def test_the_transform_is_the_baselines(mode):
    from ape_nas.baseline import fit_model

    X, groups, y = _features()
    train = np.flatnonzero(groups < 2)
    source = subject_normalise(X, groups) if mode == "subject" else X
    fitted = fit_model(source[train], y[train], seed=0)
    expected = fitted._transform(source)
    expected = fitted.scaler.transform(np.where(np.isfinite(expected), expected, fitted.medians[None, :]))
    t = fit_transform(X, groups, train, NAMES, mode)
    assert list(t.columns) == [NAMES[i] for i in fitted.columns] and "lf" not in t.columns
    got = t.apply(X, groups)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_statistics_come_from_the_training_subjects_only():
    X, groups, _ = _features()
    train = np.flatnonzero(groups < 2)
    changed = X.copy()
    changed[groups == 2] *= 100.0  # another test subject
    for mode in ("training", "subject"):
        a, b = fit_transform(X, groups, train, NAMES, mode), fit_transform(changed, groups, train, NAMES, mode)
        assert a == b
    # subject mode: a subject's vector depends on its own windows only
    t = fit_transform(X, groups, train, NAMES, "subject")
    np.testing.assert_allclose(t.apply(X[groups == 2], None), t.apply(X, groups)[groups == 2], atol=1e-6)


def test_no_feature_in_any_training_window_is_an_error():
    X, groups, _ = _features()
    X[groups < 2] = np.nan
    with pytest.raises(ValueError, match="no training window has any finite HRV feature"):
        fit_transform(X, groups, np.flatnonzero(groups < 2), NAMES, "training")


def test_the_transform_round_trips_as_plain_data():
    X, groups, _ = _features()
    t = fit_transform(X, groups, np.arange(60), NAMES, "subject")
    d = t.to_dict()
    assert all(isinstance(v, str | list) for v in d.values())
    assert HrvTransform.from_dict(d) == t
    with pytest.raises(ValueError, match="format"):
        HrvTransform.from_dict({**d, "format": "other/9"})


@pytest.mark.parametrize(("name", "fusion"), HYBRID)
@pytest.mark.parametrize("mode", ["training", "subject"])
def test_the_networks_feature_layer_is_the_numpy_transform(name, fusion, mode):
    """The fitted steps run inside the network (buffers): raw features, NaN included, in; the transform out."""
    X, groups, _ = _features()
    t = fit_transform(X, groups, np.arange(60), NAMES, mode)
    net = attach(build_model(name, 1, 2, n_features=len(NAMES), hrv_fusion=fusion), t)
    with torch.no_grad():
        inside = net.feature_input(torch.from_numpy(network_input(X, groups, mode))).numpy()
    keep = [NAMES.index(c) for c in t.columns]
    np.testing.assert_allclose(inside[:, keep], t.apply(X, groups), atol=1e-5)
    assert np.all(np.delete(inside, keep, axis=1) == 0.0), "columns no training window had are zero"
    state = net.state_dict()
    assert torch.equal(state["feature_input.keep"], torch.tensor(t.stats()["keep"]))


# ---------------------------------------------------------------------------------------------------------------
# ONNX and TorchScript with the feature input
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fusion"), HYBRID)
def test_onnx_and_torchscript_parity_with_the_feature_input(name, fusion, tmp_path: Path):
    from ape_nas.handoff.bundle import FEATURES_NAME, INPUT_NAME
    from ape_nas.handoff.convert import Probabilities, convert, torch_probs
    from ape_nas.handoff.onnx_session import OnnxModel, ort_session

    X, groups, _ = _features(n=30)
    t = fit_transform(X, groups, np.arange(20), NAMES, "subject")
    F = network_input(X, groups, "subject")  # NaN included
    windows = np.random.default_rng(3).standard_normal((30, 1, 320)).astype(np.float32)
    torch.manual_seed(0)
    net = attach(build_model(name, 1, 2, n_features=len(NAMES), hrv_fusion=fusion), t)
    for p in net.head.parameters():  # a trained-looking head (the gate starts at zero)
        torch.nn.init.normal_(p, std=0.5)
    model = Probabilities(net).eval()
    expected = torch_probs(model, windows, F)
    conv = convert(model, windows, expected, tmp_path, 3, lambda _: None, features=F)
    assert conv.parity <= 1e-4 and conv.ts_parity <= 1e-4
    assert conv.dynamic_time, conv.onnx_lengths
    session = ort_session(tmp_path / "model.onnx")
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME, FEATURES_NAME]
    onnx_model = OnnxModel(tmp_path / "model.onnx")
    assert onnx_model.uses_features
    assert np.abs(onnx_model(windows, F) - expected).max() <= 1e-4
    assert np.abs(onnx_model(windows, F + 1.0) - expected).max() > 1e-4, "the graph uses its feature input"
    with pytest.raises(ValueError, match=FEATURES_NAME):
        onnx_model(windows)


def test_a_windows_only_model_exports_one_input_as_before(tmp_path: Path):
    from ape_nas.handoff.bundle import INPUT_NAME
    from ape_nas.handoff.convert import Probabilities, export_onnx
    from ape_nas.handoff.onnx_session import OnnxModel

    model = Probabilities(build_model("resnet1d", 1, 2, blocks=1, width=4)).eval()
    export_onnx(model, torch.zeros(2, 1, 64), tmp_path / "m.onnx")
    onnx_model = OnnxModel(tmp_path / "m.onnx")
    assert [i.name for i in onnx_model.session.get_inputs()] == [INPUT_NAME] and not onnx_model.uses_features


# ---------------------------------------------------------------------------------------------------------------
# a trained hybrid: training, checkpoint, bundle, predict
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_hybrid_trial_trains_checkpoints_and_predicts_identical_features(tmp_path: Path):
    from _common import QUICKSTART, SMALL_SETS

    from ape_nas.data.prepare import prepare_windows
    from ape_nas.experiments import load_experiment
    from ape_nas.features import checkpoint_input
    from ape_nas.handoff import bundle as B
    from ape_nas.handoff.convert import Probabilities, convert, torch_probs
    from ape_nas.handoff.predict import run_prediction
    from ape_nas.handoff.preprocessing import preprocessing_json
    from ape_nas.models import get_family
    from ape_nas.objective import run_trial
    from ape_nas.spec import TrialSpec

    base = load_experiment(QUICKSTART, [*SMALL_SETS, "training.max_epochs=2"]).base()
    arch = {**get_family("cnn1d").arch_defaults, "depth": 2, "width": 4, "hrv_fusion": "gated"}
    spec = TrialSpec.from_dict({"model": "cnn1d", "arch": arch, "optim": {"lr": 3e-3}, **base})
    assert spec.data["normalize"] == "subject"
    result = run_trial(spec)
    ckpt = torch.load(result.checkpoint, weights_only=True)
    transform = HrvTransform.from_dict(ckpt["hrv_transform"])
    assert transform.mode == "subject" and ckpt["n_features"] == len(NAMES)
    ws = prepare_windows(spec.data)
    train = ws.indices(list(result.split.train))
    assert transform == fit_transform(np.asarray(ws.hrv), ws.groups, train, ws.stats["hrv_features"], "subject")

    net = build_model("cnn1d", ckpt["in_channels"], ckpt["num_classes"], n_features=ckpt["n_features"], **arch)
    net.load_state_dict(ckpt["state_dict"])  # the fitted statistics are buffers of the state dict
    model = Probabilities(net).eval()
    feats = checkpoint_input(ckpt, ws)
    test = ws.indices(list(result.split.test))
    probs = torch_probs(model, np.asarray(ws.X[test]), feats[test])
    from ape_nas.metrics import classification_metrics

    logged = ckpt["test_metrics"]["test_f1_macro"]
    assert classification_metrics(ws.y[test], probs, 2)["f1_macro"] == pytest.approx(logged, abs=1e-6)

    # a bundle of it: preprocessing.json describes the second input; predict computes the same features
    stage = tmp_path / "stage"
    stage.mkdir()
    conv = convert(model, np.asarray(ws.X[test]), probs, stage, 3, lambda _: None, features=feats[test])
    prep = preprocessing_json(spec.data, ckpt, conv.dynamic_time)
    assert prep["hrv_features"]["name"] == B.FEATURES_NAME and prep["hrv_features"]["mode"] == "subject"
    assert prep["hrv_features"]["fitted"] == ckpt["hrv_transform"]
    info = {"format": B.BUNDLE_FORMAT, "files": {"onnx": B.MODEL_ONNX}}
    B.write_bundle(stage, tmp_path / "bundle", {B.PREPROCESSING: prep, B.METRICS: {}, B.INFO: info}, "card\n")
    run = run_prediction(tmp_path / "bundle", "synthetic", dict(spec.data["params"]), labelled_only=True)
    worst = 0.0
    for s in result.split.test:
        mine = next(p for p in run.subjects if p.subject == s)
        idx = ws.indices([s])
        np.testing.assert_allclose(mine.starts_s, ws.starts_s[idx])
        worst = max(worst, float(np.abs(mine.probs - torch_probs(model, np.asarray(ws.X[idx]), feats[idx])).max()))
    assert worst <= 1e-4
