"""The Ray Tune backend end to end: a real local Ray, the synthetic quickstart, SQLite study and MLflow store.

One Ray instance serves the in-process sweeps of this module (a sweep joins a Ray that is already running and
leaves it running); the interrupt test runs `ape-nas sweep` in a subprocess with its own local Ray.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from _common import QUICKSTART, ROOT, SMALL, status_json, sweep_runs

from ape_nas.cli import main
from ape_nas.errors import ConfigError
from ape_nas.experiments import load_experiment

RAY = ["--backend", "ray", "--no-progress"]
EXP_ARGS = ["--set", "backend.name=ray"]  # status/best read the study of the experiment's backend


def _status(workdir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    return status_json(workdir, capsys, *SMALL, *EXP_ARGS, *extra)


# --- fast checks: no trial runs ------------------------------------------------------------------------------


def test_status_reads_the_study_without_importing_ray(tmp_path: Path):
    from ape_nas.backends.ray_backend import RayBackend

    exp = load_experiment(QUICKSTART, ["backend.name=ray"])
    RayBackend(exp, tmp_path).open(create=True)
    code = (
        "import sys; from ape_nas.sweep import load_status; "
        f"exp, b = load_status({QUICKSTART!r}, workdir={str(tmp_path)!r}, overrides=['backend.name=ray']); "
        "assert b.records() == [] and b.attrs()['ape_nas.backend'] == 'ray'; "
        "assert 'ray' not in sys.modules, 'status imported ray'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ("{grace_perod: 2}", "backend.scheduler_options.grace_perod: unknown key (did you mean 'grace_period'?)"),
        ("{stop_last_trials: true}", "backend.scheduler_options.stop_last_trials: unknown key"),
        ("{grace_period: 9}", "AsyncHyperBandScheduler rejected"),  # grace 9 > max_t 8
    ],
)
def test_scheduler_options_are_checked(options: str, problem: str):
    from ape_nas.backends.ray_backend import RayBackend

    exp = load_experiment(QUICKSTART, ["backend.name=ray", f"backend.scheduler_options={options}"])
    with pytest.raises(ConfigError, match=r"--set backend\.scheduler_options=") as err:
        RayBackend(exp, Path("unused")).validate()
    assert problem in str(err.value)


def test_gpus_per_trial_needs_a_gpu_accelerator():
    from ape_nas.backends.ray_backend import RayBackend

    exp = load_experiment(QUICKSTART, ["backend.name=ray", "backend.gpus_per_trial=0.25"])
    with pytest.raises(ConfigError, match=r"training\.accelerator is cpu"):
        RayBackend(exp, Path("unused")).validate()
    exp = load_experiment(QUICKSTART, ["backend.name=ray", "backend.gpus_per_trial=0.25", "training.accelerator=gpu"])
    RayBackend(exp, Path("unused")).validate()  # fractional GPUs are fine
    exp = load_experiment(QUICKSTART, ["backend.name=ray", "training.accelerator=gpu"])
    with pytest.raises(ConfigError, match=r"no GPU is reserved for a trial"):
        RayBackend(exp, Path("unused")).validate()  # Ray would hide every GPU from the trial


@pytest.mark.parametrize("subjects", [6, 9])
def test_loso_scheduler_counts_the_folds_of_the_data(subjects: int):
    """max_t follows the data's subjects (one fold per subject left after the test subjects), not a guess of 10."""
    from ape_nas.backends.ray_backend import RayBackend
    from ape_nas.backends.raytune.schedulers import scheduler_kwargs

    loso = ["backend.name=ray", "protocol.kind=loso", "protocol.test_subjects=2", "protocol.val_subjects=null"]
    backend = RayBackend(load_experiment(QUICKSTART, loso), Path("unused"))
    backend.validate()  # before the data is known: options checked, no fold count
    assert backend.steps_per_trial() is None
    backend.use_subjects([f"S{i}" for i in range(subjects)])
    assert backend.steps_per_trial() == subjects - 2
    assert scheduler_kwargs("asha", {}, backend.steps_per_trial())["max_t"] == subjects - 3
    capped = RayBackend(load_experiment(QUICKSTART, [*loso, "protocol.max_folds=3"]), Path("unused"))
    capped.use_subjects([f"S{i}" for i in range(subjects)])
    assert capped.steps_per_trial() == 3


# --- sweeps on a real local Ray -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    from ape_nas.backends.ray_backend import init_ray

    init_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def swept(ray_cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("ray") / "w"
    assert main(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "4", *RAY, *SMALL]) == 0
    return workdir


@pytest.mark.slow
def test_ray_sweep_records_one_parent_and_a_nested_run_per_trial(swept: Path, capsys: pytest.CaptureFixture[str]):
    status = _status(swept, capsys)
    assert status["storage"] == f"sqlite:///{(swept / 'ray.db').resolve()}"
    assert [t["number"] for t in status["trials"]] == [0, 1, 2, 3]
    assert {t["state"] for t in status["trials"]} <= {"complete", "pruned"}
    client, parents, trials = sweep_runs(status)
    assert len(parents) == 1 and parents[0].info.run_id == status["parent_run_id"]
    assert parents[0].info.status == "FINISHED" and parents[0].data.tags["ape_nas.backend"] == "ray"
    assert len(trials) == 4
    by_id = {r.info.run_id: r for r in trials}
    for t in status["trials"]:
        run = by_id[t["mlflow_run_id"]]
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == status["parent_run_id"]
        assert tags["ape_nas.state"] == t["state"] and int(tags["ape_nas.trial_number"]) == t["number"]
        assert run.info.status == "FINISHED"
        assert tags.get("mlflow.source.git.commit") == parents[0].data.tags.get("mlflow.source.git.commit")
        assert {"model", "seed", "optim.lr"} <= set(run.data.params)
        history = client.get_metric_history(run.info.run_id, "val_f1_macro")
        assert [m.step for m in history] == list(range(len(history))) and history
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "spec.yaml" in artifacts
        if t["state"] == "complete":
            assert "model.pt" in artifacts
            assert run.data.metrics["score"] == pytest.approx(t["value"])
            assert "test_f1_macro" in run.data.metrics
    plots = {a.path for a in client.list_artifacts(status["parent_run_id"], "plots")}
    assert "plots/optimization_history.png" in plots
    assert sorted(os.listdir(swept / "ray" / "quickstart")) == ["run-001"]  # Ray's experiment folder
    # trials ran side by side: 2 at a time (backend.max_concurrent default), never more
    events = sorted([(r.info.start_time, 1) for r in trials] + [(r.info.end_time, -1) for r in trials])
    running = [sum(step for _, step in events[: i + 1]) for i in range(len(events))]
    assert max(running) == 2, events


@pytest.mark.slow
def test_best_reads_the_ray_study(swept: Path, capsys: pytest.CaptureFixture[str]):
    status = _status(swept, capsys)
    assert main(["best", QUICKSTART, "--workdir", str(swept), "--json", *SMALL, *EXP_ARGS]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["number"] == status["best"]["number"]
    assert set(best["test_metrics"]) == {"test_f1_macro", "test_balanced_accuracy", "test_auroc"}


@pytest.mark.slow
def test_status_and_best_find_the_ray_study_without_backend_flag(swept: Path, capsys: pytest.CaptureFixture[str]):
    """The experiment file says optuna; the sweep ran with --backend ray: status/best look in ray.db too."""
    explicit = _status(swept, capsys)
    capsys.readouterr()
    assert main(["status", QUICKSTART, "--workdir", str(swept), "--json", *SMALL]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["storage"] == explicit["storage"] and found["storage"].endswith("/ray.db")
    assert [t["number"] for t in found["trials"]] == [t["number"] for t in explicit["trials"]]
    assert main(["best", QUICKSTART, "--workdir", str(swept), "--json", *SMALL]) == 0
    assert json.loads(capsys.readouterr().out)["number"] == explicit["best"]["number"]
    # naming the backend (or a storage) means exactly that store: no fallback
    assert main(["status", QUICKSTART, "--workdir", str(swept), *SMALL, "--set", "backend.name=optuna"]) == 2
    assert "optuna.db does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_rerun_of_a_finished_sweep_adds_trials(swept: Path, capsys: pytest.CaptureFixture[str]):
    before = _status(swept, capsys)
    assert main(["sweep", QUICKSTART, "--workdir", str(swept), "--trials", "2", *RAY, *SMALL]) == 0
    after = _status(swept, capsys)
    assert [t["number"] for t in after["trials"]] == list(range(len(before["trials"]) + 2))
    assert after["parent_run_id"] == before["parent_run_id"]
    old = {t["number"]: t["mlflow_run_id"] for t in before["trials"]}
    assert all(old[t["number"]] == t["mlflow_run_id"] for t in after["trials"] if t["number"] in old)
    _, parents, trials = sweep_runs(after)
    assert len(parents) == 1 and len(trials) == len(after["trials"])
    assert sorted(os.listdir(swept / "ray" / "quickstart")) == ["run-001", "run-002"]


@pytest.mark.slow
def test_asha_stops_trials_and_they_end_pruned(ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # One trial at a time (a deterministic order) and reduction factor 100: a trial is stopped at epoch 0 unless
    # its validation loss is the best so far at that epoch (sampler seed 2: trials 1 and 2 are stopped).
    args = [
        "--set",
        "objective.metric=loss",
        "--set",
        "backend.max_concurrent=1",
        "--set",
        "backend.sampler_options={n_startup_trials: 4, seed: 2}",
        "--set",
        "backend.scheduler_options={grace_period: 1, reduction_factor: 100}",
    ]
    assert main(["sweep", QUICKSTART, "--workdir", str(tmp_path), "--trials", "4", *RAY, *SMALL, *args]) == 0
    status = _status(tmp_path, capsys, *args)
    states = [t["state"] for t in status["trials"]]
    assert "pruned" in states and "complete" in states and set(states) <= {"complete", "pruned"}
    client, _, trials = sweep_runs(status)
    by_id = {r.info.run_id: r for r in trials}
    for t in status["trials"]:
        run = by_id[t["mlflow_run_id"]]
        assert run.data.tags["ape_nas.state"] == t["state"] and run.info.status == "FINISHED"
        if t["state"] == "pruned":
            assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 1
            assert "epoch 0" in run.data.tags["ape_nas.note"]
            assert t["value"] == pytest.approx(client.get_metric_history(run.info.run_id, "val_loss")[0].value)
    # max_concurrent 1 on 2 CPUs (2 trials would fit): no two trials ever overlap, in the study or in MLflow
    _assert_one_at_a_time(tmp_path / "ray.db", trials)


def _study_trials(db: Path) -> list:
    import optuna

    return optuna.load_study(study_name="quickstart", storage=f"sqlite:///{db}").get_trials(deepcopy=False)


def _assert_one_at_a_time(db: Path, runs: list) -> None:
    """Trial intervals (study: asked → told; MLflow: each run started after the previous trial ended) are
    disjoint, in trial-number order."""
    study = sorted(_study_trials(db), key=lambda t: t.number)
    assert len(study) >= 2 and all(t.datetime_complete is not None for t in study)
    started = {int(r.data.tags["ape_nas.trial_number"]): r.info.start_time / 1000 for r in runs}
    for a, b in itertools.pairwise(study):
        assert a.datetime_complete <= b.datetime_start, (a.number, b.number)
        assert started[b.number] >= a.datetime_complete.timestamp() - 0.01, (a.number, b.number)


@pytest.mark.slow
def test_a_failing_trial_does_not_stop_the_ray_sweep(ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    space = yaml.safe_load((ROOT / "search_spaces" / "quickstart.yaml").read_text())
    del space["models"]["resnet1d"]
    space["models"]["cnn1d"]["kernel_size"] = {"type": "categorical", "choices": [7, 8]}  # 8 is even: invalid
    space_path = tmp_path / "space.yaml"
    space_path.write_text(yaml.safe_dump(space))
    args = ["--set", f"space={space_path}", "--set", "backend.sampler=random", "--set", "backend.sampler_options={}"]
    workdir = tmp_path / "w"
    assert main(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "4", *RAY, *SMALL, *args]) == 0
    status = _status(workdir, capsys, *args)
    states = [t["state"] for t in status["trials"]]
    assert len(states) == 4 and "failed" in states and set(states) - {"failed"}
    _, _, trials = sweep_runs(status)
    assert len(trials) == 4
    by_id = {r.info.run_id: r for r in trials}
    for t in status["trials"]:
        run = by_id[t["mlflow_run_id"]]
        assert run.data.tags["ape_nas.state"] == t["state"] and t["model"] == "cnn1d"
        if t["state"] == "failed":
            assert run.info.status == "FAILED"
            assert "kernel_size" in run.data.tags["ape_nas.note"]
            assert t["params"]["cnn1d.kernel_size"] == 8


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum, group",
    [(signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-to-the-group", "sigterm-to-the-sweep"],
)
def test_interrupted_ray_sweep_resumes_without_repeating_trials(
    ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str], signum: int, group: bool
):
    # longer trials (8 epochs) so that some are still running when Ctrl+C arrives
    longer = ["--set", "training.max_epochs=8", "--set", "training.patience=8"]
    cmd = ["sweep", QUICKSTART, "--workdir", str(tmp_path), "--trials", "6", *RAY, *SMALL, *longer]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ape_nas", *cmd],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # Ctrl+C in a terminal signals the whole foreground process group
    )
    assert proc.stdout is not None
    output = []
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        output.append(line)
        if line.lstrip().startswith("trial ") or time.monotonic() > deadline:
            break  # the first trial has finished
    if group:
        os.killpg(proc.pid, signum)
    else:  # `kill PID`, as a batch scheduler does
        os.kill(proc.pid, signum)
    output.append(proc.communicate(timeout=120)[0])
    text = "".join(output)
    assert proc.returncode == 128 + signum, text
    assert "interrupted — run the same command to continue" in text

    first = _status(tmp_path, capsys, *longer)
    done = {t["number"]: t["mlflow_run_id"] for t in first["trials"] if t["state"] in ("complete", "pruned")}
    assert done and len(done) < 6, text
    stopped = [t for t in first["trials"] if t["state"] not in ("complete", "pruned")]
    assert stopped and {t["state"] for t in stopped} == {"interrupted"}  # to be restarted, not "running" forever
    durations = [t["duration_s"] for t in stopped]
    time.sleep(1.0)
    again = {t["number"]: t["duration_s"] for t in _status(tmp_path, capsys, *longer)["trials"]}
    assert [again[t["number"]] for t in stopped] == durations  # the clock of an interrupted trial stopped
    _, _, runs = sweep_runs(first)
    assert not [r for r in runs if r.info.status == "RUNNING"]

    assert main(cmd) == 0  # the same command again: finishes that sweep
    after = _status(tmp_path, capsys, *longer)
    assert [t["number"] for t in after["trials"]] == list(range(6))  # no more, none repeated
    assert {t["state"] for t in after["trials"]} <= {"complete", "pruned"}
    for t in after["trials"]:
        if t["number"] in done:  # finished before Ctrl+C: kept, not run again
            assert t["mlflow_run_id"] == done[t["number"]]
    _, parents, trials = sweep_runs(after)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(int(r.data.tags["ape_nas.trial_number"]) for r in trials) == list(range(6))
    assert {r.info.run_id for r in trials} == {t["mlflow_run_id"] for t in after["trials"]}
    # trials ran two at a time: some two runs overlap in time
    spans = sorted((r.info.start_time, r.info.end_time) for r in trials)
    assert any(b[0] < a[1] for a, b in itertools.pairwise(spans))


@pytest.mark.slow
def test_timeout_stops_starting_ray_trials(ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    budget = ["--trials", "50", "--timeout", "1"]
    assert main(["sweep", QUICKSTART, "--workdir", str(tmp_path), *budget, *RAY, *SMALL]) == 0
    status = _status(tmp_path, capsys)
    assert 1 <= len(status["trials"]) < 5
    assert {t["state"] for t in status["trials"]} <= {"complete", "pruned"}  # started ones finished


@pytest.mark.slow
def test_a_stop_reaches_a_function_trainable_as_report_returning_true(ray_cluster, tmp_path: Path):
    """Ray stops a function trainable only through ``tune.report`` (SystemExit inside Ray): ``report`` turns it
    into True. Fails loudly if a Ray release changes how a stopped trial learns it."""
    from ray import tune

    from ape_nas.backends.raytune.trainable import report

    marker = tmp_path / "stopped.json"

    def trainable(config: dict) -> None:  # nested: pickled by value for the trial actor
        for i in range(1, 600):
            if report({"value": float(i), "step": i}):
                marker.write_text(json.dumps({"stopped_after": i}))
                return
            time.sleep(0.05)

    tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(num_samples=1, metric="value", mode="max"),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), stop={"step": 2}, verbose=0),
    ).fit()
    deadline = time.monotonic() + 30  # the trial thread may see the stop just after fit() returns
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the stopped trial never saw report() return True"
    assert 2 <= json.loads(marker.read_text())["stopped_after"] < 500


@pytest.mark.slow
def test_a_killed_trial_actor_fails_that_attempt_and_the_trial_runs_again(
    ray_cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """SIGKILL of the Ray actor running trial 0 (pid from its ``worker`` attribute, once it reported an epoch):
    that attempt's MLflow run ends FAILED, Ray runs trial 0 again to completion, trial 1 is untouched."""
    import threading

    args = ["--set", "backend.max_concurrent=1", "--set", "backend.scheduler=fifo"]
    args += ["--set", "training.max_epochs=6", "--set", "training.patience=6"]
    killed: dict[str, int] = {}

    def kill_trial_0() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            time.sleep(0.3)
            try:
                trials = _study_trials(tmp_path / "ray.db")
            except Exception:  # the study is not there yet
                continue
            first = [t for t in trials if t.number == 0 and t.state.name == "RUNNING" and t.intermediate_values]
            if first and "worker" in first[0].user_attrs:
                pid = int(first[0].user_attrs["worker"].rsplit(":", 1)[1])
                os.kill(pid, signal.SIGKILL)
                killed["pid"] = pid

    killer = threading.Thread(target=kill_trial_0, daemon=True)
    killer.start()
    cmd = ["sweep", QUICKSTART, "--workdir", str(tmp_path), "--trials", "2", *RAY, *SMALL, *args]
    assert main(cmd) == 0
    killer.join(timeout=5)
    assert killed, "trial 0 was never seen running with its worker pid"

    status = _status(tmp_path, capsys, *args)
    assert [(t["number"], t["state"]) for t in status["trials"]] == [(0, "complete"), (1, "complete")]
    _, _, runs = sweep_runs(status)
    by_number: dict[int, list] = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        by_number.setdefault(int(run.data.tags["ape_nas.trial_number"]), []).append(run)
    failed, retried = by_number[0]
    assert failed.info.status == "FAILED" and failed.data.tags["ape_nas.state"] == "failed"
    assert "Ray runs the trial again" in failed.data.tags["ape_nas.note"]
    assert retried.info.status == "FINISHED" and retried.data.tags["ape_nas.state"] == "complete"
    assert status["trials"][0]["mlflow_run_id"] == retried.info.run_id
    assert [r.info.status for r in by_number[1]] == ["FINISHED"]  # nothing else lost or repeated
    study = {t.number: t for t in _study_trials(tmp_path / "ray.db")}
    assert study[0].user_attrs["actor_failures"] == 1 and "actor_failures" not in study[1].user_attrs
    assert study[0].user_attrs["worker"] != f"{os.uname().nodename}:{killed['pid']}"  # another actor finished it
