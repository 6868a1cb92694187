"""Plain 1-D CNN family (``cnn1d``) and the architecture-argument checks shared by every family.

The checks raise :class:`ValueError` whose message names the argument, the value and the expected range, so a
bad search space fails when the model is built, not after an epoch.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
from torch import nn

from ape_nas.models.heads import HeadedClassifier
from ape_nas.models.registry import register_model

# ---------------------------------------------------------------------------------------------------------------------
# Shared validation helpers (also used by resnet.py and inception.py)
# ---------------------------------------------------------------------------------------------------------------------


def check_int(name: str, value: Any, minimum: int) -> int:
    """Require an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_kernel(name: str, value: Any) -> int:
    """Require an odd integer ``>= 1`` (odd kernels keep 'same' padding symmetric)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ValueError(f"{name} must be an odd integer >= 1, got {value!r}")
    return value


def check_dropout(name: str, value: Any) -> float:
    """Require a probability in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """Require one of a fixed set of strings."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_positive(name: str, value: Any, maximum: float) -> float:
    """Require a finite number in ``(0, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= maximum:
        raise ValueError(f"{name} must be a number in (0, {maximum:g}], got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------------------------------
# cnn1d
# ---------------------------------------------------------------------------------------------------------------------

NORMS = ("batch", "none")


@register_model("cnn1d")
class CNN1d(HeadedClassifier):
    """Plain 1-D CNN: conv → norm → ReLU → max-pool blocks, global average pooling, linear head.

    Block ``i`` has ``round(width * growth**i)`` channels; its convolution uses 'same' padding and the max-pool
    (kernel = stride = ``pool``, ceil mode) shortens the time axis by ``pool``. Works for any window length
    >= 1 sample. A fully convolutional baseline in the spirit of Wang et al., "Time series classification from
    scratch with deep neural networks: a strong baseline" (IJCNN 2017).

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        depth: number of conv blocks, >= 1.
        width: channels of the first block, >= 1.
        growth: channel multiplier per block, in (0, 4]; channel counts are rounded to ints (at least 1).
        kernel_size: odd convolution kernel, >= 1.
        pool: max-pool kernel and stride per block, >= 1 (1 = no pooling).
        dropout: dropout probability before the linear head, in [0, 1).
        norm: ``"batch"`` (BatchNorm1d) or ``"none"``.
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
        depth: int = 4,
        width: int = 16,
        growth: float = 1.5,
        kernel_size: int = 7,
        pool: int = 2,
        dropout: float = 0.1,
        norm: str = "batch",
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("depth", depth, 1)
        check_int("width", width, 1)
        growth = check_positive("growth", growth, 4.0)
        check_kernel("kernel_size", kernel_size)
        check_int("pool", pool, 1)
        dropout = check_dropout("dropout", dropout)
        check_choice("norm", norm, NORMS)

        self.channels = [max(1, round(width * growth**i)) for i in range(depth)]
        blocks: list[nn.Module] = []
        c_in = in_channels
        for c_out in self.channels:
            layers: list[nn.Module] = [
                nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=norm == "none"),
            ]
            if norm == "batch":
                layers.append(nn.BatchNorm1d(c_out))
            layers.append(nn.ReLU(inplace=True))
            if pool > 1:
                layers.append(nn.MaxPool1d(pool, ceil_mode=True))
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.make_head(c_in, num_classes, dropout, hrv_fusion, n_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time)
        x = self.features(x)  # (batch, channels[-1], ceil(time / pool**depth))
        return x.mean(dim=-1)  # (batch, channels[-1])
