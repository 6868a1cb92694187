"""The Slurm batch scripts: syntax always; with a real Slurm (`.ci/install_slurm.sh`), an array of
`ape-nas worker` tasks submitted with sbatch that share one Optuna study.

The sbatch test needs `sbatch` and APE_NAS_TEST_SLURM=1 (exported by .ci/install_slurm.sh once the node is idle);
otherwise it is skipped, or fails when APE_NAS_REQUIRE_SERVICES=1 (CI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from _servers import free_port

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "slurm"
WORKERS_SCRIPT = SLURM / "optuna_workers.sbatch"
RAY_SCRIPT = SLURM / "ray_cluster.sbatch"
QUICKSTART = ROOT / "experiments" / "quickstart.yaml"
APE_NAS = Path(sys.executable).with_name("ape-nas")
# tiny trials: 8 subjects of 1 minute per state, 2 epochs (the median pruner's 2 warm-up steps: nothing is pruned)
TINY = [
    "data.params.subjects=8",
    "data.params.minutes_per_state=1.0",
    "training.max_epochs=2",
    "protocol.test_subjects=2",
    "protocol.val_subjects=2",
]
TASKS = 2  # array tasks: the single test node has 2 CPUs, one per task, so both run at once
TRIALS_PER_TASK = 2
WAIT_S = 240


def _require_slurm() -> None:
    reason = None
    if shutil.which("sbatch") is None:
        reason = "sbatch not found: no Slurm here (CI installs a single-node one with .ci/install_slurm.sh)"
    elif os.environ.get("APE_NAS_TEST_SLURM") != "1":
        reason = "APE_NAS_TEST_SLURM is not 1: no running Slurm node (source .ci/install_slurm.sh to start one)"
    if reason is None:
        return
    if os.environ.get("APE_NAS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}; APE_NAS_REQUIRE_SERVICES=1 requires Slurm (see the output of .ci/install_slurm.sh)")
    pytest.skip(reason)


def _storages() -> list:
    pg = os.environ.get("APE_NAS_TEST_PG_URL")
    return [
        pytest.param("journal", id="journal"),
        pytest.param(
            pg,
            id="postgresql",
            marks=pytest.mark.skipif(
                not pg and os.environ.get("APE_NAS_REQUIRE_SERVICES") != "1",
                reason="APE_NAS_TEST_PG_URL is not set (CI starts PostgreSQL with .ci/install_postgres.sh)",
            ),
        ),
    ]


@pytest.mark.parametrize("script", [WORKERS_SCRIPT, RAY_SCRIPT], ids=lambda p: p.name)
def test_batch_script_is_valid_bash(script: Path):
    assert script.is_file()
    proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert directives, "no #SBATCH lines"
    # sbatch stops reading directives at the first command: all of them must come before it
    first_command = next(
        i for i, line in enumerate(text.splitlines()) if line.strip() and not line.lstrip().startswith("#")
    )
    assert all(text.splitlines().index(d) < first_command for d in directives)


def test_worker_script_runs_only_ape_nas_worker():
    text = WORKERS_SCRIPT.read_text()
    assert re.search(r"^#SBATCH --array=", text, re.M) and "%A_%a" in text
    assert "python" not in text.replace("ape-nas", "")  # no Python logic: the script calls ape-nas only
    assert '"$ape_nas" "${args[@]}"' in text and "args=(worker " in text


def _squeue_ids(job_id: str) -> list[str]:
    proc = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i %T"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return []  # the controller forgot it already (MinJobAge passed)
        raise AssertionError(f"squeue failed: {proc.stderr.strip()}")
    return proc.stdout.split()


def _wait_for_job(job_id: str, logs: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while _squeue_ids(job_id):
        if time.monotonic() > deadline:
            queue = subprocess.run(["squeue", "-a"], capture_output=True, text=True, timeout=30).stdout
            subprocess.run(["scancel", job_id], check=False, timeout=30)
            raise AssertionError(f"array job {job_id} still in the queue after {WAIT_S}s:\n{queue}\n{_logs_text(logs)}")
        time.sleep(2)


def _logs_text(logs: Path) -> str:
    parts = [f"==> {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(logs.glob("*.out"))]
    return "\n".join(parts) or f"(no output files in {logs})"


def _job_states(job_id: str) -> str:
    proc = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30)
    return "\n".join(
        line.strip() for line in proc.stdout.splitlines() if re.search(r"JobId=|JobState=|ExitCode=", line)
    )


@pytest.mark.slow
@pytest.mark.parametrize("storage_kind", _storages())
def test_optuna_worker_array_shares_one_study(storage_kind: str | None, tmp_path: Path):
    _require_slurm()
    if storage_kind is None:
        pytest.fail("APE_NAS_TEST_PG_URL is not set; APE_NAS_REQUIRE_SERVICES=1 requires PostgreSQL")
    assert APE_NAS.is_file(), f"{APE_NAS}: ape-nas is not installed beside this Python"
    study = f"slurm_test_{uuid.uuid4().hex[:10]}"  # unique: a PostgreSQL database is shared by many tests
    storage = f"journal://{tmp_path / 'study.journal'}" if storage_kind == "journal" else storage_kind
    workdir, logs = tmp_path / "w", tmp_path / "logs"
    logs.mkdir()
    overrides = [*TINY, f"name={study}"]
    env = {
        **os.environ,
        "EXPERIMENT": str(QUICKSTART),
        "STORAGE": storage,
        "TRIALS_PER_TASK": str(TRIALS_PER_TASK),
        "WORKDIR": str(workdir),
        "APE_NAS": str(APE_NAS),
        # some overrides through OVERRIDES, the rest as arguments after the script (passed on unchanged)
        "OVERRIDES": " ".join(overrides[:3]),
    }
    submit = [
        "sbatch",
        "--parsable",
        f"--array=0-{TASKS - 1}",
        "--cpus-per-task=1",
        "--time=10",
        f"--job-name={study}",
        f"--chdir={tmp_path}",
        f"--output={logs}/%x-%A_%a.out",
        f"--error={logs}/%x-%A_%a.out",
        str(WORKERS_SCRIPT),
        *(arg for kv in overrides[3:] for arg in ("--set", kv)),
    ]
    started = time.monotonic()
    proc = subprocess.run(submit, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, f"sbatch failed: {proc.stderr}"
    job_id = proc.stdout.strip().split(";")[0]
    _wait_for_job(job_id, logs)
    elapsed = time.monotonic() - started

    # every array task wrote its own output file and its worker exited 0
    outputs = {int(m.group(1)): p for p in logs.glob("*.out") if (m := re.search(rf"-{job_id}_(\d+)\.out$", p.name))}
    context = f"after {elapsed:.0f}s\n{_job_states(job_id)}\n{_logs_text(logs)}"
    assert sorted(outputs) == list(range(TASKS)), context
    for task, path in outputs.items():
        text = path.read_text(errors="replace")
        assert f"worker {job_id}_{task} exited with 0" in text, context

    status_cmd = [str(APE_NAS), "status", str(QUICKSTART), "--storage", storage, "--workdir", str(workdir), "--json"]
    status_cmd += [arg for kv in overrides for arg in ("--set", kv)]
    proc = subprocess.run(status_cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"ape-nas status failed: {proc.stderr}\n{context}"
    status = json.loads(proc.stdout)
    trials = status["trials"]
    numbers = [t["number"] for t in trials]
    expected = TASKS * TRIALS_PER_TASK
    assert sorted(numbers) == list(range(expected)), f"trial numbers {numbers}\n{context}"
    assert status["counts"]["complete"] == expected, f"{status['counts']}\n{context}"
    assert all(t["state"] == "complete" for t in trials)

    # which array task ran which trial: each worker prefixes its lines with its label, "<job>_<task>"
    # (APE_NAS_WORKER_LABEL, set by the script), e.g. "[12_1] trial    3  complete f1_macro 0.61 ..."
    ran: dict[int, list[int]] = {}
    for task, path in outputs.items():
        pattern = rf"^\[{job_id}_{task}\] trial\s+(\d+)\s+complete\b"
        ran[task] = [int(n) for n in re.findall(pattern, path.read_text(errors="replace"), re.M)]
    assert sorted(n for numbers in ran.values() for n in numbers) == list(range(expected)), f"{ran}\n{context}"
    contributors = [task for task, numbers in ran.items() if numbers]
    assert len(contributors) >= 2, f"trials by array task: {ran}\n{context}"
    assert all(len(numbers) == TRIALS_PER_TASK for numbers in ran.values()), ran
    if storage_kind != "journal":
        _delete_pg_study(study, storage)


def _delete_pg_study(study: str, url: str) -> None:
    import optuna

    from ape_nas.dburl import with_pg_driver

    optuna.delete_study(study_name=study, storage=with_pg_driver(url, "storage"))


@pytest.mark.slow
def test_ray_cluster_script_runs_a_ray_sweep_inside_one_allocation(tmp_path: Path):
    """ray_cluster.sbatch on the single test node: Ray head started by srun, `ape-nas sweep --backend ray
    --address` as the driver, 2 trials side by side (one CPU each), Ray stopped at the end."""
    _require_slurm()
    ray_exe = APE_NAS.with_name("ray")
    assert APE_NAS.is_file() and ray_exe.is_file(), f"ape-nas and ray must be installed beside {sys.executable}"
    study = f"slurm_ray_{uuid.uuid4().hex[:10]}"
    workdir, logs = tmp_path / "w", tmp_path / "logs"
    logs.mkdir()
    overrides = [*TINY, f"name={study}", "backend.max_concurrent=2", "backend.cpus_per_trial=1"]
    port = free_port()
    env = {
        **os.environ,
        "EXPERIMENT": str(QUICKSTART),
        "WORKDIR": str(workdir),
        "TRIALS": "2",
        "APE_NAS": str(APE_NAS),
        "RAY": str(ray_exe),
        "RAY_PORT": str(port),
        "RAY_WAIT_S": "120",
        "OVERRIDES": " ".join(overrides),
    }
    submit = [
        "sbatch",
        "--parsable",
        "--nodes=1",
        "--cpus-per-task=2",
        "--time=10",
        f"--job-name={study}",
        f"--chdir={tmp_path}",
        f"--output={logs}/%x-%j.out",
        f"--error={logs}/%x-%j.out",
        str(RAY_SCRIPT),
    ]
    proc = subprocess.run(submit, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, f"sbatch failed: {proc.stderr}"
    job_id = proc.stdout.strip().split(";")[0]
    _wait_for_job(job_id, logs)
    context = f"{_job_states(job_id)}\n{_logs_text(logs)}"
    assert "ExitCode=0:0" in _job_states(job_id), context
    out = next(logs.glob(f"*-{job_id}.out")).read_text(errors="replace")
    assert "--backend ray --address" in out and "1 node(s) up" in out, context
    assert "ray_cluster: stopping Ray" in out, context

    status_cmd = [str(APE_NAS), "status", str(QUICKSTART), "--workdir", str(workdir), "--json"]
    status_cmd += [arg for kv in [*overrides, "backend.name=ray"] for arg in ("--set", kv)]
    proc = subprocess.run(status_cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"ape-nas status failed: {proc.stderr}\n{context}"
    status = json.loads(proc.stdout)
    assert sorted(t["number"] for t in status["trials"]) == [0, 1], context
    assert status["counts"]["complete"] == 2, f"{status['counts']}\n{context}"
    # nothing of the cluster is left running on the node
    left = subprocess.run(["pgrep", "-f", f"gcs_server.*{port}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"Ray processes left: {left.stdout}"
