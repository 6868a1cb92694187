"""Ctrl+C (SIGINT) and SIGTERM as one exception, so that every layer can close what it opened.

``catch_signals()`` installs handlers that raise :class:`Interrupted` once. ``Interrupted`` derives from
``BaseException`` but not from ``KeyboardInterrupt``: Lightning turns a KeyboardInterrupt inside ``fit`` into
``sys.exit(1)`` (no message, trial left running), while any other BaseException passes through its teardown.
The Optuna backend turns it into ``KeyboardInterrupt`` at its boundary (Optuna then fails the trial and stops).
A second signal while the first is being handled is ignored, so the cleanup (a few MLflow/Optuna writes) runs.
A signal that arrives inside a ``__del__`` or a weakref callback, where Python would print and drop the exception,
is delivered a moment later through SIGALRM (seen in CI: a Ctrl+C swallowed by ``WeakKeyDictionary``'s callback).
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


RETRY_S = 0.05  # a signal that arrived where an exception would be dropped is delivered this much later


def _dropped_here(frame: FrameType | None) -> bool:
    """Would an exception raised in ``frame`` be printed as "Exception ignored in ..." and dropped? It would in a
    ``__del__`` or a weakref callback (the garbage collector runs them between any two bytecodes), so a Ctrl+C that
    lands there is lost and the command runs on to the end."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code.co_filename.endswith(("weakref.py", "_weakrefset.py")):
            return True
        frame = frame.f_back
    return False


def _deliver(signum: int, frame: FrameType | None) -> None:
    if _dropped_here(frame):
        signal.setitimer(signal.ITIMER_REAL, RETRY_S)  # still inside: try again a little later
        return
    raise Interrupted(_received[0])


def _handler(signum: int, frame: FrameType | None) -> None:
    if _received:
        return  # already stopping: let the cleanup finish
    _received.append(signum)
    if _dropped_here(frame):
        signal.setitimer(signal.ITIMER_REAL, RETRY_S)  # SIGALRM → _deliver, outside the collector's callback
        return
    raise Interrupted(signum)


@contextmanager
def catch_signals() -> Iterator[None]:
    """Raise :class:`Interrupted` on the first SIGINT/SIGTERM inside the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {s: signal.getsignal(s) for s in (*SIGNALS, signal.SIGALRM)}
    for s in SIGNALS:
        signal.signal(s, _handler)
    signal.signal(signal.SIGALRM, _deliver)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, h in previous.items():
            signal.signal(s, h)


def record(signum: int) -> None:
    """Note a signal that another handler (Ray's) acted on, for :func:`exit_code`."""
    if not _received:
        _received.append(signum)
