"""`ape-nas ui`: an MLflow server for a work directory's store, owned by this process.

The server (MLflow's own server command, which starts uvicorn as a child) runs in its own process group.
SIGINT (Ctrl+C) and SIGTERM (``kill <pid>``) of ``ape-nas ui`` are forwarded to that whole group as SIGTERM
(uvicorn's graceful shutdown; the MLflow CLI parent then exits quietly), SIGHUP too; what is still alive
after ``STOP_GRACE_S`` (or at a second Ctrl+C) gets SIGKILL. So once ``ape-nas ui`` has exited, nothing of
its server listens on the port. Exit code after such a stop: 0 (the user asked for it), not 130/143. A server
that dies by itself: its last output lines on stderr, exit 1. The server's output goes to
the server log in the work directory (its access log would drown the URLs printed here).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ape_nas.errors import UserError
from ape_nas.tracking.names import STORE_FILE
from ape_nas.tracking.server import LOG_NAME, experiments_search_url, server_command, server_env

STOP_GRACE_S = 15.0
START_TIMEOUT_S = 180.0
_TAIL_LINES = 20
# SIGHUP too: closing the terminal must not leave the server behind
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def check_port_free(host: str, port: int, busy: str = "another `ape-nas ui` or MLflow server?") -> None:
    """Raise a one-line :class:`UserError` when ``host:port`` cannot be bound (in use, or not this machine);
    ``busy`` is the guess at who holds a port in use."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise UserError(f"--host {host}: not an address of this machine ({err.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        # as uvicorn does: a port in TIME_WAIT is free, one with a listener is not
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise UserError(f"port {port} on {host} is in use ({busy}); pick another with --port") from None
            raise UserError(f"cannot listen on {host}:{port}: {err.strerror}") from None


def browse_host(host: str) -> str:
    """The address a browser on this machine uses for a server bound to ``host``."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _experiments(url: str) -> list[dict[str, Any]]:
    """Active experiments as the running server reports them (no second process touches the SQLite store)."""
    req = urllib.request.Request(
        experiments_search_url(url),
        data=json.dumps({"max_results": 1000}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            exps = json.load(r).get("experiments", [])
    except (OSError, ValueError):
        return []
    exps = [e for e in exps if e.get("lifecycle_stage", "active") == "active"]
    return sorted(exps, key=lambda e: (len(e["experiment_id"]), e["experiment_id"]))


class _Server:
    """The server's process group: start, forward a stop, reap everything."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.stop_signal: int | None = None
        self._stop_at: float | None = None

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> None:
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        if self.stop_signal is not None:  # a signal came while it started
            self.signal_group(signal.SIGTERM)

    def signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def request_stop(self, signum: int, _frame: Any = None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            self._stop_at = time.monotonic()
            self.signal_group(signal.SIGTERM)
        else:  # a second Ctrl+C: do not wait for the graceful shutdown
            self.signal_group(signal.SIGKILL)

    def wait(self, seconds: float) -> int | None:
        """Wait up to ``seconds`` for the server to exit; SIGKILL its group once a stop is overdue."""
        assert self.proc is not None, "start() first"
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            if self._stop_at is not None and time.monotonic() - self._stop_at > STOP_GRACE_S:
                self.signal_group(signal.SIGKILL)
            return None

    def reap(self) -> int | None:
        """Stop the group (if still running) and wait for its leader; kill leftovers (e.g. uvicorn)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.request_stop(signal.SIGTERM)
            while (rc := self.wait(0.5)) is None:
                pass
        else:
            rc = self.proc.returncode
        # The group may outlive its leader (a uvicorn child whose parent died): give it the grace, then SIGKILL.
        deadline = time.monotonic() + STOP_GRACE_S
        while _group_alive(self.proc.pid):
            if time.monotonic() > deadline:
                self.signal_group(signal.SIGKILL)
                break
            self.signal_group(signal.SIGTERM)
            time.sleep(0.2)
        return rc


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def serve_ui(workdir: Path, host: str = "127.0.0.1", port: int = 5000) -> int:
    """Run an MLflow server over ``workdir``'s SQLite store until Ctrl+C / SIGTERM; returns the exit code.

    Example: ``ape-nas ui --workdir runs --port 5000`` prints
    ``http://127.0.0.1:5000/#/experiments/1/runs`` for each experiment once the server answers.
    """
    workdir = Path(workdir)
    db = workdir / STORE_FILE
    if not db.is_file():
        raise UserError(f"{db}: no MLflow store here; run `ape-nas sweep ... --workdir {workdir}` first")
    check_port_free(host, port)
    url = f"http://{browse_host(host)}:{port}"
    cmd = server_command(workdir, host, port)
    env = {**os.environ, **server_env()}
    log = _log_path(workdir)
    print(f"MLflow UI for {db}: starting {url}  (server log: {log})", flush=True)
    server = _Server()
    previous = {sig: signal.signal(sig, server.request_stop) for sig in _STOP_SIGNALS}
    try:
        server.start(cmd, env, log)
        return _run(server, url, log)
    finally:
        server.reap()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _log_path(workdir: Path) -> Path:
    """the server log in the work directory, or a temporary file when the work directory is read-only."""
    log = workdir / LOG_NAME
    try:
        with open(log, "ab"):
            return log
    except OSError:
        fd, name = tempfile.mkstemp(prefix="ape-nas-ui-", suffix=".log")
        os.close(fd)
        return Path(name)


def _run(server: _Server, url: str, log: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT_S
    while server.stop_signal is None and not _answers(f"{url}/health"):
        if server.wait(0.5) is not None:
            return _died(server, log, " before answering")
        if time.monotonic() > deadline:
            print(f"ape-nas: error: no answer from {url}/health within {START_TIMEOUT_S:.0f} s", file=sys.stderr)
            _print_tail(log)
            return 1
    if server.stop_signal is None:
        exps = [e for e in _experiments(url) if not (e["experiment_id"] == "0" and e.get("name") == "Default")]
        print(f"MLflow UI ready at {url}  (Ctrl+C to stop)", flush=True)
        if exps:
            print("runs of each experiment (nested trial runs: expand the sweep-<name> row with its + icon):")
            for e in exps:
                print(f"  {e.get('name', '?')}: {url}/#/experiments/{e['experiment_id']}/runs", flush=True)
        else:
            print(f"  no experiment yet: {url}/#/experiments", flush=True)
    while server.stop_signal is None:
        if server.wait(0.5) is not None:
            return _died(server, log, "")
    while server.wait(0.5) is None:
        pass
    return 0


def _died(server: _Server, log: Path, when: str) -> int:
    rc = server.proc.returncode if server.proc is not None else None
    print(f"ape-nas: error: the MLflow server exited with {rc}{when}; last lines of {log}:", file=sys.stderr)
    _print_tail(log)
    return 1


def _print_tail(log: Path) -> None:
    tail = _tail(log)
    if tail:
        print(tail, file=sys.stderr, flush=True)
