"""YAML loading that remembers where every key came from (file and line), for one-line error messages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ape_nas.errors import ConfigError, UserError

KeyPath = tuple[str | int, ...]


def dotted(keypath: KeyPath) -> str:
    return ".".join(str(k) for k in keypath)


@dataclass
class Document:
    """Plain data from a YAML file plus the line of every key, and the ``--set`` overrides applied to it."""

    path: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    overrides: dict[KeyPath, str] = field(default_factory=dict)  # key → what the user typed ("--set k=v", "--trials 3")

    def where(self, keypath: KeyPath) -> str:
        """``file:line`` of the key (or its closest located parent), or the ``--set`` that introduced it."""
        for n in range(len(keypath), 0, -1):
            if keypath[:n] in self.overrides:
                return self.overrides[keypath[:n]]
        if keypath and keypath not in self.lines:  # a mapping that only a --set created (--set budgett.trials=1)
            for path, text in self.overrides.items():
                if path[: len(keypath)] == keypath:
                    return text
        for n in range(len(keypath), -1, -1):
            if keypath[:n] in self.lines:
                return f"{self.path}:{self.lines[keypath[:n]]}"
        return self.path

    def error(self, keypath: KeyPath, problem: str) -> ConfigError:
        return ConfigError(self.where(keypath), dotted(keypath), problem)


_SCALARS = yaml.constructor.SafeConstructor()


def _walk(node: yaml.Node, keypath: KeyPath, lines: dict[KeyPath, int], path: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{path}:{key_node.start_mark.line + 1}", dotted(keypath), "keys must be plain names")
            key = str(key_node.value)
            if key in out:
                raise ConfigError(
                    f"{path}:{key_node.start_mark.line + 1}", dotted((*keypath, key)), "key appears twice"
                )
            lines[(*keypath, key)] = key_node.start_mark.line + 1
            out[key] = _walk(value_node, (*keypath, key), lines, path)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            lines[(*keypath, i)] = item.start_mark.line + 1
            items.append(_walk(item, (*keypath, i), lines, path))
        return items
    return _SCALARS.construct_object(node, deep=True)


def parse_yaml(text: str, path: str) -> Document:
    """Parse YAML text; syntax errors become a ConfigError naming file and line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}", "", f"invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, "", f"invalid YAML: {exc}") from None
    lines: dict[KeyPath, int] = {}
    data = {} if node is None else _walk(node, (), lines, path)
    if node is not None:
        lines[()] = node.start_mark.line + 1
    return Document(path=path, data=data, lines=lines)


def load_yaml(path: str | Path) -> Document:
    """Read a YAML file into a :class:`Document`; a missing or unreadable file is a UserError."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found (expected a YAML file)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{p}: cannot read file ({exc.__class__.__name__}: {exc})") from None
    return parse_yaml(text, str(p))


KEY_USAGE = "key=value, e.g. --set budget.trials=5"  # experiment keys (dotted paths)
NAME_USAGE = "name=value, e.g. --set task=phases"  # reader parameters by their own name


def parse_assignment(text: str, usage: str = KEY_USAGE) -> tuple[str, Any]:
    """The one reading of ``--set KEY=VALUE``: the key (stripped) and the value parsed as YAML (empty: None).

    ``parse_assignment("budget.trials=5")`` → ``("budget.trials", 5)``; ``"subjects=[S1,S2]"`` → a list.
    No ``=``, an empty key, or a value that is not YAML is a UserError that names ``--set TEXT`` and ``usage``.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text}: expected {usage}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--set {text}: value {raw!r} is not a valid YAML scalar or list") from None
    return key.strip(), value


def parse_assignments(pairs: Iterable[str] | None, usage: str = NAME_USAGE) -> dict[str, Any]:
    """``["task=phases", "subjects=4"]`` → ``{"task": "phases", "subjects": 4}`` (reader parameters)."""
    return dict(parse_assignment(text, usage) for text in pairs or ())
