"""Multi-objective search (issue 11): cost objectives and constraints, rejection before training, Pareto fronts in
status/best/the parent run, export of any front point, and what multi-objective studies refuse (pruning).

One real sweep (synthetic data, real SQLite Optuna study, real MLflow SQLite store) is shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from ape_nas.cli import main

EXPERIMENT = """\
name: mo
seed: 3
space: space.yaml
data:
  benchmark: synthetic
  params: {{subjects: 8, minutes_per_state: 1.0, fs: 128.0, states: [baseline, stress], seed: 7}}
  channels: [ecg]
  bandpass_hz: [0.5, 40.0]
  window_s: 10.0
  stride_s: 5.0
protocol: {{kind: holdout, test_subjects: 2, val_subjects: 2}}
objective:
  metrics: [f1_macro, params]
  constraints: {{params_max: {limit}}}
training: {{max_epochs: 1, patience: 1}}
budget: {{trials: {trials}}}
backend: {{sampler: {sampler}, sampler_options: {{seed: 5}}{pruner}}}
"""

SPACE = """\
models:
  cnn1d:
    depth: 2
    width: {type: categorical, choices: [2, 4, 48, 64]}
    kernel_size: 3
    pool: 4
optim:
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
"""
LIMIT = 2000  # cnn1d widths 48 and 64 (>= 48·3·1.5 + 48·72·3 conv weights) are over it; widths 2 and 4 under


def write(folder: Path, *, trials: int = 6, sampler: str = "random", pruner: str = "", limit: int = LIMIT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "space.yaml").write_text(SPACE)
    text = EXPERIMENT.format(limit=limit, trials=trials, sampler=sampler, pruner=pruner)
    (folder / "mo.yaml").write_text(text)
    return folder / "mo.yaml"


def _json(capsys: Any, *argv: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("mo")
    exp = write(folder)
    workdir = folder / "runs"
    assert main(["sweep", str(exp), "--workdir", str(workdir), "--no-progress"]) == 0
    study = optuna.load_study(study_name="mo", storage=f"sqlite:///{workdir / 'optuna.db'}")
    return {"exp": exp, "workdir": workdir, "study": study}


def test_a_spec_over_a_cost_constraint_is_rejected_before_training(swept: dict[str, Any]):
    from mlflow.tracking import MlflowClient

    study = swept["study"]
    rejected = [t for t in study.trials if "rejected" in t.user_attrs]
    trained = [t for t in study.trials if "rejected" not in t.user_attrs]
    assert rejected, "the space's width-48 networks are over params_max: some must have been sampled"
    assert len(trained) == 6, "rejected specs do not use the budget: 6 trained trials"
    client = MlflowClient(f"sqlite:///{swept['workdir'] / 'mlflow.db'}")
    for t in rejected:
        assert t.state.name == "PRUNED"
        assert f"> params_max {LIMIT / 1000:.3g}k" in t.user_attrs["rejected"]
        assert t.user_attrs["cost"]["params"] > LIMIT
        assert t.user_attrs["constraints"][0] > 0
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.data.tags["ape_nas.state"] == "rejected"
        assert run.data.metrics["cost_params"] == t.user_attrs["cost"]["params"]
        assert not [k for k in run.data.metrics if k.startswith(("val_", "train_", "test_"))], "no epoch was run"
    for t in trained:
        assert t.user_attrs["cost"]["params"] <= LIMIT
        assert t.user_attrs["constraints"][0] <= 0


def test_status_and_best_list_exactly_optunas_best_trials(swept: dict[str, Any], capsys):
    study = swept["study"]
    expected = sorted(t.number for t in study.best_trials)
    exp, workdir = str(swept["exp"]), str(swept["workdir"])
    status = _json(capsys, "status", exp, "--workdir", workdir, "--json")
    assert sorted(p["trial"] for p in status["pareto_front"]) == expected
    assert status["objectives"] == ["f1_macro", "params"]
    assert status["counts"]["rejected"] == sum("rejected" in t.user_attrs for t in study.trials)
    best = _json(capsys, "best", exp, "--workdir", workdir, "--json")
    assert sorted(p["trial"] for p in best["pareto_front"]) == expected
    by_number = {t.number: t for t in study.trials}
    for point in best["pareto_front"]:
        trial = by_number[point["trial"]]
        assert [point["values"]["f1_macro"], point["values"]["params"]] == trial.values
        assert point["spec"] == trial.user_attrs["spec"]
        assert point["cost"] == trial.user_attrs["cost"]


def test_the_parent_run_has_the_front_and_its_plot(swept: dict[str, Any]):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{swept['workdir'] / 'mlflow.db'}")
    parent_id = swept["study"].user_attrs["mlflow_parent_run_id"]
    names = {a.path for a in client.list_artifacts(parent_id)} | {
        a.path for a in client.list_artifacts(parent_id, "plots")
    }
    assert {"pareto.json", "plots/pareto.png"} <= names
    local = client.download_artifacts(parent_id, "pareto.json")
    doc = json.loads(Path(local).read_text())
    assert sorted(p["trial"] for p in doc["front"]) == sorted(t.number for t in swept["study"].best_trials)
    assert doc["constraints"] == {"params_max": LIMIT}
    assert client.get_run(parent_id).data.metrics["pareto_size"] == len(doc["front"])


def test_show_prints_a_trials_architecture_and_cost(swept: dict[str, Any], capsys):
    number = swept["study"].best_trials[0].number
    capsys.readouterr()
    assert main(["show", str(swept["exp"]), "--trial", str(number), "--workdir", str(swept["workdir"])]) == 0
    out = capsys.readouterr().out
    assert f"trial {number} of study mo" in out
    assert "Conv1d" in out and "measured cost per window" in out and "latency_ms" in out


def test_any_front_point_exports_with_its_cost_on_the_card(swept: dict[str, Any], tmp_path: Path, capsys):
    point = max(swept["study"].best_trials, key=lambda t: t.values[1])  # not the default (most accurate) choice
    out = tmp_path / "bundle"
    argv = ["export", str(swept["exp"]), "--trial", str(point.number), "--out", str(out)]
    assert main([*argv, "--workdir", str(swept["workdir"]), "--no-register", "--latency-runs", "5"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["cost"]["params"] == point.user_attrs["cost"]["params"]
    assert metrics["cost"]["macs"] == point.user_attrs["cost"]["macs"]
    card = (out / "model_card.md").read_text()
    assert f"{metrics['cost']['macs']:,} multiply-accumulates per window" in card
    bundle = json.loads((out / "bundle.json").read_text())
    assert f"trial {point.number} of study mo" in bundle["source"]["how"]


def test_a_rejected_or_unknown_trial_cannot_be_exported(swept: dict[str, Any], tmp_path: Path, capsys):
    rejected = next(t for t in swept["study"].trials if "rejected" in t.user_attrs)
    for number in (rejected.number, 999):
        argv = ["export", str(swept["exp"]), "--trial", str(number), "--out", str(tmp_path / f"b{number}")]
        capsys.readouterr()
        assert main([*argv, "--workdir", str(swept["workdir"]), "--no-register"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--trial {number}" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / f"b{rejected.number}").exists()


# ---- what a multi-objective experiment refuses, in one line --------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "where", "words"),
    [
        ({"pruner": ", pruner: median"}, "backend.pruner", "cannot prune a trial of a multi-objective study"),
        ({"sampler": "cmaes"}, "backend.sampler", "handles one objective"),
    ],
    ids=["pruner", "cmaes"],
)
def test_a_multi_objective_study_refuses_what_it_cannot_do(tmp_path: Path, capsys, kwargs, where, words):
    exp = write(tmp_path, **kwargs)
    capsys.readouterr()
    assert main(["sweep", str(exp), "--workdir", str(tmp_path / "runs"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "mo.yaml:" in err[0] and where in err[0] and words in err[0]
    assert not (tmp_path / "runs" / "optuna.db").exists(), "nothing written"


@pytest.mark.parametrize(
    ("objective", "where", "words"),
    [
        ("{metrics: [params, f1_macro]}", "objective.metrics.0", "expected a validation metric"),
        ("{metrics: [f1_macro, flops]}", "objective.metrics.1", "expected a cost metric"),
        ("{metrics: [f1_macro, params], directions: [maximize, maximize]}", "objective.directions.1", "minimised"),
        ("{metric: auroc, metrics: [f1_macro, params]}", "objective.metric", "not the first of objective.metrics"),
        ("{metric: f1_macro, constraints: {param_max: 10}}", "objective.constraints.param_max", "params_max"),
        ("{metric: f1_macro, constraints: {params_max: -1}}", "objective.constraints.params_max", "positive"),
    ],
)
def test_objective_errors_name_file_line_and_key(tmp_path: Path, capsys, objective, where, words):
    from ape_nas.experiments import load_experiment

    exp = write(tmp_path)
    text = exp.read_text()
    start = text.index("objective:")
    end = text.index("training:")
    exp.write_text(text[:start] + f"objective: {objective}\n" + text[end:])
    with pytest.raises(Exception) as info:
        load_experiment(exp)
    message = str(info.value)
    assert "mo.yaml:" in message and where in message and words in message, message


def test_ray_refuses_several_objectives(tmp_path: Path):
    from ape_nas.experiments import load_experiment

    exp = write(tmp_path)
    with pytest.raises(Exception, match=r"objective\.metrics.*several objectives need backend optuna"):
        load_experiment(exp, ["backend.name=ray"])


def test_with_one_objective_the_default_pruner_is_still_median(tmp_path: Path):
    from ape_nas.experiments import load_experiment

    exp = write(tmp_path)
    one = load_experiment(exp, ["objective.metrics=[f1_macro]"])
    assert one.backend["pruner"] == "median" and not one.multi_objective
    several = load_experiment(exp)
    assert several.backend["pruner"] == "none" and several.directions == ["maximize", "minimize"]


def test_multi_objective_trials_report_nothing_to_a_pruner():
    """Optuna raises on ``trial.report`` in a multi-objective study; the handle answers "go on" instead."""
    from ape_nas.backends.optuna_backend import _Handle

    study = optuna.create_study(directions=["maximize", "minimize"])
    handle = _Handle(study.ask())
    assert handle.report(0.5, 0) is False
    single = _Handle(optuna.create_study(direction="maximize").ask())
    assert single.report(0.5, 0) is False


def test_the_front_is_the_non_dominated_set():
    from ape_nas.backends.base import TrialRecord
    from ape_nas.pareto import front

    def rec(n: int, acc: float, ms: float, state: str = "complete") -> TrialRecord:
        return TrialRecord(n, state, acc, 1.0, values=[acc, ms])

    records = [rec(0, 0.8, 5.0), rec(1, 0.7, 1.0), rec(2, 0.7, 2.0), rec(3, 0.8, 5.0), rec(4, 0.9, 9.0)]
    records.append(rec(5, 0.99, 0.1, state="pruned"))
    assert [r.number for r in front(records, ["maximize", "minimize"])] == [4, 0, 3, 1]
    study = optuna.create_study(directions=["maximize", "minimize"])
    for r in records[:5]:
        study.add_trial(optuna.trial.create_trial(values=r.values))
    assert sorted(t.number for t in study.best_trials) == sorted(r.number for r in front(records, study_dirs(study)))


def study_dirs(study: optuna.Study) -> list[str]:
    return [d.name.lower() for d in study.directions]
