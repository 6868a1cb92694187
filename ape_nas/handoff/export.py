"""``ape-nas export``: an MLflow trial run → a self-contained bundle (see :mod:`ape_nas.handoff.bundle`).

Steps: find the run (a run id, or the best trial of an experiment's study) → download its plain checkpoint
(``model.pt``; multi-fold trials: fold 0) and ``spec.yaml`` → rebuild the network and the exact windows it was
trained on (the data fingerprint must match) → score it per validation and test subject → export ONNX (dynamic
batch and, where the exporter manages, time axis) and TorchScript → check onnxruntime against PyTorch on the test
subjects' windows (fails above 1e-4) and at other window lengths → time onnxruntime at batch 1 → write
preprocessing.json, metrics.json, model_card.md, bundle.json, SHA256SUMS → log the bundle under ``bundle/`` of
the trial run and register it as a new version in the MLflow model registry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import platform
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ape_nas.errors import UserError
from ape_nas.handoff import bundle as B
from ape_nas.handoff.card import render_card
from ape_nas.handoff.convert import (
    INPUT_NAME,
    OUTPUT_NAME,
    PARITY_TOL,
    Probabilities,
    check_lengths,
    cpu_name,
    export_onnx,
    export_torchscript,
    latency,
    ort_probs,
    ort_session,
    quiet_exporters,
    torch_probs,
)
from ape_nas.handoff.evaluate import score

RUN_ID_RE = re.compile(r"^[0-9a-f]{32}$")


# ---------------------------------------------------------------------------------------------------------------
# the source run
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Source:
    tracking_uri: str
    run_id: str
    how: str


def resolve_source(
    target: str,
    *,
    workdir: str | Path = "runs",
    tracking_uri: str | None = None,
    storage: str | None = None,
    overrides: list[str] | None = None,
) -> Source:
    """``target`` is an experiment file (→ its study's best trial) or an MLflow run id."""
    from ape_nas.tracking import default_tracking_uri

    path = Path(target)
    if path.is_file() or path.suffix in (".yaml", ".yml"):
        from ape_nas.progress import best_of
        from ape_nas.sweep import load_status

        exp, backend = load_status(path, workdir=workdir, storage=storage, overrides=overrides)
        best = best_of(backend.records(), exp.direction)
        if best is None or not best.run_id:
            raise UserError(f"study {exp.name!r} has no complete trial yet; nothing to export")
        uri = tracking_uri or backend.attrs().get("tracking_uri") or default_tracking_uri(Path(workdir))
        how = f"best trial {best.number} of study {exp.name} (val {exp.objective['metric']} {best.value:.4f})"
        return Source(uri, best.run_id, how)
    if not RUN_ID_RE.match(target):
        raise UserError(
            f"{target}: neither an experiment file nor an MLflow run id (32 hex digits, e.g. from `ape-nas status`)"
        )
    return Source(tracking_uri or default_tracking_uri(Path(workdir)), target, f"MLflow run {target}")


@dataclass
class Trial:
    run: Any
    spec: Any
    ckpt: dict[str, Any]
    fold: int | None  # None: single-fold trial
    folds: int
    checkpoint_artifact: str
    parent_metrics: dict[str, float]


def fetch_trial(client: Any, run_id: str, scratch: Path) -> Trial:
    """The trial run, its spec and its checkpoint (fold 0 of a multi-fold trial)."""
    from mlflow.exceptions import MlflowException

    from ape_nas.objective import CHECKPOINT_FORMAT
    from ape_nas.spec import TrialSpec

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise UserError(f"no MLflow run {run_id} in {client.tracking_uri}") from None
    tags = run.data.tags
    if tags.get("ape_nas.role") != "trial":
        raise UserError(f"MLflow run {run_id} is not a trial run of an ape-nas sweep (tag ape_nas.role)")
    if tags.get("ape_nas.state") != "complete":
        raise UserError(f"trial run {run_id} is {tags.get('ape_nas.state', 'unknown')}, not complete: no model")
    top = {a.path for a in client.list_artifacts(run_id)}
    folds = int(tags.get("split.folds", "1") or 1)
    if "model.pt" in top:
        artifact, fold = "model.pt", None
    elif "checkpoints" in top:
        artifact, fold = "checkpoints/fold0/model.pt", 0
    else:
        raise UserError(f"trial run {run_id} has no model.pt artifact (artifacts: {', '.join(sorted(top)) or 'none'})")
    try:
        ckpt_path = client.download_artifacts(run_id, artifact, str(scratch))
        spec_path = client.download_artifacts(run_id, "spec.yaml", str(scratch))
    except (MlflowException, OSError) as exc:
        raise UserError(f"trial run {run_id}: cannot download {artifact} / spec.yaml ({exc})") from None
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{artifact} of run {run_id}: not an ape-nas checkpoint ({CHECKPOINT_FORMAT})")
    spec = TrialSpec.from_yaml(Path(spec_path).read_text())
    if TrialSpec.from_dict(ckpt["spec"]).digest() != spec.digest():
        raise UserError(f"run {run_id}: spec.yaml and the checkpoint's spec differ (artifacts altered?)")
    parent_metrics: dict[str, float] = {}
    parent_id = tags.get("mlflow.parentRunId")
    if parent_id:
        with contextlib.suppress(MlflowException):
            parent_metrics = dict(client.get_run(parent_id).data.metrics)
    return Trial(run, spec, ckpt, fold, folds, artifact, parent_metrics)


# ---------------------------------------------------------------------------------------------------------------
# preprocessing description
# ---------------------------------------------------------------------------------------------------------------


def preprocessing_json(data: dict[str, Any], ckpt: dict[str, Any], input_shape: list[Any]) -> dict[str, Any]:
    from ape_nas.data.prepare import PREP_VERSION
    from ape_nas.data.quality import QualityConfig
    from ape_nas.data.windows import MAX_BEAT_GAP_S, _band

    rate = float(ckpt["rate_hz"])
    channels = list(ckpt["channels"])
    min_rate: dict[str, Any] = {}
    for ch in channels:
        band = _band(data, ch)
        if band:
            min_rate[ch] = {
                "hz": min(2.0 * float(band[1]), rate),
                "why": f"its {band[0]:g}-{band[1]:g} Hz band-pass at the model's {rate:g} Hz",
            }
        elif data.get("rate_hz") is None:
            min_rate[ch] = {"hz": rate, "why": f"the model was trained on recordings at their native {rate:g} Hz"}
    normalize = data.get("normalize", "subject")
    norm_text = {
        "subject": "per recording and channel: z-score (x - mean) / (std + 1e-6) with the mean and std over all "
        "kept windows of that recording (after quality rejection), NaN ignored; then NaN → 0",
        "window": "per window and channel: z-score (x - mean) / (std + 1e-6) over the window; then NaN → 0",
        "none": "none (NaN → 0)",
    }[normalize]
    window_samples = int(ckpt["window_samples"])
    return {
        "format": B.PREPROCESSING_FORMAT,
        "channels": channels,
        "rate_hz": rate,
        "bandpass_hz": data.get("bandpass_hz"),
        "normalize": normalize,
        "window_s": float(data["window_s"]),
        "stride_s": float(data["stride_s"]),
        "window_samples": window_samples,
        "stride_samples": max(1, round(float(data["stride_s"]) * rate)),
        "label_purity": float(data["label_purity"]),
        "quality": QualityConfig.from_dict(data.get("quality")).__dict__,
        "class_names": list(ckpt["class_names"]),
        "min_rate_hz": min_rate,
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "layout": "(batch, channels, time)",
            "shape": input_shape,
            "window_samples": window_samples,
        },
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["batch", len(ckpt["class_names"])],
            "meaning": "softmax class probabilities, columns in class_names order; predicted class = argmax",
        },
        "steps": [
            f"1. pick channels {', '.join(channels)} (in this order: input channel index = position)",
            "2. band-pass each sampled channel at its native rate: "
            + (
                f"Butterworth order 2, {data.get('bandpass_hz')} Hz, zero phase (scipy.signal.sosfiltfilt, "
                "second-order sections), high edge capped at 0.99 × Nyquist; NaN samples bridged with the "
                "channel mean for filtering and set back to NaN"
                if data.get("bandpass_hz")
                else "none"
            ),
            f"3. resample every channel to {rate:g} Hz with scipy.signal.resample_poly (rational ratio, "
            "denominator ≤ 1000; NaN masks resampled separately); beat-event channels (time, interval) become the "
            f"interval held from beat to beat, NaN in gaps (intervals > {MAX_BEAT_GAP_S:g} s or missing beats)",
            "4. align channels on their common time span (channel offsets after the recording start)",
            f"5. cut windows of {data['window_s']:g} s = {window_samples} samples every {data['stride_s']:g} s "
            f"= {max(1, round(float(data['stride_s']) * rate))} samples, from the start of the common span",
            "6. (training/evaluation only) window label = majority label if at least "
            f"{100 * float(data['label_purity']):.0f} % of the window carries it, else unlabelled",
            "7. drop windows failing the quality checks (quality: NaN share, flat lines ≥ flat_s, clipping at "
            "the recording's extremes, beat-gap share)",
            f"8. normalise: {norm_text}",
            "9. float32 array (windows, channels, time) → model input x; output = class probabilities",
        ],
        "reference_implementation": "ape_nas.data.windows.window_subject",
        "prep_version": PREP_VERSION,
        "source_data": {
            "benchmark": data.get("benchmark"),
            "params": data.get("params"),
            "rate_hz_setting": data.get("rate_hz"),
            "hrv_source": data.get("hrv_source"),
        },
    }


# ---------------------------------------------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------------------------------------------


def _per_subject(ws: Any, subjects: list[str], probs: dict[str, np.ndarray], k: int) -> dict[str, Any]:
    return {s: score(np.asarray(ws.y[ws.indices([s])]), probs[s], k) for s in subjects}


def _hrv_baseline(parent: dict[str, float]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, value in parent.items():
        m = re.match(r"^hrv_baseline_(subjnorm_)?(val|test)_(f1_macro|balanced_accuracy|auroc)$", key)
        if m:
            out.setdefault(("subjnorm_" if m.group(1) else "") + m.group(2), {})[m.group(3)] = float(value)
    return out


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    import ape_nas

    return {
        "ape_nas": ape_nas.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


@dataclass
class ExportResult:
    out: Path
    run_id: str
    registered: tuple[str, str] | None
    parity_max_abs: float
    torchscript_parity_max_abs: float
    dynamic_time: bool
    latency: dict[str, Any]
    info: dict[str, Any]


def export_bundle(
    target: str,
    out: str | Path,
    *,
    workdir: str | Path = "runs",
    tracking_uri: str | None = None,
    storage: str | None = None,
    overrides: list[str] | None = None,
    model_name: str | None = None,
    register: bool = True,
    latency_runs: int = 200,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export the model of a trial run (or of an experiment's best trial) into the bundle folder ``out``.

    ``progress`` is told each step as it starts (the CLI shows it on a status line)."""
    step = progress or (lambda _text: None)
    from mlflow.tracking import MlflowClient

    from ape_nas.data.prepare import prepare_windows
    from ape_nas.data.splits import Split
    from ape_nas.models import build_model
    from ape_nas.tracking import quiet_mlflow

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(
            f"{out}: exists and is not an empty folder; choose a new --out folder (bundles are never merged)"
        )
    source = resolve_source(target, workdir=workdir, tracking_uri=tracking_uri, storage=storage, overrides=overrides)
    quiet_mlflow()
    client = MlflowClient(tracking_uri=source.tracking_uri)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".ape-nas-export-", dir=out.parent))
    try:
        step(f"downloading checkpoint and spec of run {source.run_id}")
        trial = fetch_trial(client, source.run_id, scratch / "download")
        spec, ckpt = trial.spec, trial.ckpt
        net = build_model(spec.model, int(ckpt["in_channels"]), int(ckpt["num_classes"]), **spec.arch)
        net.load_state_dict(ckpt["state_dict"])
        model = Probabilities(net).eval()

        step("loading the windows the model was trained on")
        ws = prepare_windows(spec.data, Path(workdir) / "cache")
        if ws.fingerprint != ckpt["data_fingerprint"]:
            raise UserError(
                f"the data of run {source.run_id} changed since training (fingerprint {ws.fingerprint} here, "
                f"{ckpt['data_fingerprint']} at training): the card's per-subject metrics would not describe this "
                "model; restore the data (or export with the work directory of the sweep)"
            )
        names = list(ckpt["class_names"])
        k = len(names)
        split = Split(**{p: tuple(v) for p, v in ckpt["split"].items()})
        X = {s: np.asarray(ws.X[ws.indices([s])]) for s in (*split.val, *split.test)}
        probs = {s: torch_probs(model, x) for s, x in X.items()}
        val = _per_subject(ws, list(split.val), probs, k)
        test = _per_subject(ws, list(split.test), probs, k)
        pooled = {
            part: score(
                np.concatenate([np.asarray(ws.y[ws.indices([s])]) for s in subjects]),
                np.concatenate([probs[s] for s in subjects]),
                k,
            )
            for part, subjects in (("val", split.val), ("test", split.test))
        }
        X_test = np.concatenate([X[s] for s in split.test])
        p_test = np.concatenate([probs[s] for s in split.test])

        stage = scratch / "bundle"
        stage.mkdir()
        example = torch.from_numpy(np.ascontiguousarray(X_test[:2], dtype=np.float32))
        step("exporting ONNX and checking it against PyTorch")
        onnx_info = export_onnx(model, example, stage / B.MODEL_ONNX)
        session = ort_session(stage / B.MODEL_ONNX)
        p_onnx = ort_probs(session, X_test)
        parity = float(np.abs(p_onnx - p_test).max())
        if not parity <= PARITY_TOL:
            raise UserError(
                f"ONNX parity check failed: onnxruntime and PyTorch probabilities differ by up to {parity:.2e} on "
                f"the {len(X_test)} test windows (tolerance {PARITY_TOL:g}); the bundle would not reproduce the model"
            )
        onnx_lengths = check_lengths(lambda x: ort_probs(session, x), model, X_test)
        step("exporting TorchScript")
        export_torchscript(model, example, stage / B.MODEL_TS)
        with quiet_exporters():
            scripted = torch.jit.load(str(stage / B.MODEL_TS))
        ts_parity = float(np.abs(torch_probs(scripted, X_test) - p_test).max())
        if not ts_parity <= PARITY_TOL:
            raise UserError(
                f"TorchScript parity check failed: model.ts and PyTorch probabilities differ by up to "
                f"{ts_parity:.2e} on the {len(X_test)} test windows (tolerance {PARITY_TOL:g})"
            )
        ts_lengths = check_lengths(lambda x: torch_probs(scripted, x), model, X_test)
        step(f"timing onnxruntime at batch 1 ({latency_runs} runs)")
        lat = latency(lambda t: ort_session(stage / B.MODEL_ONNX, t), X_test, latency_runs)
        lat["cpu"] = cpu_name()

        dynamic_time = bool(onnx_lengths["dynamic_time"])
        input_shape = ["batch", int(ckpt["in_channels"]), "time" if dynamic_time else int(ckpt["window_samples"])]
        prep = preprocessing_json(spec.data, ckpt, input_shape)
        prep["input"]["accepts_other_lengths"] = dynamic_time
        study = trial.run.data.tags.get("ape_nas.study") or "study"
        number = trial.run.data.tags.get("ape_nas.trial_number", "?")
        title = f"{spec.model} · {'/'.join(names)} from {'+'.join(prep['channels'])} ({study}, trial {number})"
        n_params = int(sum(p.numel() for p in net.parameters()))
        checks = {
            "parity_tolerance": PARITY_TOL,
            "onnx_parity_max_abs": parity,
            "torchscript_parity_max_abs": ts_parity,
            "parity_windows": len(X_test),
            "parity_subjects": list(split.test),
            "onnx_other_lengths": onnx_lengths,
            "torchscript_other_lengths": ts_lengths,
            "onnx_export": onnx_info,
            "recomputed_vs_logged_test": {
                m: {"recomputed": pooled["test"][m], "logged": ckpt["test_metrics"].get(f"test_{m}")}
                for m in ("f1_macro", "balanced_accuracy", "auroc")
            },
        }
        counts = {
            s: int(ws.stats["per_subject"][s]["windows"]) for s in ws.subjects if s in ws.stats.get("per_subject", {})
        }
        metrics = {
            "class_names": names,
            "split": ckpt["split"],
            "windows_per_subject": counts,
            "validation": {"per_subject": val, "pooled": pooled["val"], "logged": ckpt["val_metrics"]},
            "test": {"per_subject": test, "pooled": pooled["test"], "logged": ckpt["test_metrics"]},
            "hrv_baseline": _hrv_baseline(trial.parent_metrics),
            "checks": checks,
            "latency_ms": lat,
            "parameters": n_params,
        }
        info = {
            "format": B.BUNDLE_FORMAT,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "title": title,
            "source": {
                "how": source.how,
                "run_id": source.run_id,
                "run_name": trial.run.info.run_name,
                "tracking_uri": source.tracking_uri,
                "experiment_id": trial.run.info.experiment_id,
                "study": study,
                "parent_run_id": trial.run.data.tags.get("mlflow.parentRunId"),
                "trial_number": trial.run.data.tags.get("ape_nas.trial_number"),
                "checkpoint_artifact": trial.checkpoint_artifact,
                "fold": trial.fold,
                "folds": trial.folds,
                "git_commit": trial.run.data.tags.get("mlflow.source.git.commit"),
            },
            "spec_digest": spec.digest(),
            "spec": spec.to_dict(),
            "data_fingerprint": ckpt["data_fingerprint"],
            "best_epoch": ckpt.get("best_epoch"),
            "model": {"family": spec.model, "arch": spec.arch, "parameters": n_params},
            "files": {"onnx": B.MODEL_ONNX, "torchscript": B.MODEL_TS, "preprocessing": B.PREPROCESSING},
            "checks": {
                "onnx_parity_max_abs": parity,
                "torchscript_parity_max_abs": ts_parity,
                "parity_windows": len(X_test),
                "parity_tolerance": PARITY_TOL,
                "dynamic_time": dynamic_time,
                "onnx_exporter": onnx_info["exporter"],
                "opset": onnx_info["opset"],
            },
            "latency_ms": dict(lat),
            "versions": _versions(),
        }
        (stage / B.PREPROCESSING).write_text(json.dumps(prep, indent=2) + "\n")
        (stage / B.METRICS).write_text(json.dumps(metrics, indent=2, default=float) + "\n")
        (stage / B.INFO).write_text(json.dumps(info, indent=2, default=str) + "\n")
        (stage / B.CARD).write_text(render_card(info, prep, metrics))
        B.write_checksums(stage)
        B.verify_bundle(stage)
        if B.pickle_files(stage):
            raise AssertionError(f"pickle files in the bundle: {B.pickle_files(stage)}")
        if out.exists():
            out.rmdir()
        shutil.move(str(stage), str(out))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    registered = None
    if register:
        step("logging the bundle to MLflow and registering a model version")
        registered = register_bundle(client, source.run_id, out, model_name or f"ape-nas-{study}", info)
    return ExportResult(out, source.run_id, registered, parity, ts_parity, dynamic_time, lat, info)


def register_bundle(client: Any, run_id: str, folder: Path, name: str, info: dict[str, Any]) -> tuple[str, str]:
    """Log the bundle under ``bundle/`` of the trial run, then register it as a new model version."""
    from mlflow.exceptions import MlflowException

    try:
        client.log_artifacts(run_id, str(folder), "bundle")
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(
                name, description=f"ape-nas hand-off bundles ({info['source']['study']}); see model_card.md"
            )
        sums = B.read_checksums(folder)
        version = client.create_model_version(
            name,
            source=f"runs:/{run_id}/bundle",
            run_id=run_id,
            tags={
                "ape_nas.bundle_format": B.BUNDLE_FORMAT,
                "ape_nas.spec_digest": info["spec_digest"],
                "ape_nas.model": info["model"]["family"],
                "sha256.model.onnx": sums[B.MODEL_ONNX],
                "onnx_parity_max_abs": f"{info['checks']['onnx_parity_max_abs']:.3g}",
            },
            description=info["title"],
        )
        client.set_tag(run_id, "ape_nas.registered_model", f"{name}/{version.version}")
    except MlflowException as exc:
        raise UserError(
            f"bundle written to {folder}, but logging/registering it in MLflow failed: {exc.message}; "
            "re-run with --no-register to skip the registry"
        ) from None
    return name, str(version.version)


def cli_export(args: Any) -> int:
    """``ape-nas export RUN_ID|EXPERIMENT --out DIR [--workdir DIR] [--tracking-uri URI] [--storage URL]
    [--set KEY=VALUE] [--model-name NAME] [--no-register] [--latency-runs N]``."""
    from ape_nas.console import make_console
    from ape_nas.objective import quiet_libraries

    quiet_libraries()
    console = make_console()
    with make_console(stderr=True).status("exporting") as status:
        result = export_bundle(
            args.target,
            args.out,
            workdir=getattr(args, "workdir", None) or "runs",
            tracking_uri=getattr(args, "tracking_uri", None),
            storage=getattr(args, "storage", None),
            overrides=list(getattr(args, "overrides", None) or []),
            model_name=getattr(args, "model_name", None),
            register=not getattr(args, "no_register", False),
            latency_runs=int(getattr(args, "latency_runs", None) or 200),
            progress=lambda text: status.update(f"export: {text}"),
        )
    info = result.info
    console.print(f"[bold]exported[/bold] {info['title']} ← {info['source']['how']} (run {result.run_id})")
    console.print(
        f"parity onnxruntime vs PyTorch: max |Δp| {result.parity_max_abs:.2e} on {info['checks']['parity_windows']} "
        f"test windows (TorchScript {result.torchscript_parity_max_abs:.2e}); other window lengths: "
        f"{'accepted' if result.dynamic_time else 'NOT accepted (fixed length)'}; "
        f"exporter: {info['checks']['onnx_exporter']}"
    )
    one = result.latency["1_thread"]["median_ms"]
    console.print(f"latency onnxruntime batch 1: median {one:.3f} ms on 1 thread of {result.latency['cpu']}")
    if result.registered:
        console.print(
            f"MLflow: logged under bundle/ of run {result.run_id}; "
            f"registered {result.registered[0]} version {result.registered[1]}"
        )
    console.print(f"bundle: {result.out}  (check with: ape-nas predict {result.out} --data <recordings>)")
    return 0
