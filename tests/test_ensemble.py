"""Export of ensembles and refitted models (issue 10): ``export --ensemble K|folds`` and ``--final``.

Two small real sweeps (the SMALL quickstart overrides of tests/_common.py): a holdout sweep of 3 trials (the K
best distinct trials) and a 2-fold kfold sweep of 1 trial (its fold models; its refit on every non-test subject).
Members' probabilities are computed here independently of the export code: each member's plain checkpoint is
downloaded from MLflow, rebuilt with ``build_model`` and run with a softmax.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import QUICKSTART, SMALL_SETS, set_args
from mlflow.tracking import MlflowClient

from ape_nas.handoff import bundle as B

pytestmark = pytest.mark.slow

KFOLD_SETS = [*SMALL_SETS, "protocol.kind=kfold", "protocol.folds=2", "protocol.val_subjects=null"]


def _cli(argv: list[str]) -> int:
    from ape_nas.cli import main

    return main(argv)


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _sweep(workdir: Path, sets: list[str], trials: int) -> None:
    argv = ["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", str(trials), "--no-progress", *set_args(sets)]
    assert _cli(argv) == 0


def _trial_runs(client: MlflowClient, experiment: str = "quickstart") -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("ape_nas.role") == "trial"]


def _member_probs(client: MlflowClient, run_id: str, artifact: str, X: np.ndarray, folder: Path) -> np.ndarray:
    """A member's probabilities, computed from its plain checkpoint alone (no export code)."""
    import torch

    from ape_nas.models import build_model

    ckpt = torch.load(client.download_artifacts(run_id, artifact, str(folder)), weights_only=True)
    net = build_model(ckpt["spec"]["model"], ckpt["in_channels"], ckpt["num_classes"], **ckpt["spec"]["arch"])
    net.load_state_dict(ckpt["state_dict"])
    with torch.no_grad():
        return net.eval()(torch.from_numpy(np.ascontiguousarray(X))).softmax(dim=1).numpy()


def _test_windows(bundle: Path, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test subjects' windows of the bundle's data (the training pipeline's cache) and their labels."""
    from ape_nas.data.prepare import prepare_windows

    info = json.loads((bundle / B.INFO).read_text())
    ws = prepare_windows(info["spec"]["data"], workdir / "cache")
    test = json.loads((bundle / B.METRICS).read_text())["split"]["test"]
    idx = np.concatenate([ws.indices([s]) for s in test])
    return np.asarray(ws.X[idx]), np.asarray(ws.y[idx])


def _bundle_probs(bundle: Path, X: np.ndarray) -> np.ndarray:
    from ape_nas.handoff.onnx_session import OnnxModel

    return OnnxModel(B.verify_bundle(bundle).onnx_path)(X)


# ---------------------------------------------------------------------------------------------------------------
# the K best distinct trials of a holdout sweep
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ensemble")
    workdir = root / "w"
    _sweep(workdir, SMALL_SETS, 3)
    bundle = root / "top2"
    argv = ["export", QUICKSTART, "--out", str(bundle), "--workdir", str(workdir), "--ensemble", "2"]
    assert _cli([*argv, *set_args(SMALL_SETS)]) == 0
    info = json.loads((bundle / B.INFO).read_text())
    return {"root": root, "workdir": workdir, "bundle": bundle, "info": info}


def test_top_k_ensemble_predicts_the_mean_of_its_members(holdout: dict[str, Any]):
    bundle, info, workdir = holdout["bundle"], holdout["info"], holdout["workdir"]
    client = MlflowClient(info["source"]["tracking_uri"])
    # the members: the 2 best complete trials with distinct spec digests, best first
    complete = [r for r in _trial_runs(client) if r.data.tags.get("ape_nas.state") == "complete"]
    complete.sort(key=lambda r: (-r.data.metrics["score"], int(r.data.tags["ape_nas.trial_number"])))
    distinct: dict[str, Any] = {}
    for r in complete:
        distinct.setdefault(r.data.tags["ape_nas.spec_digest"], r)
    expected = [r.info.run_id for r in list(distinct.values())[:2]]
    members = info["ensemble"]["members"]
    assert info["source"]["kind"] == "top_k" and info["ensemble"]["size"] == 2
    assert [m["run_id"] for m in members] == expected
    # the bundle's ONNX output equals the mean of the members' own probabilities
    X, _ = _test_windows(bundle, workdir)
    probs = [_member_probs(client, rid, "model.pt", X, holdout["root"] / f"m{i}") for i, rid in enumerate(expected)]
    got = _bundle_probs(bundle, X)
    assert np.abs(got - np.mean(probs, axis=0)).max() <= 1e-5
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    metrics = json.loads((bundle / B.METRICS).read_text())
    assert metrics["checks"]["ensemble_vs_mean_of_members_max_abs"] <= 1e-5
    assert metrics["checks"]["onnx_parity_max_abs"] <= 1e-4
    # each member's recomputed test score matches what its trial logged
    for m in metrics["members"]:
        for name, logged in m["logged_test"].items():
            assert m["test"][name] == pytest.approx(logged, abs=1e-5), (m["trial_number"], name)
    card = (bundle / B.CARD).read_text()
    assert "### Ensemble members" in card and "Ensemble of the 2 best distinct trials" in card
    assert all(rid in card for rid in expected)
    assert card.count("`model.onnx`") == 1


def test_top_k_ensemble_is_logged_on_the_sweep_and_registered(holdout: dict[str, Any]):
    info = holdout["info"]
    client = MlflowClient(info["source"]["tracking_uri"])
    parent = info["source"]["parent_run_id"]
    folders = [a.path for a in client.list_artifacts(parent) if a.path.startswith("bundle-ensemble-")]
    assert len(folders) == 1
    logged = {a.path.split("/")[-1] for a in client.list_artifacts(parent, folders[0])}
    assert logged == {*B.FILES, B.SUMS}
    (version,) = client.search_model_versions("name='ape-nas-quickstart'")
    assert version.source == f"runs:/{parent}/{folders[0]}" and version.tags["ape_nas.bundle_kind"] == "top_k"
    assert version.tags["ape_nas.model"] == "ensemble"
    # the trials' own bundle/ folders and registered-model tags are untouched
    for m in info["ensemble"]["members"]:
        assert client.list_artifacts(m["run_id"], "bundle") == []


def test_test_metrics_carry_subject_bootstrap_intervals(holdout: dict[str, Any]):
    bundle = holdout["bundle"]
    metrics = json.loads((bundle / B.METRICS).read_text())
    test = metrics["test"]
    n_test = len(metrics["split"]["test"])
    for name, iv in test["intervals"].items():
        assert iv["low"] <= iv["point"] <= iv["high"], name
        assert iv["n_subjects"] == n_test and iv["n_boot"] == 1000 and iv["level"] == 0.95
        assert iv["point"] == pytest.approx(test["pooled"][name], abs=1e-6)
    dist = test["subject_distribution"]["f1_macro"]
    assert set(dist["per_subject"]) == set(metrics["split"]["test"])
    values = [v for v in dist["per_subject"].values() if v is not None]
    assert dist["min"] == pytest.approx(min(values)) and dist["max"] == pytest.approx(max(values))
    for s, v in dist["per_subject"].items():
        assert v == pytest.approx(test["per_subject"][s]["f1_macro"], abs=1e-6)
    here = metrics["hrv_baseline"]["this_split"]
    assert set(here["intervals"]) == {"f1_macro", "balanced_accuracy", "auroc"}
    # refitted at export on the holdout's training subjects, the baseline gives what the sweep logged
    for name, value in metrics["hrv_baseline"]["test"].items():
        assert here["test"][name] == pytest.approx(value, abs=1e-6), name
    card = (bundle / B.CARD).read_text()
    f1 = test["intervals"]["f1_macro"]
    assert f"F1 macro {f1['point']:.3f} [{f1['low']:.3f}, {f1['high']:.3f}]" in card
    assert "With 6–7 test subjects a ±10-point interval is normal" in card
    hrv = here["intervals"]["f1_macro"]
    assert f"- HRV baseline: F1 macro {hrv['point']:.3f} [{hrv['low']:.3f}, {hrv['high']:.3f}]" in card


def test_bad_ensembles_are_one_line_and_write_nothing(holdout: dict[str, Any], capsys: pytest.CaptureFixture[str]):
    info, workdir = holdout["info"], str(holdout["workdir"])
    client = MlflowClient(info["source"]["tracking_uri"])
    runs_before = len(client.search_runs([info["source"]["experiment_id"]], max_results=1000))
    versions_before = len(client.search_model_versions("name='ape-nas-quickstart'"))
    out = holdout["root"] / "never"
    base = ["export", QUICKSTART, "--out", str(out), "--workdir", workdir, *set_args(SMALL_SETS)]
    n = len(
        {r.data.tags["ape_nas.spec_digest"] for r in _trial_runs(client) if r.data.tags["ape_nas.state"] == "complete"}
    )
    capsys.readouterr()
    _one_line_error(capsys, _cli([*base, "--ensemble", str(n + 1)]), f"has {n} complete distinct trial(s)")
    _one_line_error(capsys, _cli([*base, "--ensemble", "1"]), "K >= 2")
    _one_line_error(capsys, _cli([*base, "--ensemble", "two"]), "K >= 2")
    _one_line_error(capsys, _cli([*base, "--ensemble", "2", "--final"]), "--final with --ensemble")
    _one_line_error(capsys, _cli([*base, "--ensemble", "folds"]), "has one fold", "kfold or loso")
    run_id = info["ensemble"]["members"][0]["run_id"]
    argv = ["export", run_id, "--out", str(out), "--workdir", workdir, "--ensemble", "2"]
    _one_line_error(capsys, _cli(argv), "give the experiment file")
    assert not out.exists()
    assert not [p for p in holdout["root"].iterdir() if p.name.startswith(".ape-nas-export-")]
    assert len(client.search_runs([info["source"]["experiment_id"]], max_results=1000)) == runs_before
    assert len(client.search_model_versions("name='ape-nas-quickstart'")) == versions_before


# ---------------------------------------------------------------------------------------------------------------
# one cross-validated trial: its fold models, its refit, its fold 0
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kfold(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("kfold")
    workdir = root / "w"
    _sweep(workdir, KFOLD_SETS, 1)
    client = MlflowClient(f"sqlite:///{(workdir / 'mlflow.db').resolve()}")
    (trial,) = _trial_runs(client)
    return {"root": root, "workdir": workdir, "run_id": trial.info.run_id, "client": client}


def test_fold_ensemble_predicts_the_mean_of_the_fold_models(kfold: dict[str, Any]):
    client, run_id, workdir = kfold["client"], kfold["run_id"], kfold["workdir"]
    bundle = kfold["root"] / "folds"
    assert _cli(["export", run_id, "--out", str(bundle), "--workdir", str(workdir), "--ensemble", "folds"]) == 0
    info = json.loads((bundle / B.INFO).read_text())
    assert info["source"]["kind"] == "folds" and info["ensemble"]["size"] == 2
    assert [m["fold"] for m in info["ensemble"]["members"]] == [0, 1]
    X, _ = _test_windows(bundle, workdir)
    probs = [_member_probs(client, run_id, f"checkpoints/fold{k}/model.pt", X, kfold["root"] / f"f{k}") for k in (0, 1)]
    assert np.abs(_bundle_probs(bundle, X) - np.mean(probs, axis=0)).max() <= 1e-5
    metrics = json.loads((bundle / B.METRICS).read_text())
    assert metrics["split"]["val"] == [] and metrics["validation"]["pooled"] is None
    assert len(metrics["split"]["train"]) == 6 and len(metrics["split"]["test"]) == 2
    card = (bundle / B.CARD).read_text()
    assert "Ensemble of the trial's 2 fold models" in card and "trial 0, fold 1" in card
    assert "\n\n\n" not in card and "$" not in card
    # logged under bundle-folds/ of the trial run, registered
    assert {a.path for a in client.list_artifacts(run_id, "bundle-folds")} >= {"bundle-folds/model.onnx"}
    assert client.get_run(run_id).data.tags["ape_nas.registered_model.bundle-folds"].startswith("ape-nas-quickstart/")


def test_a_cv_trial_exports_its_refit_by_default(kfold: dict[str, Any]):
    client, run_id, workdir = kfold["client"], kfold["run_id"], kfold["workdir"]
    bundle = kfold["root"] / "final"
    argv = ["export", QUICKSTART, "--out", str(bundle), "--workdir", str(workdir), *set_args(KFOLD_SETS)]
    assert _cli(argv) == 0
    info = json.loads((bundle / B.INFO).read_text())
    src = info["source"]
    assert src["kind"] == "final" and src["trial_run_id"] == run_id
    refit_id = src["final"]["refit_run_id"]
    assert src["run_id"] == refit_id != run_id
    trial = client.get_run(run_id).data
    best = trial.metrics.get("best_epoch")
    expected_epochs = int(np.floor(best + 0.5)) + 1 if best is not None else 3  # SMALL: training.max_epochs=3
    assert src["final"]["epochs"] == expected_epochs
    assert src["final"]["epochs_from"] == ("best_epoch" if best is not None else "training.max_epochs")
    refit = client.get_run(refit_id)
    assert refit.data.tags["ape_nas.role"] == "final" and refit.data.tags["ape_nas.source_run"] == run_id
    assert refit.info.status == "FINISHED"
    # the bundle's test scores are the refit's on the test subjects (as its run logged them)
    metrics = json.loads((bundle / B.METRICS).read_text())
    assert metrics["split"]["val"] == [] and len(metrics["split"]["train"]) == 6
    for m in ("f1_macro", "balanced_accuracy", "auroc"):
        assert metrics["test"]["pooled"][m] == pytest.approx(refit.data.metrics[f"test_{m}"], abs=1e-5), m
    card = (bundle / B.CARD).read_text()
    assert "**Refitted model.**" in card and refit_id in card and "| trained | refitted for" in card
    assert "None: this model was trained on every non-test subject" in card
    assert "\n\n\n" not in card and "$" not in card
    assert {a.path for a in client.list_artifacts(refit_id, "bundle")} >= {"bundle/model.onnx", "bundle/SHA256SUMS"}


def test_no_final_exports_fold_0_and_says_so(kfold: dict[str, Any]):
    client, run_id, workdir = kfold["client"], kfold["run_id"], kfold["workdir"]
    out = kfold["root"] / "fold0"
    argv = ["export", run_id, "--out", str(out), "--workdir", str(workdir), "--no-register", "--no-final"]
    assert _cli(argv) == 0
    info = json.loads((out / B.INFO).read_text())
    assert info["source"]["kind"] == "trial" and info["source"]["fold"] == 0 and info["source"]["folds"] == 2
    assert info["source"]["checkpoint_artifact"] == "checkpoints/fold0/model.pt"
    assert "fold-0 model only" in (out / B.CARD).read_text()
    assert B.verify_bundle(out).class_names == ["baseline", "stress"]
    assert client.list_artifacts(run_id, "bundle") == []


def test_a_failed_refit_export_leaves_no_run_and_no_bundle(
    kfold: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from ape_nas.errors import UserError
    from ape_nas.handoff import export

    client, workdir = kfold["client"], kfold["workdir"]
    exp_id = client.get_experiment_by_name("quickstart").experiment_id
    before = {r.info.run_id for r in client.search_runs([exp_id], max_results=1000)}

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise UserError("ONNX parity check failed: (simulated)")

    monkeypatch.setattr(export, "convert", broken)
    out = kfold["root"] / "broken"
    capsys.readouterr()
    rc = _cli(["export", kfold["run_id"], "--out", str(out), "--workdir", str(workdir)])
    _one_line_error(capsys, rc, "parity check failed")
    assert not out.exists()
    assert {r.info.run_id for r in client.search_runs([exp_id], max_results=1000)} == before
