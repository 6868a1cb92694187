"""``ape-nas sweep`` of a nested experiment (``protocol.kind: nested``), and ``--outer-fold K`` of one fold."""

from __future__ import annotations

import argparse
from typing import Any

from ape_nas.commands.common import console
from ape_nas.errors import UserError


def run_nested_command(args: argparse.Namespace, plan: Any) -> int:
    from ape_nas.commands.sweep import search_label, tracking_hint
    from ape_nas.interrupts import LINE, exit_code
    from ape_nas.nested import is_nested, plan_for_fold, result_table, run_fold, run_nested

    exp = plan.experiment
    if not is_nested(exp):
        raise UserError(f"--outer-fold {args.outer_fold}: {exp.name!r} is not a nested experiment (protocol.kind)")
    if args.new_study:
        raise UserError("--new-study: not available for nested experiments; change the experiment's name instead")
    out = console()
    inner = exp.protocol["inner"]
    out.print(
        f"[bold]ape-nas sweep[/bold] {exp.name}: nested, {exp.protocol['outer_folds']} outer folds × "
        f"{exp.budget['trials']} trials, inner {inner['kind']}"
        + (f" ({inner['folds']} folds)" if inner.get("folds") else "")
        + f", objective val {exp.objective['metric']} ({exp.direction}), selection {exp.objective['selection']}, "
        f"backend {exp.backend['name']} {search_label(exp.backend)}"
    )
    if args.outer_fold is not None:
        from ape_nas.tracking import TrialStore

        fold_plan = plan_for_fold(plan, args.outer_fold)
        top = TrialStore(plan.tracking_uri).nested_parent(exp.name)
        fold, interrupted = run_fold(
            fold_plan,
            progress=not args.no_progress,
            console=out,
            top_experiment_id=top.experiment_id if top else _experiment_id(plan),
            timeout_s=args.timeout,
        )
        if fold.result:
            metric = f"test_{exp.objective['metric']}"
            value = fold.result["test_metrics"].get(metric)
            out.print(
                f"outer fold {fold.k}: best trial {fold.result['best_trial']} refitted; {metric} on its unseen "
                f"subjects {value:.4f}. Run `ape-nas sweep {args.experiment}` to pool the folds."
            )
        if interrupted:
            out.print(f"[yellow]{LINE}[/yellow]")
            return exit_code()
        return 0
    outcome = run_nested(plan, progress=not args.no_progress, console=out)
    if outcome.interrupted:
        out.print(f"[yellow]{LINE}[/yellow]")
        return exit_code()
    out.print(result_table(outcome))
    out.print(nested_lines(outcome))
    out.print(f"MLflow: {tracking_hint(plan.tracking_uri, args.workdir)}  (nested run {outcome.top_run_id})")
    return 0


def _experiment_id(plan: Any) -> str:
    from ape_nas.tracking import SweepTracker

    return SweepTracker(plan.tracking_uri, plan.experiment.name, artifact_root=plan.workdir / "artifacts").experiment_id


def nested_lines(outcome: Any) -> str:
    """The verdict under the table: the procedure's estimate against the per-subject-normalised HRV baseline."""
    from ape_nas.metrics import CLASS_METRICS

    m = outcome.metric if outcome.metric in CLASS_METRICS else "balanced_accuracy"
    if outcome.search is None:
        return "no pooled estimate: an outer fold has no complete trial"
    iv = outcome.search.intervals[m]
    mean, sd = outcome.search.fold_spread(m)
    lines = [
        f"nested estimate (what this search procedure delivers on new people): {m} {iv.text()} "
        f"(95% subject bootstrap, {iv.n_subjects} subjects; over outer folds {mean:.3f} ± {sd:.3f})"
    ]
    ref = outcome.baselines.get("hrv_subjnorm")
    if ref is not None:
        r = ref.intervals[m]
        verdict = "at least equals" if iv.point >= r.point else "does NOT reach"
        lines.append(
            f"per-subject-normalised HRV baseline on the same outer folds: {r.text()} → the search {verdict} it"
        )
    lines.append("intervals this wide are what few test subjects allow; they are not hidden")
    return "\n".join(lines)
