"""Ctrl+C (SIGINT) and SIGTERM as one exception, so that every layer can close what it opened.

``catch_signals()`` installs handlers that raise :class:`Interrupted` once. ``Interrupted`` derives from
``BaseException`` but not from ``KeyboardInterrupt``: Lightning turns a KeyboardInterrupt inside ``fit`` into
``sys.exit(1)`` (no message, trial left running), while any other BaseException passes through its teardown.
The Optuna backend turns it into ``KeyboardInterrupt`` at its boundary (Optuna then fails the trial and stops).
A second signal while the first is being handled is ignored, so the cleanup (a few MLflow/Optuna writes) runs.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
LINE = "interrupted — run the same command to continue"  # what every interrupted command prints last
_received: list[int] = []


class Interrupted(BaseException):
    """The user (SIGINT) or the system (SIGTERM) asked this process to stop."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted ({signal.Signals(signum).name})")


def received() -> int | None:
    """The first signal received under :func:`catch_signals` (None if none)."""
    return _received[0] if _received else None


def exit_code(default: int = 130) -> int:
    """128 + signal number: 130 for SIGINT, 143 for SIGTERM (``default`` when no signal was recorded)."""
    signum = received()
    return 128 + signum if signum is not None else default


def _handler(signum: int, frame: FrameType | None) -> None:
    if _received:
        return  # already stopping: let the cleanup finish
    _received.append(signum)
    raise Interrupted(signum)


@contextmanager
def catch_signals() -> Iterator[None]:
    """Raise :class:`Interrupted` on the first SIGINT/SIGTERM inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def record(signum: int) -> None:
    """Note a signal that another handler (Ray's) acted on, for :func:`exit_code`."""
    if not _received:
        _received.append(signum)
