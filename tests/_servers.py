"""Helpers for tests that start real servers (not a test module: no test_ prefix)."""

from __future__ import annotations

import itertools
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


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


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound now (as a server would: SO_REUSEADDR, so TIME_WAIT counts as free)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process from /proc, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may hold spaces and parentheses
    return fields[0], int(fields[1])


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, grandchildren ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[1], []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def cmdline(pid: int) -> str:
    """The argv of a process as one string ('' when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def mlflow_servers_on(port: int) -> list[int]:
    """Processes whose command line is an MLflow server or uvicorn on ``port``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = cmdline(int(entry.name)).split()
        on_port = any(a == "--port" and b == str(port) for a, b in itertools.pairwise(args))
        if on_port and ("mlflow" in args or "uvicorn" in args) and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_for_text(path: Path, text: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> str:
    """Poll the file ``path`` until it contains ``text``; fail if ``proc`` exits or the time runs out."""
    deadline = time.time() + timeout_s
    while True:
        content = path.read_text(errors="replace") if path.exists() else ""
        if text in content:
            return content
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before printing {text!r}:\n{content}")
        if time.time() > deadline:
            raise AssertionError(f"no {text!r} within {timeout_s:.0f} s:\n{content}")
        time.sleep(0.25)
