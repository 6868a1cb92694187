"""The rich consoles of the commands: wide enough when piped or captured that lines and tables stay whole."""

from __future__ import annotations

import sys
from typing import Any


def make_console(stderr: bool = False) -> Any:
    """A ``rich.console.Console`` on stdout (or stderr); 160 columns when that stream is not a terminal."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr) if stream.isatty() else Console(stderr=stderr, width=160)
