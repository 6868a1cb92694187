"""Pieces the operations share: parameter checks, 'same' padding, norm and activation factories, squeeze-and-
excitation, an edge-padded max-pool.

Every operation parameter has one check in :data:`CHECKS` (name → ``check(label, value) -> value``), used both by
the operations' constructors and by :meth:`ape_nas.models.searched.Searched1d.canonical_arch` (which validates a
genome without building anything): a new parameter needs a check here.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ape_nas.models.cnn import check_choice, check_int, check_kernel

ACTS = ("relu", "gelu", "silu")
NORMS = ("batch", "layer", "none")
SE_REDUCTION = 4
SE_MIN_HIDDEN = 8  # as MobileNetV3 (widths rounded up to multiples of 8): 2 ReLU units of a narrow block die easily


# ---------------------------------------------------------------------------------------------------------------------
# Parameter checks
# ---------------------------------------------------------------------------------------------------------------------


def as_int(value: Any) -> Any:
    """``value`` as a Python int when it is an integer of any kind (numpy's too), else unchanged (bools too)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        return int(value)
    return value


def check_bool(name: str, value: Any) -> bool:
    """Require a bool (Python's or numpy's)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a bool (true or false), got {value!r}")
    return bool(value)


#: operation parameter → its check: ``check(label, value)`` returns the value in canonical type or raises a
#: ValueError naming ``label``, the value and the expected range
CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "kernel": lambda name, value: check_kernel(name, as_int(value)),
    "se": check_bool,
    "act": lambda name, value: str(check_choice(name, value, ACTS)),
    "norm": lambda name, value: str(check_choice(name, value, NORMS)),
    "expand": lambda name, value: check_int(name, as_int(value), 1),
    "dilation": lambda name, value: check_int(name, as_int(value), 1),
    "heads": lambda name, value: check_int(name, as_int(value), 1),
}


def check_params(channels: Any, **params: Any) -> None:
    """An operation constructor's arguments: ``channels`` >= 1 and each parameter by :data:`CHECKS`."""
    check_int("channels", channels, 1)
    for name, value in params.items():
        CHECKS[name](name, value)


# ---------------------------------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------------------------------


def same_padding(kernel: int, dilation: int = 1) -> int:
    """Padding on each side that keeps the length of a stride-1 convolution (odd ``kernel``)."""
    return dilation * (kernel - 1) // 2


def same_conv(
    c_in: int, c_out: int, kernel: int, *, bias: bool, dilation: int = 1, groups: int = 1, stride: int = 1
) -> nn.Conv1d:
    """Conv1d with 'same' padding: length ``time`` → ``ceil(time / stride)`` for any ``time`` >= 1."""
    return nn.Conv1d(
        c_in, c_out, kernel, stride=stride, padding=same_padding(kernel, dilation), dilation=dilation,
        groups=groups, bias=bias,
    )  # fmt: skip


class BatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that also trains on a single value per channel (batch 1 whose time axis has shrunk to 1 sample):
    the output is then the bias (the value minus its own mean) and the running statistics are left as they are,
    where BatchNorm1d raises."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time)
        if self.training and x.shape[0] * x.shape[2] == 1:
            return (x - x) * self.weight[:, None] + self.bias[:, None]  # the normalised value is 0
        return super().forward(x)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of every time step: any length, one ONNX LayerNormalization. (On a single
    channel its output is its bias: the signal is gone.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time)
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_norm(norm: str, channels: int) -> nn.Module:
    """``batch`` (:class:`BatchNorm`), ``layer`` (:class:`ChannelLayerNorm`) or ``none``."""
    if norm == "batch":
        return BatchNorm(channels)
    if norm == "layer":
        return ChannelLayerNorm(channels)
    return nn.Identity()


def make_act(act: str) -> nn.Module:
    return {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}[act]()


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018): channels scaled by ``sigmoid(W2 relu(W1 mean_t(x)))``, with
    ``max(8, channels // 4)`` hidden units."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(SE_MIN_HIDDEN, channels // SE_REDUCTION)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time)
        return x * self.fc(x.mean(dim=-1)).unsqueeze(-1)


def make_se(se: bool, channels: int) -> nn.Module:
    return SqueezeExcite(channels) if se else nn.Identity()


class EdgeMaxPool(nn.Module):
    """Max-pool of ``kernel`` (stride ``stride``) over an edge-padded time axis: ``stride == 1`` keeps the length
    (``kernel`` odd), ``stride == kernel == 2`` gives ``ceil(time / 2)`` like a ceil-mode pool. Edge padding (a
    copy of the end samples) changes no maximum, and unlike ceil mode or -inf padding it keeps the time axis
    dynamic in every ONNX exporter."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        if stride == 1:
            self.pad = ((kernel - 1) // 2, (kernel - 1) // 2)
        else:
            self.pad = (0, kernel - 1)  # with kernel == stride: floor((time + k - 1) / k) = ceil(time / k)
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time) or (batch, channels, ceil(time / stride))
        return F.max_pool1d(F.pad(x, self.pad, mode="replicate"), self.kernel, self.stride)
