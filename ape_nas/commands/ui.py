"""``ape-nas ui``: the MLflow UI of a work directory, on this machine only unless told otherwise."""

from __future__ import annotations

import argparse
from pathlib import Path

from ape_nas.commands.common import DEFAULT_WORKDIR, Command


def ui_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"work directory (default: ./{DEFAULT_WORKDIR})")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000; a busy port is an error)")


def run_ui(args: argparse.Namespace) -> int:
    from ape_nas.ui import serve_ui

    return serve_ui(Path(args.workdir), args.host, args.port)


UI = Command("ui", "MLflow UI on 127.0.0.1 for a work directory", ui_arguments, run_ui)
