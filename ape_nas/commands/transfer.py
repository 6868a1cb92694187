"""``ape-nas transfer SOURCE --data PATH``: its arguments; the work is done in ``ape_nas.transfer``."""

from __future__ import annotations

import argparse

from ape_nas.commands.common import Command, logging_args, reader_args, source_arg

DEFAULT_METHODS = "weighting,head,finetune,bn,scratch"


def transfer_arguments(p: argparse.ArgumentParser) -> None:
    source_arg(p)
    p.add_argument(
        "--data",
        required=True,
        help="the target people's labelled recordings (any supported format, or a built-in benchmark name)",
    )
    reader_args(p)
    p.add_argument(
        "--method",
        default=DEFAULT_METHODS,
        help=f"adaptation method(s), comma-separated: weighting, weighting+shift, head, finetune, bn, scratch "
        f"(default: {DEFAULT_METHODS})",
    )
    p.add_argument("--shots", default="1,5,20", help="labelled windows per class, e.g. 1,2,5,10,20 (default 1,5,20)")
    p.add_argument(
        "--protocol",
        default="personalise,new-population",
        help="personalise (each subject's first K windows per class calibrate, its later windows test) and/or "
        "new-population (K windows per class of a few subjects calibrate, the other subjects test); default both",
    )
    p.add_argument("--repeats", type=int, default=3, help="repeats per K (seeds; new adaptation subjects), default 3")
    p.add_argument(
        "--adapt-subjects",
        type=int,
        default=None,
        metavar="N",
        help="new-population: target subjects that calibrate (default: half of them)",
    )
    p.add_argument(
        "--subjects",
        default=None,
        help="target subjects, comma-separated (default: every subject the source did not train or validate on)",
    )
    p.add_argument(
        "--gap-s",
        type=float,
        default=None,
        help="personalise: seconds between the last calibration window's end and the first test window (default: "
        "one window length)",
    )
    p.add_argument("--steps", type=int, default=None, help="optimisation steps per adaptation (default: the method's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the adaptations and subject draws (default 0)")
    p.add_argument(
        "--out",
        default=None,
        help="write the adapted model as a bundle (one method, one K; personalise: one subject via --subjects)",
    )
    p.add_argument(
        "--results",
        default="transfer-results",
        help="folder for transfer.json and transfer.png (default: ./transfer-results)",
    )
    logging_args(p, "ape-nas-transfer", "transfer")


def run_transfer(args: argparse.Namespace) -> int:
    from ape_nas.transfer.command import cli_transfer

    return cli_transfer(args)


TRANSFER = Command(
    "transfer",
    "adapt a trained network to new people with few labels (filter weighting and the reference methods)",
    transfer_arguments,
    run_transfer,
)
