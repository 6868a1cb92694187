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

from ape_nas.handoff.bundle import FEATURES_NAME, INPUT_NAME, OUTPUT_NAME

BATCH = 256


def ort_session(path: str | Path, threads: int | None = None) -> Any:
    """A CPU ``InferenceSession`` of ``path`` (``threads``: intra-op threads; None: onnxruntime's default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _feed(
    x: np.ndarray, features: np.ndarray | None, input_name: str = INPUT_NAME, features_name: str = FEATURES_NAME
) -> dict[str, np.ndarray]:
    feed = {input_name: np.ascontiguousarray(x, dtype=np.float32)}
    if features is not None:
        feed[features_name] = np.ascontiguousarray(features, dtype=np.float32)
    return feed


def ort_probs(
    session: Any,
    X: np.ndarray,
    batch: int = BATCH,
    input_name: str = INPUT_NAME,
    output_name: str = OUTPUT_NAME,
    features: np.ndarray | None = None,
    features_name: str = FEATURES_NAME,
) -> np.ndarray:
    """Windows ``X`` (n, channels, time) [and their HRV ``features`` (n, F), for a graph with that second input]
    through ``session`` in batches of ``batch``: (n, classes) float32."""
    out = [
        session.run(
            [output_name],
            _feed(X[i : i + batch], None if features is None else features[i : i + batch], input_name, features_name),
        )[0]
        for i in range(0, len(X), batch)
    ]
    return np.concatenate(out)


class OnnxModel:
    """An ONNX graph in onnxruntime (CPU): windows (n, channels, time) float32 [and, when the graph has the
    second input ``features_name``, their HRV features (n, F)] → (n, classes) probabilities."""

    def __init__(
        self,
        path: str | Path,
        input_name: str = INPUT_NAME,
        output_name: str = OUTPUT_NAME,
        threads: int | None = None,
        features_name: str = FEATURES_NAME,
    ) -> None:
        self.session = ort_session(path, threads)
        self.input_name, self.output_name, self.features_name = input_name, output_name, features_name
        self.uses_features = features_name in {i.name for i in self.session.get_inputs()}

    def __call__(self, windows: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        if self.uses_features and features is None:
            raise ValueError(f"this model also takes the windows' HRV features (input {self.features_name!r})")
        return ort_probs(
            self.session,
            windows,
            input_name=self.input_name,
            output_name=self.output_name,
            features=features if self.uses_features else None,
            features_name=self.features_name,
        )


def latency(
    session_factory: Callable[[int | None], Any], x: np.ndarray, runs: int, features: np.ndarray | None = None
) -> dict[str, Any]:
    """Median and p90 milliseconds of one window (``x[:1]``, with ``features[:1]`` for a model that takes HRV
    features) on 1 thread and on onnxruntime's default threads (``session_factory(threads)`` opens a session),
    after up to 10 warm-up runs."""
    out = {}
    for label, threads in (("1_thread", 1), ("default_threads", None)):
        session = session_factory(threads)
        feed = _feed(x[:1], None if features is None else features[:1])
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
