"""Subject ids in natural order: ``S2`` before ``S10``, as people count (used wherever ids are listed or read).

Example:
    >>> natural_sorted(["S10", "S2", "s1", "S01b"])
    ['s1', 'S01b', 'S2', 'S10']
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key: runs of digits compare as numbers, the rest case-insensitively; ties by the exact text."""
    # re.split with a capturing group alternates text, number, text, … so equal positions hold equal types
    parts = tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(_DIGITS.split(str(text))))
    return parts, str(text)


def natural_sorted(ids: Iterable[str]) -> list[str]:
    """``ids`` in natural order (see :func:`natural_key`)."""
    return sorted(ids, key=natural_key)
