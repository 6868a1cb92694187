"""The one door to MLflow (``ape_nas.tracking``): runs written by the sweep's tracker are read back by the
``TrialStore`` — by id, by trial number, the best of a sweep — on a real SQLite store and a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from ape_nas.errors import UserError
from ape_nas.spec import TrialSpec
from ape_nas.tracking import SweepTracker, TrialStore, default_tracking_uri

SPEC = TrialSpec(model="cnn1d", arch={"depth": 2}, optim={"lr": 1e-3}, data={}, protocol={}, training={}, seed=0)


def _sweep(uri: str, name: str, scores: dict[int, tuple[str, float | None]], **parent_params: str) -> SweepTracker:
    """A sweep's parent run with one trial run per ``number: (state, score)``, as the sweep writes them."""
    tracker = SweepTracker(uri, name)
    tracker.open_parent(
        None,
        name=f"sweep-{name}",
        tags={"data_fingerprint": "fp-a"},
        params={"objective.direction": parent_params.get("direction", "maximize")},
    )
    for number, (state, score) in scores.items():
        run = tracker.start_trial(number, SPEC, {"data_fingerprint": parent_params.get(f"fp{number}", "fp-a")})
        if score is not None:
            run.log_metrics({"score": score})
        run.close(state)
    return tracker


def test_best_trial_and_trial_by_number_come_from_the_parent_run(tmp_path: Path):
    uri = default_tracking_uri(tmp_path)
    tracker = _sweep(
        uri,
        "study-a",
        {0: ("complete", 0.61), 1: ("pruned", 0.90), 2: ("complete", 0.74), 3: ("failed", None), 4: ("complete", 0.99)},
        fp4="fp-other",  # trained on other data: never the best
    )
    store = TrialStore(uri)
    best = store.best_trial("study-a")
    assert best is not None and best.number == 2 and best.metrics["score"] == pytest.approx(0.74)
    assert best.state == "complete" and best.parent_run_id == tracker.parent.run_id
    third = store.trial_by_number("study-a", 3)
    assert third is not None and third.state == "failed" and third.status == "FAILED"
    assert store.trial_by_number("study-a", 9) is None
    assert store.best_trial("no-such-study") is None
    assert store.spec(best.run_id) == SPEC
    assert store.require_trial(best.run_id).run_id == best.run_id
    with pytest.raises(UserError, match="pruned, not complete"):
        store.require_trial(store.trial_by_number("study-a", 1).run_id)


def test_best_trial_follows_the_recorded_direction(tmp_path: Path):
    uri = default_tracking_uri(tmp_path)
    _sweep(uri, "loss-study", {0: ("complete", 0.4), 1: ("complete", 0.2), 2: ("complete", 0.3)}, direction="minimize")
    best = TrialStore(uri).best_trial("loss-study")
    assert best is not None and best.number == 1


def test_repair_running_closes_only_runs_whose_process_is_gone(tmp_path: Path):
    uri = default_tracking_uri(tmp_path)
    tracker = _sweep(uri, "s", {0: ("complete", 0.5)})
    left = [tracker.start_trial(n, SPEC) for n in (1, 2)]  # two runs left RUNNING
    store = TrialStore(uri)
    fixed = store.repair_running(tracker.parent.run_id, alive=lambda run: run.number == 2, note="worker died")
    assert fixed == [left[0].run_id]
    one, two = store.run(left[0].run_id), store.run(left[1].run_id)
    assert (one.status, one.state, one.tags["ape_nas.note"]) == ("FAILED", "failed", "worker died")
    assert two.status == "RUNNING"


def test_a_recorded_parent_of_another_store_starts_a_new_parent(tmp_path: Path):
    uri = default_tracking_uri(tmp_path)
    tracker = SweepTracker(uri, "s")
    parent = tracker.open_parent("0" * 32, name="sweep-s", tags={}, params={})
    assert parent.run_id != "0" * 32
    resumed = SweepTracker(uri, "s").open_parent(parent.run_id, name="sweep-s", tags={}, params={})
    assert resumed.run_id == parent.run_id


def test_a_failing_lookup_never_starts_a_second_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Before: ``except Exception: pass`` in open_parent made a new parent run on any error while looking up the
    recorded one (a server's 500, a timeout), so a resumed sweep split its trials over two parents. The failure
    is injected into the real client's lookup (a transient server error cannot be produced on demand)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = default_tracking_uri(tmp_path)
    first = SweepTracker(uri, "s").open_parent(None, name="sweep-s", tags={}, params={})
    again = SweepTracker(uri, "s")

    def broken(run_id: str) -> None:
        raise MlflowException("internal error (injected)", error_code="INTERNAL_ERROR")

    monkeypatch.setattr(again._client, "get_run", broken)
    with pytest.raises(MlflowException, match="injected"):
        again.open_parent(first.run_id, name="sweep-s", tags={}, params={})
    sweeps = MlflowClient(uri).search_runs([again.experiment_id], "tags.`ape_nas.role` = 'sweep'")
    assert [r.info.run_id for r in sweeps] == [first.run_id]
