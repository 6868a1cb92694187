"""Field rules for the readers' keyword parameters, checked by :func:`ape_nas.schema.check_params`.

A reader declares ``FIELDS`` (one :class:`~ape_nas.schema.Field` per keyword parameter) and calls
:func:`check` with its arguments; a problem is a :class:`~ape_nas.errors.KeyedError` keyed
``data.params.<key>``, which the sweep places at the file:line (or ``--set``) where the user set it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ape_nas.schema import Field, ParamKeys, check_params, describe


def names(allowed: Sequence[str] | None = None) -> Callable[[Any], str | None]:
    """A rule for a list of names (channels, subjects, classes): non-empty, strings, distinct, known."""

    def problem(value: list) -> str | None:
        if not value:
            return "expected a non-empty list of " + (f"some of {', '.join(allowed)}" if allowed else "names")
        if not all(isinstance(v, str) and v for v in value):
            return f"expected names (strings), got {value!r}"
        if len(set(value)) != len(value):
            return f"lists a name twice: {value!r}"
        unknown = [v for v in value if allowed is not None and v not in allowed]
        if unknown:
            return f"unknown {', '.join(map(repr, unknown))}; expected some of {', '.join(allowed or ())}"
        return None

    return problem


def _positive(value: float) -> str | None:
    return None if math.isfinite(value) and value > 0 else f"expected a positive number, got {describe(value)}"


def finite(value: float) -> str | None:
    """A ``Field.check`` rule: NaN and infinities pass the schema's low/high bounds, so they are refused here."""
    return None if math.isfinite(value) else f"expected a finite number, got {value!r}"


def _path(value: Any) -> str | None:
    return None if isinstance(value, str | Path) else f"expected a path (a string), got {describe(value)}"


def path(doc: str = "") -> Field:
    """A file or folder (``None`` allowed: the reader says what is expected there)."""
    return Field(object, None, nullable=True, check=_path, doc=doc)


def positive(default: float, doc: str = "") -> Field:
    return Field(float, default, check=_positive, doc=doc)


REQUIRE_LABELS = Field(bool, True, doc="set by the command: training needs labels, inspection and prediction do not")


def check(values: Mapping[str, Any], fields: Mapping[str, Field]) -> dict[str, Any]:
    """A reader's arguments checked against its ``fields``; tuples (the Python API's defaults) count as lists."""
    given = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    return check_params(given, fields)


def check_names(key: str, value: Any, allowed: Sequence[str]) -> list[str]:
    """A list of names known only after reading the data (subject folders, declared channels)."""
    problem = names(allowed)(value)
    if problem:
        raise ParamKeys().error((key,), problem)
    return list(value)
