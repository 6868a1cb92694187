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
    "stress-predict": "ape_nas.data.readers.stress_predict:load",
    "e4": "ape_nas.data.readers.e4:e4",
    "folder": "ape_nas.data.readers.folder:load",
    "wfdb": "ape_nas.data.readers.wfdb_reader:load",
    "wesad": "ape_nas.data.readers.wesad:load",
    "dreamer": "ape_nas.data.readers.dreamer:load",
}
DEFAULT_PATH_PARAMS = ("path",)


def get_loader(name: str) -> Callable[..., BenchmarkData]:
    if name not in BENCHMARKS:
        raise UnknownNameError("benchmark", name, list(BENCHMARKS))
    module, func = BENCHMARKS[name].split(":")
    return getattr(importlib.import_module(module), func)


def path_params(name: str) -> tuple[str, ...]:
    """Loader parameters that name raw files or folders (content-hashed for the cache, resolved relative to
    the experiment file): the loader module's ``PATH_PARAMS``, else just ``path``."""
    module = importlib.import_module(BENCHMARKS[name].split(":")[0])
    return tuple(getattr(module, "PATH_PARAMS", DEFAULT_PATH_PARAMS))


def loader_defaults(name: str) -> dict[str, Any]:
    """Keyword parameters of a benchmark loader with their defaults (what ``data.params`` may set).

    ``require_labels`` is not among them: commands set it (training needs labels, prediction does not).
    """
    sig = inspect.signature(get_loader(name))
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.default is not inspect.Parameter.empty and p.name != "require_labels"
    }


def load_benchmark(name: str, params: dict[str, Any]) -> BenchmarkData:
    return get_loader(name)(**params)
