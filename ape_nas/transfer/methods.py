"""Adaptation methods of few-shot transfer: a trained source network adapted to new people from a few labelled windows.

Every method runs on one code path: :func:`adapt` (a deep copy of the source with a new, freshly initialised
classifier head for the target classes, the method's tensors made trainable) → :func:`fit` (a plain torch loop:
AdamW, class-balanced cross-entropy, a fixed number of steps over mini-batches drawn by a seeded permutation) →
:func:`predict_proba`, and :func:`fold` (the adapted network as a *plain* network of the source architecture, for
export). Methods by exact name (:data:`METHODS`):

* ``weighting`` — transfer learning by weighting convolution filters: every convolution filter of the source is
  frozen; one learnable scalar per output filter of every ``nn.Conv1d`` (depthwise and grouped ones too; starts at 1)
  multiplies that filter (``w·W``), and a new head is trained. Nothing else changes: normalisation layers run in
  eval mode (running statistics frozen, so the scaling is not normalised away), and their affines, the HRV
  :class:`~ape_nas.models.heads.FeatureInput` buffers, attention, linear and GRU weights stay bit for bit. A
  weight-normalised convolution (``tcn`` with ``weight_norm``) is scaled the same way; it folds into its norm ``g``.
* ``weighting+shift`` — as ``weighting`` plus an additive shift per output filter, defined so that it folds
  exactly into the source architecture (no new tensor): a filter's shift is a learnable offset (starts at 0) on

  - the convolution's own bias, where the convolution has one;
  - else the β (bias) of the normalisation layer whose input is that convolution's output — directly, or as part
    of a concatenation along the channels (InceptionTime's branches → one BatchNorm). The layer is found once, by
    one eval-mode forward pass of a short dummy window through the copy, following the autograd graph; the whole
    β of that layer is shifted. A bias-free convolution whose output reaches no normalisation layer that way (a
    bottleneck or depthwise convolution feeding another convolution) gets no shift of its own.

  ``β + δ`` (or ``b + δ``) is the folded value, so folding is exact.
* ``head`` — linear probe: everything frozen (normalisation layers in eval mode), a new head trained.
* ``finetune`` — every weight trained with a small learning rate (the new head with a ten times larger one);
  normalisation statistics frozen (eval mode: tiny calibration batches would wreck them).
* ``bn`` — new head + normalisation layers adapted (AdaBN): before training, their running statistics are
  re-estimated on the calibration windows (cumulative average over one pass, in the method's batch size); then
  their affines (BatchNorm and LayerNorm weight and bias) are trained with the statistics frozen; everything else
  frozen. :meth:`Adapted.trained_parameters` counts the affines and the head; the re-estimated running statistics
  (buffers) change too.
* ``scratch`` — the reference: the same architecture from random initialisation (``build(num_classes)``), every
  weight trained, normalisation layers in train mode.

Dropout stays active while training (it regularises a few-shot fit); predictions are in eval mode. Filter scales and
shifts are :mod:`torch.nn.utils.parametrize` parametrizations of the convolution weights and biases: the adapted
network's state dict holds the source tensors unchanged (``conv.parametrizations.weight.original``) beside the
scales (``conv.parametrizations.weight.<i>.scale``) and shifts (``….bias.<i>.shift``); :func:`fold` writes ``w·W`` and
``b + δ`` into a plain network that loads with ``strict=True``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from ape_nas.errors import UnknownNameError

__all__ = [
    "METHODS",
    "Adapted",
    "BiasShift",
    "FilterScale",
    "Method",
    "adapt",
    "check_method",
    "fit",
    "fold",
    "norm_layers",
    "predict_proba",
]

NORM_MODES = ("frozen", "adabn", "train")
#: normalisation layers: BatchNorm / InstanceNorm (``_NormBase``: running statistics), LayerNorm, GroupNorm
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
DUMMY_LENGTH = 128  # the dummy window of weighting+shift's one forward pass (eval mode: any length works)


@dataclass(frozen=True)
class Method:
    """One adaptation method: what it trains and its default hyper-parameters (sized for 1–20 windows per class)."""

    name: str
    description: str
    lr: float  # learning rate of the trained tensors (finetune: of the source body)
    head_lr: float | None  # learning rate of the new head; None: ``lr``
    steps: int  # optimiser steps (fixed, not epochs)
    batch_size: int  # windows per step (at most the calibration windows)
    weight_decay: float  # AdamW decay of freshly initialised weights (the new head; all of scratch's)
    norm: str  # normalisation layers while training: "frozen" (eval), "adabn" (re-estimated, then eval), "train"


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "weighting",
            "convolution filters frozen, one learnable scale per filter (w·W, starts at 1) + new head",
            1e-2, None, 150, 32, 1e-4, "frozen",
        ),
        Method(
            "weighting+shift",
            "as weighting + a learnable shift per filter (on the conv's bias, or the β of the norm layer after it)",
            1e-2, None, 150, 32, 1e-4, "frozen",
        ),
        Method("head", "linear probe: everything frozen, new head", 1e-2, None, 150, 32, 1e-4, "frozen"),
        Method(
            "finetune",
            "every weight trained at a small learning rate (new head 10x larger), norm statistics frozen",
            1e-4, 1e-3, 150, 32, 1e-4, "frozen",
        ),
        Method(
            "bn",
            "norm statistics re-estimated on the calibration windows (AdaBN), norm affines + new head trained",
            1e-2, None, 150, 32, 1e-4, "adabn",
        ),
        Method(
            "scratch", "same architecture from random init, every weight trained", 1e-3, None, 200, 32, 1e-4, "train"
        ),
    )
}  # fmt: skip


def check_method(name: str) -> str:
    """``name`` if it is a method of :data:`METHODS`, else a one-line UserError listing the known names."""
    if not isinstance(name, str) or name not in METHODS:
        raise UnknownNameError("transfer method", str(name), list(METHODS))
    return name


# ---------------------------------------------------------------------------------------------------------------------
# Parametrizations (fold exactly into the plain architecture)
# ---------------------------------------------------------------------------------------------------------------------


class FilterScale(nn.Module):
    """Weight parametrization ``W → w·W``: one scalar per output filter (dimension 0), starting at 1."""

    def __init__(self, filters: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(filters))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # weight: (out, in / groups, kernel) -> the same shape, filter o times scale[o]
        return weight * self.scale.view(-1, *([1] * (weight.dim() - 1)))


class BiasShift(nn.Module):
    """Bias parametrization ``b → b + δ``: one offset per channel, starting at 0."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, bias: torch.Tensor) -> torch.Tensor:
        # bias: (channels,) -> (channels,)
        return bias + self.shift


_OURS = (FilterScale, BiasShift)


def norm_layers(net: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The normalisation layers of ``net`` (BatchNorm, InstanceNorm, LayerNorm, GroupNorm and subclasses)."""
    for name, module in net.named_modules():
        if isinstance(module, NORM_TYPES):
            yield name, module


def _convs(net: nn.Module) -> list[tuple[str, nn.Conv1d]]:
    """Every ``nn.Conv1d`` of the body (the head excluded: it is replaced)."""
    return [
        (name, m) for name, m in net.named_modules() if isinstance(m, nn.Conv1d) and not _in_head(name)
    ]  # fmt: skip


def _in_head(name: str) -> bool:
    return name == "head" or name.startswith("head.")


# ---------------------------------------------------------------------------------------------------------------------
# The network being adapted
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class Adapted:
    """The network being adapted: ``net`` (``forward(x, features=None)`` → logits of the target classes).

    ``trainable``: names (in ``net.named_parameters()``) of the parameters training changes; ``head_names``: those
    of the new head (its own learning rate and weight decay). ``build(num_classes)`` builds a plain network of the
    source architecture (used by :func:`fold`, and by ``scratch`` as the network itself)."""

    method: str
    net: nn.Module
    num_classes: int
    build: Callable[[int], nn.Module]
    seed: int
    trainable: tuple[str, ...]
    head_names: tuple[str, ...]

    def parameters_trained(self) -> list[tuple[str, nn.Parameter]]:
        """The ``(name, parameter)`` pairs training changes."""
        wanted = set(self.trainable)
        return [(name, p) for name, p in self.net.named_parameters() if name in wanted]

    def trained_parameters(self) -> int:
        """Number of scalars training changes by gradient (weighting: the convolutions' output filters plus the
        head's parameters; ``bn`` also re-estimates running statistics, buffers not counted here)."""
        return int(sum(p.numel() for _, p in self.parameters_trained()))

    def filter_scales(self) -> dict[str, torch.Tensor]:
        """Convolution name → its filter scales (weighting methods; empty otherwise)."""
        out: dict[str, torch.Tensor] = {}
        for name, module in self.net.named_modules():
            if parametrize.is_parametrized(module, "weight"):
                for p in module.parametrizations["weight"]:
                    if isinstance(p, FilterScale):
                        out[name] = p.scale.detach().clone()
        return out


def _check_architecture(source: nn.Module, fresh: nn.Module) -> None:
    """``build(num_classes)`` must build the source's architecture (every tensor but the head's, same shape)."""
    head = getattr(source, "head", None)
    if not isinstance(head, nn.Module) or not isinstance(getattr(fresh, "head", None), nn.Module):
        raise TypeError("transfer needs a network with a classifier head `net.head` (a HeadedClassifier)")
    a = {k: tuple(v.shape) for k, v in source.state_dict().items() if not _in_head(k)}
    b = {k: tuple(v.shape) for k, v in fresh.state_dict().items() if not _in_head(k)}
    if a != b:
        differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        raise ValueError(
            f"build(num_classes) does not build the source network's architecture; tensors that differ: "
            f"{', '.join(differ[:5])}{' …' if len(differ) > 5 else ''}"
        )


def _shift_targets(net: nn.Module) -> set[str]:
    """Names of the normalisation layers whose input is the output of a bias-free convolution (directly or in a
    concatenation along the channels), found by one eval-mode forward pass of a dummy window."""
    convs = [(name, m) for name, m in _convs(net) if m.bias is None]
    if not convs:
        return set()
    produced: dict[int, str] = {}  # id(grad_fn of a bias-free conv's output) -> conv name
    keep: list[torch.Tensor] = []  # the outputs stay alive, so no grad_fn id is reused during the pass
    targets: set[str] = set()

    def conv_hook(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            keep.append(out)
            produced[id(out.grad_fn)] = name

        return hook

    def norm_hook(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any) -> None:
            x = args[0]
            fn = x.grad_fn
            parts = [fn]
            dim = getattr(fn, "_saved_dim", None)
            if type(fn).__name__ == "CatBackward0" and isinstance(dim, int) and dim % x.dim() == 1:
                parts = [f for f, _ in fn.next_functions]
            if any(f is not None and id(f) in produced for f in parts) and getattr(module, "bias", None) is not None:
                targets.add(name)

        return hook

    handles = [m.register_forward_hook(conv_hook(name)) for name, m in convs]
    handles += [m.register_forward_pre_hook(norm_hook(name)) for name, m in norm_layers(net) if not _in_head(name)]
    modes = [(m, m.training) for m in net.modules()]
    first = next(m for _, m in _convs(net))  # families register their input convolution first
    x = torch.zeros(2, first.in_channels, DUMMY_LENGTH).normal_(generator=torch.Generator().manual_seed(0))
    features = None
    if getattr(net, "uses_features", False):
        features = torch.zeros(2, int(getattr(net, "n_features", 0)))
    try:
        net.eval()
        with torch.enable_grad():
            x.requires_grad_(True)
            net(x) if features is None else net(x, features)
    except Exception as exc:
        raise RuntimeError(
            f"weighting+shift: a dummy window (batch 2, {first.in_channels} channels, {DUMMY_LENGTH} samples) did "
            f"not run through the network to find the normalisation layers after its convolutions: {exc}"
        ) from exc
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:
            m.train(training)
    return targets


def _own_classes(net: nn.Module) -> nn.Module:
    """Every parametrized module of the deep copy ``net`` gets a class of its own. (A deep copy of a parametrized
    module shares the source's generated class, and parametrizing one more tensor adds a property to that class:
    a bias shift on a weight-normalised convolution would otherwise reach into the source.)"""
    for module in net.modules():
        if parametrize.is_parametrized(module):
            cls = type(module)
            module.__class__ = type(cls.__name__, (cls,), {})
    return net


def _scale_and_shift_names(net: nn.Module) -> set[str]:
    """Names (in ``net.named_parameters()``) of the filter scales and shifts."""
    names = set()
    for prefix, module in net.named_modules():
        if parametrize.is_parametrized(module):
            at = f"{prefix}." if prefix else ""
            for tensor, plist in module.parametrizations.items():
                for i, p in enumerate(plist):
                    if isinstance(p, _OURS):
                        names |= {f"{at}parametrizations.{tensor}.{i}.{n}" for n, _ in p.named_parameters()}
    return names


def adapt(method: str, source: nn.Module, num_classes: int, *, build: Callable[[int], nn.Module], seed: int) -> Adapted:
    """The network ``method`` adapts, ready for :func:`fit`: a deep copy of ``source`` (never modified) with a new
    head for ``num_classes`` classes (the head of a fresh ``build(num_classes)``, initialised from ``seed``), or for
    ``scratch`` that fresh network itself. ``build(num_classes)`` must build the source's architecture."""
    spec = METHODS[check_method(method)]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    torch.manual_seed(seed)
    fresh = build(num_classes)
    _check_architecture(source, fresh)
    if spec.name == "scratch":
        net = fresh
    else:
        net = _own_classes(copy.deepcopy(source))
        net.head = fresh.head
    if spec.name in ("weighting", "weighting+shift"):
        shifted = _shift_targets(net) if spec.name == "weighting+shift" else set()
        modules = dict(net.named_modules())
        for _, conv in _convs(net):
            parametrize.register_parametrization(conv, "weight", FilterScale(conv.out_channels))
            if spec.name == "weighting+shift" and conv.bias is not None:
                parametrize.register_parametrization(conv, "bias", BiasShift(conv.out_channels))
        for name in sorted(shifted):
            norm = modules[name]
            parametrize.register_parametrization(norm, "bias", BiasShift(norm.bias.numel()))
    names = [name for name, _ in net.named_parameters()]
    head = tuple(name for name in names if _in_head(name))
    if spec.name in ("finetune", "scratch"):
        trainable = set(names)
    elif spec.name == "bn":
        affines = {
            f"{prefix}.{tensor}" if prefix else tensor
            for prefix, norm in norm_layers(net)
            for tensor, p in norm.named_parameters(recurse=False)
            if p is not None
        }
        trainable = {*head, *affines}
    else:  # weighting, weighting+shift, head
        trainable = {*head, *_scale_and_shift_names(net)}
    for name, p in net.named_parameters():
        p.requires_grad_(name in trainable)
    return Adapted(
        spec.name, net, num_classes, build, seed, tuple(n for n in names if n in trainable), head
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Training and prediction
# ---------------------------------------------------------------------------------------------------------------------


def _floats(a: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().to(torch.float32)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _call(net: nn.Module, x: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
    return net(x) if features is None else net(x, features)


def _set_modes(net: nn.Module, norm: str) -> None:
    """Train mode (dropout active); normalisation layers in eval mode unless ``norm`` is ``train``."""
    net.train()
    if norm != "train":
        for _, m in norm_layers(net):
            m.eval()


@torch.no_grad()
def _reestimate(net: nn.Module, X: torch.Tensor, features: torch.Tensor | None, batch_size: int) -> None:
    """AdaBN: every normalisation layer's running statistics re-estimated on ``X`` (a cumulative average over one
    pass in batches of ``batch_size``); everything else in eval mode (no dropout)."""
    tracked = [m for _, m in norm_layers(net) if getattr(m, "track_running_stats", False)]
    if not tracked:
        return
    momenta = [m.momentum for m in tracked]
    net.eval()
    for m in tracked:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
        m.train()
    try:
        for i in range(0, len(X), batch_size):
            _call(net, X[i : i + batch_size], None if features is None else features[i : i + batch_size])
    finally:
        for m, momentum in zip(tracked, momenta, strict=True):
            m.momentum = momentum
        net.eval()


def _class_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class-balanced weights ``n / (k · n_c)`` over the classes present (0 for an absent class)."""
    counts = torch.bincount(y, minlength=num_classes).to(torch.float32)
    present = counts > 0
    weights = torch.zeros(num_classes)
    weights[present] = len(y) / (int(present.sum()) * counts[present])
    return weights


def fit(
    adapted: Adapted,
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    features: np.ndarray | torch.Tensor | None = None,
    *,
    seed: int,
    steps: int | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
) -> list[float]:
    """Train ``adapted`` on the calibration windows ``X`` (n, channels, time) with labels ``y`` (n,) in
    ``[0, num_classes)`` [and their HRV ``features`` (n, F)]; returns the loss of every step.

    A plain torch loop: AdamW (trained source tensors without weight decay; the new head with the method's),
    class-balanced cross-entropy, ``steps`` steps of ``min(batch_size, n)`` windows taken in turn from seeded
    permutations of the windows. ``lr`` replaces the method's learning rate (finetune: the body's; its head keeps
    the default ratio). Deterministic for a ``seed``. ``bn`` first re-estimates the normalisation statistics.
    The network is left in eval mode."""
    spec = METHODS[adapted.method]
    steps = spec.steps if steps is None else steps
    batch_size = spec.batch_size if batch_size is None else batch_size
    base_lr = spec.lr if lr is None else lr
    head_lr = base_lr * ((spec.head_lr or spec.lr) / spec.lr)
    if steps < 0 or batch_size < 1 or not base_lr > 0:
        raise ValueError(f"steps must be >= 0, batch_size >= 1 and lr > 0; got {steps}, {batch_size}, {base_lr}")
    Xt = _floats(X)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    Ft = None if features is None else _floats(features)
    if Xt.dim() != 3 or yt.dim() != 1 or len(Xt) != len(yt) or len(Xt) == 0:
        raise ValueError(f"X must be (n, channels, time) and y (n,), n >= 1; got {tuple(Xt.shape)}, {tuple(yt.shape)}")
    if Ft is not None and (Ft.dim() != 2 or len(Ft) != len(Xt)):
        raise ValueError(f"features must be (n, n_features) with n = {len(Xt)}; got {tuple(Ft.shape)}")
    if int(yt.min()) < 0 or int(yt.max()) >= adapted.num_classes:
        raise ValueError(f"labels must be in [0, {adapted.num_classes}); got {int(yt.min())}..{int(yt.max())}")

    torch.manual_seed(seed)
    net = adapted.net
    batch = min(batch_size, len(Xt))
    if spec.norm == "adabn":
        _reestimate(net, Xt, Ft, batch)
    head = set(adapted.head_names)
    body_params = [p for name, p in adapted.parameters_trained() if name not in head]
    head_params = [p for name, p in adapted.parameters_trained() if name in head]
    body_decay = spec.weight_decay if spec.name == "scratch" else 0.0
    groups = [
        {"params": body_params, "lr": base_lr, "weight_decay": body_decay},
        {"params": head_params, "lr": head_lr, "weight_decay": spec.weight_decay},
    ]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
    weights = _class_weights(yt, adapted.num_classes)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(Xt), generator=generator)
    at = 0
    losses: list[float] = []
    _set_modes(net, spec.norm)
    try:
        for _ in range(steps):
            if at + batch > len(Xt):
                order, at = torch.randperm(len(Xt), generator=generator), 0
            idx = order[at : at + batch]
            at += batch
            logits = _call(net, Xt[idx], None if Ft is None else Ft[idx])
            loss = F.cross_entropy(logits, yt[idx], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    finally:
        net.eval()
    return losses


@torch.no_grad()
def predict_proba(
    net: nn.Module | Adapted,
    X: np.ndarray | torch.Tensor,
    features: np.ndarray | torch.Tensor | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Class probabilities (n, classes) of ``net`` (an :class:`Adapted`'s network, or any network) on ``X`` [and
    ``features``], in eval mode (the modules' modes are restored afterwards)."""
    module = net.net if isinstance(net, Adapted) else net
    Xt = _floats(X)
    Ft = None if features is None else _floats(features)
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with parametrize.cached():
            out = [
                torch.softmax(_call(module, Xt[i : i + batch_size], None if Ft is None else Ft[i : i + batch_size]), 1)
                for i in range(0, len(Xt), batch_size)
            ]
    finally:
        for m, training in modes:
            m.train(training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()


# ---------------------------------------------------------------------------------------------------------------------
# Folding into the plain architecture
# ---------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def folded_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of ``net`` with this module's filter scales and shifts folded in: the names and shapes of the
    plain (unparametrized) architecture. A parametrization the source itself had (weight normalisation) is kept,
    with the filter scales folded into its norm ``g`` (``w·(g·v/‖v‖) = (w·g)·v/‖v‖``)."""
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    for prefix, module in net.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        at = f"{prefix}." if prefix else ""
        for tensor, plist in module.parametrizations.items():
            ours = [i for i, p in enumerate(plist) if isinstance(p, _OURS)]
            if not ours:
                continue
            base = f"{at}parametrizations.{tensor}."
            if len(ours) == len(plist):  # only ours: the plain tensor is the parametrized value
                for key in [k for k in state if k.startswith(base)]:
                    del state[key]
                state[f"{at}{tensor}"] = getattr(module, tensor).detach().clone()
                continue
            if ours != list(range(len(plist) - len(ours), len(plist))):
                raise NotImplementedError(f"{prefix}.{tensor}: filter scales or shifts below another parametrization")
            inner = [plist[j] for j in range(len(plist) - len(ours))]
            for i in ours:
                p = plist[i]
                if not (
                    isinstance(p, FilterScale)
                    and len(inner) == 1
                    and type(inner[0]).__name__ == "_WeightNorm"
                    and getattr(inner[0], "dim", None) == 0
                ):
                    raise NotImplementedError(f"{prefix}.{tensor}: cannot fold {type(p).__name__} into {inner}")
                g = state[f"{base}original0"]
                state[f"{base}original0"] = g * p.scale.detach().view(-1, *([1] * (g.dim() - 1)))
                for key in [k for k in state if k.startswith(f"{base}{i}.")]:
                    del state[key]
    return state


def fold(adapted: Adapted) -> nn.Module:
    """A plain network of the source architecture (``build(num_classes)``, in eval mode) holding the adapted
    weights: ``w·W`` as each convolution's weight, shifts added to the biases they shift; loaded with
    ``strict=True``. Its eval outputs equal ``adapted.net``'s (up to float rounding). The global RNG is left as
    it was."""
    with torch.random.fork_rng(devices=[]):
        plain = adapted.build(adapted.num_classes)
    plain.load_state_dict(folded_state(adapted.net), strict=True)
    return plain.eval()
