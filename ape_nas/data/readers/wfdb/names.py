"""WFDB channel names → unique lower-case identifiers."""

from __future__ import annotations

import re
from collections.abc import Sequence


def normalise_names(names: Sequence[str]) -> list[str]:
    """Header channel names → unique lower-case identifiers ("foot GSR" → "foot_gsr")."""
    out: list[str] = []
    for name in names:
        base = re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_") or "ch"
        if base[0].isdigit():
            base = f"ch_{base}"
        new, k = base, 2
        while new in out:
            new, k = f"{base}_{k}", k + 1
        out.append(new)
    return out


def normalise_name(name: str) -> str:
    """One channel name as :func:`normalise_names` turns it ("ECG" → "ecg")."""
    return normalise_names([name])[0]
