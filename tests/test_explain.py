"""``ape-nas explain`` end to end: a tiny quickstart trial, exported once per module, explained as a bundle and as
a trial run; PNGs, the raw attributions, the beat-synchronous profiles, MLflow, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import QUICKSTART, SMALL, cli, one_line_error
from mlflow.tracking import MlflowClient

from ape_nas.handoff import bundle as B

pytestmark = pytest.mark.slow

METHODS = ["gradcam", "integrated_gradients", "occlusion", "gradient"]
# new simulated people for the data (the source's own benchmark: its train/val subjects are left out)
DATA = [
    "--data",
    "synthetic",
    "--set",
    "subjects=10",
    "--set",
    "minutes_per_state=1.0",
    "--set",
    "cohort=typical",
    "--set",
    "seed=7",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("explain")
    workdir = root / "w"
    assert cli(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "1", "--no-progress", *SMALL]) == 0
    bundle = root / "bundle"
    assert cli(["export", QUICKSTART, "--out", str(bundle), "--workdir", str(workdir), "--no-register", *SMALL]) == 0
    return {"root": root, "workdir": workdir, "bundle": bundle, "info": json.loads((bundle / B.INFO).read_text())}


def explain_runs(uri: str) -> list[Any]:
    client = MlflowClient(uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return [r for r in runs if r.data.tags.get("ape_nas.role") == "explain"]


def test_explain_bundle_writes_pngs_attributions_and_a_run(world: dict[str, Any], tmp_path: Path) -> None:
    out, tw = tmp_path / "out", tmp_path / "tw"
    argv = ["explain", str(world["bundle"]), *DATA, "--per-class", "2", "--plots", "3", "--out", str(out)]
    assert cli([*argv, "--workdir", str(tw)]) == 0
    record = json.loads((out / "explain.json").read_text())
    split = world["info"]["source"].get("split") or json.loads((world["bundle"] / B.METRICS).read_text())["split"]
    seen = set(split["train"]) | set(split["val"])
    subjects = {w["subject"] for w in record["windows"]}
    assert subjects and not subjects & seen, "explained a subject the model trained or validated on"
    assert set(record["data"]["left_out"]) == seen & {f"S{i:02d}" for i in range(1, 11)}
    assert record["methods"] == METHODS
    length = int(record["rate_hz"] * 10.0)  # 10-s windows
    for w in record["windows"]:
        assert set(w["attributions"]) == set(METHODS)
        for values in w["attributions"].values():
            assert len(values) == length and np.isfinite(values).all()
        assert all(0 <= b < length for b in w["beats_samples"]) and len(w["beats_samples"]) >= 5  # ECG, 50-110 bpm
        assert w["explained_class"] == record["class_names"][int(np.argmax(w["probabilities"]))]
    per_subject_class: dict[tuple[str, str], int] = {}
    for w in record["windows"]:
        key = (w["subject"], w["label"])
        per_subject_class[key] = per_subject_class.get(key, 0) + 1
    assert set(per_subject_class.values()) == {2}  # --per-class 2: two windows of each class and subject
    assert len(list((out / "windows").glob("*.png"))) == 3
    assert (out / "beats.png").stat().st_size > 10_000
    for method in METHODS:
        prof = record["beat_synchronous"][method]
        assert 0.0 <= prof["phase_locking"] <= 1.0 and 0.0 <= prof["between_beats"] <= 1.0
        assert set(prof["saliency"]) <= set(record["class_names"]) and prof["saliency"]
        assert 0.4 < prof["median_rr_s"] < 1.3
    (run,) = explain_runs(f"sqlite:///{tw / 'mlflow.db'}")
    assert run.info.status == "FINISHED"
    names = {a.path for a in MlflowClient(f"sqlite:///{tw / 'mlflow.db'}").list_artifacts(run.info.run_id, "explain")}
    assert {"explain/explain.json", "explain/beats.png", "explain/windows"} <= names


def test_explain_trial_logs_to_its_run_and_chosen_windows(world: dict[str, Any], tmp_path: Path) -> None:
    uri = f"sqlite:///{world['workdir'] / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    (trial,) = [r for r in runs if r.data.tags.get("ape_nas.role") == "trial"]
    out = tmp_path / "out"
    chosen = "S10:0,S10:3"
    argv = ["explain", trial.info.run_id, *DATA, "--windows", chosen, "--method", "gradcam,gradient"]
    assert cli([*argv, "--out", str(out), "--workdir", str(world["workdir"])]) == 0
    record = json.loads((out / "explain.json").read_text())
    assert [(w["subject"], w["window"]) for w in record["windows"]] == [("S10", 0), ("S10", 3)]
    assert record["methods"] == ["gradcam", "gradient"]
    folder = client.get_run(trial.info.run_id).data.tags["ape_nas.explain.last"]
    assert {a.path for a in client.list_artifacts(trial.info.run_id, folder)} >= {f"{folder}/explain.json"}
    assert not explain_runs(uri), "a trial source is logged to its own run, not to a new one"


def test_explain_is_deterministic_and_maps_follow_the_target(world: dict[str, Any], tmp_path: Path) -> None:
    base = ["explain", str(world["bundle"]), *DATA, "--windows", "S10:1,S09:2", "--no-track", "--plots", "0"]
    assert cli([*base, "--out", str(tmp_path / "a")]) == 0
    assert cli([*base, "--out", str(tmp_path / "b")]) == 0
    assert cli([*base, "--out", str(tmp_path / "c"), "--target", "label"]) == 0
    a, b, c = (json.loads((tmp_path / k / "explain.json").read_text())["windows"] for k in "abc")
    assert [w["attributions"] for w in a] == [w["attributions"] for w in b]
    for wa, wc in zip(a, c, strict=True):
        if wa["explained_class"] != wc["explained_class"]:  # explained for the other class: another map
            assert wa["attributions"]["gradient"] != wc["attributions"]["gradient"]


def test_altered_bundle_stops_with_the_checksum_error(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    altered = tmp_path / "altered"
    shutil.copytree(world["bundle"], altered)
    (altered / B.MODEL_TS).write_bytes((altered / B.MODEL_TS).read_bytes() + b"\0")
    out = tmp_path / "out"
    rc = cli(["explain", str(altered), *DATA, "--out", str(out), "--no-track"])
    one_line_error(capsys, rc, "checksum mismatch: model.ts")
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--method", "gradcam,lime"], "lime"),
        (["--method", "prototypes"], "part-based"),
        (["--windows", "S10"], "SUBJECT:INDEX"),
        (["--windows", "S10:99999"], "S10 has"),
        (["--windows", "S77:0"], "S77"),
        (["--layer", "no.such.layer"], "--layer no.such.layer"),
        (["--per-class", "0"], "--per-class"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    out = tmp_path / "out"
    rc = cli(["explain", str(world["bundle"]), *DATA, "--out", str(out), "--no-track", *extra])
    one_line_error(capsys, rc, needle)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_used_out_folder_is_refused(world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc = cli(["explain", str(world["bundle"]), *DATA, "--out", str(out), "--no-track"])
    one_line_error(capsys, rc, "not an empty folder")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


CUE = str(Path(__file__).resolve().parents[1] / "experiments" / "synthetic_cue.yaml")


def test_planted_cue_is_localised_by_a_model_trained_on_it(tmp_path: Path) -> None:
    """One trial of the planted-cue experiment (ST elevation in half the amusement beats); its own test subjects
    explained with --evaluate: Grad-CAM puts clearly more relevance on the planted samples than a random map, whose
    share is the cue's fraction of the window (Integrated Gradients and Occlusion only a little more)."""
    workdir, out = tmp_path / "w", tmp_path / "out"
    fast = ["--set", "data.params.subjects=24", "--set", "protocol.test_subjects=6", "--set", "protocol.val_subjects=4"]
    assert cli(["sweep", CUE, "--workdir", str(workdir), "--trials", "1", "--no-progress", *fast]) == 0
    argv = ["explain", CUE, "--workdir", str(workdir), "--per-class", "3", "--evaluate", "--plots", "2"]
    assert cli([*argv, "--out", str(out)]) == 0
    faith = json.loads((out / "faithfulness.json").read_text())
    rows = {r["method"]: r for r in faith["rows"]}
    assert faith["localisation_windows"] >= 6
    chance = rows["random"]["mass_on_mask"]["point"]
    assert abs(chance - rows["gradcam"]["mask_fraction"]["point"]) < 0.02  # a random map scores the cue's fraction
    mass = rows["gradcam"]["mass_on_mask"]  # measured: 0.26 [0.18, 0.33] against a chance of 0.13
    assert mass["point"] > 1.5 * chance and mass["low"] > chance, (mass, chance)
    for method in ("integrated_gradients", "occlusion"):  # measured 0.16 and 0.18: above chance, not by much
        assert rows[method]["mass_on_mask"]["point"] > chance, method
    # the sanity check: the maps of a randomised network no longer look like the trained network's (Grad-CAM),
    # while the input-only edge detector does not change at all
    assert rows["gradcam"]["randomisation_rank_corr"]["point"] < 0.3
    assert rows["edge"]["randomisation_rank_corr"]["point"] > 0.99
    record = json.loads((out / "explain.json").read_text())
    assert all(w["cue_samples"] is not None for w in record["windows"])


def test_part_based_network_explains_itself(tmp_path: Path) -> None:
    """A protonet1d trial: `prototypes` joins the default methods; each window says which prototypes fired where,
    and every prototype is shown as the training segment nearest to it (from a training subject)."""
    proto = CUE.replace("synthetic_cue.yaml", "synthetic_cue_protonet.yaml")
    workdir, out = tmp_path / "w", tmp_path / "out"
    fast = ["--set", "data.params.subjects=16", "--set", "protocol.test_subjects=4", "--set", "protocol.val_subjects=4"]
    assert cli(["sweep", proto, "--workdir", str(workdir), "--trials", "1", "--no-progress", *fast]) == 0
    argv = ["explain", proto, "--workdir", str(workdir), "--per-class", "1", "--plots", "1", "--out", str(out)]
    assert cli(argv) == 0
    record = json.loads((out / "explain.json").read_text())
    assert record["methods"] == [*METHODS, "prototypes"]
    assert (out / "prototypes.png").stat().st_size > 10_000
    assert record["prototypes"] and all(p["nearest"] is not None for p in record["prototypes"])
    length = len(record["windows"][0]["attributions"]["prototypes"])
    for w in record["windows"]:
        fired = w["prototypes"]["prototypes"]
        assert fired and all(0 <= f["start"] < f["stop"] <= length for f in fired)
        assert fired[0]["contribution"] >= fired[-1]["contribution"]
