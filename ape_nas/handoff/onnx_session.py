"""onnxruntime for a bundle's ``model.onnx``: one way to open a session, run windows through it in batches, and
time it at batch 1 on this CPU. No torch (``predict`` and ``evaluate`` use it as well as ``export``)."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.handoff.bundle import INPUT_NAME, OUTPUT_NAME

BATCH = 256


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """A CPU ``InferenceSession`` of ``path`` (``threads``: intra-op threads; None: onnxruntime's default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def ort_probs(
    session: Any, X: np.ndarray, batch: int = BATCH, input_name: str = INPUT_NAME, output_name: str = OUTPUT_NAME
) -> np.ndarray:
    """Windows ``X`` (n, channels, time) through ``session`` in batches of ``batch``: (n, classes) float32."""
    out = [
        session.run([output_name], {input_name: np.ascontiguousarray(X[i : i + batch], dtype=np.float32)})[0]
        for i in range(0, len(X), batch)
    ]
    return np.concatenate(out)


class OnnxModel:
    """An ONNX graph in onnxruntime (CPU): windows (n, channels, time) float32 → (n, classes) probabilities."""

    def __init__(
        self,
        path: str | Path,
        input_name: str = INPUT_NAME,
        output_name: str = OUTPUT_NAME,
        threads: int | None = None,
    ) -> None:
        self.session = ort_session(path, threads)
        self.input_name, self.output_name = input_name, output_name

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return ort_probs(self.session, windows, input_name=self.input_name, output_name=self.output_name)


def latency(session_factory: Callable[[int | None], Any], x: np.ndarray, runs: int) -> dict[str, Any]:
    """Median and p90 milliseconds of one window (``x[:1]``) on 1 thread and on onnxruntime's default threads
    (``session_factory(threads)`` opens a session), after up to 10 warm-up runs."""
    out = {}
    for label, threads in (("1_thread", 1), ("default_threads", None)):
        session = session_factory(threads)
        feed = {INPUT_NAME: np.ascontiguousarray(x[:1], dtype=np.float32)}
        for _ in range(min(10, runs)):
            session.run([OUTPUT_NAME], feed)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            session.run([OUTPUT_NAME], feed)
            times.append((time.perf_counter() - t) * 1000.0)
        times.sort()
        out[label] = {
            "median_ms": statistics.median(times),
            "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
            "runs": runs,
        }
    out["default_threads"]["threads"] = os.cpu_count()
    return out


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
