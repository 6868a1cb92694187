"""``transfer --out DIR``: the adapted model as a bundle, like ``export`` writes one.

The adapted network is folded into a plain network of the source's architecture (filter weights times their
learnt scale are the conv weights; :func:`ape_nas.transfer.methods.fold`), so it costs nothing extra at inference
and ``predict`` / ``evaluate`` run it unchanged. Checks: the folded network against the adapted one (max |Δp| on
the test windows, ≤ :data:`FOLD_TOL`), then ONNX and TorchScript against the folded network as ``export`` checks
them. ``bundle.json`` records the source, the method, the shots and the calibration windows (subject and start);
``metrics.json`` the test windows' scores with subject-bootstrap intervals. Written to a scratch folder, verified,
then renamed into place.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.errors import UserError
from ape_nas.handoff import bundle as B
from ape_nas.handoff.convert import Probabilities, convert, torch_probs
from ape_nas.handoff.manifest import conversion_checks, uncertainty, versions
from ape_nas.handoff.scores import score
from ape_nas.transfer.run import Kept, stack
from ape_nas.transfer.source import TransferSource
from ape_nas.transfer.target import TargetData

FOLD_TOL = 1e-5


def transfer_card(info: dict[str, Any], metrics: dict[str, Any]) -> str:
    t = info["transfer"]
    iv = metrics["test"]["intervals"]["balanced_accuracy"]
    cal = t["calibration"]
    lines = [
        f"# {info['title']}",
        "",
        "## What this model is",
        f"The network of **{t['source']['how']}** ({t['source']['model']}, spec {t['source']['spec_digest']}), adapted "
        f"to new people by **{t['method']}** with **K = {t['shots']}** labelled windows per class "
        f"({t['protocol']} protocol). Trained parameters: {t['trained_parameters']:,} of "
        f"{info['model']['parameters']:,}; "
        "the adaptation is folded into the plain network, so it runs at the source's cost.",
        "",
        "## Calibration data",
        f"{t['data']} (reader {t['reader']}), classes {', '.join(metrics['class_names'])}. Calibration windows "
        "(subject: window starts in s after the recording's start):",
        "",
        *[f"- {s}: {', '.join(f'{v:g}' for v in starts)}" for s, starts in cal.items()],
        "",
        "## Test",
        f"{metrics['test']['windows']} windows of {', '.join(metrics['split']['test'])}, never used for calibration"
        + (
            " (each starts at least one window length after the last calibration window)"
            if t["protocol"] == "personalise"
            else ""
        )
        + f": balanced accuracy {iv['point']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}] "
        f"({100 * iv['level']:.0f} % subject-bootstrap interval, {iv['n_subjects']} subject(s)).",
        "",
        "## Checks",
        f"- folded vs adapted network: max |Δp| {info['checks']['fold_parity_max_abs']:.1e} (tolerance {FOLD_TOL:g})",
        f"- onnxruntime vs PyTorch: max |Δp| {info['checks']['onnx_parity_max_abs']:.1e}; TorchScript "
        f"{info['checks']['torchscript_parity_max_abs']:.1e}",
        "",
        "## Limitations",
        "Few labelled windows: the interval above is the honest size of the uncertainty. The adaptation assumes the "
        "same sensor, placement and preprocessing as the source (checked: channels and rates).",
        "",
    ]
    return "\n".join(lines)


def write_transfer_bundle(
    out: Path,
    source: TransferSource,
    target: TargetData,
    kept: Kept,
    req: Any,
    record: dict[str, Any],
    latency_runs: int = 100,
) -> dict[str, Any]:
    """Write the bundle of the kept adaptation; returns its ``bundle.json`` content."""
    from ape_nas.transfer.methods import fold

    adapted, episode, outcome = kept.adapted, kept.episode, kept.outcome
    k = len(target.class_names)
    X, y, F = stack(target, episode.test)
    groups = np.concatenate([np.full(len(idx), s) for s, idx in episode.test.items()])
    adapted.net.eval()
    p_adapted = torch_probs(Probabilities(adapted.net).eval(), X, F)
    model = Probabilities(fold(adapted)).eval()
    p_test = torch_probs(model, X, F)
    fold_gap = float(np.abs(p_test - p_adapted).max())
    if fold_gap > FOLD_TOL:
        raise UserError(
            f"folding the {outcome.method} adaptation changed the outputs by {fold_gap:.1e} (> {FOLD_TOL:g})"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".ape-nas-transfer-", dir=out.parent))
    try:
        stage = scratch / "bundle"
        stage.mkdir()
        conv = convert(model, X, p_test, stage, latency_runs, lambda _t: None, features=F)
        prep = dict(source.bundle.preprocessing)
        prep["class_names"] = list(target.class_names)
        prep["output"] = {**prep["output"], "shape": ["batch", k]}
        prep["input"] = {**prep["input"], "accepts_other_lengths": conv.dynamic_time}
        test = {
            "per_subject": {s: score(y[groups == s], p_test[groups == s], k) for s in episode.test},
            "pooled": score(y, p_test, k),
            "windows": len(y),
            **uncertainty(y, p_test, groups, k),
        }
        metrics = {
            "class_names": list(target.class_names),
            "split": {
                "source_train": list(source.bundle.info.get("split", {}).get("train", [])),
                "calibration": list(episode.calibration),
                "test": list(episode.test),
            },
            "test": test,
            "parameters": int(sum(p.numel() for p in model.net.parameters())),
            "trained_parameters": outcome.trained_parameters,
        }
        title = (
            f"{source.spec.model} · {'/'.join(target.class_names)} · adapted by {outcome.method}, K={outcome.k} "
            f"({outcome.protocol}: {', '.join(episode.calibration)})"
        )
        info = {
            "format": B.BUNDLE_FORMAT,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "title": title,
            "source": {"kind": "transfer", "how": f"{source.how}, adapted by {outcome.method} K={outcome.k}"},
            "transfer": {
                "source": source.describe(),
                "method": outcome.method,
                "shots": outcome.k,
                "protocol": outcome.protocol,
                "seed": req.seed,
                "steps": req.steps,
                "data": target.data,
                "reader": target.reader,
                "calibration": outcome.calibration,
                "trained_parameters": outcome.trained_parameters,
            },
            "spec_digest": source.spec.digest(),
            "spec": source.spec.to_dict(),
            "model": {"family": source.spec.model, "arch": source.spec.arch, "parameters": metrics["parameters"]},
            "files": {"onnx": B.MODEL_ONNX, "torchscript": B.MODEL_TS, "preprocessing": B.PREPROCESSING},
            "checks": {"fold_parity_max_abs": fold_gap, **conversion_checks(conv)},
            "latency_ms": dict(conv.latency),
            "versions": versions(),
        }
        records = {B.PREPROCESSING: prep, B.METRICS: metrics, B.INFO: info}
        B.write_bundle(stage, out, records, transfer_card(info, metrics))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return info
