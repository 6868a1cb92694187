"""Keys of a Ray trial's config and results, shared by the driver and the trial actors (no imports)."""

from __future__ import annotations

NUMBER = "trial_number"  # config key holding the study's trial number (space parameters never look like this)
METRIC = "value"  # result key of the validation value (intermediate) or the score (final result)
STEP = "step"  # result key: 1-based epoch (or fold) = the scheduler's time attribute
FINAL = "final"  # result key present only in a trial's last result, after its MLflow run is closed
ERROR = "error"  # result key of a trial's last result when it raised: ``Type: message``
ATTRS = "attrs"  # result key: JSON of the trial attributes set since the last result
INTERRUPTED = "interrupted_at"  # study user attr of a trial stopped by an interrupt (restarted on resume)
WORKER = "worker"  # study user attr: ``host:pid`` of the trial actor that runs the trial
