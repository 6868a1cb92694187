"""``ape-nas sweep`` (run or resume a sweep) and ``ape-nas worker`` (join a shared study)."""

from __future__ import annotations

import argparse
from typing import Any

from ape_nas.commands.common import Command, console, outer_fold_arg, set_args, tracking_uri_arg, workdir_args


def sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment YAML file")
    p.add_argument("--trials", type=int, default=None, help="trials to add (default: budget.trials)")
    p.add_argument("--timeout", type=float, default=None, help="seconds after which no new trial starts")
    tracking_uri_arg(p)
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.add_argument("--backend", default=None, help="search backend: optuna or ray (default: backend.name)")
    p.add_argument("--address", default=None, help="ray: address of a running cluster (ray start --head)")
    p.add_argument(
        "--new-study",
        action="store_true",
        help="the experiment's study was made on other data/protocol: continue in a derived study (<name>-2, ...)",
    )
    outer_fold_arg(p)
    workdir_args(p)
    set_args(p)


def run_sweep_command(args: argparse.Namespace) -> int:
    from ape_nas.progress import best_lines, selection_noise_line, summary_table
    from ape_nas.sweep import prepare_from_args, run_sweep

    plan = prepare_from_args(args, new_study=args.new_study)
    if plan.experiment.protocol["kind"] == "nested" or args.outer_fold is not None:
        from ape_nas.commands.nested import run_nested_command

        return run_nested_command(args, plan)
    exp = plan.experiment
    out = console()
    out.print(
        f"[bold]ape-nas sweep[/bold] {exp.name}: space {plan.space.name} "
        f"({', '.join(plan.space.family_names)}), {exp.budget['trials']} trials, "
        f"objective val {' vs '.join(exp.objectives)} ({', '.join(exp.directions)}), backend {exp.backend['name']} "
        f"{search_label(exp.backend)}"
    )
    outcome = run_sweep(plan, progress=not args.no_progress)
    exp = plan.experiment  # --new-study may have moved the sweep to a derived study name
    out.print(summary_table(outcome.records, exp.direction, exp.objective["metric"]))
    if outcome.best is not None:
        for line in best_lines(outcome.best, exp.objective["metric"], exp.direction):
            out.print(line)
        noise = selection_noise_line(outcome.records, outcome.best, exp.direction)
        if noise:
            out.print(noise)
    if exp.multi_objective:
        from ape_nas.sweep import comparable

        print_front(out, exp, comparable(outcome.records, {}))  # trials on the latest trials' data
    if outcome.baseline is not None and outcome.best is not None:
        out.print(baseline_comparison(outcome.baseline, outcome.best.value, exp.objective["metric"], exp.direction))
    out.print(f"new trials this run: {len(outcome.new_trials)}  ·  study: {outcome.storage}")
    out.print(f"MLflow: {tracking_hint(outcome.tracking_uri, args.workdir)}  (parent run {outcome.parent_run_id})")
    if outcome.interrupted:
        from ape_nas.interrupts import LINE, exit_code

        out.print(f"[yellow]{LINE}[/yellow]")
        return exit_code()
    return 0


def print_front(out: Any, exp: Any, records: list[Any]) -> None:
    """The Pareto front of a multi-objective study's ``records`` (those on the study's data: ``sweep.comparable``;
    ``best`` above is its most accurate point)."""
    from ape_nas import pareto
    from ape_nas.progress import pareto_table

    points = pareto.front(records, exp.directions)
    out.print(pareto_table(points, exp.objectives, exp.objective["metric"]))
    rejected = sum(r.state == "rejected" for r in records)
    if rejected:
        limits = ", ".join(exp.objective["constraints"])
        out.print(f"{rejected} sampled specs were over {limits}: rejected before training")


def search_label(backend: dict[str, Any]) -> str:
    """``\\[tpe / median]`` (escaped: rich would read the brackets as markup); Ray adds its scheduler."""
    parts = [str(backend["sampler"]), str(backend["pruner"])]
    if backend["name"] == "ray":
        parts = [str(backend["sampler"]), f"scheduler {backend.get('scheduler')}"]
    return "\\[" + " / ".join(parts) + "]"


def baseline_comparison(baseline: Any, best: float, metric: str, direction: str) -> str:
    """The summary line that says whether the best deep model beats the HRV baseline (plain and normalised)."""
    ref = baseline.val.get(metric)
    if ref is None:
        return "HRV baseline: see hrv_baseline.json on the parent run"
    beats = (best > ref) == (direction == "maximize")
    text = (
        f"HRV baseline on the same splits: val {metric} {ref:.4f} (test {baseline.test[metric]:.4f}) → best deep "
        f"model {'beats' if beats else 'does NOT beat'} it"
    )
    norm = baseline.subject_normalised.get("val", {}).get(metric)
    if norm is not None:
        ahead = (norm > best) == (direction == "maximize") and norm != best
        text += f"; with per-subject feature normalisation the baseline reaches val {norm:.4f}" + (
            " — ahead of the best deep model" if ahead else ""
        )
    return text


def tracking_hint(tracking_uri: str, workdir: str) -> str:
    """Where to browse the runs: a server's URL (password hidden), or the local store and the ``ui`` command."""
    from ape_nas.dburl import hide_password

    if tracking_uri.startswith(("http://", "https://")):
        return hide_password(tracking_uri)
    return f"{tracking_uri}  →  browse with: ape-nas ui --workdir {workdir}"


def worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment YAML file")
    p.add_argument("--trials", type=int, default=None, help="trials this worker adds (default: budget.trials)")
    p.add_argument("--timeout", type=float, default=None, help="seconds after which this worker starts no trial")
    p.add_argument("--workers", type=int, default=1, help="spawn N worker processes on this machine")
    outer_fold_arg(p)
    tracking_uri_arg(p)
    workdir_args(p)
    set_args(p)


def run_worker_command(args: argparse.Namespace) -> int:
    from ape_nas.workers import cli_worker

    return cli_worker(args)


SWEEP = Command("sweep", "run (or resume) a sweep of an experiment file", sweep_arguments, run_sweep_command)
WORKER = Command(
    "worker",
    "join a study as one more Optuna worker (or spawn --workers N on this machine)",
    worker_arguments,
    run_worker_command,
)
