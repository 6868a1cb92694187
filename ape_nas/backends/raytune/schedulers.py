"""Ray Tune schedulers by exact name, their options checked against the scheduler's signature.

Rungs sit at ``grace_period * reduction_factor**k <= max_t``. ``max_t`` = the trial's last step - 1 keeps every
rung before the last step: a trial that trained all its epochs (folds) is never stopped (it completes, with its
test scores). ``grace_period`` 2: no trial is judged on its first epoch alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from ape_nas.backends.raytune.keys import STEP
from ape_nas.schema import unknown_key_error
from ape_nas.search_names import SCHEDULER_CLASSES as SCHEDULERS  # name -> class in ray.tune.schedulers

# scheduler arguments this backend sets itself (stop_last_trials=False: a trial that reaches max_t must finish
# its test evaluation and checkpoint, not be stopped at its last epoch report)
OWNED = ("time_attr", "metric", "mode", "stop_last_trials")


def trial_steps(experiment: Any, subjects: Sequence[str] | None) -> int | None:
    """The scheduler's unit of progress per trial: epochs (holdout) or folds (kfold, loso).

    The folds of kfold and loso are those :func:`ape_nas.data.splits.make_splits` makes of the data's
    ``subjects``; before the data is read (``subjects`` None) a kfold has at most ``folds`` (``max_folds``) and a
    loso an unknown number (None)."""
    protocol = experiment.protocol
    if protocol["kind"] == "holdout":
        return int(experiment.training["max_epochs"])
    if subjects is not None:
        from ape_nas.data.splits import make_splits

        return len(make_splits(protocol, list(subjects)))
    bound = protocol["folds"] if protocol["kind"] == "kfold" else None
    if protocol["max_folds"]:
        bound = min(bound or protocol["max_folds"], protocol["max_folds"])
    return None if bound is None else int(bound)


def scheduler_kwargs(name: str, options: dict[str, Any], steps: int | None) -> dict[str, Any] | None:
    """The arguments of scheduler ``name`` for trials of ``steps`` steps; None: first-in first-out (nothing to
    stop early: ``fifo``, or a single step). ``options`` (``backend.scheduler_options``) override ours."""
    if name == "fifo" or (steps is not None and steps < 2 and "max_t" not in options):
        return None
    kwargs: dict[str, Any] = {"stop_last_trials": False}
    if steps is not None:
        kwargs.update(max_t=steps - 1, grace_period=min(2, steps - 1))
    if name == "hyperband":
        kwargs["brackets"] = 3
    kwargs.update(options)
    return kwargs


def make_scheduler(experiment: Any, steps: int | None) -> Any:
    """The scheduler of ``backend.scheduler``; unknown or rejected options are a ConfigError at that key."""
    from ray.tune import schedulers

    cfg = experiment.backend
    name, options = cfg["scheduler"], dict(cfg["scheduler_options"])
    cls = getattr(schedulers, SCHEDULERS[name])
    accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", *OWNED)]
    for key in options:
        if key not in accepted:
            raise unknown_key_error(experiment.doc, ("backend", "scheduler_options"), key, accepted)
    kwargs = scheduler_kwargs(name, options, steps)
    if kwargs is None:
        return schedulers.FIFOScheduler()
    try:
        return cls(time_attr=STEP, **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise experiment.doc.error(
            ("backend", "scheduler_options"), f"{SCHEDULERS[name]} rejected {kwargs}: {exc}"
        ) from None
