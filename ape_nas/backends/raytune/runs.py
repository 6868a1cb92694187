"""What the Ray driver does to trial runs in the store, when the trial actor could not do it itself."""

from __future__ import annotations

import time

from ape_nas.backends.raytune.keys import INTERRUPTED
from ape_nas.backends.raytune.study import StudyBook
from ape_nas.tracking import NOTE_TAG, RUN_ID_ATTR, TrialStore


def close_trial_run(
    store: TrialStore, parent_run_id: str, book: StudyBook, number: int, state: str, note: str
) -> str | None:
    """End the runs of trial ``number`` still running, in ``state``, when its actor could not (stopped or died
    first). Returns the note its latest run ends with (the trial's own when it closed the run itself); None
    when the trial has no run."""
    runs = sorted(store.trial_runs(parent_run_id, number), key=lambda r: r.start_time or 0)
    if not runs:
        return None
    if RUN_ID_ATTR not in book.frozen(number).user_attrs:  # ended before its first result reached the driver
        book.set_attrs(number, {RUN_ID_ATTR: runs[-1].run_id})
    running = [r for r in runs if r.status == "RUNNING"]
    for run in running:
        store.close(run.run_id, state, note)
    return note if running else runs[-1].tags.get(NOTE_TAG)


def clear_unfinished(store: TrialStore, parent_run_id: str, book: StudyBook, restart: bool, note: str | None) -> None:
    """Trials the study still has as running: with ``restart``, delete their partial runs (Ray restarts them);
    else fail them, in the study and in the store, with ``note``."""
    for ft in book.running():
        for run in store.trial_runs(parent_run_id, ft.number):
            if restart:
                store.delete_run(run.run_id)
            elif run.status in ("RUNNING", "KILLED"):
                store.close(run.run_id, "failed", note)
        if not restart:
            book.set_attrs(ft.number, {"error": note})
            book.finish(ft.number, "failed")


def mark_interrupted(store: TrialStore, parent_run_id: str, book: StudyBook, numbers: list[int], note: str) -> None:
    """Trials Ray stopped on an interrupt: the study keeps them running (resume restarts them; ``status`` shows
    them ``interrupted``), their runs end KILLED with ``note``."""
    for number in numbers:
        book.set_attrs(number, {INTERRUPTED: time.time()})
        for run in store.trial_runs(parent_run_id, number):
            store.close(run.run_id, "interrupted", note)
