"""Command line: the table of subcommands (``ape_nas.commands``), signals, error lines and exit codes.

Each command owns its arguments next to its ``run``; heavy imports happen inside ``run`` (``--help`` stays fast).
"""

from __future__ import annotations

import argparse
import atexit
import gc
import sys

from ape_nas.commands.catalog import MODELS, SPACES
from ape_nas.commands.common import Command
from ape_nas.commands.dashboard import DASHBOARD
from ape_nas.commands.data import DATA
from ape_nas.commands.explain import EXPLAIN
from ape_nas.commands.handoff import EVALUATE, EXPORT, PREDICT
from ape_nas.commands.reproduce import REPRODUCE
from ape_nas.commands.show import SHOW
from ape_nas.commands.study import BEST, STATUS
from ape_nas.commands.sweep import SWEEP, WORKER
from ape_nas.commands.synth import SYNTH
from ape_nas.commands.transfer import TRANSFER
from ape_nas.commands.ui import UI
from ape_nas.errors import UserError

# the order of `ape-nas --help`
COMMANDS: tuple[Command, ...] = (
    SWEEP,
    STATUS,
    BEST,
    SHOW,
    MODELS,
    SPACES,
    UI,
    DASHBOARD,
    REPRODUCE,
    WORKER,
    EXPORT,
    PREDICT,
    EVALUATE,
    TRANSFER,
    EXPLAIN,
    DATA,
    SYNTH,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ape-nas",
        description="Architecture search for cardiac-emotion models: "
        "sweeps with Optuna or Ray Tune, every trial tracked in MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__import__('ape_nas').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_to(sub)
    return parser


def end_without_final_collection() -> None:
    """At interpreter exit, freeze the garbage collector's objects so that Python's shutdown does not walk
    everything the process imported (torch, Lightning, MLflow, Optuna): 2.5-3.5 s per worker process measured on 2
    busy cores (0.3-0.5 s left), paid by every command after its work, by each worker and then by the
    ``--workers N`` parent (benchmarks/parallel_efficiency.py).

    atexit handlers still run (MLflow, logging and weakref finalizers flush and clean up there); what is skipped is
    the last collection of reference cycles, whose ``__del__`` Python does not promise to run at exit anyway.
    Registered once per process, however often this is called."""
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def main(argv: list[str] | None = None) -> int:
    from ape_nas.interrupts import LINE, Interrupted, catch_signals, exit_code

    args = build_parser().parse_args(argv)
    end_without_final_collection()
    try:
        with catch_signals():
            return int(args.func(args) or 0)
    except UserError as err:
        print(f"ape-nas: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print(f"ape-nas: {LINE}", file=sys.stderr)
        return exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
