"""`ape-nas worker`: several real worker processes on one study (PostgreSQL, journal file), crashed workers.

PostgreSQL comes from APE_NAS_TEST_PG_URL (`source .ci/install_postgres.sh`); every test gets a fresh database.
Without it the PostgreSQL tests skip, or fail when APE_NAS_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient

from ape_nas.cli import main
from ape_nas.dburl import with_pg_driver

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "experiments" / "quickstart.yaml")
NOTE = "worker died (no heartbeat)"
PG_URL = os.environ.get("APE_NAS_TEST_PG_URL")
REQUIRE_SERVICES = os.environ.get("APE_NAS_REQUIRE_SERVICES") == "1"
# short heartbeats so that a killed worker's trial is stale within seconds (defaults: 30 s / 120 s); only where
# a worker is killed, so that a busy machine never makes a live worker look dead elsewhere
HEARTBEAT = {"APE_NAS_HEARTBEAT_S": "1", "APE_NAS_HEARTBEAT_GRACE_S": "3"}
TINY_SPACE = """\
description: one small CNN, for tests
models:
  cnn1d: {depth: 3, width: 8, kernel_size: 7, pool: 4, dropout: {type: float, low: 0.0, high: 0.3}}
optim:
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  batch_size: 64
"""
SMALL = [
    *("--set", "data.params.subjects=8", "--set", "data.params.minutes_per_state=1.0"),
    *("--set", "protocol.test_subjects=2", "--set", "protocol.val_subjects=2"),
    *("--set", "training.max_epochs=3", "--set", "training.num_threads=1"),
]

pytestmark = pytest.mark.slow


def _missing(what: str, how: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"APE_NAS_REQUIRE_SERVICES=1 but {what}: {how}")
    pytest.skip(f"{what}: {how}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test (dropped afterwards)."""
    if not PG_URL:
        _missing("APE_NAS_TEST_PG_URL is not set", "source .ci/install_postgres.sh")
    try:
        import psycopg2
    except ImportError:
        _missing("psycopg2 is not installed", "pip install -e '.[postgres]'")
    from sqlalchemy.engine import make_url

    name = f"apenas_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(PG_URL)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A work directory with the tiny space file and the window cache already built (as a first run leaves it)."""
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    workdir = tmp_path / "w"
    assert main(["data", "prepare", QUICKSTART, "--workdir", str(workdir), *_small(tmp_path)]) == 0
    return workdir


def _small(tmp_path: Path, threads: bool = True) -> list[str]:
    """SMALL with the tiny space; ``threads=False`` leaves training.num_threads to `--workers N`."""
    small = SMALL if threads else SMALL[: SMALL.index("training.num_threads=1") - 1]
    return [*small, "--set", f"space={tmp_path / 'tiny.yaml'}"]


def _start(
    workdir: Path, storage: str, trials: int, *extra: str, name: str = "worker", env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    log = open(workdir.parent / f"{name}.log", "w")  # noqa: SIM115 (the process owns it; read back by _output)
    cmd = [sys.executable, "-m", "ape_nas", "worker", QUICKSTART, "--workdir", str(workdir), "--storage", storage]
    cmd += ["--tracking-uri", _tracking(workdir), "--trials", str(trials), *_small(workdir.parent), *extra]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})})
    proc.log_path = log.name  # type: ignore[attr-defined]
    log.close()
    return proc


def _finish(proc: subprocess.Popen[str], timeout: float = 180) -> str:
    rc = proc.wait(timeout=timeout)
    out = Path(proc.log_path).read_text()  # type: ignore[attr-defined]
    assert rc == 0, out
    return out


def _tracking(workdir: Path) -> str:
    return f"sqlite:///{workdir.parent / 'mlflow.db'}"


def _status(workdir: Path, storage: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["status", QUICKSTART, "--workdir", str(workdir), "--storage", storage, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _check_one_parent(status: dict, n_trials: int) -> tuple[MlflowClient, dict, dict]:
    """Every trial of the study has its own MLflow run, all nested under the ONE parent the study records."""
    client = MlflowClient(status["tracking_uri"])
    runs = client.search_runs([status["mlflow_experiment_id"]], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("ape_nas.role") == "sweep"]
    trials = {r.info.run_id: r for r in runs if r.data.tags.get("ape_nas.role") == "trial"}
    assert [p.info.run_id for p in parents] == [status["parent_run_id"]]
    assert len(trials) == n_trials == len(status["trials"])
    assert {t["mlflow_run_id"] for t in status["trials"]} == set(trials)
    for t in status["trials"]:
        run = trials[t["mlflow_run_id"]]
        assert run.data.tags["mlflow.parentRunId"] == status["parent_run_id"]
        assert int(run.data.tags["ape_nas.trial_number"]) == t["number"]
        assert run.data.tags["ape_nas.state"] == t["state"]
    return client, parents[0], trials


def _study_names(storage: str) -> list[str]:
    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))


def test_three_workers_share_one_postgres_study_and_one_parent_run(
    pg_url: str, workdir: Path, capsys: pytest.CaptureFixture[str]
):
    shares = [2, 1, 2]
    procs = [_start(workdir, pg_url, n, name=f"w{i}") for i, n in enumerate(shares)]  # all at once
    outputs = [_finish(p) for p in procs]
    status = _status(workdir, pg_url, capsys)
    assert sorted(t["number"] for t in status["trials"]) == list(range(sum(shares)))
    assert {t["state"] for t in status["trials"]} <= {"complete", "pruned"}
    _, parent, _ = _check_one_parent(status, sum(shares))
    assert parent.info.status == "FINISHED"  # the last worker to leave saw no running trial
    assert parent.data.tags["best_run_id"] == status["best"]["mlflow_run_id"]
    for out, n in zip(outputs, shares, strict=True):
        assert f"MLflow parent run {status['parent_run_id']}" in out
        assert sum(" trial " in line and "done in" not in line for line in out.splitlines()) == n
        assert "done in" in out and f"{n} trials" in out
    assert _study_names(with_pg_driver(pg_url, "storage")) == ["quickstart"]  # the parent-run lock is gone


@pytest.fixture(params=["postgres", "journal"])
def shared_storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a study storage several workers share: a fresh PostgreSQL database, or a journal file."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return f"journal://{tmp_path / 'study.log'}"  # journal:///abs/path.log


def _optuna_storage(url: str) -> optuna.storages.BaseStorage:
    """A plain Optuna storage on ``url`` (``journal://`` or an SQLAlchemy URL): a reader beside the workers."""
    if url.startswith("journal://"):
        journal = optuna.storages.journal.JournalFileBackend(url[len("journal://") :])
        return optuna.storages.JournalStorage(journal)
    return optuna.storages.RDBStorage(with_pg_driver(url, "storage"))


def test_a_killed_worker_s_trial_is_failed_closed_and_retried_with_the_same_params(
    shared_storage: str, workdir: Path, capsys: pytest.CaptureFixture[str]
):
    """SIGKILL of a worker mid-trial: that trial ends FAIL (its MLflow run FAILED with the note), a later worker
    retries it with the same params; the trial the victim had completed before stays as it was."""
    # long enough to be killed while training; the later worker trains the same budget (one study identity)
    slow = ["--set", "training.max_epochs=60", "--set", "training.patience=60"]
    victim = _start(workdir, shared_storage, 2, *slow, name="victim", env=HEARTBEAT)
    storage = _optuna_storage(shared_storage)
    deadline = time.monotonic() + 300
    trial = None
    while time.monotonic() < deadline and victim.poll() is None:
        try:
            trials = optuna.load_study(study_name="quickstart", storage=storage).get_trials()
        except KeyError:
            trials = []
        if len(trials) == 2 and trials[1].state.name == "RUNNING" and trials[1].intermediate_values:
            trial = trials[1]  # training its second trial: its MLflow run is open and it has reported epochs
            break
        time.sleep(0.2)
    assert trial is not None, Path(victim.log_path).read_text()  # type: ignore[attr-defined]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    time.sleep(int(HEARTBEAT["APE_NAS_HEARTBEAT_GRACE_S"]) + 1)  # its heartbeat is stale now
    out = _finish(_start(workdir, shared_storage, 2, *slow, name="later", env=HEARTBEAT))
    assert "(retry of trial 1)" in out

    study = optuna.load_study(study_name="quickstart", storage=storage)
    kept, failed, retry, other = study.get_trials()
    assert kept.state == trials[0].state and kept.state.name in {"COMPLETE", "PRUNED"}
    assert (kept.value, kept.params, kept.user_attrs) == (trials[0].value, trials[0].params, trials[0].user_attrs)
    assert failed.state.name == "FAIL" and failed.number == 1
    assert trial.intermediate_values.items() <= failed.intermediate_values.items()  # what it reported is kept
    assert retry.user_attrs["retry_of"] == 1 and retry.system_attrs["failed_trial"] == 1
    assert retry.params == failed.params and retry.state.name in {"COMPLETE", "PRUNED"}
    assert retry.user_attrs["mlflow_run_id"] != failed.user_attrs["mlflow_run_id"]
    assert other.state.name in {"COMPLETE", "PRUNED"} and "retry_of" not in other.user_attrs
    status = _status(workdir, shared_storage, capsys)
    assert [t["state"] for t in status["trials"]][1:2] == ["failed"] and status["counts"]["running"] == 0
    client, parent, runs = _check_one_parent(status, 4)
    dead = runs[failed.user_attrs["mlflow_run_id"]]
    assert dead.info.status == "FAILED" and dead.data.tags["ape_nas.note"] == NOTE
    assert runs[kept.user_attrs["mlflow_run_id"]].info.status == "FINISHED"
    assert runs[retry.user_attrs["mlflow_run_id"]].info.status == "FINISHED"
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_workers_spawned_on_one_machine_share_a_journal_file(
    tmp_path: Path, workdir: Path, capsys: pytest.CaptureFixture[str]
):
    storage = f"journal:///{tmp_path / 'shared' / 'study.log'}"
    args = ["worker", QUICKSTART, "--workdir", str(workdir), "--storage", storage, "--workers", "2", "--trials", "4"]
    args += ["--tracking-uri", _tracking(workdir), *_small(tmp_path, threads=False)]
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    threads = max(1, len(os.sched_getaffinity(0)) // 2)  # the cores shared by the 2 workers
    assert "2 workers on" in out and f"{threads} torch threads each" in out
    assert "2 workers exited (0, 0) · study quickstart: 4 trials (" in out
    status = _status(workdir, storage, capsys)
    assert sorted(t["number"] for t in status["trials"]) == [0, 1, 2, 3]
    _, parent, _ = _check_one_parent(status, 4)
    assert parent.info.status == "FINISHED"
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage[len("journal://") :]))
    assert [s.study_name for s in journal.get_all_studies()] == ["quickstart"]
    # a worker that would log to another MLflow store is refused before it runs anything
    other = ["worker", QUICKSTART, "--workdir", str(workdir), "--storage", storage, "--trials", "1", *_small(tmp_path)]
    assert main([*other, "--tracking-uri", f"sqlite:///{tmp_path / 'other.db'}"]) == 2
    assert f"pass --tracking-uri {_tracking(workdir)}" in capsys.readouterr().err
    assert len(_status(workdir, storage, capsys)["trials"]) == 4


def _journal_backend(tmp_path: Path) -> Any:
    from ape_nas.sweep import prepare_sweep

    plan = prepare_sweep(QUICKSTART, overrides=SMALL[1::2], workdir=tmp_path, storage=f"journal://{tmp_path}/s.log")
    plan.backend.open(create=True)
    return plan.backend


def test_the_study_mutex_admits_one_holder_and_outlives_a_dead_one(tmp_path: Path):
    from ape_nas.errors import UserError

    first, second = _journal_backend(tmp_path), _journal_backend(tmp_path)  # as two processes would
    held_long = pytest.raises(UserError, match=r"could not take the lock .* within 1 s")
    with first.exclusive("k"), held_long, second.exclusive("k", timeout_s=1):
        pass
    with second.exclusive("k", timeout_s=1):  # released
        pass
    # a holder that died inside (its marker study stays): broken after stale_s without change
    held = first.exclusive("k")
    held.__enter__()
    started = time.monotonic()
    with second.exclusive("k", stale_s=0.5):
        assert time.monotonic() - started >= 0.5
    assert [s.study_name for s in optuna.get_all_study_summaries(second.storage)] == ["quickstart"]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_journal_trial_without_heartbeat_is_failed_and_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # Optuna 5.0 has heartbeats for RDB storages only; ape-nas adds the same protocol to journal files.
    from ape_nas.backends.base import TrialRecord

    for key, value in HEARTBEAT.items():
        monkeypatch.setenv(key, value)
    backend = _journal_backend(tmp_path)
    closed: list[TrialRecord] = []
    backend.on_stale_trial = closed.append
    trial = backend.study.ask()
    x = trial.suggest_float("x", 0.0, 1.0)
    trial.set_user_attr("mlflow_run_id", "run-of-the-dead-worker")
    backend.storage.record_heartbeat(_trial_id(backend, trial.number))  # then the "worker" dies: no more beats
    backend.fail_stale_trials()
    assert [t.state.name for t in backend.study.get_trials()] == ["RUNNING"]  # within the grace period
    time.sleep(int(HEARTBEAT["APE_NAS_HEARTBEAT_GRACE_S"]) + 0.5)
    backend.fail_stale_trials()
    dead, retry = backend.study.get_trials()
    assert dead.state.name == "FAIL" and retry.state.name == "WAITING"
    assert retry.params == {"x": x} and retry.user_attrs == {"retry_of": 0}
    assert [r.run_id for r in closed] == ["run-of-the-dead-worker"]
    backend.fail_stale_trials()  # the retry has no heartbeat yet: not stale, not retried twice
    assert len(backend.study.get_trials()) == 2


def _trial_id(backend: Any, number: int) -> int:
    store = backend.storage
    return store.get_trial_id_from_study_id_trial_number(store.get_study_id_from_name("quickstart"), number)


def test_optuna_s_heartbeat_protocol_is_the_one_the_journal_storage_implements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The one use of Optuna internals (``optuna_backend._JournalStorage``) fails here, loudly, when an Optuna
    release changes its private heartbeat protocol: the class, its four methods, and that ``Study.optimize``
    beats through them (``fail_stale_trials`` using them: the test below)."""
    import inspect

    from optuna.storages import _heartbeat

    from ape_nas.backends.optuna_backend import _JournalStorage

    protocol = _heartbeat.BaseHeartbeat
    methods = {"record_heartbeat", "_get_stale_trial_ids", "get_heartbeat_interval"}
    methods.add("get_heartbeat_stale_trial_callback")
    assert protocol.__abstractmethods__ == methods, f"Optuna changed BaseHeartbeat: {protocol.__abstractmethods__}"
    assert list(inspect.signature(protocol._get_stale_trial_ids).parameters) == ["self", "study_id"]
    assert list(inspect.signature(protocol.record_heartbeat).parameters) == ["self", "trial_id"]
    for key, value in HEARTBEAT.items():
        monkeypatch.setenv(key, value)
    backend = _journal_backend(tmp_path)
    assert isinstance(backend.storage, _JournalStorage) and _heartbeat.is_heartbeat_enabled(backend.storage)
    beats: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not beats:  # Optuna's heartbeat thread beats at once
            attrs = backend.storage.get_trial_system_attrs(_trial_id(backend, trial.number))
            beats.extend([attrs] if "ape_nas:heartbeat" in attrs else [])
            time.sleep(0.05)
        return 0.0

    backend.study.optimize(objective, n_trials=1)
    assert beats and abs(beats[0]["ape_nas:heartbeat"] - time.time()) < 10


@pytest.mark.parametrize("storage", [None, "sqlite:///{tmp}/study.db"])
def test_several_workers_on_sqlite_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], storage: str | None
):
    workdir = tmp_path / "w"
    extra = ["--storage", storage.format(tmp=tmp_path)] if storage else []
    assert main(["worker", QUICKSTART, "--workdir", str(workdir), "--workers", "2", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "SQLite" in err and "postgresql://" in err and "journal:///" in err
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_a_command_process_skips_the_final_garbage_collection_at_exit(monkeypatch: pytest.MonkeyPatch):
    """Every `ape-nas` command (workers above all) freezes the collector at exit (2.5-3.5 s of shutdown per worker
    process on 2 busy cores, benchmarks/parallel_efficiency.py): atexit handlers run, the reference cycles left at
    exit are not collected."""
    script = (
        "import sys\n"
        "from ape_nas.cli import end_without_final_collection\n"
        "import atexit\n"
        "if sys.argv[1] == 'freeze':\n"
        "    end_without_final_collection()\n"
        "    end_without_final_collection()  # again: changes nothing\n"
        "atexit.register(print, 'atexit ran')\n"
        "class Cycle:\n"
        "    def __del__(self):\n"
        "        print('cycle collected')\n"
        "c = Cycle()\n"
        "c.me = c\n"
        "del c\n"
    )
    run = [sys.executable, "-c", script]
    plain = subprocess.run([*run, "plain"], capture_output=True, text=True, check=True).stdout.split()
    frozen = subprocess.run([*run, "freeze"], capture_output=True, text=True, check=True).stdout.split()
    assert plain == ["atexit", "ran", "cycle", "collected"]
    assert frozen == ["atexit", "ran"]

    from ape_nas import cli

    calls: list[int] = []
    monkeypatch.setattr(cli, "end_without_final_collection", lambda: calls.append(1))
    assert main(["worker", QUICKSTART, "--workers", "0"]) == 2  # even a refused command ends that way
    assert calls == [1]


def test_a_second_worker_on_the_same_sqlite_study_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    db = tmp_path / "optuna.db"
    with open(tmp_path / "optuna.db.worker-lock", "w") as held:  # what a running worker holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["worker", QUICKSTART, "--workdir", str(tmp_path), "--trials", "1", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another worker uses the SQLite study" in err
    assert not db.exists() and not (tmp_path / "mlflow.db").exists()


def test_workers_opening_a_fresh_postgres_database_at_once_all_succeed_and_take_turns(pg_url: str, tmp_path: Path):
    # Six contenders (threads here, each with its own storage, as six processes would have) open a database
    # without tables at the same moment -- plain Optuna lets all but one fail on the table creation race -- then
    # take the study mutex in turns.
    import threading

    from ape_nas.sweep import prepare_sweep

    backends = [
        prepare_sweep(QUICKSTART, overrides=SMALL[1::2], workdir=tmp_path, storage=pg_url).backend for _ in range(6)
    ]
    start = threading.Barrier(len(backends))
    inside: list[int] = []
    overlaps: list[int] = []
    errors: list[BaseException] = []

    def contend(i: int, backend: Any) -> None:
        try:
            start.wait()
            backend.open(create=True)
            for _ in range(3):
                with backend.exclusive("k"):
                    inside.append(i)
                    if len(inside) > 1:
                        overlaps.append(i)
                    time.sleep(0.02)
                    inside.remove(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(i, b)) for i, b in enumerate(backends)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not overlaps and not any(t.is_alive() for t in threads)
    assert _study_names(with_pg_driver(pg_url, "storage")) == ["quickstart"]


def test_worker_processes_get_a_gpu_each_round_robin_and_a_share_of_cores_and_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import argparse

    from ape_nas.sweep import prepare_sweep
    from ape_nas.workers import _gpu_ids, worker_commands

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # the GPUs this job may use
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    storage = f"journal://{tmp_path}/s.log"
    overrides = ["budget.trials=5", "data.params.subjects=8"]
    plan = prepare_sweep(QUICKSTART, overrides=overrides, workdir=tmp_path, storage=storage)
    args = argparse.Namespace(experiment=QUICKSTART, workers=3, timeout=None, overrides=["data.params.subjects=8"])
    commands, threads = worker_commands(args, plan, _gpu_ids(), cpus=8)
    assert threads == 2
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in commands] == ["3", "5", "3"]
    assert [env["OMP_NUM_THREADS"] for _, env in commands] == ["2", "2", "2"]
    assert [int(cmd[cmd.index("--trials") + 1]) for cmd, _ in commands] == [2, 2, 1]
    for cmd, _ in commands:
        assert cmd[cmd.index("--storage") + 1] == storage and "training.num_threads=2" in cmd
    plan.experiment.training["num_threads"] = 4  # set by the experiment: left alone
    assert worker_commands(args, plan, [], cpus=8)[1] is None
