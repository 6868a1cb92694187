"""One table of search names (``ape_nas.search_names``): what the experiment schema accepts is exactly what the
backends implement, and every entry names a class that exists in the installed library."""

from __future__ import annotations

import importlib
import importlib.util

import optuna
import pytest

from ape_nas import search_names
from ape_nas.backends import BACKENDS, Backend, get_backend, optuna_backend
from ape_nas.config import experiment as experiment_config


def test_the_schema_accepts_exactly_the_implemented_names():
    backend = experiment_config.SECTIONS["backend"]
    assert tuple(backend["name"].choices) == search_names.BACKENDS == tuple(BACKENDS)
    assert tuple(backend["scheduler"].choices) == search_names.SCHEDULERS
    assert experiment_config.SAMPLERS == search_names.SAMPLERS == tuple(optuna_backend.SAMPLERS)
    assert experiment_config.PRUNERS == search_names.PRUNERS == tuple(optuna_backend.PRUNERS)


def test_the_backends_build_from_the_one_table():
    assert BACKENDS is search_names.BACKEND_CLASSES
    assert optuna_backend.SAMPLERS is search_names.SAMPLER_CLASSES
    assert optuna_backend.PRUNERS is search_names.PRUNER_CLASSES


@pytest.mark.parametrize("name", search_names.BACKENDS)
def test_every_backend_name_is_a_backend_of_that_name(name: str):
    if name == "ray":
        pytest.importorskip("ray.tune")
    cls = get_backend(name)
    assert issubclass(cls, Backend) and cls.name == name


def test_every_sampler_and_pruner_name_is_an_optuna_class():
    for name, cls in search_names.SAMPLER_CLASSES.items():
        assert issubclass(getattr(optuna.samplers, cls), optuna.samplers.BaseSampler), name
    for name, cls in search_names.PRUNER_CLASSES.items():
        assert issubclass(getattr(optuna.pruners, cls), optuna.pruners.BasePruner), name


def test_every_scheduler_name_is_a_ray_scheduler_and_the_ray_backend_agrees():
    schedulers = pytest.importorskip("ray.tune.schedulers")
    for name, cls in search_names.SCHEDULER_CLASSES.items():
        assert issubclass(getattr(schedulers, cls), schedulers.TrialScheduler), name
    ray_table = importlib.import_module("ape_nas.backends.raytune.schedulers").SCHEDULERS
    assert ray_table == search_names.SCHEDULER_CLASSES


def test_the_names_module_imports_nothing_heavy():
    """``config`` imports it: it must not pull in Optuna, Ray or a backend."""
    source = importlib.util.find_spec("ape_nas.search_names").loader.get_source("ape_nas.search_names")
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["from __future__ import annotations"]
