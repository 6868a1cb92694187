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


class KeyedError(UserError):
    """A problem with an experiment value, found by a layer that knows the key but not the file (data, splits).

    ``keys`` are the experiment keys that can fix it, the likeliest first; the sweep turns it into a
    :class:`ConfigError` at the file:line (or the flag) where the user set one of them.
    """

    def __init__(self, keys: list[tuple[str, ...]], problem: str) -> None:
        self.keys = keys
        self.problem = problem
        super().__init__(f"{'.'.join(keys[0])}: {problem}")
