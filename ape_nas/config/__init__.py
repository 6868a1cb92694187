"""Experiment and search-space files: loading, validation, overrides. Imports no torch, optuna or ray — and no
``ape_nas.data``: load experiment files through :func:`ape_nas.experiments.load_experiment`, which joins the two."""

from ape_nas.config.experiment import BenchmarkCatalog, ExperimentConfig
from ape_nas.yamlio import Document, load_yaml

__all__ = ["BenchmarkCatalog", "Document", "ExperimentConfig", "load_yaml"]
