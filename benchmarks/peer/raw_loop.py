"""The compute floor of the peer benchmark: the same trials in a plain PyTorch loop.

    python benchmarks/peer/raw_loop.py --specs specs.json --data windows.npz --timings timings.json

No Lightning, no Optuna, no MLflow: per epoch, batches cut from contiguous tensors with a seeded index
permutation, forward / backward / step; then validation in ``torch.inference_mode()`` at the same batch size and
its macro-F1. Same networks (``ape_nas.models.build_model``), class-weighted cross-entropy, AdamW, learning rate,
weight decay, batch size, epochs and seed as the sweep's trials (``--specs``, written by
``benchmarks/peer_speed.py``). Writes each epoch's wall time and validation macro-F1 to ``--timings``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ape_nas.models import build_model


def macro_f1(pred: torch.Tensor, y: torch.Tensor, k: int) -> float:
    """Mean F1 over the classes that occur in ``y`` or ``pred`` (torchmetrics' macro average)."""
    conf = torch.bincount(y * k + pred, minlength=k * k).reshape(k, k).double()  # (true, predicted)
    tp = conf.diag()
    fp, fn = conf.sum(0) - tp, conf.sum(1) - tp
    seen = (tp + fp + fn) > 0
    f1 = torch.where(seen, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.zeros_like(tp))
    return float(f1[seen].mean())


def train(spec: dict, data: dict[str, torch.Tensor], k: int, weights: torch.Tensor, epochs: int) -> dict:
    seed, optim = int(spec["seed"]), spec["optim"]
    bs = int(optim["batch_size"])
    # what lightning.seed_everything seeds, then the same order of draws as the Lightning trials
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    net = build_model(spec["model"], data["X_train"].shape[1], k, **spec["arch"])
    opt = torch.optim.AdamW(net.parameters(), lr=float(optim["lr"]), weight_decay=float(optim["weight_decay"]))
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    gen = torch.Generator().manual_seed(seed)
    x, y, xv, yv = data["X_train"], data["y_train"], data["X_val"], data["y_val"]
    n, nv = len(y), len(yv)
    times, history = [], []
    for _ in range(epochs):
        t0 = time.perf_counter()
        net.train()
        torch.empty((), dtype=torch.int64).random_(generator=gen)  # a DataLoader draws its workers' seed first
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
        net.eval()
        with torch.inference_mode():
            pred = torch.cat([net(xv[s : s + bs]).argmax(dim=1) for s in range(0, nv, bs)])
        history.append(macro_f1(pred, yv, k))
        times.append(time.perf_counter() - t0)
    return {"number": spec["number"], "best_val_f1": max(history), "val_f1": history, "epoch_s": times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--specs", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--timings", type=Path, required=True)
    args = ap.parse_args()
    plan = json.loads(args.specs.read_text())
    arrays = np.load(args.data)
    data = {
        name: torch.from_numpy(np.ascontiguousarray(arrays[name])) for name in ("X_train", "y_train", "X_val", "y_val")
    }
    k = int(arrays["num_classes"])
    counts = np.bincount(arrays["y_train"], minlength=k).astype(float)
    weights = torch.tensor(counts.sum() / (k * np.maximum(counts, 1.0)), dtype=torch.float32)
    torch.use_deterministic_algorithms(True)  # as the Lightning trials' Trainer(deterministic=True)
    trials = [train(spec, data, k, weights, int(plan["epochs"])) for spec in plan["trials"]]
    args.timings.write_text(
        json.dumps(
            {
                "trials": trials,
                "windows_train": len(data["y_train"]),
                "windows_val": len(data["y_val"]),
                "torch_threads": torch.get_num_threads(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
