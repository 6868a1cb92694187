"""Phase timings inside the processes of a measured command (used by ``parallel_efficiency.py``).

Loaded into every Python process of the command through a generated ``sitecustomize`` (see :func:`site_dir`),
active only when ``APE_NAS_PHASE_TRACE`` names a folder. Nothing in ape-nas knows about it: it wraps a few
ape-nas functions when their modules are first imported and times the first import of heavy packages. At exit
each process writes ``<folder>/<pid>.json``: its start time (from /proc), command line, worker label, the first
imports (``[start, seconds]``, the seconds without the timed imports they trigger), the spans of the wrapped
functions (``[name, start, end, cpu at start, cpu at end]``; times are ``time.time()``, CPU is the process's
``time.process_time()``), its garbage collections' time, its threads' CPU time and the wrapped functions it did
not find.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ENV = "APE_NAS_PHASE_TRACE"
# module -> functions to time ("Class.method"); a context manager is marked "cm:" (wait to enter, time held)
SPANS: dict[str, list[str]] = {
    "ape_nas.workers": ["spawn_workers", "run_worker"],
    "ape_nas.sweep": ["prepare_sweep", "open_sweep", "_bind_study", "run_trials", "_finish_parent"],
    "ape_nas.baseline": ["hrv_baseline"],
    "ape_nas.data.prepare": ["prepare_windows"],
    "ape_nas.tracking.runs": [
        "SweepTracker.__init__",
        "SweepTracker.open_parent",
        "SweepTracker.start_trial",
        *(f"TrialRun.{m}" for m in ("log_params", "log_metrics", "set_tags", "log_artifact", "log_text")),
        *(f"TrialRun.{m}" for m in ("log_figure", "mark_running", "close")),
    ],
    "ape_nas.backends.optuna_backend": [
        "OptunaBackend.open",
        "OptunaBackend.figures",
        "OptunaBackend.fail_stale_trials",
        "OptunaBackend.records",
        "cm:OptunaBackend.exclusive",
        *(f"_Handle.{m}" for m in ("suggest_int", "suggest_float", "suggest_categorical", "report", "set_attr")),
        "_Handle.finished_with",
    ],
    "ape_nas.trial_runner": ["TrialRunner.__call__"],
    "ape_nas.objective": ["run_trial", "_fit_fold", "fit", "network_cost", "_test_uncertainty"],
    "optuna.study._optimize": ["_run_trial"],  # one trial in Optuna: ask, the objective, tell
}
HEAVY = (
    "numpy",
    "scipy",
    "sklearn",
    "pandas",
    "torch",
    "lightning",
    "torchmetrics",
    "optuna",
    "sqlalchemy",
    "alembic",
    "mlflow",
    "matplotlib",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "rich",
)

_spans: list[list[Any]] = []
_imports: dict[str, list[float]] = {}  # name -> [when it started, seconds without the timed imports inside]
_nested: list[float] = []  # time of timed imports inside the timed import being executed
_missing: list[str] = []  # functions of SPANS not found (renamed since): their spans are absent
_gc: dict[str, Any] = {"seconds": 0.0, "collections": 0, "gen2_seconds": 0.0, "gen2": 0, "long": []}
_gc_start = [0.0]


def site_dir(folder: Path) -> Path:
    """A folder holding a ``sitecustomize.py`` that loads this module; put it on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    here = str(Path(__file__).resolve().parent)
    (folder / "sitecustomize.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {here!r})\n"
        "try:\n"
        "    import _phase_trace\n"
        "    _phase_trace.install()\n"
        "finally:\n"
        f"    sys.path.remove({here!r})\n"
    )
    return folder


def _process_start() -> float:
    """This process's start, ``time.time()`` scale (10 ms resolution): /proc's start tick vs the boot clock."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


def _span_fn(fn: Any, name: str) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0, c0 = time.time(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _spans.append([name, t0, time.time(), c0, time.process_time()])

    return wrapper


def _span_cm(fn: Any, name: str) -> Any:
    @functools.wraps(fn)
    @contextlib.contextmanager
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0, c0 = time.time(), time.process_time()
        with fn(*args, **kwargs):
            t1, c1 = time.time(), time.process_time()
            _spans.append([f"{name}.wait", t0, t1, c0, c1])
            try:
                yield
            finally:
                _spans.append([f"{name}.held", t1, time.time(), c1, time.process_time()])

    return wrapper


def _patch(module: Any, names: list[str]) -> None:
    for entry in names:
        cm = entry.startswith("cm:")
        path = entry[3:] if cm else entry
        owner: Any = module
        *outer, attr = path.split(".")
        try:
            for part in outer:
                owner = getattr(owner, part)
            fn = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        except (AttributeError, KeyError):
            _missing.append(f"{module.__name__}.{path}")
            continue
        setattr(owner, attr, (_span_cm if cm else _span_fn)(fn, path))


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_start[0] = time.perf_counter()
        return
    took = time.perf_counter() - _gc_start[0]
    _gc["seconds"] += took
    _gc["collections"] += 1
    if info.get("generation") == 2:
        _gc["gen2_seconds"] += took
        _gc["gen2"] += 1
    if took > 0.005:  # [end, seconds, generation] of the collections that matter
        _gc["long"].append([time.time(), round(took, 4), info.get("generation")])


class _Finder:
    """Finds the timed modules through the other finders and wraps their ``exec_module``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in SPANS and name not in HEAVY:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            t0, when = time.perf_counter(), time.time()
            _nested.append(0.0)
            try:
                run(module)
            finally:
                inner, took = _nested.pop(), time.perf_counter() - t0
                if name in HEAVY:
                    _imports[name] = [when, round(took - inner, 3)]
                    if _nested:
                        _nested[-1] += took
            if name in SPANS:
                _patch(module, SPANS[name])

        spec.loader.exec_module = exec_module
        return spec


def _threads() -> list[list[Any]]:
    """[name, CPU seconds] of each thread still alive (main thread first): who used the cores."""
    out: list[list[Any]] = []
    tick = os.sysconf("SC_CLK_TCK")
    for task in sorted(Path("/proc/self/task").iterdir(), key=lambda t: int(t.name)):
        with contextlib.suppress(OSError, ValueError, IndexError):
            name, rest = task.joinpath("stat").read_text().split(" (", 1)[1].rsplit(") ", 1)
            fields = rest.split()
            out.append([name, (int(fields[11]) + int(fields[12])) / tick])
    return out


def _write(folder: str, start: float) -> None:
    doc = {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "argv": sys.argv,
        "label": os.environ.get("APE_NAS_WORKER_LABEL"),
        "start": start,
        "exit": time.time(),
        "cpu": time.process_time(),
        "threads": _threads(),
        "imports": _imports,
        "spans": _spans,
        "gc": _gc,
        "missing": _missing,
    }
    with contextlib.suppress(OSError):
        (Path(folder) / f"{os.getpid()}.json").write_text(json.dumps(doc))


def install() -> None:
    folder = os.environ.get(ENV)
    if not folder:
        return
    start = _process_start()
    sys.meta_path.insert(0, _Finder())
    import gc

    gc.callbacks.append(_on_gc)
    atexit.register(_write, folder, start)  # registered first: runs last
