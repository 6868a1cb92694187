"""Exact-name table of benchmarks: name -> loader function, imported lazily (readers import no torch).

A loader is a function with keyword-only parameters (all with defaults) returning
:class:`~ape_nas.data.types.BenchmarkData`; an experiment's ``data.params`` are checked against its signature.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ape_nas.data.types import BenchmarkData
from ape_nas.errors import UnknownNameError

# name -> "module:function"
BENCHMARKS: dict[str, str] = {
    "synthetic": "ape_nas.data.synthetic:generate",
}


def get_loader(name: str) -> Callable[..., BenchmarkData]:
    if name not in BENCHMARKS:
        raise UnknownNameError("benchmark", name, list(BENCHMARKS))
    module, func = BENCHMARKS[name].split(":")
    return getattr(importlib.import_module(module), func)


def loader_defaults(name: str) -> dict[str, Any]:
    """Keyword parameters of a benchmark loader with their defaults (what ``data.params`` may set)."""
    sig = inspect.signature(get_loader(name))
    return {p.name: p.default for p in sig.parameters.values() if p.default is not inspect.Parameter.empty}


def load_benchmark(name: str, params: dict[str, Any]) -> BenchmarkData:
    return get_loader(name)(**params)
