"""Train and evaluate one TrialSpec: ``run_trial(spec, reporter, tracker) -> TrialResult``.

Knows nothing of Optuna, Ray or MLflow. Each validation score goes to the reporter; a "stop" answer ends
training and raises :class:`TrialPruned`. The score is the best validation value over epochs; the test
subjects are evaluated once, with the weights of that best epoch, and logged, never returned as the score.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ape_nas.data.prepare import WindowSet, prepare_windows
from ape_nas.data.splits import Split, make_split
from ape_nas.reporting import MemoryTracker, NullReporter, Reporter, TrialPruned, TrialTracker
from ape_nas.spec import TrialSpec

CHECKPOINT_FORMAT = "ape-nas-checkpoint/1"

__all__ = ["TrialPruned", "TrialResult", "evaluate", "run_trial", "save_checkpoint"]


@dataclass
class TrialResult:
    score: float
    best_epoch: int
    epochs: int
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    split: Split | None = None
    data_fingerprint: str = ""


def quiet_libraries() -> None:
    """Silence Lightning's per-Trainer chatter and known harmless warnings so sweep output stays readable."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\) is deprecated.*")
    warnings.filterwarnings("ignore", message=r".*The number of training batches.*")
    warnings.filterwarnings("ignore", message=r".*No positive samples in targets.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")


def _metric_key(spec: TrialSpec) -> str:
    return f"val_{spec.training['metric']}"


def _better(a: float, b: float | None, direction: str) -> bool:
    if b is None or np.isnan(b):
        return not np.isnan(a)
    return a > b if direction == "maximize" else a < b


def _loader(ws: WindowSet, idx: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> Any:
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.from_numpy(np.ascontiguousarray(ws.X[idx]))
    y = torch.from_numpy(np.ascontiguousarray(ws.y[idx]))
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=gen)


@torch.no_grad()
def evaluate(net: torch.nn.Module, ws: WindowSet, idx: np.ndarray, prefix: str) -> dict[str, float]:
    """Metrics of a network on the windows ``idx`` (all at once, in eval mode)."""
    from ape_nas.task import make_metrics

    net.eval()
    metrics = make_metrics(len(ws.class_names)).clone(prefix=prefix)
    for start in range(0, len(idx), 512):
        sel = idx[start : start + 512]
        probs = net(torch.from_numpy(np.ascontiguousarray(ws.X[sel]))).softmax(dim=1)
        metrics.update(probs, torch.from_numpy(np.ascontiguousarray(ws.y[sel])))
    return {k: float(v) for k, v in metrics.compute().items()}


def _class_weights(y: np.ndarray, k: int) -> list[float]:
    counts = np.bincount(y, minlength=k).astype(float)
    counts[counts == 0] = 1.0
    w = counts.sum() / (k * counts)
    return [float(v) for v in w]


def run_trial(
    spec: TrialSpec,
    reporter: Reporter | None = None,
    tracker: TrialTracker | None = None,
    *,
    cache_dir: Path | None = None,
    accelerator: str = "cpu",
) -> TrialResult:
    """Train ``spec`` on its training subjects, validate each epoch, test once at the best epoch.

    Example:
        >>> result = run_trial(spec)              # doctest: +SKIP
        >>> result.score, result.test_metrics["test_f1_macro"]  # doctest: +SKIP
    """
    import lightning as L

    from ape_nas.task import CardiacTask

    quiet_libraries()
    reporter = reporter or NullReporter()
    tracker = tracker or MemoryTracker()
    training = spec.training
    if training.get("num_threads"):
        torch.set_num_threads(int(training["num_threads"]))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic CUDA matmuls
    L.seed_everything(spec.seed, workers=True, verbose=False)

    ws = prepare_windows(spec.data, cache_dir)
    split = make_split(spec.protocol, ws.subjects)
    idx = {part: ws.indices(getattr(split, part)) for part in ("train", "val", "test")}
    for part, ids in idx.items():
        if len(ids) == 0:
            raise ValueError(f"no labelled windows for the {part} subjects {getattr(split, part)}")
    tracker.set_tags(
        {
            "data_fingerprint": ws.fingerprint,
            "split": split.describe(),
            **{f"split.{p}": ",".join(getattr(split, p)) for p in ("train", "val", "test")},
        }
    )
    tracker.log_metrics({f"windows_{p}": float(len(i)) for p, i in idx.items()})

    k = len(ws.class_names)
    task = CardiacTask(
        spec.to_dict(), in_channels=ws.X.shape[1], num_classes=k, class_weights=_class_weights(ws.y[idx["train"]], k)
    )
    key, direction = _metric_key(spec), training["direction"]
    monitor = _Monitor(key, direction, reporter, tracker)

    from lightning.pytorch.callbacks import EarlyStopping

    trainer = L.Trainer(
        max_epochs=int(training["max_epochs"]),
        accelerator=accelerator,
        devices=1,
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[
            monitor,
            EarlyStopping(
                monitor=key,
                mode="max" if direction == "maximize" else "min",
                patience=int(training["patience"]),
                check_finite=False,
            ),
        ],
    )
    bs = int(spec.optim["batch_size"])
    trainer.fit(task, _loader(ws, idx["train"], bs, True, spec.seed), _loader(ws, idx["val"], bs, False, spec.seed))
    if monitor.pruned:
        raise TrialPruned(monitor.epoch, monitor.last_value)
    if monitor.best_state is None:
        raise RuntimeError(f"no finite {key} in any epoch (diverged?)")

    task.load_state_dict(monitor.best_state)
    net = task.net.cpu()
    test = evaluate(net, ws, idx["test"], "test_")
    val = {k2: v for k2, v in monitor.best_metrics.items() if k2.startswith("val_")}
    tracker.log_metrics(
        {
            **{f"best_{k2}": v for k2, v in val.items()},
            **test,
            "best_epoch": float(monitor.best_epoch),
            "score": float(monitor.best_value),
        }
    )
    ckpt = save_checkpoint(spec, net, ws, val, test, monitor.best_epoch)
    tracker.log_artifact(ckpt)
    return TrialResult(
        score=float(monitor.best_value),
        best_epoch=monitor.best_epoch,
        epochs=monitor.epoch + 1,
        val_metrics=val,
        test_metrics=test,
        history=monitor.history,
        checkpoint=ckpt,
        split=split,
        data_fingerprint=ws.fingerprint,
    )


def save_checkpoint(
    spec: TrialSpec, net: torch.nn.Module, ws: WindowSet, val: dict[str, float], test: dict[str, float], best_epoch: int
) -> Path:
    """A plain checkpoint (tensors, strings, numbers only: loads with ``torch.load(weights_only=True)``)."""
    folder = Path(tempfile.mkdtemp(prefix="ape-nas-ckpt-"))
    path = folder / "model.pt"
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "spec": spec.to_dict(),
            "state_dict": net.state_dict(),
            "in_channels": int(ws.X.shape[1]),
            "num_classes": len(ws.class_names),
            "class_names": ws.class_names,
            "channels": ws.channels,
            "rate_hz": float(ws.rate_hz),
            "window_samples": int(ws.X.shape[2]),
            "data_fingerprint": ws.fingerprint,
            "val_metrics": val,
            "test_metrics": test,
            "best_epoch": best_epoch,
        },
        path,
    )
    return path


def _lightning_callback_base() -> type:
    from lightning.pytorch.callbacks import Callback

    return Callback


class _Monitor(_lightning_callback_base()):  # type: ignore[misc]
    """Per epoch: send metrics to the tracker, the score to the reporter, and keep the best weights."""

    def __init__(self, key: str, direction: str, reporter: Reporter, tracker: TrialTracker) -> None:
        self.key, self.direction, self.reporter, self.tracker = key, direction, reporter, tracker
        self.best_value: float | None = None
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_metrics: dict[str, float] = {}
        self.history: list[dict[str, float]] = []
        self.pruned = False
        self.epoch = -1
        self.last_value = float("nan")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        values = dict(pl_module.last_val)
        if pl_module.last_train_loss is not None:
            values["train_loss"] = pl_module.last_train_loss
        self.history.append({"epoch": epoch, **values})
        self.tracker.log_metrics(values, step=epoch)
        value = float(values[self.key])
        self.epoch, self.last_value = epoch, value
        if _better(value, self.best_value, self.direction):
            self.best_value, self.best_epoch, self.best_metrics = value, epoch, values
            self.best_state = copy.deepcopy(pl_module.state_dict())
        if self.reporter.report(value, epoch):
            self.pruned = True
            trainer.should_stop = True
