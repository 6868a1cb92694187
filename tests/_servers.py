"""Helpers for tests that start real servers (not a test module: no test_ prefix)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    """Poll ``url`` until it answers; fail if the server process exits or the time runs out."""
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode} before answering {url}") from None
            if time.time() > deadline:
                raise AssertionError(f"no answer from {url} within {timeout_s:.0f} s") from None
            time.sleep(0.5)
