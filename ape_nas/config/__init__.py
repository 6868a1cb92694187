"""Experiment and search-space files: loading, validation, overrides. Imports no torch, optuna or ray."""

from ape_nas.config.experiment import ExperimentConfig, load_experiment
from ape_nas.yamlio import Document, load_yaml

__all__ = ["Document", "ExperimentConfig", "load_experiment", "load_yaml"]
