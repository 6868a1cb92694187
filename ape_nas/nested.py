"""Nested subject-wise cross-validation of a whole search (``protocol.kind: nested``).

The subjects are dealt into ``outer_folds`` groups of test subjects (stratified by label balance). For each
outer fold ``k`` the complete search runs on the other subjects as an ordinary sweep with the ``inner``
protocol: its own study ``<name>/outer-k`` in the same storage (resumable, joinable by ``ape-nas worker``
with ``--outer-fold k``), its own MLflow parent run under the nested run's top-level run. The best trial of
that search is refitted on all the fold's non-test subjects (as ``reproduce --final`` does) and scored once on
the fold's test subjects, which its search never saw. Pooled over the folds, every subject is scored exactly
once by a model whose selection never saw it: an estimate of what the search *procedure* delivers on new
people, with subject-bootstrap intervals and the spread over folds, next to the HRV baselines fitted and scored
on exactly the same outer folds.

Resuming: each outer study runs until it holds ``budget.trials`` finished (complete or pruned) trials; a
fold's refit is recorded in its study (``ape_nas.outer_result``) and redone only if its best trial changed.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from ape_nas.backends import Backend, TrialRecord, make_backend
from ape_nas.config.experiment import INNER, ExperimentConfig
from ape_nas.console import make_console
from ape_nas.data.splits import check_balance, inner_protocol, make_splits, outer_folds
from ape_nas.errors import KeyedError, UserError
from ape_nas.experiments import located
from ape_nas.metrics import CLASS_METRICS, classification_metrics
from ape_nas.progress import best_of
from ape_nas.stats import Interval, metric_intervals, per_subject
from ape_nas.sweep import SweepPlan, comparable, run_sweep, subject_classes
from ape_nas.tracking import (
    PARENT_RUN_ATTR,
    PARENT_TAG,
    ROLE_TAG,
    STUDY_TAG,
    SweepTracker,
    TrialStore,
    outer_study,
)

RESULT_ATTR = "ape_nas.outer_result"  # outer study user attr: the refit of its best trial, scored on the test
FINISHED = ("complete", "pruned")  # trials that count against an outer study's budget (failed ones are redone)


def is_nested(exp: ExperimentConfig) -> bool:
    return exp.protocol["kind"] == "nested"


def require_plain(exp: ExperimentConfig, command: str) -> None:
    """Commands that act on one study refuse a nested experiment with the way to name one outer fold."""
    if is_nested(exp):
        raise UserError(
            f"{exp.name!r} is a nested experiment (protocol.kind nested): {command} acts on one study; "
            f"name an outer fold with --outer-fold K (1..{exp.protocol['outer_folds']})"
        )


# ---- the outer folds -------------------------------------------------------------------------------------------


def class_balance(ws: Any) -> dict[str, float]:
    """Each subject's share of windows in the first class (what the outer folds are stratified by)."""
    return {
        s: float(np.mean(ws.y[ws.groups == i] == 0)) if (ws.groups == i).any() else 0.5
        for i, s in enumerate(ws.subjects)
    }


def fold_experiment(exp: ExperimentConfig, k: int, test: tuple[str, ...]) -> ExperimentConfig:
    """The experiment of outer fold ``k`` (1-based): study ``<name>/outer-k``, the inner protocol on its test."""
    return dataclasses.replace(exp, name=outer_study(exp.name, k), protocol=inner_protocol(exp.protocol, test))


def _inner_keys(err: KeyedError, k: int) -> KeyedError:
    """A split problem of an outer fold's inner protocol, keyed to where the user sets it (``protocol.inner.*``)."""
    keys = []
    for key in err.keys:
        if key == ("protocol", "test_subjects"):
            keys.append(("protocol", "outer_folds"))
        elif len(key) == 2 and key[0] == "protocol" and key[1] in INNER:
            keys.append(("protocol", "inner", key[1]))
        else:
            keys.append(key)
    return KeyedError(keys, f"outer fold {k}: {err.problem}")


def make_outer(exp: ExperimentConfig, ws: Any) -> list[tuple[str, ...]]:
    """The outer folds' test subjects, with every inner protocol checked against the data (counts, classes).

    Raises a located UserError (file:line or the flag) before anything is written."""
    try:
        folds = outer_folds(ws.subjects, exp.protocol["outer_folds"], exp.protocol["seed"], class_balance(ws))
    except KeyedError as err:
        raise located(exp, err) from None
    labels_of = subject_classes(ws)
    for k, test in enumerate(folds, start=1):
        inner = inner_protocol(exp.protocol, test)
        try:
            splits = make_splits(inner, ws.subjects)
            check_balance(splits, labels_of, ws.class_names, inner["kind"])
            for cls in range(len(ws.class_names)):
                if not any(cls in labels_of[s] for s in test):
                    raise KeyedError(
                        [("protocol", "outer_folds"), ("protocol", "seed")],
                        f"the test subjects {', '.join(test)} hold no window of class {ws.class_names[cls]}; "
                        "expected every class in every outer fold (fewer outer_folds, or another protocol.seed)",
                    )
        except KeyedError as err:
            raise located(exp, _inner_keys(err, k)) from None
    return folds


def fold_plan(plan: SweepPlan, k: int, test: tuple[str, ...], top_run_id: str | None) -> SweepPlan:
    """The sweep of outer fold ``k``: an ordinary plan whose parent run nests under the nested run's top run."""
    exp = fold_experiment(plan.experiment, k, test)
    backend = make_backend(exp.backend["name"], experiment=exp, workdir=plan.workdir, storage=plan.backend.storage_url)
    backend.validate()
    tags = {"ape_nas.nested": plan.experiment.name, "ape_nas.outer_fold": str(k), "ape_nas.outer_test": ",".join(test)}
    if top_run_id:
        tags[PARENT_TAG] = top_run_id
    return dataclasses.replace(
        plan, experiment=exp, backend=backend, tracking_experiment=plan.experiment.name, parent_tags=tags
    )


def load_windows(plan: SweepPlan, console: Console | None = None) -> tuple[Any, list[tuple[str, ...]]]:
    """The nested experiment's windows (cached) and its outer folds; every check runs before the cache is written."""
    from ape_nas.data.prepare import prepare_windows

    exp = plan.experiment
    folds: list[tuple[str, ...]] = []

    def check(ws: Any) -> None:
        folds[:] = make_outer(exp, ws)

    console = console or make_console(stderr=True)
    with console.status(f"preparing windows of {exp.data['benchmark']} (cached after the first run)"):
        try:
            ws = prepare_windows(exp.data, plan.workdir / "cache", check=check)
        except KeyedError as err:
            raise located(exp, err) from None
    return ws, folds


def plan_for_fold(plan: SweepPlan, k: int) -> SweepPlan:
    """``--outer-fold k`` of ``sweep`` / ``worker``: the plan of that outer fold's study."""
    n = plan.experiment.protocol["outer_folds"]
    if not 1 <= k <= n:
        raise UserError(f"--outer-fold {k}: expected 1..{n} (protocol.outer_folds of {plan.experiment.name!r})")
    _, folds = load_windows(plan)
    top = TrialStore(plan.tracking_uri).nested_parent(plan.experiment.name) if _store_exists(plan) else None
    return fold_plan(plan, k, folds[k - 1], top.run_id if top else None)


def _store_exists(plan: SweepPlan) -> bool:
    from ape_nas.tracking import ui_url

    if ui_url(plan.tracking_uri):
        return True
    path = plan.tracking_uri.removeprefix("sqlite:///")
    return not plan.tracking_uri.startswith("sqlite:///") or Path(path).exists()


# ---- one outer fold -------------------------------------------------------------------------------------------


@dataclass
class FoldOutcome:
    k: int
    test: tuple[str, ...]
    study: str
    counts: dict[str, int]
    best: TrialRecord | None
    result: dict[str, Any] | None  # the refit's record (RESULT_ATTR), None while the search has no complete trial


def _finished(backend: Backend) -> int:
    try:
        backend.open(create=False)
    except UserError:
        return 0
    return sum(r.state in FINISHED for r in backend.records())


def _refit(plan: SweepPlan, best: TrialRecord, top_experiment_id: str, cache_dir: Path) -> dict[str, Any]:
    """Retrain the fold's best spec on all its non-test subjects (best epoch count) and score its test once."""
    from ape_nas.objective import train_final
    from ape_nas.spec import TrialSpec

    spec = TrialSpec.from_dict(best.attrs["spec"])
    epochs = int(best.attrs.get("best_epoch", spec.training["max_epochs"] - 1)) + 1
    exp = plan.experiment
    tags = {
        PARENT_TAG: plan.backend.attrs().get(PARENT_RUN_ATTR, ""),
        STUDY_TAG: exp.name,
        "ape_nas.source_run": best.run_id or "",
        "ape_nas.source_trial": str(best.number),
    }
    name = f"{exp.name.rsplit('/', 1)[-1]}-refit-trial-{best.number:04d}"
    run = TrialStore(plan.tracking_uri).new_run(top_experiment_id, name, "outer_test", spec, tags)
    try:
        final = train_final(spec, epochs, cache_dir=cache_dir, tracker=run)
    except BaseException as exc:
        run.close("failed", f"{type(exc).__name__}: {exc}"[:500])
        raise
    run.close("complete")
    import shutil

    shutil.rmtree(final.checkpoint.parent, ignore_errors=True)
    assert final.test_probs is not None and final.test_y is not None and final.test_subjects is not None
    return {
        "best_trial": best.number,
        "best_value": best.value,
        "run_id": run.run_id,
        "source_run": best.run_id,
        "epochs": epochs,
        "model": spec.model,
        "train_subjects": list(final.split.train),
        "test_subjects": list(final.split.test),
        "test_metrics": final.test_metrics,
        "test_ci": {m: [iv.low, iv.high] for m, iv in final.test_ci.items()},
        "predictions": {
            "y": final.test_y.astype(int).tolist(),
            "probs": np.round(final.test_probs.astype(float), 7).tolist(),
            "subjects": final.test_subjects.tolist(),
        },
    }


def run_fold(
    plan: SweepPlan, *, progress: bool, console: Console, top_experiment_id: str, timeout_s: float | None = None
) -> tuple[FoldOutcome, bool]:
    """The search of one outer fold up to its budget, then the refit of its best trial. (outcome, interrupted)"""
    exp = plan.experiment
    missing = exp.budget["trials"] - _finished(plan.backend)
    interrupted = False
    if missing > 0:
        console.print(f"[bold]{exp.name}[/bold]: test subjects {', '.join(_test_of(exp))}; {missing} trials to run")
        outcome = run_sweep(plan, n_trials=missing, timeout_s=timeout_s, progress=progress)
        interrupted = outcome.interrupted
    else:
        plan.backend.open(create=False)
        console.print(f"[bold]{exp.name}[/bold]: search complete ({exp.budget['trials']} trials)")
    records = plan.backend.records()
    best = best_of(comparable(records, plan.backend.attrs()), exp.direction)
    counts = {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "failed")}
    result = plan.backend.attrs().get(RESULT_ATTR)
    if not interrupted and best is not None and (result is None or result.get("best_trial") != best.number):
        console.print(f"{exp.name}: refitting trial {best.number} on all non-test subjects, scoring the test once")
        result = _refit(plan, best, top_experiment_id, plan.workdir / "cache")
        plan.backend.set_attrs({RESULT_ATTR: result})
    return FoldOutcome(_fold_number(exp.name), _test_of(exp), exp.name, counts, best, result), interrupted


def _test_of(exp: ExperimentConfig) -> tuple[str, ...]:
    return tuple(str(s) for s in exp.protocol["test_subjects"])


def _fold_number(study: str) -> int:
    return int(study.rsplit("-", 1)[-1])


# ---- pooled over the outer folds -------------------------------------------------------------------------------


@dataclass
class Pooled:
    """One model family's (search or baseline) outer-test predictions pooled over the folds."""

    metrics: dict[str, float]
    intervals: dict[str, Interval]
    per_fold: list[dict[str, float]]
    per_subject: dict[str, dict[str, float]]
    per_fold_intervals: list[dict[str, Interval]] = field(default_factory=list)

    def fold_spread(self, metric: str) -> tuple[float, float]:
        values = [f[metric] for f in self.per_fold]
        return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "pooled": self.metrics,
            "intervals": {m: iv.to_dict() for m, iv in self.intervals.items()},
            "per_fold": self.per_fold,
            "per_fold_intervals": [{m: iv.to_dict() for m, iv in f.items()} for f in self.per_fold_intervals],
            "fold_mean_std": {m: list(self.fold_spread(m)) for m in CLASS_METRICS},
            "per_subject": self.per_subject,
        }


def pool(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], num_classes: int, seed: int) -> Pooled:
    """``parts``: per outer fold (labels, probabilities, subject of each window)."""
    y = np.concatenate([p[0] for p in parts])
    probs = np.concatenate([p[1] for p in parts])
    subjects = np.concatenate([p[2] for p in parts]).astype(str)
    return Pooled(
        metrics=classification_metrics(y, probs, num_classes),
        intervals=metric_intervals(y, probs, subjects, num_classes, seed=seed),
        per_fold=[classification_metrics(p[0], p[1], num_classes) for p in parts],
        per_subject=per_subject(y, probs, subjects, num_classes),
        per_fold_intervals=[metric_intervals(p[0], p[1], p[2], num_classes, seed=seed) for p in parts],
    )


def baseline_parts(
    ws: Any, folds: list[tuple[str, ...]], seed: int, *, subject_norm: bool
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None:
    """The HRV baseline fitted on each outer fold's non-test subjects, scored on its test subjects."""
    from ape_nas.baseline import fold_models
    from ape_nas.data.splits import Split
    from ape_nas.hrv import subject_normalise

    if ws.hrv is None or not np.isfinite(ws.hrv).any():
        return None
    hrv = np.asarray(ws.hrv)
    if subject_norm:
        hrv = subject_normalise(hrv, ws.groups)
    splits = [Split(train=tuple(s for s in ws.subjects if s not in test), val=(), test=test) for test in folds]
    parts = []
    for split, model in zip(splits, fold_models(ws, hrv, splits, seed), strict=True):
        idx = ws.indices(split.test)
        parts.append((ws.y[idx], model.predict_proba(hrv[idx], len(ws.class_names)), ws.subject_ids(idx)))
    return parts


@dataclass
class NestedOutcome:
    name: str
    metric: str
    folds: list[FoldOutcome]
    search: Pooled | None
    baselines: dict[str, Pooled] = field(default_factory=dict)
    top_run_id: str = ""
    interrupted: bool = False


def run_nested(plan: SweepPlan, *, progress: bool = True, console: Console | None = None) -> NestedOutcome:
    """Run (or resume) every outer fold's search and refit, then pool the outer test predictions."""
    from ape_nas.sweep import _parent_params

    console = console or make_console(stderr=True)
    exp = plan.experiment
    ws, folds = load_windows(plan, console)
    tracker = SweepTracker(plan.tracking_uri, exp.name, artifact_root=plan.workdir / "artifacts")
    existing = TrialStore(plan.tracking_uri).nested_parent(exp.name)
    top = tracker.open_parent(
        existing.run_id if existing else None,
        name=f"nested-{exp.name}",
        tags={ROLE_TAG: "nested", STUDY_TAG: exp.name, "data_fingerprint": ws.fingerprint},
        params={**_parent_params(exp), "protocol.outer_folds": exp.protocol["outer_folds"]},
    )
    top.log_text(json.dumps({f"outer-{k}": list(t) for k, t in enumerate(folds, 1)}, indent=2), "outer_folds.json")
    outcomes: list[FoldOutcome] = []
    interrupted = False
    try:
        for k, test in enumerate(folds, start=1):
            fold, interrupted = run_fold(
                fold_plan(plan, k, test, top.run_id),
                progress=progress,
                console=console,
                top_experiment_id=tracker.experiment_id,
            )
            outcomes.append(fold)
            if interrupted:
                break
    except BaseException:
        tracker.finish_parent("KILLED")
        raise
    if interrupted:
        tracker.finish_parent("KILLED")
        return NestedOutcome(exp.name, exp.objective["metric"], outcomes, None, top_run_id=top.run_id, interrupted=True)
    outcome = summarise(exp, ws, folds, outcomes, top.run_id)
    _log_top(top, outcome)
    tracker.finish_parent("FINISHED" if outcome.search is not None else "FAILED")
    return outcome


def summarise(
    exp: ExperimentConfig, ws: Any, folds: list[tuple[str, ...]], outcomes: list[FoldOutcome], top_run_id: str
) -> NestedOutcome:
    k = len(ws.class_names)
    parts = []
    for fold in outcomes:
        if fold.result is None:
            parts = []
            break
        pred = fold.result["predictions"]
        parts.append((np.asarray(pred["y"]), np.asarray(pred["probs"]), np.asarray(pred["subjects"])))
    search = pool(parts, k, exp.seed) if parts else None
    baselines = {}
    for label, norm in (("hrv", False), ("hrv_subjnorm", True)):
        bparts = baseline_parts(ws, folds, exp.seed, subject_norm=norm)
        if bparts is not None:
            baselines[label] = pool(bparts, k, exp.seed)
    return NestedOutcome(exp.name, exp.objective["metric"], outcomes, search, baselines, top_run_id)


def result_dict(outcome: NestedOutcome) -> dict[str, Any]:
    return {
        "name": outcome.name,
        "metric": outcome.metric,
        "note": (
            "each subject is scored once, by the refitted best model of the search that never saw it; intervals "
            "resample subjects (95%, subject bootstrap); with few subjects per fold wide intervals are normal"
        ),
        "folds": [
            {
                "outer_fold": f.k,
                "study": f.study,
                "test_subjects": list(f.test),
                "trials": f.counts,
                "best_trial": f.best.number if f.best else None,
                "best_val": f.best.value if f.best else None,
                "model": (f.result or {}).get("model"),
                "test_metrics": (f.result or {}).get("test_metrics"),
                "refit_run": (f.result or {}).get("run_id"),
            }
            for f in outcome.folds
        ],
        "search": outcome.search.to_dict() if outcome.search else None,
        "baselines": {name: p.to_dict() for name, p in outcome.baselines.items()},
    }


def _log_top(top: Any, outcome: NestedOutcome) -> None:
    from ape_nas.stats import interval_metrics

    metrics: dict[str, float] = {}
    for label, pooled in (
        ("nested_test_", outcome.search),
        *((f"{n}_nested_test_", p) for n, p in outcome.baselines.items()),
    ):
        if pooled is None:
            continue
        metrics.update({f"{label}{m}": v for m, v in pooled.metrics.items()})
        metrics.update(interval_metrics(label, pooled.intervals))
    top.log_metrics(metrics)
    top.log_text(json.dumps(result_dict(outcome), indent=2, default=float), "nested_result.json")


def result_table(outcome: NestedOutcome) -> Table:
    """Per outer fold and pooled: the search's refitted best model on unseen subjects next to the baselines."""
    m = outcome.metric if outcome.metric in CLASS_METRICS else "balanced_accuracy"
    table = Table(title=f"nested {outcome.name}: test {m} on subjects each search never saw", title_justify="left")
    for col in (
        "outer fold",
        "test subjects",
        "trials c/p/f",
        "best trial",
        "val",
        "search test",
        "HRV",
        "HRV subj-norm",
    ):
        table.add_column(col, justify="left" if col in ("outer fold", "test subjects") else "right")
    for i, f in enumerate(outcome.folds):
        res = f.result or {}
        cells = [
            str(f.k),
            ",".join(f.test),
            "/".join(str(f.counts[s]) for s in ("complete", "pruned", "failed")),
            str(f.best.number) if f.best else "—",
            f"{f.best.value:.3f}" if f.best and f.best.value is not None else "—",
            f"{res['test_metrics']['test_' + m]:.3f}" if res else "—",
        ]
        for name in ("hrv", "hrv_subjnorm"):
            pooled = outcome.baselines.get(name)
            cells.append(f"{pooled.per_fold[i][m]:.3f}" if pooled and i < len(pooled.per_fold) else "—")
        table.add_row(*cells)
    if outcome.search is not None:
        cells = [
            "pooled",
            f"{sum(len(f.test) for f in outcome.folds)} subjects",
            "",
            "",
            "",
            outcome.search.intervals[m].text(),
        ]
        for name in ("hrv", "hrv_subjnorm"):
            pooled = outcome.baselines.get(name)
            cells.append(pooled.intervals[m].text() if pooled else "—")
        table.add_row(*cells, style="bold")
    return table


# ---- status / best ---------------------------------------------------------------------------------------------


def fold_backends(exp: ExperimentConfig, workdir: Path, storage: str | None) -> list[tuple[int, Backend | None]]:
    """Each outer fold's study for reading (None where it does not exist yet)."""
    out: list[tuple[int, Backend | None]] = []
    for k in range(1, exp.protocol["outer_folds"] + 1):
        fold_exp = fold_experiment(exp, k, ())
        backend = make_backend(fold_exp.backend["name"], experiment=fold_exp, workdir=workdir, storage=storage)
        try:
            backend.open(create=False)
        except UserError:
            out.append((k, None))
            continue
        out.append((k, backend))
    return out


def status_payload(exp: ExperimentConfig, workdir: Path, storage: str | None) -> dict[str, Any]:
    """``status`` / ``best`` of a nested experiment: each outer study, its best trial and refit, the pooled result."""
    folds = []
    for k, backend in fold_backends(exp, workdir, storage):
        if backend is None:
            folds.append({"outer_fold": k, "study": outer_study(exp.name, k), "exists": False})
            continue
        records = backend.records()
        attrs = backend.attrs()
        best = best_of(comparable(records, attrs), exp.direction)
        result = attrs.get(RESULT_ATTR) or {}
        folds.append(
            {
                "outer_fold": k,
                "study": outer_study(exp.name, k),
                "exists": True,
                "counts": {s: sum(r.state == s for r in records) for s in ("complete", "pruned", "failed", "running")},
                "best": best.to_dict() if best else None,
                "refit": {key: v for key, v in result.items() if key != "predictions"} or None,
                "tracking_uri": attrs.get("tracking_uri"),
            }
        )
    pooled = None
    uri = next((f["tracking_uri"] for f in folds if f.get("tracking_uri")), None)
    if uri:
        top = TrialStore(uri).nested_parent(exp.name)
        if top is not None:
            pooled = {k: v for k, v in top.metrics.items() if "nested_test_" in k}
    return {"nested": exp.name, "outer_folds": exp.protocol["outer_folds"], "folds": folds, "pooled": pooled or None}


def status_table(payload: dict[str, Any], metric: str) -> Table:
    table = Table(title=f"nested {payload['nested']}", title_justify="left")
    for col in ("outer fold", "study", "trials c/p/f/r", "best trial", "val", f"refit test {metric}", "95% CI"):
        table.add_column(col)
    for f in payload["folds"]:
        if not f["exists"]:
            table.add_row(str(f["outer_fold"]), f["study"], "not started", "", "", "", "")
            continue
        best, refit = f["best"], f["refit"] or {}
        ci = (refit.get("test_ci") or {}).get(metric)
        value = (refit.get("test_metrics") or {}).get(f"test_{metric}")
        table.add_row(
            str(f["outer_fold"]),
            f["study"],
            "/".join(str(f["counts"][s]) for s in ("complete", "pruned", "failed", "running")),
            str(best["number"]) if best else "—",
            f"{best['value']:.4f}" if best and best["value"] is not None else "—",
            f"{value:.4f}" if value is not None else "—",
            f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "—",
        )
    return table
