"""What the subcommands share: the :class:`Command` record and the argument groups several commands take."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, NamedTuple

DEFAULT_WORKDIR = "runs"

Run = Callable[[argparse.Namespace], int]


class Command(NamedTuple):  # a NamedTuple, not a dataclass: `ape-nas --help` need not import dataclasses
    """One subcommand: ``arguments`` adds its flags to its parser, ``run`` does the work and returns the exit code.

    A group (``data``) has no ``run`` of its own, only ``subcommands``; ``description`` defaults to ``help``.
    """

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    run: Run | None = None
    description: str | None = None
    subcommands: tuple[Command, ...] = ()

    def add_to(self, sub: Any) -> argparse.ArgumentParser:
        """Add this command (and its subcommands) to ``sub``, the result of ``add_subparsers``."""
        p = sub.add_parser(self.name, help=self.help, description=self.description or self.help)
        if self.run is not None:
            p.set_defaults(func=self.run)
        if self.subcommands:
            inner = p.add_subparsers(dest=f"{self.name}_command", required=True, metavar="COMMAND")
            for command in self.subcommands:
                command.add_to(inner)
        if self.arguments is not None:
            self.arguments(p)
        return p


def console() -> Any:
    from ape_nas.console import make_console

    return make_console()


def workdir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir",
        default=DEFAULT_WORKDIR,
        help=f"work directory: study, MLflow store, cache (default: ./{DEFAULT_WORKDIR})",
    )


def workdir_args(p: argparse.ArgumentParser) -> None:
    workdir_arg(p)
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in the work directory)")


def backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend", default=None, help="the backend whose store holds the study (when several stores hold one)"
    )


def set_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an experiment key, e.g. --set budget.trials=5 (repeatable)",
    )


def with_backend_override(args: argparse.Namespace) -> argparse.Namespace:
    """``--backend NAME`` of a command that reads the study through its ``--set`` overrides becomes one of them."""
    if getattr(args, "backend", None):
        from ape_nas.config.flags import flag_overrides

        args.overrides = flag_overrides(args)
    return args


def tracking_uri_arg(p: argparse.ArgumentParser, default: str = "SQLite in the work directory") -> None:
    p.add_argument("--tracking-uri", default=None, help=f"MLflow tracking URI (default: {default})")


def source_arg(p: argparse.ArgumentParser) -> None:
    """The network a consumer command starts from (``transfer``, ``explain``)."""
    p.add_argument(
        "source",
        help="an exported bundle folder, an MLflow run id of a trial, or an experiment YAML file (its best trial)",
    )


def logging_args(p: argparse.ArgumentParser, experiment: str, what: str) -> None:
    """Where a consumer command logs: ``--experiment`` (for a bundle source), ``--no-track``, the store, the
    workdir."""
    p.add_argument(
        "--experiment",
        default=experiment,
        help=f"MLflow experiment of the {what} run when the source is a bundle (a trial source: its own)",
    )
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    tracking_uri_arg(p, "the workdir's")
    workdir_arg(p)


def reader_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", default=None, help="reader to use instead of detecting it from the layout")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="reader parameter by its own name, e.g. --set labels=PATH or --set task=phases (repeatable)",
    )


def outer_fold_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--outer-fold",
        type=int,
        default=None,
        metavar="K",
        help="nested experiments: only outer fold K's study (1..outer_folds), e.g. one Slurm array task per fold",
    )
