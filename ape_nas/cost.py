"""The hardware cost of a trial's network, measured on this machine: trainable parameters, multiply-accumulates
per window, batch-1 onnxruntime latency on one CPU thread, and peak activation memory of an inference forward.

``measure(net, in_channels, length)`` → :class:`Cost`. Latency does not depend on the weights, so an untrained
network gives the trained one's latency. Cost metrics are always minimised (:data:`COST_METRICS`); limits on them
are :data:`CONSTRAINTS` (``params_max`` …), checked by :func:`violations`.

* ``macs``: ``FlopCounterMode`` FLOPs / 2 (:func:`ape_nas.models.summary.count_macs`: convolutions, matrix
  products, attention, recurrent layers; element-wise work is not counted).
* ``latency_ms``: the network exported to ONNX at the fixed shape ``(1, channels, length)`` (TorchScript-based
  exporter: 0.03–0.3 s a network here; the torch.export one takes 1–50 s, so it is only the fallback) and run by
  onnxruntime with 1 intra-op and 1 inter-op thread: median of ``latency_runs`` runs after ``warmup`` runs
  (:func:`ort_latency_ms`; on a shared machine the figure of a sub-millisecond network varies by 8-27% between
  measurements: ``benchmarks/latency_repeatability.py``).
* ``peak_memory_mb``: the most MiB (2**20 bytes) of tensor storages that the forward produced and that were alive
  at the same time (a ``TorchDispatchMode`` follows every op's output storages until they are freed). Parameters,
  buffers and the input are not counted, nor scratch memory an op allocates and frees inside itself: under
  ``torch.inference_mode`` a recurrent layer, a norm or attention is one op, its output counted, not its temporaries
  (a GRU then costs what an LSTM's oneDNN kernel does, and a long window is not followed step by step).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import statistics
import tempfile
import time
import warnings
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ape_nas.metrics import CONSTRAINTS, COST_METRICS, human
from ape_nas.models.summary import count_params, evaluating, example_inputs, module_flops

OPSET = 18
LATENCY_SESSIONS = 1  # fresh onnxruntime sessions per measurement (the fastest median counts); more did not help here
MIB = 2**20
INPUT_NAMES = ("x", "hrv_features")  # the exported graph's inputs: the window [, its HRV features]


@dataclass(frozen=True)
class Cost:
    """What one window costs a network (see the module docstring for how each is measured)."""

    params: int  # trainable parameters
    macs: int  # multiply-accumulates of one batch-1 window
    latency_ms: float  # median batch-1 onnxruntime latency, 1 thread
    peak_memory_mb: float  # peak live activations of a batch-1 inference forward, MiB

    def to_dict(self) -> dict[str, int | float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cost:
        missing = [m for m in COST_METRICS if m not in data]
        if missing:
            raise ValueError(f"cost needs {', '.join(COST_METRICS)}; missing {', '.join(missing)}")
        return cls(
            params=int(data["params"]),
            macs=int(data["macs"]),
            latency_ms=float(data["latency_ms"]),
            peak_memory_mb=float(data["peak_memory_mb"]),
        )


# ---------------------------------------------------------------------------------------------------------------------
# constraints
# ---------------------------------------------------------------------------------------------------------------------


def violations(cost: Cost, constraints: Mapping[str, float]) -> dict[str, float]:
    """``value - limit`` of each constraint (> 0: violated), e.g. ``{"params_max": 12000.0}``."""
    unknown = sorted(set(constraints) - set(CONSTRAINTS))
    if unknown:
        raise ValueError(f"unknown cost constraint(s) {', '.join(unknown)}; expected some of {', '.join(CONSTRAINTS)}")
    return {name: float(getattr(cost, CONSTRAINTS[name])) - float(limit) for name, limit in constraints.items()}


def _value_text(metric: str, value: float) -> str:
    if metric in ("params", "macs"):
        return human(value)
    return f"{value:.3g} ms" if metric == "latency_ms" else f"{value:.3g} MiB"


def describe_violations(cost: Cost, constraints: Mapping[str, float]) -> str:
    """One line naming each violated constraint, e.g. ``params 1.2M > params_max 500k``; empty when none is."""
    parts = []
    for name, excess in violations(cost, constraints).items():
        if excess > 0:
            metric = CONSTRAINTS[name]
            value, limit = getattr(cost, metric), constraints[name]
            parts.append(f"{metric} {_value_text(metric, value)} > {name} {_value_text(metric, limit)}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------------------------------
# peak activation memory
# ---------------------------------------------------------------------------------------------------------------------


class _LiveStorages(TorchDispatchMode):
    """Bytes of the storages that ops produce, while they live; storages in ``known`` (by data pointer:
    parameters, buffers, inputs) and outputs that alias a storage already counted (views, in-place ops) are not
    counted again."""

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known = known
        self.counted: set[int] = set()  # the storages counted and alive (StorageImpl addresses)
        self.live = self.peak = 0

    def _free(self, key: int, nbytes: int) -> None:
        self.counted.discard(key)
        self.live -= nbytes

    def _count(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key in self.counted or storage.data_ptr() in self.known:
            return
        nbytes = storage.nbytes()
        self.counted.add(key)
        weakref.finalize(storage, self._free, key, nbytes)
        self.live += nbytes
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor):
            outs: Any = (out,)
        else:
            outs = out if isinstance(out, tuple | list) else tree_leaves(out)
        for t in outs:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                self._count(t)
        return out


def peak_memory_mb(net: nn.Module, inputs: tuple[torch.Tensor, ...]) -> float:
    """Peak MiB of the activation storages alive at once during ``net(*inputs)`` (eval mode, inference mode)."""
    known = {t.untyped_storage().data_ptr() for t in [*net.parameters(), *net.buffers(), *inputs]}
    mode = _LiveStorages(known)
    with evaluating(net), torch.inference_mode(), mode:
        out = net(*inputs)
    peak = mode.peak
    del out
    return peak / MIB


# ---------------------------------------------------------------------------------------------------------------------
# latency
# ---------------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Exporters warn (deprecation) and print progress: keep a sweep's output clean."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export_torchscript(net: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    names = list(INPUT_NAMES[: len(inputs)])
    torch.onnx.export(net, inputs, str(path), dynamo=False, input_names=names, opset_version=OPSET)


def _export_dynamo(net: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    names = list(INPUT_NAMES[: len(inputs)])
    program = torch.onnx.export(net, inputs, dynamo=True, input_names=names, opset_version=OPSET, verbose=False)
    program.save(str(path), external_data=False)


#: exporters in the order tried (fixed shapes): the TorchScript-based one is 10–300x faster to export here
EXPORTERS = (("torchscript", _export_torchscript), ("dynamo", _export_dynamo))


def export_fixed(net: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> str:
    """Export ``net`` (eval mode) to ONNX at the fixed shapes of ``inputs``; returns the exporter that worked
    (:data:`EXPORTERS` in order), RuntimeError naming each one's error when none did. Grad stays on while tracing,
    so modules with an inference fast path (``nn.TransformerEncoderLayer``) are traced as their ONNX-exportable
    ops, not as the fused kernel."""
    errors = []
    for name, export in EXPORTERS:
        path.unlink(missing_ok=True)
        try:
            with _quiet(), evaluating(net), torch.enable_grad():
                export(net, inputs, path)
            return name
        except Exception as exc:
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).strip()[:200]}")
    raise RuntimeError("ONNX export for the latency measurement failed: " + "; ".join(errors))


def ort_latency_ms(
    path: Path, inputs: tuple[torch.Tensor, ...], runs: int, warmup: int, sessions: int = LATENCY_SESSIONS
) -> float:
    """Milliseconds of one onnxruntime run of the graph at ``path`` on ``inputs`` (1 intra-op and 1 inter-op
    thread, sequential): the fastest of ``sessions`` fresh sessions' medians, each over ``runs / sessions`` runs
    after ``warmup`` runs.

    One session is the default: ``benchmarks/latency_repeatability.py`` found the fastest of 5 sessions no more
    repeatable on this shared 2-core machine (the spread comes from the machine's state over time, 8-27%
    coefficient of variation for sub-millisecond networks with either method)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    given = dict(zip(INPUT_NAMES, inputs, strict=False))
    medians = []
    for _ in range(max(1, sessions)):
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        feed = {i.name: given[i.name].numpy() for i in session.get_inputs()}  # an input the graph never reads is gone
        for _ in range(warmup):
            session.run(None, feed)
        times = []
        for _ in range(max(1, runs // max(1, sessions))):
            start = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    return min(medians) * 1000.0


# ---------------------------------------------------------------------------------------------------------------------
# measure
# ---------------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def measure_timed(
    net: nn.Module,
    in_channels: int,
    length: int,
    *,
    n_features: int = 0,
    latency_runs: int = 30,
    warmup: int = 5,
) -> tuple[Cost, dict[str, float]]:
    """:func:`measure`, and the seconds each part took: ``params``, ``macs``, ``memory``, ``export`` (ONNX),
    ``onnxruntime`` (session, warm-up and timed runs), ``latency`` (the last two), ``total``."""
    start = time.perf_counter()
    seconds: dict[str, float] = {}

    def timed(part: str, fn: Any, *args: Any) -> Any:
        t = time.perf_counter()
        value = fn(*args)
        seconds[part] = time.perf_counter() - t
        return value

    if any(t.device.type != "cpu" for t in [*net.parameters(), *net.buffers()]):
        net = copy.deepcopy(net).cpu()  # measured on this CPU; the caller's network stays where it is
    inputs = example_inputs(net, in_channels, length, n_features)
    with _one_thread(), tempfile.TemporaryDirectory(prefix="ape-nas-cost-") as folder:
        path = Path(folder) / "net.onnx"
        params = timed("params", count_params, net)
        macs = timed("macs", lambda: module_flops(net, inputs)[0] // 2)
        memory = timed("memory", peak_memory_mb, net, inputs)
        timed("export", export_fixed, net, inputs, path)
        latency = timed("onnxruntime", ort_latency_ms, path, inputs, latency_runs, warmup)
    seconds["latency"] = seconds["export"] + seconds["onnxruntime"]
    seconds["total"] = time.perf_counter() - start
    return Cost(params=params, macs=macs, latency_ms=latency, peak_memory_mb=memory), seconds


def measure(
    net: nn.Module,
    in_channels: int,
    length: int,
    *,
    n_features: int = 0,
    latency_runs: int = 30,
    warmup: int = 5,
) -> Cost:
    """The :class:`Cost` of ``net`` for one ``(1, in_channels, length)`` window (and ``(1, n_features)`` HRV
    features for a network that takes them: ``net(x, features)``). Runs on one torch thread (the thread count is
    restored) in eval mode, counting under ``torch.inference_mode``; the network's weights and every module's
    training flag are as before.

    Example:
        >>> from ape_nas.models import build_model
        >>> net = build_model("cnn1d", in_channels=1, num_classes=2)
        >>> cost = measure(net, in_channels=1, length=1920)  # a 60-s window at 32 Hz
        >>> cost.params == sum(p.numel() for p in net.parameters()), cost.macs
        (True, 8964588)
    """
    return measure_timed(net, in_channels, length, n_features=n_features, latency_runs=latency_runs, warmup=warmup)[0]
