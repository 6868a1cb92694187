"""Search backends behind one interface, imported lazily by exact name (the names: :mod:`ape_nas.search_names`)."""

from __future__ import annotations

import importlib
from typing import Any

from ape_nas.backends.base import Backend, TrialHandle, TrialRecord
from ape_nas.errors import UnknownNameError
from ape_nas.search_names import BACKEND_CLASSES as BACKENDS  # name -> "module:class"


def get_backend(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise UnknownNameError("backend", name, list(BACKENDS))
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(name: str, **kwargs: Any) -> Backend:
    return get_backend(name)(**kwargs)


__all__ = ["BACKENDS", "Backend", "TrialHandle", "TrialRecord", "get_backend", "make_backend"]
