"""Fully convolutional network family (``fcn``): the time-series classification baseline of Wang et al. 2017."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.cnn import check_dropout, check_int
from ape_nas.models.heads import HeadedClassifier
from ape_nas.models.registry import register_model


def fcn_kernels(kernel_size: int) -> tuple[int, int, int]:
    """The three kernels: ``(k, 5, 3)``, the later ones never larger than ``k``; ``k=8`` gives the paper's (8, 5, 3)."""
    return kernel_size, min(5, kernel_size), min(3, kernel_size)


def same_padding(kernel_size: int) -> tuple[int, int]:
    """(left, right) zeros that keep the length for a stride-1 kernel of any size: ``k - 1`` in all, the odd one
    on the right (as PyTorch's and Keras' ``padding='same'``)."""
    left = (kernel_size - 1) // 2
    return left, kernel_size - 1 - left


@register_model("fcn")
class FCN(HeadedClassifier):
    """Fully convolutional network of Wang et al.: three conv → BN → ReLU blocks, global average pooling, head.

    The blocks have ``width``, ``2 width`` and ``width`` channels (the paper: 128, 256, 128) and kernels
    ``kernel_size``, 5 and 3 (the paper: 8, 5, 3; :func:`fcn_kernels`). Even kernels such as 8 keep the length
    with asymmetric 'same' padding: an explicit constant pad of ``(k - 1) // 2`` zeros on the left and the rest
    on the right before an unpadded convolution (:func:`same_padding`; an ONNX Pad node, any length). The time
    axis is never shortened, so any window length >= 1 sample works (training mode needs more than one value per
    channel at the batch norms: batch x time > 1). The default ``width`` is 64 (67k parameters) to train on a
    CPU; ``width=128`` is the paper's network (265k parameters at one input channel). The paper has no dropout
    (default 0). After Wang, Yan and Oates, "Time series classification from scratch with deep neural networks:
    a strong baseline" (IJCNN 2017).

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        width: channels of the first and last block (the middle one has twice as many), >= 1.
        kernel_size: kernel of the first block, >= 1 (even allowed); the others are 5 and 3, capped at it.
        dropout: dropout probability before the linear head, in [0, 1).
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
        width: int = 64,
        kernel_size: int = 8,
        dropout: float = 0.0,
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("width", width, 1)
        check_int("kernel_size", kernel_size, 1)
        dropout = check_dropout("dropout", dropout)

        blocks: list[nn.Module] = []
        c_in = in_channels
        for c_out, k in zip((width, 2 * width, width), fcn_kernels(kernel_size), strict=True):
            blocks.append(
                nn.Sequential(
                    nn.ConstantPad1d(same_padding(k), 0.0),
                    nn.Conv1d(c_in, c_out, k, bias=False),
                    nn.BatchNorm1d(c_out),
                    nn.ReLU(inplace=True),
                )
            )
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        self.make_head(width, num_classes, dropout, hrv_fusion, n_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time)
        x = self.features(x)  # (batch, width, time)
        return x.mean(dim=-1)  # (batch, width)
