"""The LightningModule: built from a TrialSpec, which it saves as its hyper-parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score

from ape_nas.augment import augment_batch
from ape_nas.metrics import CLASS_METRICS
from ape_nas.models import build_model
from ape_nas.spec import TrialSpec

TRAIN_LOSS, VAL_LOSS = "train_loss", "val_loss"  # epoch means of the (class-weighted) cross-entropy

# torchmetrics for each name of ape_nas.metrics.CLASS_METRICS (definitions: ape_nas.metrics.classification_metrics)
_TORCHMETRICS: dict[str, Callable[[int], Metric]] = {
    "f1_macro": lambda k: MulticlassF1Score(k, average="macro"),
    "balanced_accuracy": lambda k: MulticlassAccuracy(k, average="macro"),
    "auroc": lambda k: MulticlassAUROC(k),
}


def make_metrics(num_classes: int) -> MetricCollection:
    """The :data:`~ape_nas.metrics.CLASS_METRICS` of class probabilities ``(n, classes)`` against labels ``(n,)``."""
    return MetricCollection({name: _TORCHMETRICS[name](num_classes) for name in CLASS_METRICS})


class _DeviceMean:
    """Mean of scalar tensors weighted by batch size, summed on their device: one host sync when read."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total: torch.Tensor | None = None
        self.count = 0

    def add(self, value: torch.Tensor, n: int) -> None:
        term = value.detach() * n
        self.total = term if self.total is None else self.total + term
        self.count += n

    def read(self) -> float | None:
        return None if self.total is None else float(self.total) / self.count


Batch = tuple[torch.Tensor, ...]  # (x, y), or (x, features, y) for a network that fuses HRV features


def unpack(batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(x, y)`` or ``(x, features, y)`` → ``(x, features or None, y)``."""
    if len(batch) == 3:
        return batch[0], batch[1], batch[2]
    x, y = batch
    return x, None, y


class CardiacTask(L.LightningModule):
    """Window classifier for one TrialSpec. ``class_weights`` re-balance the loss (from training labels);
    ``n_features``: length of the HRV feature vector of each window (batches ``(x, features, y)``), for a spec
    whose ``arch.hrv_fusion`` fuses it (:mod:`ape_nas.models.heads`, :mod:`ape_nas.features`).

    A network with a ``regularisation_loss(y)`` method (labels or soft targets → scalar, from its last training
    forward) has that term added to the training loss it is optimised on; ``train_loss`` stays the cross-entropy.

    After each validation epoch, :attr:`last_val` holds that epoch's ``val_*`` metrics and ``train_loss``, the
    mean training loss of the same epoch (Lightning validates before ``on_train_epoch_end``, so the loss is read
    there, not at the end of the training epoch); both are also logged to ``trainer.callback_metrics``.
    """

    def __init__(
        self,
        spec: dict[str, Any],
        in_channels: int,
        num_classes: int,
        class_weights: list[float] | None = None,
        n_features: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.spec = TrialSpec.from_dict(spec)
        self.net = build_model(self.spec.model, in_channels, num_classes, n_features=n_features, **self.spec.arch)
        weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=self.spec.optim["label_smoothing"])
        self.val_metrics = make_metrics(num_classes).clone(prefix="val_")
        # epoch means accumulated on the device (no host sync per step); a NaN loss stays NaN, so divergence shows
        # (torchmetrics' MeanMetric drops NaN or, with nan_strategy="disable", its weights)
        self._train_loss, self._val_loss = _DeviceMean(), _DeviceMean()
        self.last_val: dict[str, float] = {}

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, channels, time), features: (batch, n_features) or None -> (batch, classes)
        return self.net(x, features)

    def on_train_epoch_start(self) -> None:
        self._train_loss.reset()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        batch = augment_batch(self.spec, batch, self.hparams["num_classes"], self.current_epoch, batch_idx)
        x, features, y = unpack(batch)
        loss = self.loss_fn(self(x, features), y)
        self._train_loss.add(loss, len(y))  # train_loss stays the cross-entropy alone, comparable across families
        # a family's own training term, duck-typed: ``net.regularisation_loss(y)`` from the forward just made
        # (protonet1d: ProtoPNet's cluster and separation costs, ape_nas.models.proto)
        regularise = getattr(self.net, "regularisation_loss", None)
        return loss if regularise is None else loss + regularise(y)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, features, y = unpack(batch)
        logits = self(x, features)
        self._val_loss.add(self.loss_fn(logits, y), len(y))
        self.val_metrics.update(logits.softmax(dim=1), y)

    def on_validation_epoch_end(self) -> None:
        values = {k: float(v) for k, v in self.val_metrics.compute().items()}
        val_loss = self._val_loss.read()
        values[VAL_LOSS] = float("nan") if val_loss is None else val_loss
        self.val_metrics.reset()
        self._val_loss.reset()
        train_loss = self._train_loss.read()
        if train_loss is not None:  # None in a sanity check before the first training batch
            values[TRAIN_LOSS] = train_loss
        self.last_val = values
        self.log_dict(values, prog_bar=False, logger=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        o = self.spec.optim
        params = self.parameters()
        if o["optimizer"] == "sgd":
            return torch.optim.SGD(
                params, lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"], weight_decay=o["weight_decay"]
            )
        cls = torch.optim.AdamW if o["optimizer"] == "adamw" else torch.optim.Adam
        return cls(params, lr=o["lr"], weight_decay=o["weight_decay"])
