"""A small declarative schema for YAML mappings: exact keys, types, ranges, defaults, one-line errors."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ape_nas.yamlio import Document, KeyPath

REQUIRED = object()

_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


@dataclass(frozen=True)
class Field:
    """One key of a mapping. ``kind`` is a Python type; ``None`` values are allowed only if ``nullable``."""

    kind: type
    default: Any = REQUIRED
    choices: Sequence[Any] | None = None
    low: float | None = None
    high: float | None = None
    nullable: bool = False
    doc: str = ""
    check: Callable[[Any], str | None] | None = None  # returns a problem or None


def type_name(kind: type) -> str:
    return _TYPE_NAMES.get(kind, kind.__name__)


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def is_kind(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_value(doc: Document, keypath: KeyPath, value: Any, spec: Field) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise doc.error(keypath, f"expected {type_name(spec.kind)}, got nothing (null)")
    if not is_kind(value, spec.kind):
        raise doc.error(keypath, f"expected {type_name(spec.kind)}, got {describe(value)}")
    if spec.kind is float:
        value = float(value)
    if spec.choices is not None and value not in spec.choices:
        raise doc.error(keypath, f"expected one of {', '.join(map(str, spec.choices))}, got {describe(value)}")
    if spec.low is not None and value < spec.low:
        raise doc.error(keypath, f"expected a value >= {spec.low}, got {describe(value)}")
    if spec.high is not None and value > spec.high:
        raise doc.error(keypath, f"expected a value <= {spec.high}, got {describe(value)}")
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            raise doc.error(keypath, problem)
    return value


def unknown_key_error(doc: Document, keypath: KeyPath, key: str, known: Sequence[str]) -> Exception:
    hint = difflib.get_close_matches(key, list(known), n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    return doc.error((*keypath, key), f"unknown key{suggestion}; expected one of: {', '.join(sorted(known))}")


def check_mapping(doc: Document, keypath: KeyPath, value: Any, fields: Mapping[str, Field]) -> dict[str, Any]:
    """Validate a mapping against ``fields``; unknown keys, wrong types and missing keys are ConfigErrors."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise doc.error(keypath, f"expected a mapping with keys {', '.join(fields)}, got {describe(value)}")
    for key in value:
        if key not in fields:
            raise unknown_key_error(doc, keypath, key, list(fields))
    out: dict[str, Any] = {}
    for key, spec in fields.items():
        if key in value:
            out[key] = check_value(doc, (*keypath, key), value[key], spec)
        elif spec.default is REQUIRED:
            raise doc.error((*keypath, key), f"missing required key ({type_name(spec.kind)})")
        else:
            out[key] = spec.default() if callable(spec.default) else spec.default
    return out


class ParamKeys:
    """Stands in for a :class:`Document` where values come as keyword arguments (a reader's ``params``): errors
    become :class:`~ape_nas.errors.KeyedError` keyed ``(*prefix, key)``, which the sweep places at file:line."""

    def __init__(self, prefix: KeyPath = ("data", "params")) -> None:
        self.prefix = tuple(prefix)

    def error(self, keypath: KeyPath, problem: str) -> Exception:
        from ape_nas.errors import KeyedError

        return KeyedError([(*self.prefix, *keypath)], problem)


def check_params(params: Mapping[str, Any], fields: Mapping[str, Field], prefix: KeyPath = ("data", "params")) -> dict:
    """A reader's keyword parameters checked against ``fields`` (exact names, types, ranges, choices, defaults).

    Errors name the experiment key, e.g. ``data.params.records: expected a list, got 'drive17a'``."""
    return check_mapping(ParamKeys(prefix), (), dict(params), fields)  # type: ignore[arg-type]
