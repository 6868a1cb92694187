"""End to end: `ape-nas sweep` on the synthetic benchmark with a real SQLite Optuna study and MLflow store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from _common import QUICKSTART, ROOT, SMALL, status_json, sweep_runs
from mlflow.tracking import MlflowClient

from ape_nas.cli import main
from ape_nas.objective import run_trial
from ape_nas.spec import TrialSpec

pytestmark = pytest.mark.slow
HEAD = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def _status(workdir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    return status_json(workdir, capsys, *SMALL, *extra)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("sweep") / "w"
    assert main(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "4", "--no-progress", *SMALL]) == 0
    return workdir


def test_sweep_records_one_parent_and_a_nested_run_per_trial(swept: Path, capsys: pytest.CaptureFixture[str]):
    status = _status(swept, capsys)
    assert len(status["trials"]) == 4
    client, parents, trials = sweep_runs(status)
    assert len(parents) == 1 and parents[0].info.run_id == status["parent_run_id"]
    assert len(trials) == 4
    for run in trials:
        tags, params = run.data.tags, run.data.params
        assert tags["mlflow.parentRunId"] == status["parent_run_id"]
        assert tags["ape_nas.state"] in {"complete", "pruned"}
        assert run.info.status == "FINISHED"
        assert {"model", "seed", "optim.lr", "optim.batch_size"} <= set(params)
        assert any(k.startswith("arch.") for k in params)
        assert tags["ape_nas.seed"] == "7" and len(tags["data_fingerprint"]) == 20
        assert tags["mlflow.source.git.commit"] == HEAD
        train, val, test = (set(tags[f"split.{p}"].split(",")) for p in ("train", "val", "test"))
        assert len(val) == 2 and len(test) == 2 and not (train & val or train & test or val & test)
        history = client.get_metric_history(run.info.run_id, "val_f1_macro")
        assert [m.step for m in history] == list(range(len(history))) and len(history) >= 1
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "spec.yaml" in artifacts
        if tags["ape_nas.state"] == "complete":
            assert "model.pt" in artifacts
            assert run.data.metrics["score"] == pytest.approx(max(m.value for m in history))
            assert "test_f1_macro" in run.data.metrics
    parent = parents[0]
    best = status["best"]
    assert parent.data.tags["best_run_id"] == best["mlflow_run_id"]
    assert parent.data.metrics["best_val_f1_macro"] == pytest.approx(best["value"])
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/parallel_coordinate.png"} <= plots


def test_status_json_agrees_with_mlflow(swept: Path, capsys: pytest.CaptureFixture[str]):
    status = _status(swept, capsys)
    assert status["storage"].startswith("sqlite:///") and status["tracking_uri"].startswith("sqlite:///")
    _, _, trials = sweep_runs(status)
    by_id = {r.info.run_id: r for r in trials}
    for t in status["trials"]:
        run = by_id[t["mlflow_run_id"]]
        assert run.data.tags["ape_nas.state"] == t["state"]
        assert int(run.data.tags["ape_nas.trial_number"]) == t["number"]
        if t["state"] == "complete":
            assert run.data.metrics["score"] == pytest.approx(t["value"])
    assert sum(status["counts"].values()) == len(status["trials"])


def test_rerun_resumes_the_same_study_and_parent(swept: Path, capsys: pytest.CaptureFixture[str]):
    before = _status(swept, capsys)
    assert main(["sweep", QUICKSTART, "--workdir", str(swept), "--trials", "2", "--no-progress", *SMALL]) == 0
    after = _status(swept, capsys)
    assert [t["number"] for t in after["trials"]] == list(range(len(before["trials"]) + 2))
    assert after["parent_run_id"] == before["parent_run_id"]
    assert after["mlflow_experiment_id"] == before["mlflow_experiment_id"]
    _, parents, trials = sweep_runs(after)
    assert len(parents) == 1 and len(trials) == len(after["trials"])
    assert parents[0].info.status == "FINISHED"


def test_same_seed_and_spec_give_the_same_validation_score(swept: Path, capsys: pytest.CaptureFixture[str]):
    status = _status(swept, capsys)
    best = status["best"]
    client = MlflowClient(status["tracking_uri"])
    spec_path = client.download_artifacts(best["mlflow_run_id"], "spec.yaml", str(swept / "dl"))
    spec = TrialSpec.from_dict(yaml.safe_load(Path(spec_path).read_text()))
    again = run_trial(spec, cache_dir=swept / "cache")
    assert again.score == pytest.approx(best["value"], abs=1e-6)


def test_best_prints_the_best_spec(swept: Path, capsys: pytest.CaptureFixture[str]):
    status = _status(swept, capsys)
    assert main(["best", QUICKSTART, "--workdir", str(swept), "--json", *SMALL]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["number"] == status["best"]["number"]
    assert best["spec"]["model"] == status["best"]["model"]
    assert set(best["test_metrics"]) == {"test_f1_macro", "test_balanced_accuracy", "test_auroc"}
    for metric, (low, high) in best["test_ci"].items():  # subject-bootstrap interval around each test metric
        assert low <= best["test_metrics"][f"test_{metric}"] <= high
    assert main(["best", QUICKSTART, "--workdir", str(swept), *SMALL]) == 0
    assert "95% subject-bootstrap intervals" in capsys.readouterr().out


def test_pruned_trials_are_tagged_pruned_never_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # ThresholdPruner with a lower bound no score can reach prunes every trial after its first epoch.
    args = ["--set", "backend.pruner=threshold", "--set", "backend.pruner_options={lower: 1.5, n_warmup_steps: 0}"]
    assert main(["sweep", QUICKSTART, "--workdir", str(tmp_path), "--trials", "2", "--no-progress", *SMALL, *args]) == 0
    status = _status(tmp_path, capsys, *args)
    assert [t["state"] for t in status["trials"]] == ["pruned", "pruned"]
    client, _, trials = sweep_runs(status)
    for run in trials:
        assert run.data.tags["ape_nas.state"] == "pruned"
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "val_f1_macro")) == 1


def test_a_failing_trial_does_not_stop_the_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    space = yaml.safe_load((ROOT / "search_spaces" / "quickstart.yaml").read_text())
    space["models"]["cnn1d"]["kernel_size"] = {"type": "categorical", "choices": [7, 8]}  # 8 is even: invalid
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump(space))
    args = ["--set", f"space={space_path}", "--set", "backend.sampler=random", "--set", "backend.sampler_options={}"]
    workdir = tmp_path / "w"
    assert main(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "6", "--no-progress", *SMALL, *args]) == 0
    status = _status(workdir, capsys, *args)
    states = [t["state"] for t in status["trials"]]
    assert len(states) == 6 and "failed" in states and set(states) - {"failed"}
    _, _, trials = sweep_runs(status)
    failed = [r for r in trials if r.data.tags["ape_nas.state"] == "failed"]
    assert len(failed) == states.count("failed")
    for run in failed:
        assert run.info.status == "FAILED"
        assert "kernel_size" in run.data.tags["ape_nas.note"]


def test_timeout_stops_starting_new_trials(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert (
        main(
            [
                "sweep",
                QUICKSTART,
                "--workdir",
                str(tmp_path),
                "--trials",
                "50",
                "--timeout",
                "1",
                "--no-progress",
                *SMALL,
            ]
        )
        == 0
    )
    status = _status(tmp_path, capsys)
    assert 1 <= len(status["trials"]) < 5


def test_models_and_spaces_commands_list_the_registry_and_files(capsys: pytest.CaptureFixture[str]):
    from ape_nas.models import get_family, list_models
    from ape_nas.models.ops import OPS, op_params

    assert main(["models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert set(models) == set(list_models())
    for name, info in models.items():
        assert info["arch"] == json.loads(json.dumps(get_family(name).arch_defaults))
    assert set(models["searched1d"]["operations"]) == set(OPS)
    assert models["searched1d"]["operations"]["tcn"]["params"]["dilation"] == op_params("tcn")["dilation"]
    assert main(["spaces", "--dir", str(ROOT / "search_spaces"), "--json"]) == 0
    spaces = json.loads(capsys.readouterr().out)
    assert set(spaces) == {p.stem for p in (ROOT / "search_spaces").glob("*.yaml")}
    assert set(spaces["mixed"]["families"]) == set(list_models())
    assert spaces["mixed"]["parameters"]["optim.lr"].startswith("float [")


def test_kfold_protocol_averages_folds_and_records_every_partition(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    args = [
        "--set",
        "protocol.kind=kfold",
        "--set",
        "protocol.folds=3",
        "--set",
        "protocol.val_subjects=null",
        "--set",
        "backend.pruner=wilcoxon",
        "--set",
        "backend.pruner_options={}",
        "--set",
        "training.max_epochs=2",
    ]
    assert main(["sweep", QUICKSTART, "--workdir", str(tmp_path), "--trials", "2", "--no-progress", *SMALL, *args]) == 0
    status = _status(tmp_path, capsys, *args)
    client, _, trials = sweep_runs(status)
    assert len(trials) == 2
    for run in trials:
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["split.protocol"] == "kfold" and tags["split.folds"] == "3"
        test = set(tags["split.test"].split(","))
        vals = [set(tags[f"split.fold{k}.val"].split(",")) for k in range(3)]
        trains = [set(tags[f"split.fold{k}.train"].split(",")) for k in range(3)]
        assert len(test) == 2
        assert set().union(*vals) == trains[0] | vals[0]  # every non-test subject validates exactly once
        assert sum(len(v) for v in vals) == 6
        for v, t in zip(vals, trains, strict=True):
            assert not (v & t or v & test or t & test)
        if tags["ape_nas.state"] == "complete":
            folds = [metrics[f"fold{k}.score"] for k in range(3)]
            assert metrics["score"] == pytest.approx(sum(folds) / 3)
            assert len(client.get_metric_history(run.info.run_id, "fold2.val_f1_macro")) >= 1
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
            assert artifacts == {f"checkpoints/fold{k}" for k in range(3)}


def test_bf16_mixed_precision_trains_deterministically_on_cpu():
    import optuna

    from ape_nas.experiments import load_experiment
    from ape_nas.space import load_space

    sets = [s for s in SMALL if s != "--set"] + ["training.precision=bf16-mixed", "training.max_epochs=2"]
    exp = load_experiment(QUICKSTART, sets)
    spec = load_space(exp.space_path).sample(optuna.create_study().ask(), exp.base())
    assert spec.training["precision"] == "bf16-mixed"
    first, second = run_trial(spec), run_trial(spec)
    assert first.score == second.score and 0.0 <= first.score <= 1.0


def test_reproduce_best_says_match_and_logs_a_tagged_run(swept: Path, capsys: pytest.CaptureFixture[str]):
    status = _status(swept, capsys)
    capsys.readouterr()
    assert main(["reproduce", QUICKSTART, "--workdir", str(swept), "--json", *SMALL]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "MATCH" and out["abs_diff"] <= 1e-6 and not out["data_changed"]
    assert out["source_run"] == status["best"]["mlflow_run_id"]
    assert out["recorded"] == pytest.approx(status["best"]["value"])
    run = MlflowClient(status["tracking_uri"]).get_run(out["run_id"])
    assert run.data.tags["ape_nas.role"] == "reproduce" and run.data.tags["ape_nas.source_run"] == out["source_run"]
    assert run.data.tags["ape_nas.reproduce.verdict"] == "MATCH"
    assert run.data.metrics["reproduced_score"] == pytest.approx(run.data.metrics["recorded_score"], abs=1e-6)


def test_reproduce_final_trains_on_non_test_subjects_and_scores_test_once(
    swept: Path, capsys: pytest.CaptureFixture[str]
):
    status = _status(swept, capsys)
    best_run = MlflowClient(status["tracking_uri"]).get_run(status["best"]["mlflow_run_id"])
    capsys.readouterr()
    assert main(["reproduce", QUICKSTART, "--workdir", str(swept), "--final", "--json", *SMALL]) == 0
    out = json.loads(capsys.readouterr().out)
    tags = best_run.data.tags
    assert set(out["train_subjects"]) == set(tags["split.train"].split(",")) | set(tags["split.val"].split(","))
    assert set(out["test_subjects"]) == set(tags["split.test"].split(","))
    assert out["epochs"] == int(best_run.data.metrics["best_epoch"]) + 1
    assert set(out["per_subject"]) == set(out["test_subjects"])
    assert 0.0 <= out["test_metrics"]["test_f1_macro"] <= 1.0


def test_reproduce_unknown_trial_is_a_user_error(swept: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["reproduce", QUICKSTART, "--workdir", str(swept), "--trial", "999", *SMALL]) == 2
    assert "no trial 999" in capsys.readouterr().err
