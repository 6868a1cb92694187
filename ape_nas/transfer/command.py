"""``ape-nas transfer``: source → target windows → every protocol × K × repeat × method → results table, curve,
``transfer.json``, one MLflow run (and, with ``--out``, the adapted model as a bundle).

Everything that can be wrong with the input is checked before the first adaptation (methods, shots, protocols,
the source's checksums, the target's channels, rates and classes, every episode's windows); the MLflow run and the
bundle are written only after every adaptation finished, so a failure or Ctrl-C leaves neither behind.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ape_nas.errors import UserError
from ape_nas.transfer.protocols import PROTOCOLS, check_protocol, parse_shots
from ape_nas.transfer.results import METRIC, calibration_record, results_table, save_figure

RESULT_FORMAT = "ape-nas-transfer/1"


@dataclass
class Request:
    methods: list[str]
    shots: list[int]
    protocols: list[str]
    repeats: int
    adapt_subjects: int | None
    subjects: list[str] | None
    gap_s: float | None
    steps: int | None
    seed: int


def split_list(text: str | None) -> list[str]:
    return [v.strip() for v in str(text or "").split(",") if v.strip()]


def parse_request(args: argparse.Namespace) -> Request:
    from ape_nas.transfer.methods import check_method

    methods = list(dict.fromkeys(check_method(m) for m in split_list(args.method)))
    if not methods:
        raise UserError("--method: name at least one method")
    protocols = list(dict.fromkeys(check_protocol(p) for p in split_list(args.protocol)))
    if not protocols:
        raise UserError(f"--protocol: name at least one of {', '.join(PROTOCOLS)}")
    if args.repeats < 1:
        raise UserError(f"--repeats {args.repeats}: expected at least 1")
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps {args.steps}: expected at least 1")
    if args.gap_s is not None and args.gap_s < 0:
        raise UserError(f"--gap-s {args.gap_s:g}: expected seconds >= 0")
    return Request(
        methods,
        parse_shots(args.shots),
        protocols,
        int(args.repeats),
        args.adapt_subjects,
        split_list(args.subjects) or None,
        args.gap_s,
        args.steps,
        int(args.seed),
    )


def check_out(args: argparse.Namespace, req: Request, n_subjects: int) -> Path | None:
    """``--out``: one method, one K, one protocol, and (personalise) one target subject; a fresh folder."""
    if not args.out:
        return None
    from ape_nas.handoff.bundle import refuse_used_folder

    if len(req.methods) != 1 or len(req.shots) != 1 or len(req.protocols) != 1:
        raise UserError(
            "--out writes one adapted model: give one --method, one --shots value and one --protocol "
            f"(got {len(req.methods)} method(s), {len(req.shots)} K value(s), {len(req.protocols)} protocol(s))"
        )
    if req.protocols[0] == "personalise" and n_subjects != 1:
        raise UserError(
            f"--out with --protocol personalise writes one person's model: name that subject with --subjects "
            f"(there are {n_subjects} target subjects)"
        )
    out = Path(args.out)
    refuse_used_folder(out)
    return out


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def provenance() -> dict[str, Any]:
    """Date, commit and machine of the run, taken when it starts (edits made while it runs do not count)."""
    import os

    from ape_nas.tracking import commit_state

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit_state(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch_threads(),
    }


def payload(
    measured: dict[str, Any],
    source: Any,
    target: Any,
    req: Request,
    rows: list[dict[str, Any]],
    outcomes: list[Any],
) -> dict[str, Any]:
    from ape_nas.handoff.manifest import versions

    return {
        "format": RESULT_FORMAT,
        "measured": measured,
        "versions": versions(),
        "source": source.describe(),
        "target": {
            "data": target.data,
            "reader": target.reader,
            "class_names": target.class_names,
            "subjects": list(target.subjects),
            "labelled_windows_per_class": target.counts(),
            "left_out": target.left_out,
        },
        "request": {
            "methods": req.methods,
            "shots": req.shots,
            "protocols": req.protocols,
            "repeats": req.repeats,
            "adapt_subjects": req.adapt_subjects,
            "gap_s": req.gap_s,
            "steps": req.steps,
            "seed": req.seed,
        },
        "metric": METRIC,
        "results": rows,
        "episodes": calibration_record(outcomes),
    }


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.table import Table

    from ape_nas.console import make_console

    table = Table(title=title)
    for col in ("protocol", "method", "K", "balanced acc. [95 % CI]", "subjects", "trained params", "s / adaptation"):
        table.add_column(col, justify="left" if col in ("protocol", "method") else "right")
    for r in sorted(rows, key=lambda r: (r["protocol"], r["k"], r["method"] != "source")):
        iv = r[METRIC]
        table.add_row(
            r["protocol"],
            r["method"],
            str(r["k"]),
            f"{iv['point']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]",
            str(iv["n_subjects"]),
            f"{r['trained_parameters']:,}",
            f"{r['seconds_per_adaptation']:.2f}",
        )
    make_console().print(table)


def cli_transfer(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ape_nas.console import make_console
    from ape_nas.transfer.run import method_names, plan_episodes, run_transfer, total_adaptations
    from ape_nas.transfer.source import load_source
    from ape_nas.transfer.target import load_target, report_left_out
    from ape_nas.yamlio import parse_assignments

    req = parse_request(args)
    measured = provenance()
    err = make_console(stderr=True)
    with err.status("transfer: reading the source") as status:
        source = load_source(
            args.source,
            workdir=args.workdir,
            tracking_uri=args.tracking_uri,
            step=lambda text: status.update(f"transfer: {text}"),
        )
        status.update(f"transfer: reading and windowing {args.data}")
        target = load_target(source.bundle, args.data, parse_assignments(args.overrides), args.benchmark, req.subjects)
    out = check_out(args, req, len(target.subjects))
    n_targets = len(target.subjects)
    adapt = req.adapt_subjects if req.adapt_subjects is not None else max(1, n_targets // 2)
    if "new-population" in req.protocols and n_targets < 2:
        raise UserError(
            f"--protocol new-population needs at least two target subjects; {args.data} has {n_targets} "
            f"({', '.join(target.subjects)})"
        )
    req.adapt_subjects = adapt
    window_s = float(source.bundle.preprocessing["window_s"])
    plan = plan_episodes(req.protocols, target, req.shots, req.repeats, window_s, adapt, req.seed, req.gap_s)
    report_left_out(err, target.left_out, target.reader)
    total = total_adaptations(plan, len(method_names(source, target, req.methods)))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("adapting", total=total)
        outcomes, kept = run_transfer(
            source,
            target,
            plan,
            req.methods,
            seed=req.seed,
            steps=req.steps,
            keep=out is not None,
            progress=lambda text, n: bar.update(task, advance=n, description=text),
        )
    k_classes = len(target.class_names)
    rows = results_table(outcomes, k_classes)
    title = f"transfer of {source.spec.model} ({source.kind} {source.where}) to {target.data}"
    record = payload(measured, source, target, req, rows, outcomes)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    js = results / "transfer.json"
    js.write_text(json.dumps(record, indent=2, default=float) + "\n")
    png = save_figure(rows, k_classes, title, results / "transfer.png")
    print_table(rows, title)
    console = make_console()
    bundle = None
    if out is not None and kept is not None:
        from ape_nas.transfer.bundle_out import write_transfer_bundle

        with err.status("transfer: writing the adapted model's bundle"):
            bundle = write_transfer_bundle(out, source, target, kept, req, record)
        console.print(
            f"bundle: {out}  (fold parity {bundle['checks']['fold_parity_max_abs']:.1e}; check with: "
            f"ape-nas evaluate {out} --data <recordings>)"
        )
    if not args.no_track:
        from ape_nas.transfer.tracking import log_transfer

        where = log_transfer(source, record, rows, [js, png], out, args)
        console.print(f"MLflow: run {where[1]} of experiment {where[0]} ({where[2]})")
    console.print(f"results: {js}, {png}")
    return 0
