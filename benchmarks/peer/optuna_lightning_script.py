"""The peer of `ape-nas sweep`: the Optuna + Lightning + MLflow script a researcher writes in an afternoon.

    python benchmarks/peer/optuna_lightning_script.py --specs specs.json --data windows.npz \
        --tracking-uri sqlite:///peer/mlflow.db --timings timings.json

Written the way optuna-examples do it (``pytorch_lightning_simple.py``, the MLflow example): a small
LightningModule, ``objective(trial)`` that suggests the hyper-parameters with ``trial.suggest_*``, trains with
``L.Trainer`` and returns the best validation macro-F1, one MLflow run per trial, ``study.optimize``. No pruning,
no early stopping. Run by ``benchmarks/peer_speed.py``, which hands it:

- ``--data``: the windows as arrays (``X_train``, ``y_train``, ``X_val``, ``y_val``; X ``(n, channels, time)``)
  of the sweep's own subject split, so the script reads numpy only;
- ``--specs``: the trials the sweep trained; each is enqueued (``study.enqueue_trial``) so that trial i of this
  study suggests exactly the values of the sweep's trial i, through the same ``suggest_*`` calls;
- ``--timings``: where the harness's instrument (:class:`EpochTimer`, not part of the peer) writes each epoch's
  wall time, with what every trial trained (for the harness to check the specs were the same) and its scores.

From ape-nas it takes only what a researcher would reuse from a library: ``build_model`` for the same networks.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import numpy as np
import optuna
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassF1Score

import mlflow
from ape_nas.models import build_model

EXPERIMENT = "peer-script"


class CardiacNet(L.LightningModule):
    def __init__(self, family, arch, in_channels, num_classes, class_weights, lr, weight_decay):
        super().__init__()
        self.net = build_model(family, in_channels, num_classes, **arch)
        self.loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(class_weights, dtype=torch.float32))
        self.val_f1 = MulticlassF1Score(num_classes, average="macro")
        self.lr, self.weight_decay = lr, weight_decay

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (batch, channels, time) -> (batch, classes)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.loss_fn(logits, y), on_epoch=True)
        self.val_f1(logits, y)
        self.log("val_f1", self.val_f1, on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)


class MLflowEpochs(L.Callback):
    """Each epoch's validation metrics to the trial's MLflow run; keeps the best F1."""

    def __init__(self) -> None:
        self.best, self.history = float("-inf"), []

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        for key in ("val_f1", "val_loss"):
            mlflow.log_metric(key, float(trainer.callback_metrics[key]), step=epoch)
        f1 = float(trainer.callback_metrics["val_f1"])
        self.history.append(f1)
        self.best = max(self.best, f1)


class EpochTimer(L.Callback):
    """The harness's instrument, not part of the peer: wall time of each epoch, from the start of its training
    pass to the end of its validation pass with the metrics computed (``on_validation_end``, where ape-nas's
    ``epoch_s`` ends too); first in the callback list, so the MLflow logging after it is not counted."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.t0 = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.times.append(time.perf_counter() - self.t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--specs", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--tracking-uri", required=True)
    ap.add_argument("--timings", type=Path, required=True)
    args = ap.parse_args()

    plan = json.loads(args.specs.read_text())
    specs, epochs = plan["trials"], int(plan["epochs"])
    data = np.load(args.data)
    x_train, y_train = torch.from_numpy(data["X_train"]), torch.from_numpy(data["y_train"])
    x_val, y_val = torch.from_numpy(data["X_val"]), torch.from_numpy(data["y_val"])
    num_classes = int(data["num_classes"])
    counts = np.bincount(data["y_train"], minlength=num_classes).astype(float)
    class_weights = (counts.sum() / (num_classes * np.maximum(counts, 1.0))).tolist()

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    record: list[dict] = []  # the harness's: what each trial trained, its scores and epoch times

    def objective(trial: optuna.Trial) -> float:
        family = trial.suggest_categorical("model", ["cnn1d", "resnet1d"])
        if family == "cnn1d":
            arch = {
                "depth": trial.suggest_int("cnn1d.depth", 3, 5),
                "width": trial.suggest_categorical("cnn1d.width", [8, 16]),
                "kernel_size": trial.suggest_categorical("cnn1d.kernel_size", [7, 11]),
                "pool": 4,
                "dropout": trial.suggest_float("cnn1d.dropout", 0.0, 0.3),
            }
        else:
            arch = {
                "blocks": trial.suggest_int("resnet1d.blocks", 2, 3),
                "width": trial.suggest_categorical("resnet1d.width", [8, 16]),
                "kernel_size": 7,
                "stride_every": 1,
                "dropout": trial.suggest_float("resnet1d.dropout", 0.0, 0.3),
            }
        lr = trial.suggest_float("optim.lr", 1e-3, 1e-2, log=True)
        weight_decay = trial.suggest_float("optim.weight_decay", 1e-5, 1e-2, log=True)
        seed, batch_size = int(specs[trial.number]["seed"]), 64

        L.seed_everything(seed)
        model = CardiacNet(family, arch, x_train.shape[1], num_classes, class_weights, lr, weight_decay)
        # seeded loaders: the shuffle, and the global RNG that dropout draws from, do not depend on the loaders
        train_loader = DataLoader(
            TensorDataset(x_train, y_train),
            batch_size=batch_size,
            shuffle=True,
            generator=torch.Generator().manual_seed(seed),
        )
        val_loader = DataLoader(
            TensorDataset(x_val, y_val), batch_size=batch_size, generator=torch.Generator().manual_seed(seed)
        )
        metrics, timer = MLflowEpochs(), EpochTimer()
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            deterministic=True,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            callbacks=[timer, metrics],
        )
        with mlflow.start_run(run_name=f"trial-{trial.number}"):
            mlflow.log_params({**trial.params, "seed": seed, "batch_size": batch_size, "epochs": epochs})
            trainer.fit(model, train_loader, val_loader)
            mlflow.log_metric("best_val_f1", metrics.best)
        record.append(
            {
                "number": trial.number,
                "model": family,
                "arch": arch,
                "optim": {"lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "optimizer": "adamw"},
                "seed": seed,
                "best_val_f1": metrics.best,
                "val_f1": metrics.history,
                "epoch_s": timer.times,
            }
        )
        return metrics.best

    study = optuna.create_study(direction="maximize")
    for spec in specs:
        study.enqueue_trial(spec["params"])
    study.optimize(objective, n_trials=len(specs))
    print(f"best trial {study.best_trial.number}: val_f1 {study.best_value:.4f} {study.best_params}")

    args.timings.write_text(
        json.dumps(
            {
                "trials": record,
                "windows_train": len(y_train),
                "windows_val": len(y_val),
                "torch_threads": torch.get_num_threads(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
