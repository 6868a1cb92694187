"""``ape-nas export``: a trial run in the store → a self-contained bundle (see :mod:`ape_nas.handoff.bundle`).

The pipeline (:func:`export_bundle`), one module per step: the target (:mod:`.source`: a run id, or the best
trial of an experiment's sweep) → its spec and plain checkpoint, the network and the exact windows it was trained
on, fingerprint checked (:mod:`.trial`) → scores per validation and test subject (:mod:`.scores`) → ONNX and
TorchScript, parity against PyTorch, other window lengths, batch-1 latency (:mod:`.convert`) →
``preprocessing.json`` (:mod:`.preprocessing`), ``metrics.json`` and ``bundle.json`` (:mod:`.manifest`),
``model_card.md`` (:mod:`.card`) → checksums and one rename into place (:mod:`.bundle`) → logged under
``bundle/`` of the trial run and registered as a new model version (:mod:`.register`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ape_nas.handoff import bundle as B
from ape_nas.handoff.card import render_card
from ape_nas.handoff.convert import convert, torch_probs
from ape_nas.handoff.manifest import bundle_record, metrics_record
from ape_nas.handoff.preprocessing import preprocessing_json
from ape_nas.handoff.register import register_bundle
from ape_nas.handoff.scores import score_split
from ape_nas.handoff.source import resolve_source
from ape_nas.handoff.trial import fetch_trial, load_model, training_windows
from ape_nas.tracking import TrialStore


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
    overrides: list[str] | None = None,
    model_name: str | None = None,
    register: bool = True,
    latency_runs: int = 200,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export the model of a trial run (or of an experiment's best trial) into the bundle folder ``out``.

    ``progress`` is told each step as it starts (the CLI shows it on a status line)."""
    step = progress or (lambda _text: None)
    out, workdir = Path(out), Path(workdir)
    B.refuse_used_folder(out)
    source = resolve_source(target, workdir=workdir, tracking_uri=tracking_uri, overrides=overrides)
    store = TrialStore(source.tracking_uri)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".ape-nas-export-", dir=out.parent))
    try:
        step(f"downloading checkpoint and spec of run {source.run_id}")
        trial = fetch_trial(store, source.run_id, scratch / "download")
        model = load_model(trial)
        step("loading the windows the model was trained on")
        ws = training_windows(trial, workdir)
        split, k = trial.ckpt["split"], len(trial.ckpt["class_names"])
        scores = score_split(lambda x: torch_probs(model, x), ws, list(split["val"]), list(split["test"]), k)
        stage = scratch / "bundle"
        stage.mkdir()
        conv = convert(model, scores.X_test, scores.p_test, stage, latency_runs, step)
        n_params = int(sum(p.numel() for p in model.net.parameters()))
        prep = preprocessing_json(trial.spec.data, trial.ckpt, conv.dynamic_time)
        metrics = metrics_record(trial, ws, scores, conv, n_params)
        info = bundle_record(source, trial, conv, prep["channels"], n_params)
        records = {B.PREPROCESSING: prep, B.METRICS: metrics, B.INFO: info}
        B.write_bundle(stage, out, records, render_card(info, prep, metrics))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    registered = None
    if register:
        step("logging the bundle to MLflow and registering a model version")
        registered = register_bundle(store, source.run_id, out, model_name or f"ape-nas-{trial.study}", info)
    return ExportResult(
        out, source.run_id, registered, conv.parity, conv.ts_parity, conv.dynamic_time, conv.latency, info
    )


def cli_export(args: Any) -> int:
    """``ape-nas export RUN_ID|EXPERIMENT --out DIR [--workdir DIR] [--tracking-uri URI] [--set KEY=VALUE]
    [--model-name NAME] [--no-register] [--latency-runs N]`` (the best trial is read from MLflow: no study
    storage, no backend)."""
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
