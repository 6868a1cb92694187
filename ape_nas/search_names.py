"""The one table of search names: backends, samplers, pruners and Ray schedulers, with what implements each.

The experiment schema (``config``) validates against these names and the backends build from these tables, so a
name is configurable exactly when it has an implementation. Plain strings, no imports: ``config`` uses this module
without pulling in Optuna, Ray or any backend.
"""

from __future__ import annotations

# backend name -> "module:class"; a backend's heavy imports happen only when it is chosen
BACKEND_CLASSES: dict[str, str] = {
    "optuna": "ape_nas.backends.optuna_backend:OptunaBackend",
    "ray": "ape_nas.backends.ray_backend:RayBackend",
}
# sampler name -> class in ``optuna.samplers``
SAMPLER_CLASSES: dict[str, str] = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "nsga2": "NSGAIISampler",
    "nsga3": "NSGAIIISampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
}
# samplers that handle several objectives (Optuna's CMA-ES does not)
MULTI_OBJECTIVE_SAMPLERS: tuple[str, ...] = ("tpe", "random", "nsga2", "nsga3", "qmc", "gp")

# pruner name -> class in ``optuna.pruners``
PRUNER_CLASSES: dict[str, str] = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "hyperband": "HyperbandPruner",
    "successive_halving": "SuccessiveHalvingPruner",
    "threshold": "ThresholdPruner",
    "wilcoxon": "WilcoxonPruner",
    "none": "NopPruner",
}
# Ray scheduler name -> class in ``ray.tune.schedulers``. "hyperband" is the asynchronous Hyperband (ASHA over
# several brackets): Ray's synchronous HyperBandScheduler pauses trials, which needs checkpoints trials do not write.
SCHEDULER_CLASSES: dict[str, str] = {
    "asha": "AsyncHyperBandScheduler",
    "hyperband": "AsyncHyperBandScheduler",
    "fifo": "FIFOScheduler",
}

BACKENDS = tuple(BACKEND_CLASSES)
SAMPLERS = tuple(SAMPLER_CLASSES)
PRUNERS = tuple(PRUNER_CLASSES)
SCHEDULERS = tuple(SCHEDULER_CLASSES)
