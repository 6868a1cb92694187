"""``ape-nas transfer`` end to end: a quickstart bundle (and its trial run) adapted to new synthetic people.

One tiny quickstart sweep is exported once per module; the target people are other simulated subjects (another
seed) written as a generic folder data set, so nothing the source trained on is a target.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import QUICKSTART, SMALL, cli, one_line_error
from mlflow.tracking import MlflowClient

from ape_nas.data.synthetic import generate
from ape_nas.handoff import bundle as B

pytestmark = pytest.mark.slow

METHODS = ["weighting", "weighting+shift", "head", "finetune", "bn", "scratch"]
FAST = ["--steps", "15", "--repeats", "2"]


def write_target(
    root: Path, *, channel: str = "ecg", classes: tuple[str, ...] = ("baseline", "stress"), decimate: int = 1
) -> Path:
    """Six new simulated people (seed 99) as a generic folder data set (``data.folder_writer``); ``classes``
    renames the states (one name: a one-class target), ``decimate`` lowers the rate."""
    from ape_nas.data.folder_writer import write_folder

    bench = generate(
        subjects=6, minutes_per_state=1.5, fs=128.0, states=["baseline", "stress"], cohort="typical", seed=99
    )
    for rec in bench.subjects:
        rec.signals = {channel: rec.signals["ecg"][::decimate]}
        rec.rates = {channel: 128.0 / decimate}
        rec.labels = np.minimum(rec.labels, len(classes) - 1) if len(classes) == 1 else rec.labels
    bench.class_names = list(classes)
    bench.name = "new-people"  # not the source's benchmark (`synthetic`): no subject is left out as seen
    write_folder(bench, root)
    return root


def transfer_runs(uri: str) -> list[Any]:
    client = MlflowClient(uri)
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    return [r for r in runs if r.data.tags.get("ape_nas.role") == "transfer"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("transfer")
    workdir = root / "w"
    assert cli(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "1", "--no-progress", *SMALL]) == 0
    bundle = root / "bundle"
    assert cli(["export", QUICKSTART, "--out", str(bundle), "--workdir", str(workdir), "--no-register", *SMALL]) == 0
    info = json.loads((bundle / B.INFO).read_text())
    return {"root": root, "workdir": workdir, "bundle": bundle, "target": write_target(root / "target"), "info": info}


@pytest.fixture(scope="module")
def full_run(world: dict[str, Any]) -> dict[str, Any]:
    out = world["root"] / "results"
    tw = world["root"] / "tw"
    rc = cli(
        [
            "transfer",
            str(world["bundle"]),
            "--data",
            str(world["target"]),
            "--method",
            ",".join(METHODS),
            "--shots",
            "1,2",
            "--results",
            str(out),
            "--workdir",
            str(tw),
            "--adapt-subjects",
            "2",
            *FAST,
        ]
    )
    assert rc == 0
    return {"results": json.loads((out / "transfer.json").read_text()), "out": out, "workdir": tw}


def test_every_method_protocol_and_k_is_reported(full_run: dict[str, Any]) -> None:
    res = full_run["results"]
    cells = {(r["protocol"], r["method"], r["k"]) for r in res["results"]}
    methods = ["source", *METHODS]  # the target's classes are the source's: the un-adapted source is a reference
    assert cells == {(p, m, k) for p in ("personalise", "new-population") for m in methods for k in (1, 2)}
    assert res["target"]["subjects"] == [f"S{i:02d}" for i in range(1, 7)] and res["target"]["left_out"] == {}
    for row in res["results"]:
        iv = row["balanced_accuracy"]
        assert 0.0 <= iv["low"] <= iv["point"] <= iv["high"] <= 1.0
        assert row["repeats"] == 2 and row["test_windows"] > 0
        tested = {
            s
            for e in res["episodes"]
            if e["protocol"] == row["protocol"] and e["k"] == row["k"]
            for s in e["test_subjects"]
        }
        assert iv["n_subjects"] == len(tested) == (6 if row["protocol"] == "personalise" else len(tested))
        assert sorted(row["per_subject"]) == sorted(tested)
    params = {r["method"]: r["trained_parameters"] for r in res["results"]}
    assert params["source"] == 0
    assert params["head"] < params["weighting"] < params["weighting+shift"] < params["finetune"]
    assert params["bn"] > params["head"] and params["scratch"] == params["finetune"]
    # one record of the calibration windows of every episode: personalise ones are each subject's first windows
    eps = [e for e in res["episodes"] if e["protocol"] == "personalise" and e["k"] == 2]
    assert len(eps) == 2 * 6 and all(len(starts) == 2 * 2 for e in eps for starts in e["calibration_starts_s"].values())
    pop = [e for e in res["episodes"] if e["protocol"] == "new-population"]
    assert all(len(e["calibration_starts_s"]) == 2 and len(e["test_subjects"]) == 4 for e in pop)
    assert (full_run["out"] / "transfer.png").stat().st_size > 10_000


def test_run_is_logged_to_mlflow(full_run: dict[str, Any]) -> None:
    uri = f"sqlite:///{(full_run['workdir'] / 'mlflow.db').resolve()}"
    (run,) = transfer_runs(uri)
    client = MlflowClient(uri)
    assert client.get_experiment(run.info.experiment_id).name == "ape-nas-transfer"
    assert run.info.status == "FINISHED" and run.data.tags["ape_nas.state"] == "complete"
    assert run.data.params["transfer.methods"] == ",".join(METHODS)
    key = "personalise/weighting_plus_shift/k2/balanced_accuracy"
    assert key in run.data.metrics and f"{key}_low" in run.data.metrics
    names = {a.path for a in client.list_artifacts(run.info.run_id)} | {
        a.path for a in client.list_artifacts(run.info.run_id, "plots")
    }
    assert {"transfer.json", "plots/transfer.png", "spec.yaml"} <= names


def test_out_bundle_folds_and_evaluates(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out = world["root"] / "adapted"
    rc = cli(
        [
            "transfer",
            str(world["bundle"]),
            "--data",
            str(world["target"]),
            "--method",
            "weighting",
            "--shots",
            "2",
            "--protocol",
            "new-population",
            "--adapt-subjects",
            "3",
            "--out",
            str(out),
            "--no-track",
            "--results",
            str(world["root"] / "r2"),
            *FAST,
        ]
    )
    assert rc == 0, capsys.readouterr().err
    bundle = B.verify_bundle(out)
    info = bundle.info
    assert info["source"]["kind"] == "transfer" and info["transfer"]["method"] == "weighting"
    assert info["transfer"]["shots"] == 2 and len(info["transfer"]["calibration"]) == 3
    assert info["checks"]["fold_parity_max_abs"] <= 1e-5 and info["checks"]["onnx_parity_max_abs"] <= 1e-4
    assert info["spec_digest"] == world["info"]["spec_digest"]  # the source's architecture, unchanged
    metrics = json.loads((out / B.METRICS).read_text())
    assert not set(metrics["split"]["calibration"]) & set(metrics["split"]["test"])
    assert "adapted by weighting" in (out / B.CARD).read_text()
    capsys.readouterr()
    assert cli(["evaluate", str(out), "--data", str(world["target"]), "--out", str(world["root"] / "ev")]) == 0
    # the adapted model is itself a source
    rc = cli(
        [
            "transfer",
            str(out),
            "--data",
            str(world["target"]),
            "--method",
            "head",
            "--shots",
            "1",
            "--protocol",
            "personalise",
            "--no-track",
            "--results",
            str(world["root"] / "r3"),
            *FAST,
        ]
    )
    assert rc == 0


def test_trial_source_is_nested_under_its_run(world: dict[str, Any]) -> None:
    uri = f"sqlite:///{(world['workdir'] / 'mlflow.db').resolve()}"
    run_id = world["info"]["source"]["trial_run_id"]
    rc = cli(
        [
            "transfer",
            run_id,
            "--data",
            str(world["target"]),
            "--method",
            "weighting",
            "--shots",
            "1",
            "--protocol",
            "personalise",
            "--workdir",
            str(world["workdir"]),
            "--results",
            str(world["root"] / "r4"),
            *FAST,
        ]
    )
    assert rc == 0
    (run,) = transfer_runs(uri)
    assert run.data.tags["mlflow.parentRunId"] == run_id
    assert run.info.experiment_id == MlflowClient(uri).get_run(run_id).info.experiment_id


def test_bad_inputs_are_one_line(world: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = [
        str(world["bundle"]),
        "--data",
        str(world["target"]),
        "--workdir",
        str(tmp_path / "w"),
        "--results",
        str(tmp_path / "r"),
        *FAST,
    ]
    one_line_error(capsys, cli(["transfer", *base, "--method", "prune"]), "unknown", "weighting")
    one_line_error(capsys, cli(["transfer", *base, "--shots", "400"]), "fewer than --shots 400")
    one_line_error(capsys, cli(["transfer", *base, "--protocol", "random-windows"]), "--protocol random-windows")
    ppg = write_target(tmp_path / "ppg", channel="ppg")
    one_line_error(capsys, cli(["transfer", *base[:1], "--data", str(ppg), *base[3:]]), "no channel(s) ecg")
    slow = write_target(tmp_path / "slow", decimate=4)  # 32 Hz: below what the source's 0.5-40 Hz band-pass needs
    one_line_error(capsys, cli(["transfer", *base[:1], "--data", str(slow), *base[3:]]), "sampled at 32 Hz")
    one = write_target(tmp_path / "one", classes=("baseline",))
    one_line_error(capsys, cli(["transfer", *base[:1], "--data", str(one), *base[3:]]), "one class only")
    altered = tmp_path / "altered"
    shutil.copytree(world["bundle"], altered)
    (altered / B.MODEL_TS).write_bytes((altered / B.MODEL_TS).read_bytes() + b"\0")
    one_line_error(capsys, cli(["transfer", str(altered), *base[1:]]), "checksum mismatch: model.ts")
    one_line_error(capsys, cli(["transfer", *base, "--out", str(tmp_path / "o")]), "--out writes one adapted model")
    assert (
        not (tmp_path / "w" / "mlflow.db").exists() or transfer_runs(f"sqlite:///{tmp_path / 'w' / 'mlflow.db'}") == []
    )
    assert not (tmp_path / "r").exists() and not (tmp_path / "o").exists()


def test_transfer_never_imports_a_search_backend(world: dict[str, Any], tmp_path: Path) -> None:
    code = (
        "import sys\nfrom ape_nas.cli import main\n"
        f"rc = main(['transfer', {str(world['bundle'])!r}, '--data', {str(world['target'])!r}, '--method', 'head', "
        f"'--shots', '1', '--protocol', 'personalise', '--no-track', '--results', {str(tmp_path)!r}, '--steps', '3', "
        "'--repeats', '1'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'ray') or m.startswith("
        "('ape_nas.backends', 'ape_nas.sweep', 'ape_nas.workers', 'lightning')))\n"
        "print(rc, bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stdout + done.stderr
