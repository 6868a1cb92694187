"""``ape-nas data inspect`` (a data set's subjects, channels, labels, problems) and ``data prepare`` (the cache)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ape_nas.commands.common import DEFAULT_WORKDIR, Command, console, reader_args, set_args


def inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="data folder or file, or a benchmark name (e.g. synthetic)")
    reader_args(p)
    p.add_argument("--trust-pickle", action="store_true", help="allow unpickling (WESAD): only for trusted files")
    p.add_argument("--json", action="store_true", help="machine-readable report")


def run_inspect(args: argparse.Namespace) -> int:
    import warnings

    from ape_nas.data.inspect import inspect_benchmark, open_data
    from ape_nas.yamlio import parse_assignments

    params = parse_assignments(args.overrides)
    if args.trust_pickle:
        params["trust_pickle"] = True
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bench = open_data(args.target, params, args.benchmark, require_labels=False)
    report = inspect_benchmark(bench)
    report["warnings"] = [str(w.message) for w in caught]
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    _print_inspect(report)
    return 0


def _print_inspect(report: dict[str, Any]) -> None:
    from rich.table import Table

    screen = console()
    classes = report["class_names"] if report["labelled"] else []
    if report["labelled"]:
        balance = "classes " + ", ".join(f"{c} {report['label_balance'][c]:.1%}" for c in classes)
    else:
        balance = f"unlabelled (label balance: none; {report['no_labels']})"
    screen.print(f"[bold]{report['benchmark']}[/bold]: {report['n_subjects']} subjects · {balance}")
    table = Table(show_lines=False)
    for col in ("subject", "minutes", "channels (Hz)", *(f"{c} min" for c in classes), "unlabelled min", "problems"):
        table.add_column(col, justify="right" if "min" in col else "left", overflow="fold")
    for s in report["subjects"]:
        chans = ", ".join(
            f"{ch} {info['rate_hz']:g}" if info["rate_hz"] else f"{ch} ({info.get('beats', 0)} beats)"
            for ch, info in s["channels"].items()
        )
        table.add_row(
            s["subject"],
            f"{s['duration_s'] / 60:.1f}",
            chans,
            *(f"{s['label_seconds'][c] / 60:.1f}" for c in classes),
            f"{s['unlabelled_s'] / 60:.1f}",
            "; ".join(s["problems"]) or "—",
        )
    screen.print(table)
    for subject, why in report["skipped"].items():
        screen.print(f"[yellow]skipped {subject}: {why}[/yellow]")
    for w in report["warnings"]:
        screen.print(f"[yellow]warning: {w}[/yellow]")


def prepare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment YAML file")
    p.add_argument("--workdir", default=DEFAULT_WORKDIR)
    set_args(p)


def run_prepare(args: argparse.Namespace) -> int:
    import time

    from rich.progress import Progress
    from rich.table import Table

    from ape_nas.data.prepare import prepare_windows
    from ape_nas.errors import KeyedError
    from ape_nas.experiments import load_experiment, located

    exp = load_experiment(args.experiment, args.overrides)
    screen = console()
    started = time.perf_counter()
    with Progress(console=screen, transient=True) as bar:
        task = bar.add_task(f"windows of {exp.data['benchmark']}", total=None)
        try:
            ws = prepare_windows(
                exp.data,
                Path(args.workdir) / "cache",
                progress=lambda s: bar.update(task, advance=1, description=f"windows of {exp.data['benchmark']}: {s}"),
            )
        except KeyedError as err:  # a reader's parameter: at the file:line (or --set) that set it
            raise located(exp, err) from None
    elapsed = time.perf_counter() - started
    table = Table(
        title=f"{exp.name}: {len(ws.y)} windows of {ws.X.shape[2]} samples at {ws.rate_hz:g} Hz, "
        f"channels {', '.join(ws.channels)}"
    )
    reasons = list(ws.stats["dropped_total"])
    for col in ("subject", "windows", *ws.class_names, *(f"dropped {r}" for r in reasons)):
        table.add_column(col, justify="left" if col == "subject" else "right")
    for subject, info in ws.stats["per_subject"].items():
        table.add_row(
            subject, str(info["windows"]), *map(str, info["counts"]), *(str(info["dropped"].get(r, 0)) for r in reasons)
        )
    screen.print(table)
    for subject, why in ws.stats.get("skipped", {}).items():
        screen.print(f"[yellow]skipped {subject}: {why}[/yellow]")
    screen.print(f"cache {Path(args.workdir) / 'cache' / ws.fingerprint} ({elapsed:.2f} s)")
    return 0


INSPECT = Command(
    "inspect",
    "subjects, duration, channels and rates, label balance, quality problems",
    inspect_arguments,
    run_inspect,
    description="Inspect a data folder/file (format detected) or a benchmark by name.",
)
PREPARE = Command(
    "prepare",
    "build the window cache of an experiment (once; later runs load it)",
    prepare_arguments,
    run_prepare,
    description="Preprocess an experiment's data into cached windows.",
)
DATA = Command("data", "inspect data sets and build the window cache", subcommands=(INSPECT, PREPARE))
