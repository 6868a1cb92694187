"""Train and evaluate one TrialSpec: ``run_trial(spec, reporter, tracker) -> TrialResult``.

Knows nothing of Optuna, Ray or MLflow. Each validation score goes to the reporter; a "stop" answer ends
training and raises :class:`TrialPruned`. The score is the best validation value over epochs; the test
subjects are evaluated once, with the weights of that best epoch, and logged, never returned as the score.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ape_nas.data.prepare import WindowSet, prepare_windows
from ape_nas.data.splits import Split, make_splits
from ape_nas.errors import UserError
from ape_nas.reporting import MemoryTracker, NullReporter, Reporter, TrialPruned, TrialTracker
from ape_nas.spec import TrialSpec
from ape_nas.stats import (
    Interval,
    fold_summary,
    interval_metrics,
    metric_intervals,
    model_intervals,
    per_subject,
    selection_score,
)

CHECKPOINT_FORMAT = "ape-nas-checkpoint/1"
EPOCH_SECONDS = "epoch_s"  # per-epoch metric: wall seconds of the epoch's training and validation passes
COMPILE_SECONDS = "compile_s"  # with training.compile: the first epoch's extra seconds (torch.compile's work)

__all__ = ["TrialPruned", "TrialResult", "check_accelerator", "evaluate", "fit", "run_trial", "save_checkpoint"]


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
    folds: list[FoldResult] = field(default_factory=list)
    fold_scores: list[float] = field(default_factory=list)
    test_ci: dict[str, list[float]] = field(default_factory=dict)  # metric -> [low, high] (subject bootstrap)
    cost: dict[str, Any] = field(default_factory=dict)  # the network's measured cost (ape_nas.cost.Cost.to_dict)


def quiet_libraries() -> None:
    """Silence Lightning's per-Trainer chatter and known harmless warnings so sweep output stays readable."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\) is deprecated.*")
    warnings.filterwarnings("ignore", message=r".*The number of training batches.*")
    warnings.filterwarnings("ignore", message=r".*No positive samples in targets.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*The `srun` command is available on your system.*")
    warnings.filterwarnings("ignore", message=r".*You defined a `validation_step` but have no `val_dataloader`.*")


def _metric_key(spec: TrialSpec) -> str:
    return f"val_{spec.training['metric']}"


def _better(a: float, b: float | None, direction: str) -> bool:
    if b is None or np.isnan(b):
        return not np.isnan(a)
    return a > b if direction == "maximize" else a < b


def _loader(
    ws: WindowSet,
    idx: np.ndarray,
    batch_size: int,
    shuffle: bool,
    seed: int,
    features: np.ndarray | None = None,
    device: torch.device | str = "cpu",
) -> Any:
    """Batches ``(x, y)`` of the windows ``idx``; ``(x, features, y)`` when ``features`` (all windows') is given.
    Cut from contiguous tensors on ``device`` (:mod:`ape_nas.batches`), the order of a seeded DataLoader's."""
    from ape_nas.batches import window_batches

    arrays = (ws.X, ws.y) if features is None else (ws.X, features, ws.y)
    return window_batches(arrays, idx, batch_size, shuffle=shuffle, seed=seed, device=device)


def training_device(spec: TrialSpec) -> torch.device:
    """The device Lightning trains ``spec`` on (``training.accelerator``, one device): where its windows live."""
    accelerator = spec.training["accelerator"]
    if accelerator in ("gpu", "auto") and torch.cuda.is_available():
        return torch.device("cuda", 0)
    if accelerator in ("gpu", "auto") and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def window_features(net: torch.nn.Module, ws: WindowSet) -> np.ndarray | None:
    """The HRV features of all of ``ws``'s windows as ``net`` takes them (:func:`ape_nas.features.network_input`
    in the mode of its attached :class:`~ape_nas.features.HrvTransform`), or None for a network that takes none."""
    from ape_nas.features import network_input, transform_of
    from ape_nas.models.heads import uses_features

    if not uses_features(net):
        return None
    transform = transform_of(net)
    if transform is None:
        raise ValueError("this network fuses HRV features but carries no fitted HRV transform (ape_nas.features)")
    return network_input(np.asarray(ws.hrv), ws.groups, transform.mode)


@torch.no_grad()
def predict_probs(net: torch.nn.Module, ws: WindowSet, idx: np.ndarray) -> np.ndarray:
    """Class probabilities ``(len(idx), classes)`` of a network on the windows ``idx`` (eval mode, batches of 512)."""
    net.eval()
    feats = window_features(net, ws)  # None unless the network fuses HRV features

    def batch(sel: np.ndarray) -> torch.Tensor:
        f = None if feats is None else torch.from_numpy(np.ascontiguousarray(feats[sel]))
        return net(torch.from_numpy(np.ascontiguousarray(ws.X[sel])), f).softmax(dim=1)

    out = [batch(idx[start : start + 512]) for start in range(0, len(idx), 512)]
    return torch.cat(out).numpy() if out else np.zeros((0, len(ws.class_names)), dtype=np.float32)


def evaluate(
    net: torch.nn.Module, ws: WindowSet, idx: np.ndarray, prefix: str, probs: np.ndarray | None = None
) -> dict[str, float]:
    """Metrics of a network on the windows ``idx`` (``probs``: its probabilities there, when already computed)."""
    from ape_nas.task import make_metrics

    probs = predict_probs(net, ws, idx) if probs is None else probs
    metrics = make_metrics(len(ws.class_names)).clone(prefix=prefix)
    metrics.update(torch.from_numpy(probs), torch.from_numpy(np.ascontiguousarray(ws.y[idx])))
    return {k: float(v) for k, v in metrics.compute().items()}


def _class_weights(y: np.ndarray, k: int) -> list[float]:
    counts = np.bincount(y, minlength=k).astype(float)
    counts[counts == 0] = 1.0
    w = counts.sum() / (k * counts)
    return [float(v) for v in w]


class _Prefixed:
    """A tracker view that prefixes metric names (``fold2.val_f1_macro``) for multi-fold trials."""

    def __init__(self, inner: TrialTracker, prefix: str) -> None:
        self.inner, self.prefix = inner, prefix

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.inner.log_metrics({f"{self.prefix}{k}": v for k, v in metrics.items()}, step)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class FoldResult:
    fold: int
    split: Split
    score: float
    best_epoch: int
    epochs: int
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]
    history: list[dict[str, float]]
    checkpoint: Path
    test_probs: np.ndarray | None = None  # (test windows, classes), in the order of ws.indices(split.test)


def run_trial(
    spec: TrialSpec,
    reporter: Reporter | None = None,
    tracker: TrialTracker | None = None,
    *,
    cache_dir: Path | None = None,
    gate: Callable[[dict[str, Any]], None] | None = None,
) -> TrialResult:
    """Train ``spec`` on each fold's training subjects, validate each epoch, test once at each fold's best epoch.

    Before any training the network's cost is measured on one window (:func:`network_cost`: parameters, MACs,
    onnxruntime latency, peak activation memory), logged as ``cost_<name>`` metrics with the architecture table
    (``architecture.txt``), and given to ``gate``, which may reject the spec (``TrialRejected``) before an epoch.

    One fold (holdout): every epoch's validation score goes to the reporter (step = epoch). Several folds
    (kfold, loso): each fold's best validation score goes to the reporter (step = fold), so pruners compare
    trials fold by fold (e.g. Optuna's Wilcoxon pruner). The score is the mean of the folds' best values.

    Example:
        >>> result = run_trial(spec)              # doctest: +SKIP
        >>> result.score, result.test_metrics["test_f1_macro"]  # doctest: +SKIP
    """
    quiet_libraries()
    check_accelerator(spec)
    reporter = reporter or NullReporter()
    tracker = tracker or MemoryTracker()
    if spec.training.get("num_threads"):
        torch.set_num_threads(int(spec.training["num_threads"]))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic CUDA matmuls

    ws = prepare_windows(spec.data, cache_dir)
    splits = make_splits(spec.protocol, ws.subjects)
    tracker.set_tags(split_tags(spec.protocol, splits, ws.fingerprint))
    tracker.log_text(json.dumps([s.to_dict() for s in splits], indent=2), "splits.json")
    cost, table = network_cost(spec, ws)
    tracker.log_metrics({f"cost_{name}": float(value) for name, value in cost.items()})
    tracker.log_text(table, "architecture.txt")
    if gate is not None:
        gate(cost)
    multi = len(splits) > 1
    folds: list[FoldResult] = []
    for k, split in enumerate(splits):
        fold_tracker = _Prefixed(tracker, f"fold{k}.") if multi else tracker
        fold = _fit_fold(spec, ws, split, k, NullReporter() if multi else reporter, fold_tracker)
        folds.append(fold)
        if multi:
            fold_tracker.log_metrics({"score": fold.score, "best_epoch": float(fold.best_epoch), **fold.test_metrics})
            if reporter.report(fold.score, k):
                raise TrialPruned(k, fold.score)
    fold_scores = [f.score for f in folds]
    score = selection_score(
        fold_scores,
        spec.training.get("selection", "mean"),
        spec.training["direction"],
        float(spec.training.get("se_multiple", 1.0)),
    )
    val = _mean_dicts([f.val_metrics for f in folds])
    test = _mean_dicts([f.test_metrics for f in folds])
    best_epoch = int(np.median([f.best_epoch for f in folds])) if multi else folds[0].best_epoch
    summary = {**{f"best_{m}": v for m, v in val.items()}, **test, "score": score, "best_epoch": float(best_epoch)}
    if multi:
        spread = fold_summary(fold_scores)
        summary.update(score_mean=spread.mean, score_std=spread.std, score_se=spread.se)
    test_ci, report = _test_uncertainty(ws, folds, spec.seed)
    summary.update(interval_metrics("test_", test_ci))
    tracker.log_metrics(summary)
    tracker.log_text(json.dumps(report, indent=2, default=float), "test_subjects.json")
    for f in folds:
        tracker.log_artifact(f.checkpoint, f"checkpoints/fold{f.fold}" if multi else None)
    return TrialResult(
        score=score,
        best_epoch=best_epoch,
        epochs=sum(f.epochs for f in folds),
        val_metrics=val,
        test_metrics=test,
        history=folds[0].history,
        checkpoint=folds[0].checkpoint,
        split=folds[0].split,
        data_fingerprint=ws.fingerprint,
        folds=folds,
        fold_scores=fold_scores,
        test_ci={m: [iv.low, iv.high] for m, iv in test_ci.items()},
        cost=cost,
    )


def network_cost(spec: TrialSpec, ws: WindowSet) -> tuple[dict[str, Any], str]:
    """The cost of the spec's network on these windows (untrained: cost does not depend on the weights) and its
    architecture table: :func:`ape_nas.cost.measure` and :func:`ape_nas.models.summary.summary` of one window."""
    from ape_nas.cost import measure
    from ape_nas.features import fuses
    from ape_nas.models import build_model
    from ape_nas.models.summary import summary

    n_features = int(np.asarray(ws.hrv).shape[1]) if fuses(spec.arch) else 0
    in_channels, length = int(ws.X.shape[1]), int(ws.X.shape[2])
    net = build_model(spec.model, in_channels, len(ws.class_names), n_features=n_features, **spec.arch)
    cost = measure(net, in_channels, length, n_features=n_features)
    return cost.to_dict(), summary(net, in_channels, length, n_features=n_features)


def _test_uncertainty(ws: WindowSet, folds: list[FoldResult], seed: int) -> tuple[dict[str, Interval], dict[str, Any]]:
    """Subject-bootstrap 95% intervals of the trial's test metrics (the mean over its fold models), and the
    ``test_subjects.json`` report: those intervals and each subject's metrics (fold models' mean probability)."""
    idx = ws.indices(folds[0].split.test)
    y, subjects, k = ws.y[idx], ws.subject_ids(idx), len(ws.class_names)
    probs = [f.test_probs for f in folds if f.test_probs is not None]
    intervals = model_intervals(y, probs, subjects, k, seed=seed)
    report = {
        "note": "test subjects are never used for selection; intervals resample subjects, not windows",
        "intervals": {m: iv.to_dict() for m, iv in intervals.items()},
        "per_subject": per_subject(y, np.mean(probs, axis=0), subjects, k),
    }
    return intervals, report


def split_tags(protocol: dict[str, Any], splits: list[Split], fingerprint: str) -> dict[str, str]:
    """MLflow tags describing a trial's partitions: every partition's subject list."""
    tags = {
        "data_fingerprint": fingerprint,
        "split.protocol": protocol["kind"],
        "split.folds": str(len(splits)),
        "split.test": ",".join(splits[0].test),
    }
    if len(splits) == 1:
        tags["split"] = splits[0].describe()
        tags.update({f"split.{p}": ",".join(getattr(splits[0], p)) for p in ("train", "val")})
    else:
        for k, s in enumerate(splits):
            tags[f"split.fold{k}.train"] = ",".join(s.train)
            tags[f"split.fold{k}.val"] = ",".join(s.val)
    return tags


def _mean_dicts(items: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([d[k] for d in items])) for k in items[0]} if items else {}


def _fit_fold(spec: TrialSpec, ws: WindowSet, split: Split, fold: int, reporter: Reporter, tracker: Any) -> FoldResult:
    from lightning.pytorch.callbacks import EarlyStopping

    idx = {part: ws.indices(getattr(split, part)) for part in ("train", "val", "test")}
    for part, ids in idx.items():
        if len(ids) == 0:
            raise ValueError(f"no labelled windows for the {part} subjects {getattr(split, part)}")
    tracker.log_metrics({f"windows_{p}": float(len(i)) for p, i in idx.items()})
    training = spec.training
    key, direction = _metric_key(spec), training["direction"]
    monitor = _Monitor(key, direction, reporter, tracker)
    stopper = EarlyStopping(
        monitor=key,
        mode="max" if direction == "maximize" else "min",
        patience=int(training["patience"]),
        check_finite=False,
    )
    task = fit(spec, ws, idx["train"], idx["val"], int(training["max_epochs"]), [monitor, stopper])
    if training.get("compile") and len(monitor.epoch_seconds) > 1:
        extra = monitor.epoch_seconds[0] - float(np.median(monitor.epoch_seconds[1:]))
        tracker.log_metrics({COMPILE_SECONDS: max(0.0, extra)})
    if monitor.pruned:
        raise TrialPruned(monitor.epoch, monitor.last_value)
    if monitor.best_state is None:
        raise RuntimeError(f"no finite {key} in any epoch (diverged?)")
    task.load_state_dict(monitor.best_state)
    net = uncompiled(task.net).cpu()
    record_prototypes(net, ws, idx["train"])  # on the weights that are evaluated and saved
    test_probs = predict_probs(net, ws, idx["test"])
    test = evaluate(net, ws, idx["test"], "test_", probs=test_probs)
    val = {m: v for m, v in monitor.best_metrics.items() if m.startswith("val_")}
    ckpt = save_checkpoint(spec, net, ws, val, test, monitor.best_epoch, split)
    return FoldResult(
        fold=fold,
        split=split,
        score=float(monitor.best_value),
        best_epoch=monitor.best_epoch,
        epochs=monitor.epoch + 1,
        val_metrics=val,
        test_metrics=test,
        history=monitor.history,
        checkpoint=ckpt,
        test_probs=test_probs,
    )


def record_prototypes(net: torch.nn.Module, ws: WindowSet, train: np.ndarray) -> None:
    """A network that shows its prototypes as training segments (duck-typed ``net.project_prototypes``: the
    part-based family, :mod:`ape_nas.models.proto`) records them now, from the training windows ``train`` as they
    are (no augmentation; window ids are indices into ``ws``); its predictions do not change. Others: nothing."""
    project = getattr(net, "project_prototypes", None)
    if project is not None:
        project(_loader(ws, train, 256, False, 0), indices=train)


def check_accelerator(spec: TrialSpec) -> None:
    """A spec that asks for a GPU where none is visible stops with one line, never trains on the CPU instead."""
    if spec.training["accelerator"] != "gpu" or torch.cuda.is_available() or torch.backends.mps.is_available():
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    seen = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    raise UserError(
        f"training.accelerator is gpu, but torch sees no GPU in this process{seen}; "
        "expected accelerator cpu here, or a run on a machine with a GPU"
    )


def fit(
    spec: TrialSpec, ws: WindowSet, train: np.ndarray, val: np.ndarray | None, epochs: int, callbacks: list[Any]
) -> Any:
    """Seed, build the spec's :class:`~ape_nas.task.CardiacTask` for these windows (loss weighted by the
    training windows' classes) and fit it on the windows ``train`` for ``epochs`` epochs, validating on ``val``
    after each (None: no validation). Returns the task with its last weights.

    A spec whose ``arch.hrv_fusion`` fuses HRV features gets them transformed by an
    :class:`~ape_nas.features.HrvTransform` fitted on the windows ``train`` (training subjects only; per subject
    where ``data.normalize`` is ``subject``): its statistics are the network's first layer, and it is attached to
    ``task.net`` for :func:`evaluate` and :func:`save_checkpoint`.
    """
    import lightning as L

    from ape_nas.features import attach, fit_windows, fuses, network_input
    from ape_nas.task import CardiacTask

    L.seed_everything(spec.seed, workers=True, verbose=False)
    k = len(ws.class_names)
    transform = fit_windows(ws, train, spec.data) if fuses(spec.arch) else None
    features = network_input(np.asarray(ws.hrv), ws.groups, transform.mode) if transform is not None else None
    task = CardiacTask(
        spec.to_dict(),
        in_channels=ws.X.shape[1],
        num_classes=k,
        class_weights=_class_weights(ws.y[train], k),
        n_features=len(transform.names) if transform is not None else 0,
    )
    attach(task.net, transform)
    if spec.training.get("compile"):
        task.net.compile()  # in place: the state dict keeps its keys
    bs = int(spec.optim["batch_size"])
    device = training_device(spec)
    val_loader = _loader(ws, val, bs, False, spec.seed, features, device) if val is not None else None
    train_loader = _loader(ws, train, bs, True, spec.seed, features, device)
    _trainer(spec, epochs, callbacks).fit(task, train_loader, val_loader)
    return task


def uncompiled(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` without the compiled forward of ``training.compile`` (``nn.Module.compile``): evaluation, export and
    prototypes run it eagerly, at shapes and on devices it was not compiled for."""
    if getattr(net, "_compiled_call_impl", None) is not None:
        net._compiled_call_impl = None
    return net


def _trainer(spec: TrialSpec, max_epochs: int, callbacks: list[Any]) -> Any:
    import lightning as L
    from lightning.pytorch.plugins.environments import LightningEnvironment

    training = spec.training
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator=training["accelerator"],
        precision=training["precision"],
        devices=1,
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        # one process per trial: never let Lightning read a Slurm/torchelastic job's task layout as its own
        plugins=[LightningEnvironment()],
    )


@dataclass
class FinalResult:
    split: Split
    epochs: int
    test_metrics: dict[str, float]
    per_subject: dict[str, dict[str, float]]
    checkpoint: Path
    test_probs: np.ndarray | None = None  # (test windows, classes)
    test_y: np.ndarray | None = None
    test_subjects: np.ndarray | None = None  # subject id of each test window
    test_ci: dict[str, Interval] = field(default_factory=dict)


def train_final(
    spec: TrialSpec,
    epochs: int,
    *,
    cache_dir: Path | None = None,
    tracker: TrialTracker | None = None,
) -> FinalResult:
    """Retrain on every non-test subject (training + validation) for a fixed number of epochs, then score the
    held-out test subjects once, overall and per subject. No model selection happens here.
    """
    quiet_libraries()
    check_accelerator(spec)
    tracker = tracker or MemoryTracker()
    ws = prepare_windows(spec.data, cache_dir)
    first = make_splits(spec.protocol, ws.subjects)[0]
    split = Split(train=tuple(sorted(first.train + first.val)), val=(), test=first.test)
    tracker.set_tags(
        {
            "split.protocol": "final",
            "split.train": ",".join(split.train),
            "split.test": ",".join(split.test),
            "data_fingerprint": ws.fingerprint,
        }
    )
    train, test = ws.indices(split.train), ws.indices(split.test)
    net = uncompiled(fit(spec, ws, train, None, epochs, []).net).cpu()
    record_prototypes(net, ws, train)
    probs = predict_probs(net, ws, test)
    metrics = evaluate(net, ws, test, "test_", probs=probs)
    subjects = ws.subject_ids(test)
    by_subject = {}
    for s in split.test:
        mine = np.flatnonzero(subjects == s)
        by_subject[s] = evaluate(net, ws, test[mine], "test_", probs=probs[mine])
    ci = metric_intervals(ws.y[test], probs, subjects, len(ws.class_names), seed=spec.seed)
    tracker.log_metrics({**metrics, **interval_metrics("test_", ci)})
    for subject, values in by_subject.items():
        tracker.log_metrics({f"{subject}.{m}": v for m, v in values.items()})
    ckpt = save_checkpoint(spec, net, ws, {}, metrics, epochs - 1, split)
    tracker.log_artifact(ckpt)
    return FinalResult(
        split=split,
        epochs=epochs,
        test_metrics=metrics,
        per_subject=by_subject,
        checkpoint=ckpt,
        test_probs=probs,
        test_y=np.asarray(ws.y[test]),
        test_subjects=subjects,
        test_ci=ci,
    )


def save_checkpoint(
    spec: TrialSpec,
    net: torch.nn.Module,
    ws: WindowSet,
    val: dict[str, float],
    test: dict[str, float],
    best_epoch: int,
    split: Split,
) -> Path:
    """A plain checkpoint (tensors, strings, numbers only: loads with ``torch.load(weights_only=True)``).

    ``n_features`` and ``hrv_transform`` (:meth:`ape_nas.features.HrvTransform.to_dict`, or None) describe the HRV
    feature input of a network that fuses it: rebuild with ``build_model(..., n_features=ckpt["n_features"])``.
    """
    from ape_nas.features import transform_of
    from ape_nas.models.heads import uses_features

    transform = transform_of(net) if uses_features(net) else None
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
            "n_features": len(transform.names) if transform is not None else 0,
            "hrv_transform": transform.to_dict() if transform is not None else None,
            "data_fingerprint": ws.fingerprint,
            "val_metrics": val,
            "test_metrics": test,
            "best_epoch": best_epoch,
            "split": split.to_dict(),
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
        self.epoch_seconds: list[float] = []  # wall time of each epoch: its training and validation passes
        self._epoch_start = 0.0

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_start = time.perf_counter()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch
        values = dict(pl_module.last_val)  # read on the host: the epoch's one synchronisation
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)
        self.history.append({"epoch": epoch, **values, EPOCH_SECONDS: self.epoch_seconds[-1]})
        self.tracker.log_metrics({**values, EPOCH_SECONDS: self.epoch_seconds[-1]}, step=epoch)
        value = float(values[self.key])
        self.epoch, self.last_value = epoch, value
        if _better(value, self.best_value, self.direction):
            self.best_value, self.best_epoch, self.best_metrics = value, epoch, values
            self.best_state = copy.deepcopy(pl_module.state_dict())
        if self.reporter.report(value, epoch):
            self.pruned = True
            trainer.should_stop = True
