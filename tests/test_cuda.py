"""On a CUDA GPU: a quickstart trial at every precision, the export of a GPU-trained model, two workers sharing
one GPU. Marked ``cuda`` and skipped where torch sees no CUDA GPU (CI, CPU machines); on a GPU machine:
``pytest -m cuda``.

The last test runs everywhere: ``benchmarks/gpu_packing.py`` without a usable GPU says why in one line, exits 0
and writes no results file.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _common import QUICKSTART, ROOT, SMALL, SMALL_SETS, set_args

PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
NO_CUDA = "needs a CUDA GPU: torch.cuda.is_available() is False" + (
    f" (torch {torch.__version__} is a CPU build)" if torch.version.cuda is None else ""
)


def needs_cuda(test: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``test`` cuda (and slow: it trains), skipped with a reason where torch sees no CUDA GPU."""
    for mark in (pytest.mark.cuda, pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)):
        test = mark(test)
    return test


def _gpu_sets(precision: str = "32-true") -> list[str]:
    """One epoch on the GPU at ``precision`` (with SMALL_SETS: 8 subjects, one minute per state)."""
    return ["training.accelerator=gpu", f"training.precision={precision}", "training.max_epochs=1"]


def _trial_spec(precision: str) -> Any:
    """A small quickstart spec (a narrow 2-block CNN) for one epoch on the GPU."""
    from ape_nas.experiments import load_experiment
    from ape_nas.models import get_family
    from ape_nas.spec import TrialSpec

    base = load_experiment(QUICKSTART, [*SMALL_SETS, *_gpu_sets(precision)]).base()
    arch = {**get_family("cnn1d").arch_defaults, "depth": 2, "width": 4}
    return TrialSpec.from_dict({"model": "cnn1d", "arch": arch, "optim": {"lr": 3e-3}, **base})


@needs_cuda
@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_one_epoch_quickstart_trial_trains_on_the_gpu_at_every_precision(precision: str):
    from ape_nas.objective import run_trial

    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip(f"{torch.cuda.get_device_name(0)} has no bfloat16")
    torch.cuda.reset_peak_memory_stats()
    result = run_trial(_trial_spec(precision))
    assert result.epochs == 1
    assert math.isfinite(result.score) and 0.0 <= result.score <= 1.0, result.score
    assert all(math.isfinite(v) for v in result.test_metrics.values()), result.test_metrics
    assert torch.cuda.max_memory_allocated() > 0  # the network and its batches were on the GPU


@needs_cuda
def test_a_gpu_trained_model_exports_and_its_onnx_matches_torch_on_the_cpu(tmp_path: Path):
    from mlflow.tracking import MlflowClient

    from ape_nas.cli import main
    from ape_nas.data.prepare import prepare_windows
    from ape_nas.handoff import bundle as B
    from ape_nas.handoff.convert import PARITY_TOL, Probabilities, torch_probs
    from ape_nas.handoff.onnx_session import ort_probs, ort_session
    from ape_nas.models import build_model

    workdir, out = tmp_path / "w", tmp_path / "bundle"
    sets = [*SMALL, *set_args(_gpu_sets("16-mixed"))]
    assert main(["sweep", QUICKSTART, "--workdir", str(workdir), "--trials", "1", "--no-progress", *sets]) == 0
    export = ["export", QUICKSTART, "--out", str(out), "--workdir", str(workdir), "--no-register"]
    assert main([*export, "--latency-runs", "5", *sets]) == 0  # export itself refuses a parity gap > PARITY_TOL
    info = json.loads((out / B.INFO).read_text())
    assert info["checks"]["onnx_parity_max_abs"] <= PARITY_TOL
    metrics = json.loads((out / B.METRICS).read_text())
    for m, v in metrics["checks"]["recomputed_vs_logged_test"].items():  # scored on the CPU, as the trial logged
        assert v["recomputed"] == pytest.approx(v["logged"], abs=1e-5), m

    # the trial's checkpoint as saved, without map_location: a GPU-trained model must hold CPU tensors
    client = MlflowClient(info["source"]["tracking_uri"])
    path = client.download_artifacts(info["source"]["run_id"], "model.pt", str(tmp_path / "ckpt"))
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["spec"]["training"]["accelerator"] == "gpu"
    assert {t.device.type for t in ckpt["state_dict"].values()} == {"cpu"}
    net = build_model(ckpt["spec"]["model"], ckpt["in_channels"], ckpt["num_classes"], **ckpt["spec"]["arch"])
    net.load_state_dict(ckpt["state_dict"])
    X = prepare_windows(ckpt["spec"]["data"], workdir / "cache").X[:256]
    expected = torch_probs(Probabilities(net).eval(), X)  # PyTorch on the CPU
    got = ort_probs(ort_session(out / B.MODEL_ONNX), X)
    assert got.shape == expected.shape == (len(X), ckpt["num_classes"])
    assert float(np.abs(got - expected).max()) <= PARITY_TOL


@needs_cuda
def test_two_workers_pinned_to_one_gpu_both_finish_their_trials(tmp_path: Path):
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu = (visible.split(",")[0].strip() if visible else "") or "0"  # the first GPU this process may use
    storage = f"journal://{tmp_path / 'study.log'}"
    cmd = [sys.executable, "-m", "ape_nas", "worker", QUICKSTART, "--workers", "2", "--trials", "2"]
    cmd += ["--workdir", str(tmp_path / "w"), "--storage", storage, *SMALL, *set_args(_gpu_sets())]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}  # so `--workers 2` pins both to that one GPU
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"GPUs {gpu} round robin" in out, out
    assert "2 workers exited (0, 0) · study quickstart: 2 trials (2 complete)" in out, out
    for label in ("w1/2", "w2/2"):  # one trial each; a trial needs the GPU (no silent CPU run: check_accelerator)
        trials = [line for line in out.splitlines() if line.startswith(f"[{label}] trial ")]
        assert len(trials) == 1 and " complete " in trials[0], out


def test_the_gpu_packing_benchmark_without_a_gpu_says_why_in_one_line_and_writes_nothing(tmp_path: Path):
    results = ROOT / "benchmarks" / "results" / "gpu_packing.json"
    before = results.read_bytes() if results.exists() else None
    script = [sys.executable, str(ROOT / "benchmarks" / "gpu_packing.py"), "--counts", "1,2", "--trials", "2"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU for it on any machine: the skip path everywhere
    proc = subprocess.run(script, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout  # nothing ran: no "trials, N at a time" line
    assert lines[0].startswith("gpu_packing: skipped, no usable GPU: ") and lines[0].endswith("no results written")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert (results.read_bytes() if results.exists() else None) == before
    assert list(tmp_path.iterdir()) == []
