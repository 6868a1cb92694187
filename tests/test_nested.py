"""Nested subject-wise cross-validation of a whole search (``protocol.kind: nested``), on the synthetic benchmark.

What is asserted comes from what was recorded (MLflow tags of every trial and refit, the studies), not from
the code's intentions: outer folds are disjoint and cover the subjects, no outer test subject reaches its
fold's search or refit, permuting outer test labels moves only outer test metrics, an interrupted nested run
resumes with only the missing work, and bad requests say one line and write nothing.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _common import ROOT

from ape_nas.cli import main

pytestmark = pytest.mark.slow

NESTED = """\
name: {name}
seed: 7
space: {root}/search_spaces/quickstart.yaml
data:
  benchmark: {benchmark}
  params: {params}
  channels: [ecg]
  bandpass_hz: [0.5, 40.0]
  normalize: subject
  window_s: 10.0
  stride_s: 5.0
  label_purity: 0.9
protocol:
  kind: nested
  outer_folds: {outer}
  inner: {inner}
objective:
  metric: f1_macro
  selection: mean_minus_se
training: {{max_epochs: 2, patience: 2}}
budget: {{trials: {trials}}}
backend: {{name: optuna, sampler: random, pruner: none}}
"""
SYNTH = "{subjects: 8, minutes_per_state: 1.0, fs: 128.0, states: [baseline, stress], seed: 7}"


def _experiment(
    tmp: Path,
    name: str = "nested-t",
    *,
    outer: int = 2,
    inner: str = "{kind: kfold, folds: 2}",
    trials: int = 2,
    benchmark: str = "synthetic",
    params: str = SYNTH,
) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        NESTED.format(name=name, root=ROOT, benchmark=benchmark, params=params, outer=outer, inner=inner, trials=trials)
    )
    return path


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def _runs(workdir: Path, experiment: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    return list(client.search_runs([exp.experiment_id], max_results=1000))


def _studies(workdir: Path) -> dict[str, list[Any]]:
    import optuna

    storage = f"sqlite:///{workdir / 'optuna.db'}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    return {n: optuna.load_study(study_name=n, storage=storage).trials for n in names}


@pytest.fixture(scope="module")
def nested_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("nested")
    path = _experiment(tmp)
    assert main(["sweep", str(path), "--workdir", str(tmp / "w"), "--no-progress"]) == 0
    return path, tmp / "w"


def test_outer_folds_partition_the_subjects_and_no_outer_test_subject_reaches_its_search(nested_run):
    _, workdir = nested_run
    runs = _runs(workdir, "nested-t")
    top = [r for r in runs if r.data.tags.get("ape_nas.role") == "nested"]
    assert len(top) == 1
    parents = [r for r in runs if r.data.tags.get("ape_nas.role") == "sweep"]
    assert sorted(r.data.tags["ape_nas.study"] for r in parents) == ["nested-t/outer-1", "nested-t/outer-2"]
    assert all(r.data.tags["mlflow.parentRunId"] == top[0].info.run_id for r in parents)
    tests = [set(r.data.tags["ape_nas.outer_test"].split(",")) for r in parents]
    assert not (tests[0] & tests[1]), "outer folds share a test subject"
    assert len(tests[0] | tests[1]) == 8, "every subject is an outer test subject once"
    for parent, outer_test in zip(parents, tests, strict=True):
        trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        searched = [r for r in trials if r.data.tags.get("ape_nas.role") == "trial"]
        refits = [r for r in trials if r.data.tags.get("ape_nas.role") == "outer_test"]
        assert len(searched) == 2 and len(refits) == 1
        for trial in searched:
            tags = trial.data.tags
            assert set(tags["split.test"].split(",")) == outer_test
            for k in range(int(tags["split.folds"])):
                seen = set(tags[f"split.fold{k}.train"].split(",")) | set(tags[f"split.fold{k}.val"].split(","))
                assert not (seen & outer_test), f"trial {tags['ape_nas.trial_number']} saw an outer test subject"
        refit = refits[0].data.tags
        assert not (set(refit["split.train"].split(",")) & outer_test)
        assert set(refit["split.test"].split(",")) == outer_test
        assert set(refit["split.train"]) and len(refit["split.train"].split(",")) == 4, "all non-test subjects"


def test_the_pooled_result_is_logged_with_intervals_and_shown_by_status(nested_run, capsys):
    path, workdir = nested_run
    top = next(r for r in _runs(workdir, "nested-t") if r.data.tags.get("ape_nas.role") == "nested")
    m = top.data.metrics
    for prefix in ("nested_test_", "hrv_nested_test_", "hrv_subjnorm_nested_test_"):
        assert m[f"{prefix}f1_macro_ci_low"] <= m[f"{prefix}f1_macro"] <= m[f"{prefix}f1_macro_ci_high"]
    capsys.readouterr()
    assert main(["status", str(path), "--workdir", str(workdir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [f["counts"]["complete"] for f in status["folds"]] == [2, 2]
    assert status["pooled"]["nested_test_f1_macro"] == pytest.approx(m["nested_test_f1_macro"])
    assert all(f["refit"]["test_subjects"] for f in status["folds"])
    assert main(["status", str(path), "--workdir", str(workdir)]) == 0
    assert "nested estimate on unseen subjects" in capsys.readouterr().out


def test_rerunning_a_finished_nested_run_trains_nothing(nested_run):
    path, workdir = nested_run
    before = {n: len(t) for n, t in _studies(workdir).items()}
    refits = sum(r.data.tags.get("ape_nas.role") == "outer_test" for r in _runs(workdir, "nested-t"))
    assert main(["sweep", str(path), "--workdir", str(workdir), "--no-progress"]) == 0
    assert {n: len(t) for n, t in _studies(workdir).items()} == before
    assert sum(r.data.tags.get("ape_nas.role") == "outer_test" for r in _runs(workdir, "nested-t")) == refits


def test_permuting_outer_test_labels_moves_only_outer_test_metrics(tmp_path: Path, monkeypatch):
    import ape_nas.nested
    import ape_nas.objective
    from ape_nas.data.prepare import WindowSet, prepare_windows
    from ape_nas.nested import run_nested
    from ape_nas.sweep import prepare_sweep

    path = _experiment(tmp_path)

    def run(workdir: Path) -> Any:
        return run_nested(prepare_sweep(path, workdir=workdir), progress=False)

    honest = run(tmp_path / "a")
    current: dict[str, tuple[str, ...]] = {}
    original_fold = ape_nas.nested.run_fold

    def run_fold(plan: Any, **kw: Any) -> Any:  # which outer fold trains now: its test subjects get permuted
        current["test"] = tuple(plan.experiment.protocol["test_subjects"])
        return original_fold(plan, **kw)

    def prepare(data: dict[str, Any], cache_dir: Path | None = None) -> WindowSet:
        ws = prepare_windows(data, cache_dir)
        y, idx = ws.y.copy(), ws.indices(list(current["test"]))
        y[idx] = np.random.default_rng(0).permutation(y[idx])
        assert (y != ws.y).any()
        return WindowSet(**{**ws.__dict__, "y": y})

    monkeypatch.setattr(ape_nas.nested, "run_fold", run_fold)
    monkeypatch.setattr(ape_nas.objective, "prepare_windows", prepare)
    permuted = run(tmp_path / "b")
    moved = 0
    for a, b in zip(honest.folds, permuted.folds, strict=True):
        assert a.best.number == b.best.number and a.best.value == b.best.value
        assert a.result["epochs"] == b.result["epochs"] and a.result["model"] == b.result["model"]
        studies_a, studies_b = _studies(tmp_path / "a")[a.study], _studies(tmp_path / "b")[b.study]
        for ta, tb in zip(studies_a, studies_b, strict=True):
            assert (ta.state, ta.value, ta.params, ta.intermediate_values) == (
                tb.state,
                tb.value,
                tb.params,
                tb.intermediate_values,
            )
            assert ta.user_attrs["fold_scores"] == tb.user_attrs["fold_scores"]
        moved += a.result["test_metrics"] != b.result["test_metrics"]
    assert moved, "the permutation reached the outer test metrics"


def test_an_interrupted_nested_run_resumes_with_only_the_missing_work(tmp_path: Path):
    path = _experiment(tmp_path, trials=3)
    cmd = [sys.executable, "-m", "ape_nas", "sweep", str(path), "--workdir", str(tmp_path / "w"), "--no-progress"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    seen = []
    fold2 = False
    for line in proc.stdout:  # interrupt inside outer fold 2's search: after its first of 3 trials, not a timed wait
        seen.append(line)
        fold2 = fold2 or "outer-2: test subjects" in line
        if fold2 and re.search(r"trial\s+0\s+complete", line):
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, "".join(seen) + rest
    first = _studies(tmp_path / "w")
    fold1 = first["nested-t/outer-1"]
    assert sum(t.state.name == "COMPLETE" for t in fold1) == 3
    refits_before = [r for r in _runs(tmp_path / "w", "nested-t") if r.data.tags.get("ape_nas.role") == "outer_test"]
    assert len(refits_before) == 1
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    after = _studies(tmp_path / "w")
    assert [(t.number, t.state, t.value) for t in after["nested-t/outer-1"]] == [
        (t.number, t.state, t.value) for t in fold1
    ], "outer fold 1 was not trained again"
    assert sum(t.state.name == "COMPLETE" for t in after["nested-t/outer-2"]) == 3
    refits = [r for r in _runs(tmp_path / "w", "nested-t") if r.data.tags.get("ape_nas.role") == "outer_test"]
    assert len(refits) == 2 and refits_before[0].info.run_id in {r.info.run_id for r in refits}
    assert "nested estimate" in done.stdout


# --- bad input: one line, exit 2, nothing written ------------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("  outer_folds: 2\n", ""), "protocol.outer_folds: missing"),
        (lambda t: t.replace("  kind: nested\n", "  kind: nested\n  test_subjects: 2\n"), "protocol.test_subjects"),
        (lambda t: t.replace("{kind: kfold, folds: 2}", "{kind: kfold}"), "protocol.inner.folds: missing"),
        (lambda t: t.replace("{kind: kfold, folds: 2}", "{kind: nested}"), "protocol.inner.kind"),
    ],
    ids=["no-outer-folds", "test-subjects", "inner-without-folds", "inner-nested"],
)
def test_a_malformed_nested_protocol_is_one_line_with_file_and_line(tmp_path: Path, capsys, edit, expected):
    path = _experiment(tmp_path)
    path.write_text(edit(path.read_text()))
    capsys.readouterr()
    assert main(["sweep", str(path), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and f"{path.name}:" in err, err
    assert not (tmp_path / "w").exists()


def test_more_outer_folds_than_subjects_writes_nothing(tmp_path: Path, capsys):
    path = _experiment(tmp_path, outer=9)
    (tmp_path / "w").mkdir()
    capsys.readouterr()
    assert main(["sweep", str(path), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "9 outer folds need at least 9 subjects" in err, err
    assert f"{path.name}:15:" in err, "the line of protocol.outer_folds"
    cache = tmp_path / "w" / "cache"
    assert _files(tmp_path / "w") <= {"cache"} and not (cache.exists() and any(cache.iterdir())), "nothing written"


def _one_class_folder(root: Path) -> None:
    """4 synthetic subjects as a folder data set where S01, S02 hold only baseline and S03, S04 only stress."""
    from ape_nas.data.synthetic import generate

    bench = generate(subjects=4, minutes_per_state=1.0, fs=128.0, states=["baseline", "stress"], seed=3)
    fs = bench.params["fs"]
    root.mkdir()
    (root / "dataset.yaml").write_text(
        f"class_names: [{', '.join(bench.class_names)}]\nlabel_rate: {fs}\nchannels:\n  ecg: {{rate: {fs}}}\n"
    )
    rows = ["subject,start,end,label"]
    for i, rec in enumerate(bench.subjects):
        (root / rec.subject).mkdir()
        np.save(root / rec.subject / "ecg.npy", rec.signals["ecg"])
        keep = 0 if i < 2 else 1
        change = np.flatnonzero(np.diff(np.concatenate([[-2], rec.labels, [-2]])))
        for a, b in itertools.pairwise(change):
            if rec.labels[a] == keep:
                rows.append(f"{rec.subject},{a / fs:.10g},{b / fs:.10g},{bench.class_names[keep]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def test_an_inner_protocol_that_leaves_a_fold_without_a_class_writes_nothing(tmp_path: Path, capsys):
    _one_class_folder(tmp_path / "data")
    path = _experiment(tmp_path, benchmark="folder", params=f"{{path: {tmp_path / 'data'}}}")
    (tmp_path / "w").mkdir()
    capsys.readouterr()
    assert main(["sweep", str(path), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "outer fold 1" in err and "no windows of class" in err, err
    assert "protocol.inner" in err or "protocol.seed" in err, err
    assert not (tmp_path / "w" / "mlflow.db").exists() and not (tmp_path / "w" / "optuna.db").exists()
    cache = tmp_path / "w" / "cache"
    assert not cache.exists() or not [p for p in cache.iterdir() if p.is_dir()], "no cache entry"


def test_a_worker_runs_one_outer_fold_and_the_sweep_finishes_only_the_rest(tmp_path: Path, capsys):
    import optuna

    path, workdir = _experiment(tmp_path), tmp_path / "w"
    storage = f"journal://{tmp_path / 'study.log'}"
    common = ["--workdir", str(workdir), "--storage", storage]
    assert main(["worker", str(path), "--outer-fold", "1", "--trials", "2", *common]) == 0
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    first = optuna.load_study(study_name="nested-t/outer-1", storage=journal).trials
    assert [t.state.name for t in first] == ["COMPLETE", "COMPLETE"]
    assert main(["sweep", str(path), "--no-progress", *common]) == 0
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    assert [t.number for t in optuna.load_study(study_name="nested-t/outer-1", storage=journal).trials] == [0, 1]
    assert len(optuna.load_study(study_name="nested-t/outer-2", storage=journal).trials) == 2
    assert main(["worker", str(path), "--trials", "1", *common]) == 2
    assert "--outer-fold" in capsys.readouterr().err
