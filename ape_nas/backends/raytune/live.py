"""Live objects of the sweep in this (driver) process: progress hooks, the deadline for starting trials, and
the study trial numbers of the Ray experiment once it ended.

The searcher and the recorder are pickled into Ray's experiment folder and restored from it (``Tuner.restore``
takes no new callbacks), so they look these up here instead of holding them."""

from __future__ import annotations

from typing import Any

LIVE: dict[str, Any] = {}
