"""``ape-nas export``: a trial run in the store → a self-contained bundle (see :mod:`ape_nas.handoff.bundle`).

The pipeline (:func:`export_bundle`), one module per step: the target (:mod:`.source`: a run id, the best trial
of an experiment's sweep, or its K best distinct trials) → spec and plain checkpoints, the network(s) and the exact
windows they were trained on, fingerprint checked; for a cross-validated trial the refit on every non-test subject
(``--final``, the default) or the mean of its fold models (``--ensemble folds``) (:mod:`.trial`, :mod:`.ensemble`)
→ scores per validation and test subject (:mod:`.scores`) → ONNX and TorchScript, parity against PyTorch, other
window lengths, batch-1 latency (:mod:`.convert`) → ``preprocessing.json`` (:mod:`.preprocessing`),
``metrics.json`` (with subject-bootstrap intervals) and ``bundle.json`` (:mod:`.manifest`), ``model_card.md``
(:mod:`.card`) → checksums and one rename into place (:mod:`.bundle`) → logged under ``bundle/`` of its run and
registered as a new model version (:mod:`.register`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ape_nas.errors import UserError
from ape_nas.features import checkpoint_input
from ape_nas.handoff import bundle as B
from ape_nas.handoff.card import render_card
from ape_nas.handoff.convert import Probabilities, convert, torch_probs
from ape_nas.handoff.manifest import bundle_record, member_record, metrics_record
from ape_nas.handoff.preprocessing import preprocessing_json
from ape_nas.handoff.register import register_bundle
from ape_nas.handoff.scores import SplitScores, score, score_split
from ape_nas.handoff.source import Source, resolve_source
from ape_nas.handoff.trial import (
    Plan,
    Trial,
    bundle_split,
    check_members,
    fetch_trial,
    fold_members,
    load_model,
    load_network,
    refit_final,
    training_windows,
)
from ape_nas.tracking import TrialStore

FOLDS = "folds"


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
    metrics: dict[str, Any]
    logged: tuple[str, str] | None = None  # (run id, artifact folder) the bundle was logged under


def parse_ensemble(value: str | int | None) -> str | int | None:
    """``--ensemble``: ``folds`` or a number K >= 2 (None: no ensemble)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == FOLDS:
        return FOLDS
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 2:
        raise UserError(f"--ensemble {value}: expected a number of trials K >= 2, or 'folds' (one trial's fold models)")
    return k


def plan_export(
    store: TrialStore,
    source: Source,
    ensemble: str | int | None,
    final: bool | None,
    workdir: Path,
    scratch: Path,
    step: Callable[[str], None],
) -> tuple[Plan, Any]:
    """The trial(s) of the bundle and the windows they were trained on; nothing is trained yet."""
    step(f"downloading checkpoint and spec of run {source.run_id}")
    trial = fetch_trial(store, source.run_id, scratch / "download")
    if ensemble == FOLDS:
        members = fold_members(store, trial, scratch / "download")
    elif ensemble is not None:
        members = [trial]
        for i, run_id in enumerate(source.members[1:], start=1):
            step(f"downloading ensemble member {i + 1} of {len(source.members)} (run {run_id})")
            members.append(fetch_trial(store, run_id, scratch / f"member{i}"))
    else:
        members = [trial]
    check_members(members)
    step("loading the windows the model was trained on")
    ws = training_windows(trial, workdir)
    if ensemble is not None:
        kind = FOLDS if ensemble == FOLDS else "top_k"
        return Plan(kind, trial, members, bundle_split(kind, members)), ws
    if final if final is not None else trial.folds > 1:
        return Plan("final", trial, [trial], {}), ws
    return Plan("trial", trial, [trial], bundle_split("trial", [trial])), ws


def member_scores(plan: Plan, scores: SplitScores, k: int) -> tuple[list[dict[str, Any]], float]:
    """Each ensemble member on the test windows, on its own (its own probabilities, computed independently of the
    ensemble module), and how far the ensemble is from the mean of those probabilities."""
    metric = plan.trial.spec.training.get("metric", "f1_macro")
    records, probs = [], []
    for member in plan.members:
        p = torch_probs(Probabilities(load_network(member)).eval(), scores.X_test, scores.F_test)
        probs.append(p)
        records.append(member_record(member, score(scores.y_test, p, k), metric))
    return records, float(np.abs(scores.p_test - np.mean(probs, axis=0)).max())


def network_cost(net: Any, X: Any, features: Any = None) -> dict[str, Any]:
    """The exported network's cost on one window (:func:`ape_nas.cost.measure`), for ``metrics.json`` and the card."""
    from ape_nas.cost import measure

    n_features = int(features.shape[1]) if features is not None else 0
    return measure(net, int(X.shape[1]), int(X.shape[2]), n_features=n_features).to_dict()


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
    final: bool | None = None,
    ensemble: str | int | None = None,
    trial: int | None = None,
) -> ExportResult:
    """Export the model of a trial run (or of an experiment's best trial) into the bundle folder ``out``.

    ``final``: refit on every non-test subject (None: for cross-validated trials). ``ensemble``: ``"folds"`` (the
    trial's fold models) or K (the experiment's K best distinct trials): one bundle with their mean probability.
    ``trial``: the experiment's trial of that number instead of its best (e.g. a point of a Pareto front).
    ``progress`` is told each step as it starts (the CLI shows it on a status line)."""
    step = progress or (lambda _text: None)
    out, workdir = Path(out), Path(workdir)
    B.refuse_used_folder(out)
    ensemble = parse_ensemble(ensemble)
    if ensemble is not None and final:
        raise UserError(
            f"--final with --ensemble {ensemble}: an ensemble holds the models as trained (no refit); "
            "drop one of the two"
        )
    source = resolve_source(
        target,
        workdir=workdir,
        tracking_uri=tracking_uri,
        overrides=overrides,
        top=ensemble if isinstance(ensemble, int) else None,
        trial=trial,
    )
    store = TrialStore(source.tracking_uri)
    out.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".ape-nas-export-", dir=out.parent))
    plan: Plan | None = None
    try:
        plan, ws = plan_export(store, source, ensemble, final, workdir, scratch, step)
        if plan.kind == "final":
            step("refitting on every non-test subject (objective.train_final)")
            refitted, refit = refit_final(store, plan.trial, workdir)
            plan = replace(plan, trial=refitted, members=[refitted], refit=refit)
            plan.split = bundle_split("final", [refitted])
            how = f"{source.how}, refitted on every non-test subject for {refit.epochs} epochs (run {refit.run_id})"
            source = replace(source, run_id=refit.run_id, how=how)
        trial: Trial = plan.trial
        model = load_model(plan.members if plan.ensemble else trial)
        k = len(trial.ckpt["class_names"])
        split = plan.split
        # HRV feature input when the model (or an ensemble member) is hybrid, else None: every member gets the same
        # raw vector and applies its own fitted statistics (ape_nas.features)
        hybrid = next((m.ckpt for m in plan.members if m.ckpt.get("hrv_transform")), trial.ckpt)
        feats = checkpoint_input(hybrid, ws)
        scores = score_split(
            lambda x, f=None: torch_probs(model, x, f), ws, list(split["val"]), list(split["test"]), k, feats
        )
        members, gap = member_scores(plan, scores, k) if plan.ensemble else (None, None)
        stage = scratch / "bundle"
        stage.mkdir()
        conv = convert(model, scores.X_test, scores.p_test, stage, latency_runs, step, features=scores.F_test)
        n_params = int(sum(p.numel() for p in model.net.parameters()))
        step("measuring the network's cost (MACs, latency, peak activation memory)")
        cost = network_cost(model.net, scores.X_test, scores.F_test)
        prep = preprocessing_json(
            trial.spec.data, {**trial.ckpt, "hrv_transform": hybrid.get("hrv_transform")}, conv.dynamic_time
        )
        step("subject-bootstrap intervals of the test metrics")
        metrics = metrics_record(plan, ws, scores, conv, n_params, members, gap)
        metrics["cost"] = cost
        info = bundle_record(source, plan, conv, prep["channels"], n_params)
        records = {B.PREPROCESSING: prep, B.METRICS: metrics, B.INFO: info}
        B.write_bundle(stage, out, records, render_card(info, prep, metrics))
    except BaseException:
        if plan is not None and plan.refit is not None:
            store.delete_run(plan.refit.run_id)  # no orphan refit run: the bundle it was made for was not written
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    registered = logged = None
    if register:
        step("logging the bundle to MLflow and registering a model version")
        logged = log_target(plan, source)
        name = model_name or f"ape-nas-{trial.study}"
        registered = register_bundle(store, logged[0], out, name, info, logged[1])
    return ExportResult(
        out,
        source.run_id,
        registered,
        conv.parity,
        conv.ts_parity,
        conv.dynamic_time,
        conv.latency,
        info,
        metrics,
        logged,
    )


def log_target(plan: Plan, source: Source) -> tuple[str, str]:
    """Where the bundle is logged: the trial run (its refit run with ``--final``) under ``bundle/``; a fold
    ensemble under ``bundle-folds/`` of its trial run; a top-K ensemble under ``bundle-ensemble-<digest>/`` of the
    sweep's parent run (no new run)."""
    if plan.kind == "folds":
        return plan.trial.run.run_id, "bundle-folds"
    if plan.kind == "top_k":
        from ape_nas.handoff.manifest import ensemble_digest

        parent = source.parent_run_id or plan.trial.run.parent_run_id or plan.trial.run.run_id
        return parent, f"bundle-ensemble-{ensemble_digest(plan.members)}"
    return source.run_id, "bundle"


def interval_line(metrics: dict[str, Any]) -> str:
    """The pooled test metrics with their subject-bootstrap intervals, for the terminal."""
    intervals = metrics["test"]["intervals"]
    first = next(iter(intervals.values()))
    parts = ", ".join(f"{m} {iv['point']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]" for m, iv in intervals.items())
    return f"test subjects ({first['n_subjects']}): {parts} — {100 * first['level']:.0f} % subject-bootstrap intervals"


def cli_export(args: Any) -> int:
    """``ape-nas export RUN_ID|EXPERIMENT --out DIR [--final|--no-final] [--ensemble K|folds] [--workdir DIR]
    [--tracking-uri URI] [--set KEY=VALUE] [--model-name NAME] [--no-register] [--latency-runs N]`` (the best
    trial is read from MLflow: no study storage, no backend)."""
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
            final=getattr(args, "final", None),
            ensemble=getattr(args, "ensemble", None),
            trial=getattr(args, "trial", None),
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
    console.print(interval_line(result.metrics))
    if result.registered and result.logged:
        console.print(
            f"MLflow: logged under {result.logged[1]}/ of run {result.logged[0]}; "
            f"registered {result.registered[0]} version {result.registered[1]}"
        )
    console.print(f"bundle: {result.out}  (check with: ape-nas predict {result.out} --data <recordings>)")
    return 0
