"""``ape-nas explain SOURCE --data PATH``: its arguments; the work is done in ``ape_nas.explain``."""

from __future__ import annotations

import argparse

from ape_nas.commands.common import Command, logging_args, reader_args, source_arg

DEFAULT_METHODS = "gradcam,integrated_gradients,occlusion,gradient"


def explain_arguments(p: argparse.ArgumentParser) -> None:
    source_arg(p)
    p.add_argument(
        "--data",
        default=None,
        help="recordings to explain (any supported format, or a benchmark name); default: the data the model was "
        "trained on, read as its training read them (its test subjects: train/validation subjects are left out)",
    )
    reader_args(p)
    p.add_argument(
        "--method",
        default=None,
        help=f"saliency method(s), comma-separated: gradcam, integrated_gradients, occlusion, gradient, and "
        f"prototypes for a part-based network (default: {DEFAULT_METHODS}, plus prototypes where it applies)",
    )
    p.add_argument(
        "--layer",
        default=None,
        help="Grad-CAM's layer, a dotted module name (default: the last one with a (channels, time) output)",
    )
    p.add_argument(
        "--windows",
        default=None,
        metavar="S:I,..",
        help="explain exactly these windows: SUBJECT:INDEX, comma-separated (indices as ape-nas predict numbers "
        "each subject's windows); default: --per-class windows of each class and subject",
    )
    p.add_argument("--per-class", type=int, default=3, help="windows per class and subject (default 3)")
    p.add_argument("--max-windows", type=int, default=200, help="at most this many windows in all (default 200)")
    p.add_argument(
        "--subjects",
        default=None,
        help="subjects, comma-separated (default: every subject the model did not train or validate on)",
    )
    p.add_argument(
        "--target",
        choices=("predicted", "label"),
        default="predicted",
        help="the class each window is explained for: the model's prediction (default) or the window's label",
    )
    p.add_argument("--evaluate", action="store_true", help="also measure each method's faithfulness (table)")
    p.add_argument("--plots", type=int, default=12, help="per-window PNGs to draw (default 12; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random controls (default 0)")
    p.add_argument("--out", default="explain-results", help="a new folder for the results (default ./explain-results)")
    logging_args(p, "ape-nas-explain", "explain")


def run_explain(args: argparse.Namespace) -> int:
    from ape_nas.explain.command import cli_explain

    return cli_explain(args)


EXPLAIN = Command(
    "explain",
    "saliency over time for a trained network's windows, beat-synchronous views and their measured faithfulness",
    explain_arguments,
    run_explain,
)
