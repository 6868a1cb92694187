"""Sweeps that cannot silently go wrong (issue 8): a study bound to its data and protocol, resumes that add new
trials, clean interrupts, nothing half-written after a late error, flags reported as typed, one study per
`status`. Real SQLite Optuna studies and MLflow stores, real training on the synthetic benchmark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from _common import QUICKSTART, ROOT, SMALL, status_json, sweep_runs
from mlflow.tracking import MlflowClient

from ape_nas.cli import main

pytestmark = pytest.mark.slow
RANDOM = ["--set", "backend.sampler=random", "--set", "backend.sampler_options={}"]
QUICK = [*SMALL, "--set", "training.max_epochs=2", "--no-progress"]


def _sweep(workdir: Path, *extra: str) -> int:
    return main(["sweep", QUICKSTART, "--workdir", str(workdir), *QUICK, *extra])


def _status(workdir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    return status_json(workdir, capsys, *SMALL, "--set", "training.max_epochs=2", *extra)


def _snapshot(workdir: Path) -> dict:
    """Everything a sweep writes: the file list, every study with its trials, every MLflow run and its status."""
    if not workdir.exists():
        return {"exists": False}
    files = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))
    studies = {}
    db = workdir / "optuna.db"
    if db.exists():
        storage = f"sqlite:///{db}"
        for summary in optuna.get_all_study_summaries(storage):
            study = optuna.load_study(study_name=summary.study_name, storage=storage)
            studies[summary.study_name] = [(t.number, t.state.name) for t in study.trials]
    runs = {}
    if (workdir / "mlflow.db").exists():
        client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
        for exp in client.search_experiments():
            for run in client.search_runs([exp.experiment_id], max_results=1000):
                runs[run.info.run_id] = (exp.name, run.info.status, run.info.run_name)
    return {"exists": True, "files": files, "studies": studies, "runs": runs}


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work directory with a finished 2-trial sweep (random sampler)."""
    workdir = tmp_path_factory.mktemp("safety") / "w"
    assert _sweep(workdir, "--trials", "2", *RANDOM) == 0
    return workdir


# --- 1. a study never mixes trials made on different data ------------------------------------------------


def test_other_data_on_the_same_study_is_refused_with_the_keys_that_differ(
    swept: Path, capsys: pytest.CaptureFixture[str]
):
    before = _snapshot(swept)
    capsys.readouterr()
    assert _sweep(swept, "--trials", "1", *RANDOM, "--set", "data.params.subjects=9") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "study 'quickstart'" in err and "data fingerprint" in err and "split" in err
    assert "--new-study" in err and "--set name=quickstart-2" in err
    assert _snapshot(swept) == before  # nothing written

    assert _sweep(swept, "--trials", "1", *RANDOM, "--set", "protocol.val_subjects=3") == 2
    err = capsys.readouterr().err
    assert "protocol.val_subjects (2 → 3)" in err and "data fingerprint" not in err
    assert _snapshot(swept) == before


def test_new_study_continues_under_a_derived_name_and_resumes_it(swept: Path, capsys: pytest.CaptureFixture[str]):
    other = ["--set", "data.params.subjects=9", *RANDOM]
    capsys.readouterr()
    assert _sweep(swept, "--trials", "1", *other, "--new-study") == 0
    out = capsys.readouterr()
    assert "study 'quickstart-2'" in out.err
    assert _sweep(swept, "--trials", "1", *other, "--new-study") == 0  # the same command: the same derived study
    derived = status_json(swept, capsys, *SMALL, "--set", "training.max_epochs=2", *other, "--set", "name=quickstart-2")
    assert [t["number"] for t in derived["trials"]] == [0, 1]
    original = _status(swept, capsys)
    assert len(original["trials"]) == 2  # untouched
    assert derived["mlflow_experiment_id"] != original["mlflow_experiment_id"]


def test_best_never_compares_trials_across_data_fingerprints(swept: Path, tmp_path: Path, capsys):
    """A study from before identities that holds trials of two data sets: best stays with the study's data."""
    import shutil

    workdir = tmp_path / "w"
    shutil.copytree(swept, workdir)
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    study = optuna.load_study(study_name="quickstart", storage=storage)
    best = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    foreign = optuna.trial.create_trial(
        params=best.params,
        distributions=best.distributions,
        value=0.999,
        user_attrs={**best.user_attrs, "data_fingerprint": "0" * 20, "mlflow_run_id": "elsewhere"},
    )
    study.add_trial(foreign)
    status = _status(workdir, capsys)
    assert status["best"]["number"] == best.number and status["best"]["value"] == pytest.approx(best.value)
    capsys.readouterr()
    assert (
        main(["best", QUICKSTART, "--workdir", str(workdir), "--json", *SMALL, "--set", "training.max_epochs=2"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["number"] == best.number


# --- 2. resuming adds new trials -----------------------------------------------------------------------------


def test_two_resumes_with_the_random_sampler_train_four_distinct_specs(tmp_path: Path, capsys):
    for _ in range(2):
        assert _sweep(tmp_path, "--trials", "2", *RANDOM) == 0
    trials = _status(tmp_path, capsys)["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    params = [json.dumps(t["params"], sort_keys=True) for t in trials]
    assert len(set(params)) == 4, params
    study = optuna.load_study(study_name="quickstart", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert len({t.user_attrs["spec_digest"] for t in study.trials}) == 4


def test_the_sampler_seed_follows_the_trials_already_in_the_study():
    from ape_nas.backends.optuna_backend import derived_seed

    assert derived_seed(7, 0) == 7  # a new study: the experiment's seed, as before
    assert len({derived_seed(7, n) for n in range(50)}) == 50


def test_a_spec_identical_to_a_finished_one_is_not_retrained(swept: Path, tmp_path: Path, capsys):
    import shutil

    from ape_nas.sweep import open_sweep, prepare_sweep

    workdir = tmp_path / "w"
    shutil.copytree(swept, workdir)
    sets = [a for a in (*SMALL, "--set", "training.max_epochs=2", *RANDOM) if a != "--set"]
    plan = prepare_sweep(QUICKSTART, overrides=sets, workdir=workdir)
    session = open_sweep(plan)
    study = plan.backend.study
    first = next(t for t in study.trials if t.state.name == "COMPLETE")
    study.enqueue_trial(first.params)
    runs_before = len(session.tracker.trial_runs())
    started = time.perf_counter()
    plan.backend.run(session.runner, 1, None)
    elapsed = time.perf_counter() - started
    session.tracker.finish_parent()
    twin = plan.backend.study.trials[-1]
    assert twin.state.name == "COMPLETE" and twin.value == first.value
    assert twin.user_attrs["duplicate_of"] == first.number
    assert twin.user_attrs["mlflow_run_id"] == first.user_attrs["mlflow_run_id"]
    assert len(session.tracker.trial_runs()) == runs_before  # no new training run
    assert elapsed < 2.0


# --- 3. interrupts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", ["sweep", "worker"])
def test_an_interrupt_during_a_trial_leaves_nothing_running(tmp_path: Path, capsys, signum: int, command: str):
    longer = ["--set", "training.max_epochs=200", "--set", "training.patience=200"]
    extra = ["--storage", f"journal://{tmp_path / 'study.log'}"] if command == "worker" else ["--no-progress"]
    args = [command, QUICKSTART, "--workdir", str(tmp_path), "--trials", "3", *SMALL, *longer, *extra]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ape_nas", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    status_args = [*SMALL, *longer, *extra[:2]] if command == "worker" else [*SMALL, *longer]
    deadline = time.monotonic() + 120
    running = False
    while time.monotonic() < deadline and not running:
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()[0]
        try:
            status = status_json(tmp_path, capsys, *status_args)
        except (AssertionError, json.JSONDecodeError):
            continue
        running = any(t["state"] == "running" and t["mlflow_run_id"] for t in status["trials"])
    assert running, "no trial started"
    time.sleep(1.5)  # inside Lightning's fit
    os.kill(proc.pid, signum)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 128 + signum, out
    assert "interrupted — run the same command to continue" in out
    assert "Traceback" not in out

    status = status_json(tmp_path, capsys, *status_args)
    name = signal.Signals(signum).name
    assert [t["state"] for t in status["trials"]] == ["failed"]
    _, parents, trials = sweep_runs(status)
    assert [p.info.status for p in parents] == ["KILLED"]
    assert [r.info.status for r in trials] == ["FAILED"]
    assert trials[0].data.tags["ape_nas.note"] == f"interrupted ({name})"
    # running the same command continues the study
    if command == "sweep":
        assert main([*args[:5], "1", *args[6:]]) == 0
        assert [t["number"] for t in status_json(tmp_path, capsys, *status_args)["trials"]] == [0, 1]


# --- 4. late errors leave the work directory as it was -------------------------------------------------------

BAD = {
    "too many test subjects": (
        ["--set", "data.params.subjects=16", "--set", "protocol.test_subjects=14"],
        [
            "--set protocol.test_subjects=14: protocol.test_subjects: 14 test + 2 validation subjects",
        ],
    ),
    "window longer than recordings": (
        ["--set", "data.window_s=400"],
        [
            "--set data.window_s=400: data.window_s: 400 s is longer than every recording",
        ],
    ),
    "negative trials": (["--trials", "-3"], ["--trials -3: budget.trials"]),
    "misspelt backend": (["--backend", "rey"], ["--backend rey: backend.name", "optuna, ray"]),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("where", ["fresh", "existing"])
def test_a_bad_request_writes_nothing_and_says_one_line(swept: Path, tmp_path: Path, capsys, case: str, where: str):
    workdir = swept if where == "existing" else tmp_path / "new"
    before = _snapshot(workdir)
    args, expected = BAD[case]
    capsys.readouterr()
    assert _sweep(workdir, *RANDOM, *args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ape-nas: error: "), captured
    for text in expected:
        assert text in err
    assert "--set budget" not in err and "--set backend.name" not in err and "{" not in err
    assert "Warning" not in captured.err + captured.out
    assert _snapshot(workdir) == before


def test_the_protocol_key_in_the_file_is_named_with_its_line(tmp_path: Path, capsys):
    import yaml

    doc = yaml.safe_load(Path(QUICKSTART).read_text())
    doc["space"] = str(ROOT / "search_spaces" / "quickstart.yaml")
    too_many = doc["data"]["params"]["subjects"] - 2  # with the validation subjects, none left to train
    doc["protocol"]["test_subjects"] = too_many
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump(doc, sort_keys=False))
    line = next(i for i, t in enumerate(exp.read_text().splitlines(), 1) if "test_subjects" in t)
    capsys.readouterr()
    code = main(["sweep", str(exp), "--workdir", str(tmp_path / "w"), "--no-progress"])
    assert code == 2
    assert f"{exp}:{line}: protocol.test_subjects: {too_many} test + " in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("where", ["fresh", "existing"])
@pytest.mark.parametrize("failure", ["error", "interrupt"])
def test_a_failure_after_writing_began_is_undone(swept: Path, tmp_path: Path, monkeypatch, capsys, where, failure):
    """The HRV baseline runs after the study and the MLflow parent run exist: make it fail there."""
    import ape_nas.sweep as sweep_module
    from ape_nas.errors import UserError
    from ape_nas.interrupts import Interrupted

    workdir = swept if where == "existing" else tmp_path / "new"
    before = _snapshot(workdir)
    parent_before = _status(swept, capsys)["parent_run_id"] if where == "existing" else None

    def broken(*args, **kwargs):
        raise UserError("baseline exploded") if failure == "error" else Interrupted(signal.SIGINT)

    monkeypatch.setattr(sweep_module, "hrv_baseline", broken)
    code = _sweep(workdir, "--trials", "1", *RANDOM)
    assert code == (2 if failure == "error" else 130)
    assert _snapshot(workdir) == before
    if parent_before is not None:
        status = _status(workdir, capsys)
        assert status["parent_run_id"] == parent_before and len(status["trials"]) == 2


def test_skipped_subjects_are_summarised_in_one_line():
    from ape_nas.data.prepare import skip_summary

    skipped = {
        "S9": "shorter than one window (100 s < window_s 400 s)",
        "S1": "shorter than one window (90 s < window_s 400 s)",
        "S10": "no usable labelled windows (dropped: label 3)",
    }
    text = skip_summary(skipped, 16)
    assert text == (
        "3 of 16 subjects skipped: shorter than one window (S1, S9); "
        "no usable labelled windows (dropped: label 3) (S10)"
    )


# --- 7. which study `status` shows ---------------------------------------------------------------------------


def test_status_refuses_to_pick_one_of_two_backends_studies(swept: Path, tmp_path: Path, capsys):
    import shutil

    workdir = tmp_path / "w"
    shutil.copytree(swept, workdir)
    ray_study = optuna.create_study(study_name="quickstart", storage=f"sqlite:///{workdir / 'ray.db'}")
    ray_study.set_user_attr("ape_nas.backend", "ray")
    capsys.readouterr()
    args = ["status", QUICKSTART, "--workdir", str(workdir), *SMALL, "--set", "training.max_epochs=2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "optuna (" in err and "ray (" in err and "--backend optuna or --backend ray" in err
    assert main([*args, "--backend", "optuna", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["trials"]) == 2
    assert main([*args, "--backend", "ray", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == []


def test_a_signal_inside_a_finaliser_is_delivered_not_dropped() -> None:
    """Python drops an exception raised in ``__del__`` or a weakref callback ("Exception ignored in ..."); a Ctrl+C
    that lands there must still stop the command (CI once saw a nested sweep run to its end after SIGINT)."""
    import signal
    import time

    from ape_nas.interrupts import Interrupted, catch_signals, received

    class Finalised:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)  # the handler runs inside __del__

    with pytest.raises(Interrupted), catch_signals():
        Finalised()  # dropped at once: __del__ runs here
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            time.sleep(0.01)
    assert received() == signal.SIGINT
