"""The records of a bundle: ``metrics.json`` (every number of the card, with subject-bootstrap intervals of the
test metrics) and ``bundle.json`` (where the model comes from — one trial, its refit, or an ensemble's members —,
what was checked, with which versions)."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import platform
import re
from typing import Any

import numpy as np

from ape_nas.handoff import bundle as B
from ape_nas.handoff.convert import PARITY_TOL, Conversion
from ape_nas.handoff.scores import SplitScores
from ape_nas.handoff.source import Source
from ape_nas.handoff.trial import Plan, Trial
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


def subject_distribution(values: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Per metric: each subject's value and their min, median, max, mean and standard deviation (subjects whose
    value is undefined, e.g. AUROC with one class, are left out of the summary)."""
    out: dict[str, dict[str, Any]] = {}
    for metric in CLASS_METRICS:
        per = {s: v.get(metric) for s, v in values.items()}
        finite = np.array([v for v in per.values() if v is not None and math.isfinite(v)], dtype=float)
        summary = dict.fromkeys(("min", "median", "max", "mean", "sd"))
        if finite.size:
            summary = {
                "min": float(finite.min()),
                "median": float(np.median(finite)),
                "max": float(finite.max()),
                "mean": float(finite.mean()),
                "sd": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            }
        clean = {s: (v if v is not None and math.isfinite(v) else None) for s, v in per.items()}
        out[metric] = {"per_subject": clean, "n_subjects": int(finite.size), **summary}
    return out


def uncertainty(y: np.ndarray, probs: np.ndarray, groups: np.ndarray, k: int) -> dict[str, Any]:
    """Subject-bootstrap intervals of the pooled metrics and the per-subject distribution (:mod:`ape_nas.stats`)."""
    from ape_nas.stats import metric_intervals, per_subject

    intervals = metric_intervals(y, probs, groups, k)
    return {
        "intervals": {m: iv.to_dict() for m, iv in intervals.items()},
        "subject_distribution": subject_distribution(per_subject(y, probs, groups, k)),
    }


def baseline_on_split(ws: Any, split: dict[str, list[str]], seed: int, k: int) -> dict[str, Any] | None:
    """The HRV baseline fitted at export on this bundle's training subjects (as the sweep fits it on each fold's)
    and scored on its test subjects, with the same intervals as the model; None when the windows have no HRV
    features."""
    from ape_nas.baseline import fit_model
    from ape_nas.metrics import classification_metrics

    if ws.hrv is None or not np.isfinite(ws.hrv).any():
        return None
    train = ws.indices(split["train"])
    test = ws.indices(split["test"])
    hrv = np.asarray(ws.hrv)
    probs = fit_model(hrv[train], ws.y[train], seed).predict_proba(hrv[test], k)
    y, groups = np.asarray(ws.y[test]), ws.subject_ids(test)
    return {
        "fitted_on": "the train subjects of this bundle's split",
        "test": classification_metrics(y, probs, k),
        **uncertainty(y, probs, groups, k),
    }


def member_record(member: Trial, test: dict[str, Any], metric: str) -> dict[str, Any]:
    """One ensemble member: where it comes from, its search score, its test scores recomputed (and as logged)."""
    run, ckpt = member.run, member.ckpt
    if member.fold is None or member.folds < 2:
        val = run.metrics.get("score")
    else:
        val = run.metrics.get(f"fold{member.fold}.score", ckpt["val_metrics"].get(f"val_{metric}"))
    return {
        "run_id": run.run_id,
        "trial_number": run.number,
        "fold": member.fold,
        "folds": member.folds,
        "checkpoint_artifact": member.checkpoint_artifact,
        "model": member.spec.model,
        "arch": member.spec.arch,
        "spec_digest": member.spec.digest(),
        "val_score": val,
        "best_epoch": ckpt.get("best_epoch"),
        "test": {m: test.get(m) for m in (*CLASS_METRICS, "accuracy")},
        "logged_test": {m: ckpt["test_metrics"].get(f"test_{m}") for m in CLASS_METRICS},
    }


def metrics_record(
    plan: Plan,
    ws: Any,
    scores: SplitScores,
    conv: Conversion,
    parameters: int,
    members: list[dict[str, Any]] | None = None,
    member_mean_diff: float | None = None,
) -> dict[str, Any]:
    """``metrics.json``: validation and test scores per subject and pooled, the test intervals and per-subject
    distribution, the HRV baseline (the sweep's, and refitted on this split), the export checks; an ensemble's
    members with their own test scores."""
    trial, ckpt = plan.trial, plan.trial.ckpt
    k = len(ckpt["class_names"])
    single = not plan.ensemble
    checks: dict[str, Any] = {
        "parity_tolerance": PARITY_TOL,
        "onnx_parity_max_abs": conv.parity,
        "torchscript_parity_max_abs": conv.ts_parity,
        "parity_windows": conv.windows,
        "parity_subjects": list(scores.test),
        "onnx_other_lengths": conv.onnx_lengths,
        "torchscript_other_lengths": conv.ts_lengths,
        "onnx_export": conv.onnx_info,
        "recomputed_vs_logged_test": (
            {
                m: {"recomputed": scores.pooled["test"][m], "logged": ckpt["test_metrics"].get(f"test_{m}")}
                for m in CLASS_METRICS
            }
            if single
            else {}
        ),
    }
    if member_mean_diff is not None:
        checks["ensemble_vs_mean_of_members_max_abs"] = member_mean_diff
    per_subject = ws.stats.get("per_subject", {})
    baseline: dict[str, Any] = hrv_baseline(trial.parent_metrics)
    here = baseline_on_split(ws, plan.split, trial.spec.seed, k)
    if here is not None:
        baseline["this_split"] = here
    record = {
        "class_names": list(ckpt["class_names"]),
        "split": plan.split,
        "windows_per_subject": {s: int(per_subject[s]["windows"]) for s in ws.subjects if s in per_subject},
        "validation": {
            "per_subject": scores.val,
            "pooled": scores.pooled["val"],
            "logged": ckpt["val_metrics"] if single and ckpt["val_metrics"] else None,
        },
        "test": {
            "per_subject": scores.test,
            "pooled": scores.pooled["test"],
            "logged": ckpt["test_metrics"] if single else None,
            **uncertainty(scores.y_test, scores.p_test, scores.g_test, k),
        },
        "hrv_baseline": baseline,
        "checks": checks,
        "latency_ms": conv.latency,
        "parameters": parameters,
    }
    if members is not None:
        record["members"] = members
    return record


def title(plan: Plan, channels: list[str]) -> str:
    trial = plan.trial
    names = "/".join(trial.ckpt["class_names"])
    number = trial.run.tags.get(NUMBER_TAG, "?")
    if plan.kind == "top_k":
        models = "+".join(dict.fromkeys(m.spec.model for m in plan.members))
        numbers = ", ".join(str(m.run.number) for m in plan.members)
        inputs = "+".join(channels)
        return f"ensemble of {len(plan.members)} ({models}) · {names} from {inputs} ({trial.study}, trials {numbers})"
    if plan.kind == "folds":
        return (
            f"{trial.spec.model} ensemble of {len(plan.members)} folds · {names} from {'+'.join(channels)} "
            f"({trial.study}, trial {number})"
        )
    refit = ", refitted on all non-test subjects" if plan.kind == "final" else ""
    return f"{trial.spec.model} · {names} from {'+'.join(channels)} ({trial.study}, trial {number}{refit})"


def ensemble_digest(members: list[Trial]) -> str:
    """A spec digest for a top-K ensemble: of its members' digests, in order."""
    text = ",".join(m.spec.digest() for m in members)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def conversion_checks(conv: Conversion) -> dict[str, Any]:
    """The export checks of ``bundle.json``: ONNX and TorchScript parity, exporter, opset, other lengths."""
    return {
        "onnx_parity_max_abs": conv.parity,
        "torchscript_parity_max_abs": conv.ts_parity,
        "parity_windows": conv.windows,
        "parity_tolerance": PARITY_TOL,
        "dynamic_time": conv.dynamic_time,
        "onnx_exporter": conv.onnx_info["exporter"],
        "opset": conv.onnx_info["opset"],
    }


def bundle_record(source: Source, plan: Plan, conv: Conversion, channels: list[str], parameters: int) -> dict[str, Any]:
    trial = plan.trial
    spec, run = trial.spec, trial.run
    source_record = {
        "how": source.how,
        "kind": plan.kind,
        "run_id": source.run_id,
        "trial_run_id": run.run_id,
        "run_name": run.name,
        "tracking_uri": source.tracking_uri,
        "experiment_id": run.experiment_id,
        "study": trial.study,
        "parent_run_id": run.parent_run_id,
        "trial_number": run.tags.get(NUMBER_TAG),
        "checkpoint_artifact": trial.checkpoint_artifact,
        "fold": trial.fold if plan.kind == "trial" else None,
        "folds": trial.folds,
        "git_commit": run.tags.get(COMMIT_TAG),
    }
    if plan.refit is not None:
        source_record["final"] = {
            "refit_run_id": plan.refit.run_id,
            "epochs": plan.refit.epochs,
            "epochs_from": plan.refit.epochs_from,
            "trained_on": "every non-test subject (train + validation)",
        }
    record: dict[str, Any] = {
        "format": B.BUNDLE_FORMAT,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "title": title(plan, channels),
        "source": source_record,
        "spec_digest": ensemble_digest(plan.members) if plan.kind == "top_k" else spec.digest(),
        "spec": spec.to_dict(),
        "data_fingerprint": trial.ckpt["data_fingerprint"],
        "best_epoch": trial.ckpt.get("best_epoch"),
        "model": {
            "family": "ensemble" if plan.ensemble else spec.model,
            "arch": spec.arch,
            "parameters": parameters,
        },
        "files": {"onnx": B.MODEL_ONNX, "torchscript": B.MODEL_TS, "preprocessing": B.PREPROCESSING},
        "checks": conversion_checks(conv),
        "latency_ms": dict(conv.latency),
        "versions": versions(),
    }
    if plan.ensemble:
        record["ensemble"] = {
            "kind": plan.kind,
            "size": len(plan.members),
            "combination": "mean of the members' softmax probabilities (one ONNX graph)",
            "members": [
                {
                    "run_id": m.run.run_id,
                    "trial_number": m.run.number,
                    "fold": m.fold if m.folds > 1 else None,
                    "model": m.spec.model,
                    "arch": m.spec.arch,
                    "spec_digest": m.spec.digest(),
                    "checkpoint_artifact": m.checkpoint_artifact,
                }
                for m in plan.members
            ],
        }
    return record
