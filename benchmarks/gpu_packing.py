"""GPU packing: trials/hour, GPU utilisation and GPU memory with 1, 2, 4 and 8 trials sharing ONE GPU.

    python benchmarks/gpu_packing.py [--counts 1,2,4,8] [--trials 16] [--epochs 3] [--precision 32-true]
                                     [--via worker|ray] [--gpu INDEX|UUID] [--set KEY=VALUE ...]

Every run does the same tiny quickstart trials (random sampler, no pruning, ``--epochs`` epochs with patience as
long, ``training.accelerator=gpu``) from a window cache prepared once (``ape-nas data prepare``). N trials at once:

- ``--via worker`` (default): ``ape-nas worker --workers N`` on a journal-file storage; every worker is pinned to
  the one GPU (CUDA_VISIBLE_DEVICES holds that GPU's UUID, so ``gpus[i % 1]`` is it for all N);
- ``--via ray``: ``ape-nas sweep`` with the Ray backend, ``backend.max_concurrent=N``,
  ``backend.gpus_per_trial=1/N`` (Ray packs the N trials on the one GPU it is shown) and the CPUs split N ways.

Per N, sampled through NVML in a background thread every 0.2 s while the command runs:
- ``trials_per_hour``: trials that completed over the command's wall time (start-up included);
- ``gpu_util_mean_pct``: mean of NVML's utilisation (share of time a kernel ran: not SM occupancy);
- ``peak_mib_per_process``: each process's NVML ``usedGpuMemory`` (CUDA context + PyTorch's caching allocator),
  its maximum over the run, then the largest and the mean over processes. A worker process (or a reused Ray
  actor) runs trial after trial, so this is the peak of its heaviest trial plus its context;
- ``peak_device_mib``: the device's used memory at its highest, minus what was used before the run.
Processes already on the GPU before a run are left out of the per-process figures; utilisation is the whole
device's, so run this on an otherwise idle GPU (``busy_before`` says if it was not).

Without a GPU (torch sees no CUDA device, or NVML does not start) it prints one line saying why and exits 0,
writing no results file.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _report import report

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "experiments" / "quickstart.yaml"
MIB = 1024 * 1024
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")


def no_gpu_reason() -> str | None:
    """Why this machine cannot run the benchmark, or None: torch must see a CUDA GPU and NVML must start."""
    import torch

    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return f"torch {torch.__version__} is a CPU build"
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return "torch.cuda.is_available() is False" + (
            f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        )
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # ImportError, or pynvml.NVMLError (no libnvidia-ml, driver not loaded)
        return f"NVML does not start ({type(exc).__name__}: {exc})"
    return None


def pick_gpu(choice: str | None) -> tuple[str, Any]:
    """The GPU to pack, as a CUDA_VISIBLE_DEVICES entry (its UUID) and its NVML handle.

    ``choice``: a UUID (``GPU-...``), or an index among the GPUs torch sees here (default 0). The UUID comes from
    torch, so CUDA's device order (CUDA_DEVICE_ORDER, CUDA_VISIBLE_DEVICES) and NVML's (PCI bus) never get mixed."""
    import pynvml
    import torch

    if choice and not choice.isdigit():
        return choice, pynvml.nvmlDeviceGetHandleByUUID(choice)
    index = int(choice or 0)
    if index >= torch.cuda.device_count():
        sys.exit(f"gpu_packing: --gpu {index}: torch sees {torch.cuda.device_count()} GPU(s)")
    found = re.search(
        r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}",
        str(torch.cuda.get_device_properties(index).uuid).lower(),
    )
    if found is None:
        sys.exit(f"gpu_packing: torch gives no UUID for GPU {index}; pass --gpu GPU-<uuid> (nvidia-smi -L)")
    hexdigits = found.group(0).replace("-", "")
    uuid = "-".join(hexdigits[a:b] for a, b in ((0, 8), (8, 12), (12, 16), (16, 20), (20, 32)))
    for prefix in ("GPU-", "MIG-"):
        try:
            return prefix + uuid, pynvml.nvmlDeviceGetHandleByUUID(prefix + uuid)
        except pynvml.NVMLError:
            continue
    sys.exit(f"gpu_packing: NVML does not know the UUID {uuid} of torch's GPU {index}; pass --gpu GPU-<uuid>")


def compute_processes(handle: Any) -> list[Any]:
    """NVML's compute processes on the device (``pid``, ``usedGpuMemory`` in bytes or None); older drivers: v2."""
    import pynvml

    try:
        return pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except (pynvml.NVMLLibraryMismatchError, pynvml.NVMLError_FunctionNotFound):
        return pynvml.nvmlDeviceGetComputeRunningProcesses_v2(handle)


class GpuSampler(threading.Thread):
    """Samples one device every ``period`` s until :meth:`stop`: utilisation, used memory, memory per process.

    A reading the device does not support (e.g. utilisation of a MIG slice) is dropped after its first error,
    which is kept in ``errors``."""

    def __init__(self, handle: Any, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.handle, self.period = handle, period
        self.util: list[int] = []
        self.used: list[int] = []
        self.peak_by_pid: dict[int, int] = {}
        self.pids: set[int] = set()
        self.errors: dict[str, str] = {}
        self.rounds = 0
        self._stopped = threading.Event()
        self.before: set[int] = set()  # processes on the GPU before the run: not ours, left out
        self._read("processes", lambda: self.before.update(p.pid for p in compute_processes(handle)))
        self.used_before = 0
        self._read("memory", lambda: setattr(self, "used_before", self._used()))

    def _used(self) -> int:
        import pynvml

        return int(pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def _read(self, what: str, fn: Any) -> None:
        import pynvml

        if what in self.errors:
            return
        try:
            fn()
        except pynvml.NVMLError as exc:
            self.errors[what] = str(exc)

    def _processes(self) -> None:
        for p in compute_processes(self.handle):
            if p.pid in self.before:
                continue
            self.pids.add(p.pid)
            if p.usedGpuMemory is not None:  # None where NVML cannot say (e.g. some containers)
                self.peak_by_pid[p.pid] = max(self.peak_by_pid.get(p.pid, 0), int(p.usedGpuMemory))

    def sample(self) -> None:
        import pynvml

        self.rounds += 1
        self._read("utilisation", lambda: self.util.append(pynvml.nvmlDeviceGetUtilizationRates(self.handle).gpu))
        self._read("memory", lambda: self.used.append(self._used()))
        self._read("processes", self._processes)

    def run(self) -> None:
        while not self._stopped.wait(self.period):
            self.sample()

    def stop(self) -> None:
        self._stopped.set()
        self.join()
        self.sample()  # one last reading

    def summary(self) -> dict[str, Any]:
        peaks = sorted((v / MIB for v in self.peak_by_pid.values()), reverse=True)
        return {
            "gpu_util_mean_pct": round(statistics.fmean(self.util), 1) if self.util else None,
            "samples": self.rounds,
            "processes": len(self.pids),
            "peak_mib_per_process": round(peaks[0]) if peaks else None,
            "mean_peak_mib_per_process": round(statistics.fmean(peaks)) if peaks else None,
            "peak_mib_by_process": [round(p) for p in peaks],
            "peak_device_mib": round((max(self.used) - self.used_before) / MIB) if self.used else None,
            "busy_before": len(self.before),
            **({"nvml_errors": self.errors} if self.errors else {}),
        }


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def command(via: str, n: int, args: argparse.Namespace, workdir: Path, overrides: list[str]) -> tuple[list, str]:
    """The command that runs ``args.trials`` trials, ``n`` at a time, and the study storage it records them in."""
    sets = list(overrides)
    if via == "worker":
        storage = f"journal://{workdir / f'study-{n}.log'}"
        head = ["worker", str(QUICKSTART), "--workers", str(n)]
    else:
        storage = f"sqlite:///{workdir / f'ray-{n}.db'}"
        cpus = len(os.sched_getaffinity(0))
        per_trial = max(1, cpus // n) if cpus >= n else max(0.1, math.floor(10 * cpus / n) / 10)
        sets += [
            "backend.name=ray",
            "backend.scheduler=fifo",
            f"backend.max_concurrent={n}",
            f"backend.gpus_per_trial={math.floor(10000 / n) / 10000}",  # n of them fit on one GPU
            f"backend.cpus_per_trial={per_trial}",
        ]
        head = ["sweep", str(QUICKSTART), "--no-progress"]
    sets += [*args.overrides, f"name=gpu-pack-{via}-{n}"]  # the user's --set last: they win
    tail = ["--trials", str(args.trials), "--workdir", str(workdir), "--storage", storage, *_sets(sets)]
    return [sys.executable, "-m", "ape_nas", *head, *tail], storage


def trial_states(storage: str, name: str) -> dict[str, int]:
    import optuna

    if storage.startswith("journal://"):
        backend = optuna.storages.journal.JournalFileBackend(storage[len("journal://") :])
        store: Any = optuna.storages.JournalStorage(backend)
    else:
        store = storage
    trials = optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)
    return {s: sum(t.state.name.lower() == s for t in trials) for s in ("complete", "pruned", "fail")}


def run_one(n: int, args: argparse.Namespace, workdir: Path, overrides: list[str], env: dict, handle: Any) -> dict:
    cmd, storage = command(args.via, n, args, workdir, overrides)
    log = workdir / f"log-{args.via}-{n}.txt"
    sampler = GpuSampler(handle)
    print(f"gpu_packing: {args.trials} trials, {n} at a time (via {args.via}) ...", flush=True)
    sampler.start()
    t0 = time.perf_counter()
    with log.open("w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - t0
    sampler.stop()
    if rc != 0:
        print("".join(log.read_text().splitlines(keepends=True)[-40:]), file=sys.stderr)
        sys.exit(f"gpu_packing: {n} at a time failed (exit {rc}): {' '.join(cmd)}")
    states = trial_states(storage, f"gpu-pack-{args.via}-{n}")
    return {
        "trials_per_hour": round(states["complete"] / wall * 3600, 1),
        "wall_s": round(wall, 1),
        **states,
        **sampler.summary(),
    }


def table(result: dict[str, Any]) -> str:
    cols = {  # heading -> key of a run's result
        "at once": None,
        "trials/h": "trials_per_hour",
        "speedup": "speedup_vs_first",
        "GPU util %": "gpu_util_mean_pct",
        "peak MiB/process": "peak_mib_per_process",
        "processes": "processes",
        "device MiB": "peak_device_mib",
        "failed": "fail",
    }
    widths = [max(len(h), 8) for h in cols]
    lines = [
        f"GPU packing on {result['device']} (via {result['via']}, {result['precision']}, "
        f"{result['epochs']} epochs, {result['trials']} trials per run)",
        "  ".join(f"{h:>{w}}" for h, w in zip(cols, widths, strict=True)),
    ]
    for n, row in result["runs"].items():
        cells = [n if key is None else row.get(key) for key in cols.values()]
        lines.append("  ".join(f"{'-' if c is None else c!s:>{w}}" for c, w in zip(cells, widths, strict=True)))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1,2,4,8", help="trials sharing the GPU at once, comma-separated")
    ap.add_argument("--trials", type=int, default=16, help="trials per count")
    ap.add_argument("--epochs", type=int, default=3, help="epochs of every trial (no early stop, no pruning)")
    ap.add_argument("--precision", default="32-true", choices=PRECISIONS, help="training.precision")
    ap.add_argument("--via", default="worker", choices=("worker", "ray"), help="ape-nas worker, or the Ray backend")
    ap.add_argument("--gpu", default=None, help="GPU index among those torch sees (default 0), or a GPU UUID")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="another experiment override, e.g. space=PATH (repeatable)")  # fmt: skip
    args = ap.parse_args()
    try:
        counts = [int(c) for c in args.counts.split(",")]
    except ValueError:
        ap.error(f"--counts {args.counts!r}: expected numbers like 1,2,4,8")
    if min(counts) < 1 or args.trials < max(counts) or args.epochs < 1:
        ap.error("expected counts >= 1, --trials at least the largest count, --epochs >= 1")
    why = no_gpu_reason()
    if why is not None:
        print(f"gpu_packing: skipped, no usable GPU: {why}; no results written")
        return
    import pynvml

    uuid, handle = pick_gpu(args.gpu)
    device = pynvml.nvmlDeviceGetName(handle)
    if args.via == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            sys.exit("gpu_packing: --via ray needs Ray Tune: pip install 'ape-nas[ray]'")
    overrides = [
        "backend.sampler=random",
        "backend.sampler_options={}",
        "backend.pruner=none",
        "backend.pruner_options={}",
        "budget.timeout_s=null",
        f"training.max_epochs={args.epochs}",
        f"training.patience={args.epochs}",
        "training.accelerator=gpu",
        f"training.precision={args.precision}",
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": uuid, "PYTHONUNBUFFERED": "1"}
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="gpu-packing-") as tmp:
        workdir = Path(tmp)
        prepare = [sys.executable, "-m", "ape_nas", "data", "prepare", str(QUICKSTART), "--workdir", str(workdir)]
        done = subprocess.run([*prepare, *_sets(args.overrides)], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            sys.exit(f"gpu_packing: ape-nas data prepare failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        for n in counts:
            runs[str(n)] = run_one(n, args, workdir, overrides, env, handle)
            print(f"gpu_packing: {n} at a time: {runs[str(n)]}", flush=True)
    first = runs[str(counts[0])]["trials_per_hour"]
    for row in runs.values():
        row["speedup_vs_first"] = round(row["trials_per_hour"] / first, 2) if first else None
    result = {
        "device": device,
        "via": args.via,
        "precision": args.precision,
        "epochs": args.epochs,
        "trials": args.trials,
        "runs": runs,
    }
    report("gpu_packing", result)
    print(table(result))


if __name__ == "__main__":
    main()
