"""User-facing errors: one line, what was wrong, where, what is expected.

The CLI prints ``str(error)`` of any :class:`UserError` on one line and exits 2; everything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input (file, flag, data). Printed as one line, exit code 2."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ConfigError(UserError):
    """A problem in a YAML file or a ``--set`` override, located by file, line and key."""

    def __init__(self, where: str, key: str, problem: str) -> None:
        self.where = where
        self.key = key
        self.problem = problem
        location = f"{where}: {key}" if key else where
        super().__init__(f"{location}: {problem}")


class UnknownNameError(UserError):
    """An exact-name lookup in a registry failed; the message lists the known names."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown {kind} {name!r}; expected one of: {', '.join(self.known)}")
