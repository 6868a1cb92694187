"""Conversion of a trained network for the bundle: ONNX and TorchScript export, parity against PyTorch (also at
other window lengths), and :func:`convert`, the export step that runs them all and times onnxruntime.

Generic over the model contract ``forward(x, features=None)``: given the windows' HRV features (a network that
fuses them, :mod:`ape_nas.models.heads`, or an ensemble with such a member), the exported graph has two inputs,
``x`` and ``hrv_features`` (:data:`ape_nas.handoff.bundle.FEATURES_NAME`); without, one input ``x``, as before."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ape_nas.errors import UserError
from ape_nas.handoff.bundle import FEATURES_NAME, INPUT_NAME, MODEL_ONNX, MODEL_TS, OUTPUT_NAME
from ape_nas.handoff.onnx_session import cpu_name, latency, ort_probs, ort_session

PARITY_TOL = 1e-4
OPSET = 18


class Probabilities(nn.Module):
    """The trained network followed by a softmax: (batch, channels, time) [and (batch, n_features) HRV features]
    → (batch, classes) probabilities."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def uses_features(self) -> bool:
        return bool(getattr(self.net, "uses_features", False))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return torch.softmax(self.net(x) if features is None else self.net(x, features), dim=1)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _inputs(X: np.ndarray, features: np.ndarray | None) -> tuple[torch.Tensor, ...]:
    return (_tensor(X),) if features is None else (_tensor(X), _tensor(features))


@torch.no_grad()
def torch_probs(model: nn.Module, X: np.ndarray, features: np.ndarray | None = None, batch: int = 512) -> np.ndarray:
    """Probabilities of ``model`` (windows [, features] → probabilities) in batches; ``features`` (n, F) or None."""
    out = [
        model(*_inputs(X[i : i + batch], None if features is None else features[i : i + batch])).numpy()
        for i in range(0, len(X), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def _run(run: Callable[..., np.ndarray], x: np.ndarray, features: np.ndarray | None) -> np.ndarray:
    return run(x) if features is None else run(x, features)


@contextlib.contextmanager
def quiet_exporters() -> Any:
    """Exporters print progress to stdout and warn about deprecations: keep the command's output clean."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        if "dim hint" in line or "static shape" in line:
            return f"{type(exc).__name__}: {line.strip()[:300]}"
    return f"{type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, features: torch.Tensor | None = None
) -> dict[str, Any]:
    """Export to ONNX with a dynamic batch axis and, if possible, a dynamic time axis; with ``features`` (an
    example (batch, F) feature tensor) the graph has a second input :data:`FEATURES_NAME` (dynamic batch).

    Tries in order: the torch.export-based exporter with dynamic batch and time; the TorchScript-based exporter
    with dynamic batch and time (deprecated in PyTorch but still shipped; the torch.export one specialises the
    time axis of ceil-mode/padded max-pools); the torch.export-based exporter with a dynamic batch only. A network
    with a recurrent layer (GRU/LSTM) tries the TorchScript-based exporter first. Which one
    worked, and why the others did not, is recorded. Whether the file really accepts other lengths is checked
    afterwards with onnxruntime (:func:`check_lengths`).
    """
    try:
        import onnx
        import onnxscript  # noqa: F401
    except ImportError:
        raise UserError("export needs onnx and onnxscript: pip install 'ape-nas[export]'") from None
    dyn = torch.export.Dim.DYNAMIC
    attempts: list[dict[str, Any]] = []
    args = (example,) if features is None else (example, features)
    names = [INPUT_NAME] if features is None else [INPUT_NAME, FEATURES_NAME]

    def dynamo(dynamic: dict[int, Any]) -> None:
        shapes: tuple[Any, ...] = (dynamic,) if features is None else (dynamic, {0: dyn})
        prog = torch.onnx.export(
            model,
            args,
            dynamo=True,
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_shapes=shapes,
            opset_version=OPSET,
            verbose=False,
        )
        prog.save(str(path), external_data=False)

    def legacy() -> None:
        axes = {INPUT_NAME: {0: "batch", 2: "time"}, OUTPUT_NAME: {0: "batch"}}
        if features is not None:
            axes[FEATURES_NAME] = {0: "batch"}
        torch.onnx.export(
            model,
            args,
            str(path),
            dynamo=False,
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
        )

    plans = [
        ("torch.export (dynamo), dynamic batch and time", lambda: dynamo({0: dyn, 2: dyn})),
        ("TorchScript-based exporter, dynamic batch and time", legacy),
        ("torch.export (dynamo), dynamic batch", lambda: dynamo({0: dyn})),
    ]
    if any(isinstance(m, nn.RNNBase) for m in model.modules()):
        # torch.export unrolls a GRU/LSTM over every time step before it gives up (minutes on long windows); the
        # TorchScript-based exporter writes one GRU/LSTM node with a dynamic time axis
        plans = [plans[1], plans[0], plans[2]]
    for name, fn in plans:
        path.unlink(missing_ok=True)
        try:
            with quiet_exporters():
                fn()
        except Exception as exc:
            attempts.append({"exporter": name, "ok": False, "error": _first_line(exc)})
            continue
        attempts.append({"exporter": name, "ok": True})
        for extra in path.parent.glob(path.name + ".*"):  # never leave external-data files behind
            extra.unlink()
        import onnx

        model_proto = onnx.load(str(path))
        onnx.checker.check_model(model_proto)
        opset = max(o.version for o in model_proto.opset_import if o.domain in ("", "ai.onnx"))
        return {"exporter": name, "opset": int(opset), "attempts": attempts}
    raise UserError("ONNX export failed: " + "; ".join(f"{a['exporter']}: {a['error']}" for a in attempts))


def max_diff(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max())


def other_lengths(X: np.ndarray) -> dict[int, np.ndarray]:
    """Real windows at other lengths: the first half (+1 sample) and the window twice in a row."""
    n = X.shape[2]
    return {n // 2 + 1: X[:, :, : n // 2 + 1], 2 * n: np.concatenate([X, X], axis=2)}


def check_lengths(run: Any, reference: nn.Module, X: np.ndarray, features: np.ndarray | None = None) -> dict[str, Any]:
    """Does an exported model accept other window lengths, with the same output as PyTorch? (``run``: windows
    [, features] → probabilities; the windows keep their features.)"""
    results = {}
    f = None if features is None else features[:16]
    for length, x in other_lengths(X[:16]).items():
        try:
            diff = max_diff(_run(run, x, f), torch_probs(reference, x, f))
            results[str(length)] = {"runs": True, "max_abs_diff": diff, "ok": diff <= PARITY_TOL}
        except Exception as exc:
            results[str(length)] = {"runs": False, "error": _first_line(exc), "ok": False}
    return {"lengths": results, "dynamic_time": all(r["ok"] for r in results.values())}


def export_torchscript(
    model: nn.Module, example: torch.Tensor, path: Path, features: torch.Tensor | None = None
) -> None:
    """``torch.jit.trace`` of ``model(x)``, or of ``model(x, features)`` when an example ``features`` is given."""
    with quiet_exporters(), torch.no_grad():
        traced = torch.jit.trace(model, example if features is None else (example, features), check_trace=False)
        torch.jit.save(traced, str(path))


@dataclass
class Conversion:
    """What :func:`convert` wrote (``model.onnx``, ``model.ts``) and measured."""

    onnx_info: dict[str, Any]  # exporter, opset, attempts
    parity: float  # max |Δp| onnxruntime vs PyTorch on the test windows
    ts_parity: float  # the same for TorchScript
    windows: int
    onnx_lengths: dict[str, Any]  # check_lengths of each
    ts_lengths: dict[str, Any]
    latency: dict[str, Any]

    @property
    def dynamic_time(self) -> bool:
        return bool(self.onnx_lengths["dynamic_time"])


def check_parity(
    run: Callable[[np.ndarray], np.ndarray],
    model: nn.Module,
    X: np.ndarray,
    expected: np.ndarray,
    what: str,
    pair: str,
    note: str = "",
    features: np.ndarray | None = None,
) -> tuple[float, dict[str, Any]]:
    """Max |Δp| of an exported model (``run``: windows [, features] → probabilities) against PyTorch's
    ``expected`` on ``X`` (and ``features``), a UserError above :data:`PARITY_TOL`; and its :func:`check_lengths`."""
    parity = max_diff(_run(run, X, features), expected)
    if not parity <= PARITY_TOL:
        raise UserError(
            f"{what} parity check failed: {pair} probabilities differ by up to {parity:.2e} on the {len(X)} test "
            f"windows (tolerance {PARITY_TOL:g}){note}"
        )
    return parity, check_lengths(run, model, X, features)


def convert(
    model: nn.Module,
    X: np.ndarray,
    expected: np.ndarray,
    folder: Path,
    latency_runs: int,
    step: Callable[[str], None],
    features: np.ndarray | None = None,
) -> Conversion:
    """Export ``model`` to ``folder`` as ONNX and TorchScript; each must reproduce ``expected`` (PyTorch's
    probabilities of the test windows ``X`` [and their HRV ``features``, for a model that takes them]) within
    :data:`PARITY_TOL`, else a UserError; then try other window lengths and time onnxruntime at batch 1."""
    example = _tensor(X[:2])
    example_f = None if features is None else _tensor(features[:2])
    step("exporting ONNX and checking it against PyTorch")
    onnx_info = export_onnx(model, example, folder / MODEL_ONNX, example_f)
    session = ort_session(folder / MODEL_ONNX)
    parity, onnx_lengths = check_parity(
        lambda x, f=None: ort_probs(session, x, features=f),
        model,
        X,
        expected,
        "ONNX",
        "onnxruntime and PyTorch",
        "; the bundle would not reproduce the model",
        features,
    )
    step("exporting TorchScript")
    export_torchscript(model, example, folder / MODEL_TS, example_f)
    with quiet_exporters():
        scripted = torch.jit.load(str(folder / MODEL_TS))
    ts_parity, ts_lengths = check_parity(
        lambda x, f=None: torch_probs(scripted, x, f),
        model,
        X,
        expected,
        "TorchScript",
        "model.ts and PyTorch",
        features=features,
    )
    step(f"timing onnxruntime at batch 1 ({latency_runs} runs)")
    lat = latency(lambda threads: ort_session(folder / MODEL_ONNX, threads), X, latency_runs, features)
    lat["cpu"] = cpu_name()
    return Conversion(onnx_info, parity, ts_parity, len(X), onnx_lengths, ts_lengths, lat)
