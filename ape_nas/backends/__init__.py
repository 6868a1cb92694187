"""Search backends behind one interface, imported lazily by exact name."""

from __future__ import annotations

import importlib
from typing import Any

from ape_nas.backends.base import Backend, TrialHandle, TrialRecord
from ape_nas.errors import UnknownNameError

# name -> "module:class"; a backend's heavy imports happen only when it is chosen.
BACKENDS: dict[str, str] = {
    "optuna": "ape_nas.backends.optuna_backend:OptunaBackend",
    "ray": "ape_nas.backends.ray_backend:RayBackend",
}


def get_backend(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise UnknownNameError("backend", name, list(BACKENDS))
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_backend(name: str, **kwargs: Any) -> Backend:
    return get_backend(name)(**kwargs)


__all__ = ["BACKENDS", "Backend", "TrialHandle", "TrialRecord", "get_backend", "make_backend"]
