"""The records of a bundle: ``metrics.json`` (every number of the card) and ``bundle.json`` (where the model
comes from, what was checked, with which versions)."""

from __future__ import annotations

import datetime as dt
import platform
import re
from typing import Any

from ape_nas.handoff import bundle as B
from ape_nas.handoff.convert import PARITY_TOL, Conversion
from ape_nas.handoff.scores import SplitScores
from ape_nas.handoff.source import Source
from ape_nas.handoff.trial import Trial
from ape_nas.metrics import CLASS_METRICS
from ape_nas.tracking import COMMIT_TAG, NUMBER_TAG

HRV_METRIC_RE = re.compile(rf"^hrv_baseline_(subjnorm_)?(val|test)_({'|'.join(CLASS_METRICS)})$")


def hrv_baseline(parent_metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """The HRV baseline's scores that the sweep logged on its parent run: ``{"val": {metric: value}, ...}``
    (``subjnorm_val`` / ``subjnorm_test``: features z-scored per subject)."""
    out: dict[str, dict[str, float]] = {}
    for key, value in parent_metrics.items():
        m = HRV_METRIC_RE.match(key)
        if m:
            out.setdefault(("subjnorm_" if m.group(1) else "") + m.group(2), {})[m.group(3)] = float(value)
    return out


def versions() -> dict[str, str]:
    import numpy as np
    import onnx
    import onnxruntime
    import torch

    import ape_nas

    return {
        "ape_nas": ape_nas.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def metrics_record(trial: Trial, ws: Any, scores: SplitScores, conv: Conversion, parameters: int) -> dict[str, Any]:
    ckpt = trial.ckpt
    checks = {
        "parity_tolerance": PARITY_TOL,
        "onnx_parity_max_abs": conv.parity,
        "torchscript_parity_max_abs": conv.ts_parity,
        "parity_windows": conv.windows,
        "parity_subjects": list(scores.test),
        "onnx_other_lengths": conv.onnx_lengths,
        "torchscript_other_lengths": conv.ts_lengths,
        "onnx_export": conv.onnx_info,
        "recomputed_vs_logged_test": {
            m: {"recomputed": scores.pooled["test"][m], "logged": ckpt["test_metrics"].get(f"test_{m}")}
            for m in CLASS_METRICS
        },
    }
    per_subject = ws.stats.get("per_subject", {})
    return {
        "class_names": list(ckpt["class_names"]),
        "split": ckpt["split"],
        "windows_per_subject": {s: int(per_subject[s]["windows"]) for s in ws.subjects if s in per_subject},
        "validation": {"per_subject": scores.val, "pooled": scores.pooled["val"], "logged": ckpt["val_metrics"]},
        "test": {"per_subject": scores.test, "pooled": scores.pooled["test"], "logged": ckpt["test_metrics"]},
        "hrv_baseline": hrv_baseline(trial.parent_metrics),
        "checks": checks,
        "latency_ms": conv.latency,
        "parameters": parameters,
    }


def title(trial: Trial, channels: list[str]) -> str:
    names = "/".join(trial.ckpt["class_names"])
    number = trial.run.tags.get(NUMBER_TAG, "?")
    return f"{trial.spec.model} · {names} from {'+'.join(channels)} ({trial.study}, trial {number})"


def bundle_record(
    source: Source, trial: Trial, conv: Conversion, channels: list[str], parameters: int
) -> dict[str, Any]:
    spec, run = trial.spec, trial.run
    return {
        "format": B.BUNDLE_FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "title": title(trial, channels),
        "source": {
            "how": source.how,
            "run_id": source.run_id,
            "run_name": run.name,
            "tracking_uri": source.tracking_uri,
            "experiment_id": run.experiment_id,
            "study": trial.study,
            "parent_run_id": run.parent_run_id,
            "trial_number": run.tags.get(NUMBER_TAG),
            "checkpoint_artifact": trial.checkpoint_artifact,
            "fold": trial.fold,
            "folds": trial.folds,
            "git_commit": run.tags.get(COMMIT_TAG),
        },
        "spec_digest": spec.digest(),
        "spec": spec.to_dict(),
        "data_fingerprint": trial.ckpt["data_fingerprint"],
        "best_epoch": trial.ckpt.get("best_epoch"),
        "model": {"family": spec.model, "arch": spec.arch, "parameters": parameters},
        "files": {"onnx": B.MODEL_ONNX, "torchscript": B.MODEL_TS, "preprocessing": B.PREPROCESSING},
        "checks": {
            "onnx_parity_max_abs": conv.parity,
            "torchscript_parity_max_abs": conv.ts_parity,
            "parity_windows": conv.windows,
            "parity_tolerance": PARITY_TOL,
            "dynamic_time": conv.dynamic_time,
            "onnx_exporter": conv.onnx_info["exporter"],
            "opset": conv.onnx_info["opset"],
        },
        "latency_ms": dict(conv.latency),
        "versions": versions(),
    }
