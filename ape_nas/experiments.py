"""Experiment files checked against the built-in benchmarks: where ``config`` and ``data`` meet.

``config`` validates an experiment against any :class:`~ape_nas.config.experiment.BenchmarkCatalog` and never
imports ``data``; ``data`` never imports ``config``. This module, above both, joins them: every command and test
that loads an experiment file calls :func:`load_experiment` here.
"""

from __future__ import annotations

from pathlib import Path

from ape_nas.config import experiment as config
from ape_nas.config.experiment import ExperimentConfig
from ape_nas.data import benchmarks
from ape_nas.errors import KeyedError, UserError


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load, override (``key.path=value``) and validate an experiment file; ``data.params`` are checked against
    the benchmark's loader.

    Example:
        >>> load_experiment("experiments/quickstart.yaml", ["budget.trials=2"]).budget["trials"]
        2
    """
    return config.load_experiment(path, overrides, catalog=benchmarks)


def located(exp: ExperimentConfig, err: KeyedError) -> UserError:
    """A KeyedError from a lower layer (a reader, the splits) placed where the user set one of its keys: the
    ``--set`` / flag if they typed one, else the experiment file's line."""
    typed = [k for k in err.keys if any(o[: len(k)] == k for o in exp.doc.overrides)]
    return exp.doc.error((typed or err.keys)[0], err.problem)


__all__ = ["ExperimentConfig", "load_experiment", "located"]
