"""``ape-nas synth --out DIR``: a generated cohort in the generic folder format, with its ground truth.

The generator is :mod:`ape_nas.data.cohort` (the ``synthetic`` physiology rendered like a wristband: BVP with motion
artefacts, the device's beats with E4-like gaps, optionally ECG); the writer is :mod:`ape_nas.data.folder_writer`
(atomic). The output reads with every reader of the folder format: ``data inspect``, experiments
(``benchmark: folder``), ``predict`` and ``evaluate``. Reference: docs/DATA_FORMATS.md, "Generated cohorts".
"""

from __future__ import annotations

import argparse
from typing import Any

from ape_nas.commands.common import Command, console

_DEFAULTS = {"subjects": 12, "seed": 0, "minutes": 5.0, "states": "baseline,stress", "signals": "bvp,ibi"}


def synth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="new (or empty) folder to write the cohort to")
    p.add_argument("--subjects", type=int, default=_DEFAULTS["subjects"], metavar="N", help="subjects (default: 12)")
    p.add_argument("--seed", type=int, default=_DEFAULTS["seed"], metavar="S", help="root seed (default: 0)")
    p.add_argument(
        "--minutes-per-state",
        type=float,
        default=_DEFAULTS["minutes"],
        metavar="M",
        help="minutes of each state block (default: 5)",
    )
    p.add_argument(
        "--states",
        default=_DEFAULTS["states"],
        metavar="A,B",
        help="affect states, one block each (baseline, stress, amusement, relax, meditation; default: baseline,stress)",
    )
    p.add_argument(
        "--class-names",
        default=None,
        metavar="A,B",
        help="the class name of each state, in order (default: the state names), e.g. no-stress,stress",
    )
    p.add_argument(
        "--signals",
        default=_DEFAULTS["signals"],
        metavar="A,B",
        help="channels: bvp (PPG with motion artefacts), ibi (the device's beats, with gaps), ecg (default: bvp,ibi)",
    )
    p.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="CH=HZ",
        help="sample rate of bvp (default 64) or ecg (default 256), e.g. --rate ecg=500 (repeatable)",
    )
    p.add_argument(
        "--artefacts",
        default="1",
        metavar="LEVEL",
        help="motion artefacts and beat dropouts: 0 (none) … 1 (like the Empatica E4, default) … 10; or none, e4",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=1.0,
        metavar="X",
        help="scale of the ECG and PPG sensor noise (0 = clean; default: 1)",
    )
    p.add_argument(
        "--cohort",
        default="broad",
        choices=("broad", "typical"),
        help="broad: many weak stress responders (default); typical: nearly all respond",
    )
    p.add_argument("--format", default="npy", choices=("npy", "csv"), help="channel files: npy (default) or csv")


def _names(text: str, flag: str) -> list[str]:
    from ape_nas.errors import UserError

    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise UserError(f"{flag}: {text!r} has an empty name; expected comma-separated names like a,b")
    return names


def _rates(items: list[str]) -> dict[str, float]:
    import math

    from ape_nas.errors import UserError

    rates: dict[str, float] = {}
    for item in items:
        ch, sep, value = item.partition("=")
        try:
            hz = float(value)
        except ValueError:
            hz = math.nan
        if not sep or not ch.strip() or not math.isfinite(hz):
            raise UserError(f"--rate: {item!r}; expected CHANNEL=HZ, e.g. --rate bvp=64")
        rates[ch.strip()] = hz
    return rates


def _level(text: str) -> float:
    from ape_nas.errors import UserError

    named = {"none": 0.0, "e4": 1.0}
    if text.strip().lower() in named:
        return named[text.strip().lower()]
    try:
        return float(text)
    except ValueError:
        raise UserError(f"--artefacts: {text!r}; expected a level from 0 (none) to 10, or none, e4") from None


def run_synth(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ape_nas.console import make_console
    from ape_nas.data import cohort
    from ape_nas.data.folder_writer import check_out, write_folder
    from ape_nas.errors import UserError

    started = time.perf_counter()
    try:
        p = cohort.check_params(
            subjects=args.subjects,
            seed=args.seed,
            minutes_per_state=args.minutes_per_state,
            states=_names(args.states, "--states"),
            class_names=None if args.class_names is None else _names(args.class_names, "--class-names"),
            signals=_names(args.signals, "--signals"),
            rates=_rates(args.rate),
            artefacts=_level(args.artefacts),
            noise=args.noise,
            cohort=args.cohort,
        )
    except cohort.CohortParamError as err:
        raise UserError(f"--{err.key.replace('_', '-')}: {err.problem}") from None
    out = check_out(args.out)  # before any work
    truth: dict[str, Any] = {}
    data = cohort.stream(p)
    with Progress(
        TextColumn("[bold]synth"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=make_console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("S01", total=p.subjects)

        def done(rec: Any) -> None:
            truth[rec.subject] = rec.meta["ground_truth"]
            bar.update(task, advance=1, description=f"{rec.subject} written")

        text = {"ground_truth.json": lambda: json.dumps(cohort.ground_truth(p, truth), indent=1) + "\n"}
        files = write_folder(data, out, fmt=args.format, extra=text, on_subject=done)
    total_min = p.minutes_per_state * len(p.states)
    rates = ", ".join(f"{ch} {p.rates[ch]:g} Hz" if ch in p.rates else f"{ch} beats" for ch in p.signals)
    console().print(
        f"wrote {p.subjects} subjects × {total_min:g} min ({len(p.states)} states × {p.minutes_per_state:g} min; "
        f"{rates}) · {len(files)} files · {Path(out)} ({time.perf_counter() - started:.1f} s)",
        highlight=False,
        markup=False,
    )
    return 0


SYNTH = Command(
    "synth",
    "write a generated cohort (BVP with motion artefacts, E4-like beat gaps, ECG) in the folder format",
    synth_arguments,
    run_synth,
    description="Generate a seeded synthetic cohort in the generic folder format (docs/DATA_FORMATS.md), "
    "with ground_truth.json.",
)
