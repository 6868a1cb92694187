"""``ape-nas show RUN_ID|EXPERIMENT [--trial N]``: a trial's network — its architecture table and measured cost."""

from __future__ import annotations

import argparse

from ape_nas.commands.common import Command, console, set_args, tracking_uri_arg, workdir_arg


def show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="MLflow run id of a trial, or an experiment YAML file (its best trial, or --trial N)")
    p.add_argument("--trial", type=int, metavar="N", default=None, help="the experiment's trial N (default: its best)")
    tracking_uri_arg(p, "the workdir's")
    workdir_arg(p)
    set_args(p)


def run_show(args: argparse.Namespace) -> int:
    import tempfile

    from ape_nas.errors import UserError
    from ape_nas.handoff.source import resolve_source
    from ape_nas.metrics import COST_METRICS
    from ape_nas.progress import cost_text
    from ape_nas.tracking import TrialStore

    source = resolve_source(
        args.target,
        workdir=args.workdir,
        tracking_uri=args.tracking_uri,
        overrides=list(args.overrides or []),
        trial=args.trial,
    )
    store = TrialStore(source.tracking_uri)
    run = store.run(source.run_id)
    if run is None:
        raise UserError(f"no MLflow run {source.run_id} in {source.tracking_uri}")
    spec = store.spec(run.run_id)
    if "architecture.txt" not in store.artifacts(run.run_id):
        raise UserError(
            f"run {run.run_id} has no architecture.txt: it was trained before ape-nas measured costs; "
            "`ape-nas reproduce` it to get one"
        )
    with tempfile.TemporaryDirectory() as tmp:
        table = store.download(run.run_id, "architecture.txt", tmp).read_text()
    out = console()
    out.print(f"[bold]{source.how}[/bold] · MLflow run {run.run_id} · `{spec.model}`")
    out.print(table, highlight=False, markup=False)
    cost = {name: run.metrics.get(f"cost_{name}") for name in COST_METRICS}
    out.print("measured cost per window: " + ", ".join(f"{name} {cost_text(name, v)}" for name, v in cost.items()))
    return 0


SHOW = Command("show", "a trial's network: architecture table and measured cost", show_arguments, run_show)
