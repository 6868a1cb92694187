"""Temporal Convolutional Network family (``tcn``), and the flag check shared with :mod:`ape_nas.models.rnn`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm

from ape_nas.models.cnn import check_choice, check_dropout, check_int
from ape_nas.models.heads import HeadedClassifier
from ape_nas.models.registry import register_model

POOLINGS = ("mean", "last")


def check_flag(name: str, value: Any) -> bool:
    """Require a bool (``True``/``False``, not 0/1)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def receptive_field(levels: int, kernel_size: int) -> int:
    """Samples one output step sees: ``1 + 2 (k - 1) (2**levels - 1)`` (two convolutions per level)."""
    return 1 + 2 * (kernel_size - 1) * (2**levels - 1)


class _CausalConv(nn.Module):
    """Dilated convolution padded on the left only: output step ``t`` sees input steps ``<= t``; same length."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int, weight_norm: bool) -> None:
        super().__init__()
        self.pad = nn.ConstantPad1d(((kernel_size - 1) * dilation, 0), 0.0)
        conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation)
        self.conv = apply_weight_norm(conv) if weight_norm else conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, c_in, time) -> (batch, c_out, time)
        return self.conv(self.pad(x))


class _TemporalBlock(nn.Module):
    """Two causal convolutions (each → ReLU → dropout) plus a shortcut (identity, or a 1x1 conv), then ReLU."""

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, dilation: int, dropout: float, weight_norm: bool
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _CausalConv(c_in, c_out, kernel_size, dilation, weight_norm),
            nn.ReLU(),
            nn.Dropout(dropout),
            _CausalConv(c_out, c_out, kernel_size, dilation, weight_norm),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.shortcut: nn.Module = nn.Identity() if c_in == c_out else nn.Conv1d(c_in, c_out, 1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, c_in, time) -> (batch, c_out, time)
        return self.act(self.body(x) + self.shortcut(x))


@register_model("tcn")
class TCN(HeadedClassifier):
    """Temporal Convolutional Network: residual blocks of dilated causal convolutions, pooled over time, head.

    Level ``i`` is a residual block of two dilated causal convolutions (dilation ``2**i``, left padding only, so
    step ``t`` of every level depends on input samples ``<= t``), each followed by ReLU and dropout; the shortcut
    is the identity, or a 1x1 convolution on the first level (channel change). No normalisation, so it trains
    with any batch size and length. One output step sees ``1 + 2 (kernel_size - 1) (2**levels - 1)`` samples
    (:func:`receptive_field`; 505 with the defaults, about 16 s at 32 Hz). The embedding is the mean of the last
    level's steps (``pooling="mean"``, default: the whole window) or its last step (``"last"``: only the final
    receptive field; the embedding of a prefix is then the per-step feature at the prefix's end). The time axis
    is never shortened, so any window length >= 1 sample works. After Bai, Kolter and Koltun, "An empirical
    evaluation of generic convolutional and recurrent networks for sequence modeling" (arXiv:1803.01271, 2018);
    weight normalisation is optional and off by default (a plain convolution is one ONNX node; with it the graph
    recomputes each weight from its direction and norm; both export), and the weights keep PyTorch's default
    initialisation (the reference code draws N(0, 0.01)).

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        levels: number of residual blocks, >= 1; level ``i`` has dilation ``2**i``.
        width: channels of every block, >= 1.
        kernel_size: causal convolution kernel, >= 1 (even sizes are fine: the padding is one-sided).
        dropout: dropout probability after every convolution and before the linear head, in [0, 1).
        weight_norm: weight-normalise the convolutions (as in the paper); off by default.
        pooling: ``"mean"`` (global average over time) or ``"last"`` (the last time step).
        hrv_fusion: head over the embedding alone (``"none"``) or fused with the window's HRV features
            (``"concat"``, ``"gated"``; see :mod:`ape_nas.models.heads`).
        n_features: length of the HRV feature vector (a data size set by training, not searched); used only
            when ``hrv_fusion`` is not ``"none"``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        levels: int = 6,
        width: int = 24,
        kernel_size: int = 5,
        dropout: float = 0.1,
        weight_norm: bool = False,
        pooling: str = "mean",
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("levels", levels, 1)
        check_int("width", width, 1)
        check_int("kernel_size", kernel_size, 1)
        dropout = check_dropout("dropout", dropout)
        check_flag("weight_norm", weight_norm)
        self.pooling = check_choice("pooling", pooling, POOLINGS)

        blocks: list[nn.Module] = []
        c_in = in_channels
        for i in range(levels):
            blocks.append(_TemporalBlock(c_in, width, kernel_size, 2**i, dropout, weight_norm))
            c_in = width
        self.features = nn.Sequential(*blocks)
        self.make_head(width, num_classes, dropout, hrv_fusion, n_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time)
        x = self.features(x)  # (batch, width, time), step t causal in the input
        if self.pooling == "last":
            return x[:, :, -1]  # (batch, width)
        return x.mean(dim=-1)  # (batch, width)
