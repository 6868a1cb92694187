"""The in-memory training path (ape_nas.batches): the DataLoader's batches and order, bit-identical scores in fresh
processes, per-epoch timing, and the opt-in torch.compile."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ape_nas.batches import TensorBatches, window_batches
from tests._common import QUICKSTART, SMALL_SETS

ROOT = Path(__file__).resolve().parents[1]


class _Seen(L.LightningModule):
    """Records the window ids of every training batch Lightning hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: list[list[int]] = []

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        self.seen.append(batch[-1].tolist())
        return self.layer(batch[0]).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _seen_by_lightning(loader: object, epochs: int = 3) -> list[list[int]]:
    model = _Seen()
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, loader)
    return model.seen


@pytest.mark.parametrize("n, batch_size", [(10, 4), (128, 64), (130, 64), (3, 8)])
def test_lightning_sees_the_seeded_dataloaders_batches_epoch_after_epoch(n: int, batch_size: int):
    """Lightning takes len(loader) batches per epoch: a DataLoader's sampler runs off the end of its permutation
    (drawing one more) only when the last batch is partial (n % batch_size != 0); both cases keep their orders."""
    x = torch.randn(n, 1)
    y = torch.arange(n)
    ours = TensorBatches((x, y), batch_size, shuffle=True, seed=11)
    theirs = DataLoader(
        TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(11)
    )
    assert len(ours) == len(theirs)
    seen = _seen_by_lightning(ours)
    assert seen == _seen_by_lightning(theirs)
    per_epoch = [[i for b in seen[e * len(ours) : (e + 1) * len(ours)] for i in b] for e in range(3)]
    assert all(sorted(order) == list(range(n)) for order in per_epoch)  # every window once per epoch
    if n > batch_size:
        assert per_epoch[0] != per_epoch[1]


def test_batches_carry_every_tensor_of_the_same_windows():
    x, f, y = torch.randn(130, 2, 5), torch.randn(130, 3), torch.arange(130)
    for xb, fb, yb in TensorBatches((x, f, y), 64, shuffle=True, seed=2):
        assert torch.equal(xb, x[yb]) and torch.equal(fb, f[yb])


def test_unshuffled_batches_are_views_in_order_and_bad_input_is_refused():
    x = torch.arange(20.0).reshape(10, 1, 2)
    batches = list(window_batches([x.numpy(), np.arange(10)], np.array([1, 3, 5, 7, 9]), 2))
    assert [b[1].tolist() for b in batches] == [[1, 3], [5, 7], [9]]
    plain = TensorBatches((x,), 4)
    assert all(b[0].data_ptr() == x[i * 4].data_ptr() for i, b in enumerate(plain))  # no copies
    with pytest.raises(ValueError, match="same number of rows"):
        TensorBatches((x, torch.zeros(3)), 4)
    with pytest.raises(ValueError, match="batch_size 0"):
        TensorBatches((x,), 0)


_TRIAL = """
import json, sys, optuna
from ape_nas.experiments import load_experiment
from ape_nas.space import load_space
from ape_nas.objective import run_trial
from ape_nas.reporting import MemoryTracker
exp = load_experiment(sys.argv[1], sys.argv[3:])
study = optuna.create_study(sampler=optuna.samplers.RandomSampler(3))
spec = load_space(exp.space_path).sample(study.ask(), exp.base())
if sys.argv[2] == "dataloader":  # the path before ape_nas.batches: a seeded DataLoader over a TensorDataset
    import numpy as np, torch
    from torch.utils.data import DataLoader, TensorDataset
    import ape_nas.objective as objective
    def loader(ws, idx, bs, shuffle, seed, features=None, device="cpu"):
        arrays = (ws.X, ws.y) if features is None else (ws.X, features, ws.y)
        tensors = [torch.from_numpy(np.ascontiguousarray(a[idx])) for a in arrays]
        gen = torch.Generator().manual_seed(seed)
        return DataLoader(TensorDataset(*tensors), batch_size=bs, shuffle=shuffle, generator=gen)
    objective._loader = loader
tracker = MemoryTracker()
result = run_trial(spec, tracker=tracker)
history = [{k: v for k, v in h.items() if k != "epoch_s"} for h in result.history]
print(json.dumps({"score": result.score, "history": history,
                  "epoch_s": tracker.history("epoch_s"), "compile_s": tracker.history("compile_s")}))
"""


def _trial(path: str, *sets: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _TRIAL, QUICKSTART, path, *SMALL_SETS, *sets],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_same_seed_same_scores_in_fresh_processes_as_the_dataloader_path():
    first, second = _trial("fast"), _trial("fast")
    assert first["score"] == second["score"] and first["history"] == second["history"]
    assert _trial("dataloader")["history"] == first["history"]  # bit for bit: same batches, same order
    assert len(first["epoch_s"]) == len(first["history"]) and all(s > 0 for s in first["epoch_s"])
    assert first["compile_s"] == []  # only with training.compile


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs a C++ compiler (g++)")
def test_compile_is_opt_in_trains_and_logs_its_cost():
    from ape_nas.experiments import load_experiment

    assert "compile" not in load_experiment(QUICKSTART, SMALL_SETS).base()["training"]  # digests as before
    assert load_experiment(QUICKSTART, [*SMALL_SETS, "training.compile=true"]).base()["training"]["compile"]
    compiled = _trial("fast", "training.compile=true", "training.max_epochs=2", "training.patience=5")
    assert 0.0 <= compiled["score"] <= 1.0 and len(compiled["history"]) == 2
    assert len(compiled["compile_s"]) == 1 and compiled["compile_s"][0] >= 0.0
