"""``ape-nas dashboard``: optuna-dashboard over an experiment's study, on this machine only unless told otherwise."""

from __future__ import annotations

import argparse
from pathlib import Path

from ape_nas.commands.common import Command, backend_arg, set_args, workdir_args

DEFAULT_PORT = 8080  # optuna-dashboard's own default


def dashboard_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment YAML file: its study is shown")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; a busy port is an error)"
    )
    backend_arg(p)
    workdir_args(p)
    set_args(p)


def run_dashboard(args: argparse.Namespace) -> int:
    from ape_nas.config.flags import flag_overrides
    from ape_nas.dashboard import serve_dashboard

    return serve_dashboard(
        args.experiment,
        workdir=Path(args.workdir),
        storage=args.storage,
        overrides=flag_overrides(args),
        host=args.host,
        port=args.port,
    )


DASHBOARD = Command(
    "dashboard",
    "optuna-dashboard on 127.0.0.1 for an experiment's study (its own storage)",
    dashboard_arguments,
    run_dashboard,
)
