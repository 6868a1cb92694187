"""Command-line flags that stand for experiment keys, reported as the user typed them."""

from __future__ import annotations

import argparse

from ape_nas.config.experiment import Flag

FLAGS = {  # command-line flag → the experiment key it sets
    "trials": ("--trials", "budget.trials"),
    "timeout": ("--timeout", "budget.timeout_s"),
    "backend": ("--backend", "backend.name"),
    "address": ("--address", "backend.address"),
}


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` values, then the flags given (``--trials 3`` → budget.trials=3, reported as ``--trials 3``)."""
    out = list(args.overrides)
    for attr, (flag, key) in FLAGS.items():
        value = getattr(args, attr, None)
        if value is not None:
            text = f"{value:g}" if isinstance(value, float) else str(value)
            out.append(Flag(f"{key}={text}", f"{flag} {text}"))
    return out
