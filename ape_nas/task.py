"""The LightningModule: built from a TrialSpec, which it saves as its hyper-parameters."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score

from ape_nas.models import build_model
from ape_nas.spec import TrialSpec


def make_metrics(num_classes: int) -> MetricCollection:
    return MetricCollection(
        {
            "f1_macro": MulticlassF1Score(num_classes, average="macro"),
            "balanced_accuracy": MulticlassAccuracy(num_classes, average="macro"),
            "auroc": MulticlassAUROC(num_classes),
        }
    )


class CardiacTask(L.LightningModule):
    """Window classifier for one TrialSpec. ``class_weights`` re-balance the loss (from training labels)."""

    def __init__(
        self, spec: dict[str, Any], in_channels: int, num_classes: int, class_weights: list[float] | None = None
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.spec = TrialSpec.from_dict(spec)
        self.net = build_model(self.spec.model, in_channels, num_classes, **self.spec.arch)
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=self.spec.optim.get("label_smoothing", 0.0))
        self.val_metrics = make_metrics(num_classes).clone(prefix="val_")
        self._val_loss_sum = 0.0
        self._val_count = 0
        self.last_val: dict[str, float] = {}
        self.last_train_loss: float | None = None
        self._train_loss_sum = 0.0
        self._train_count = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, channels, time) -> (batch, classes)
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self._train_loss_sum += float(loss.detach()) * len(y)
        self._train_count += len(y)
        return loss

    def on_train_epoch_end(self) -> None:
        self.last_train_loss = self._train_loss_sum / max(1, self._train_count)
        self._train_loss_sum, self._train_count = 0.0, 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self._val_loss_sum += float(self.loss_fn(logits, y)) * len(y)
        self._val_count += len(y)
        self.val_metrics.update(logits.softmax(dim=1), y)

    def on_validation_epoch_end(self) -> None:
        values = {k: float(v) for k, v in self.val_metrics.compute().items()}
        values["val_loss"] = self._val_loss_sum / max(1, self._val_count)
        self.val_metrics.reset()
        self._val_loss_sum, self._val_count = 0.0, 0
        self.last_val = values
        self.log_dict(values, prog_bar=False, logger=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        o = self.spec.optim
        params = self.parameters()
        if o["optimizer"] == "sgd":
            return torch.optim.SGD(params, lr=o["lr"], momentum=0.9, nesterov=True, weight_decay=o["weight_decay"])
        cls = torch.optim.AdamW if o["optimizer"] == "adamw" else torch.optim.Adam
        return cls(params, lr=o["lr"], weight_decay=o["weight_decay"])
