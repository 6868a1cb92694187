"""1-D ResNet family (``resnet1d``)."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.cnn import check_dropout, check_int, check_kernel
from ape_nas.models.heads import HeadedClassifier
from ape_nas.models.registry import register_model


def block_kernels(kernel_size: int) -> tuple[int, int, int]:
    """The three kernels of a residual block, non-increasing and odd: ``(k, k//2 made odd, 3)``.

    Wang et al. use (8, 5, 3); with ``kernel_size=9`` this gives (9, 5, 3). Kernels never exceed ``kernel_size``.
    """
    last = min(3, kernel_size)
    return kernel_size, max(kernel_size // 2 | 1, last), last


class _ResidualBlock(nn.Module):
    """Three conv → BN (→ ReLU) layers plus a shortcut; the first conv carries the stride."""

    def __init__(self, c_in: int, c_out: int, kernels: tuple[int, int, int], stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = c_in
        for i, k in enumerate(kernels):
            layers += [
                nn.Conv1d(c, c_out, k, stride=stride if i == 0 else 1, padding=k // 2, bias=False),
                nn.BatchNorm1d(c_out),
            ]
            if i < len(kernels) - 1:
                layers.append(nn.ReLU(inplace=True))
            c = c_out
        self.body = nn.Sequential(*layers)
        if c_in == c_out and stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            # 1x1 conv (stride 2 gives ceil(time / 2), the same length as the padded body conv)
            self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, c_in, time) -> (batch, c_out, ceil(time / stride))
        return self.act(self.body(x) + self.shortcut(x))


@register_model("resnet1d")
class ResNet1d(HeadedClassifier):
    """1-D ResNet: residual blocks of three convolutions, global average pooling, linear head.

    Each block is conv(k) → BN → ReLU → conv(k//2, odd) → BN → ReLU → conv(3) → BN, added to a shortcut
    (identity, or 1x1 conv + BN when the shape changes), then ReLU. Block ``i >= 1`` with
    ``i % stride_every == 0`` halves the time axis (stride-2 first conv) and doubles the channels; with
    ``stride_every=0`` all blocks keep ``width`` channels and the full length. Works for any window length
    >= 1 sample. After Wang et al., "Time series classification from scratch with deep neural networks: a strong
    baseline" (IJCNN 2017), and He et al., "Deep residual learning for image recognition" (CVPR 2016).

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        blocks: number of residual blocks, >= 1.
        width: channels of the first block, >= 1.
        kernel_size: largest (first) kernel of each block, odd, >= 1; the others are ``k//2`` made odd and 3.
        stride_every: downsample by 2 (and double channels) every this many blocks, >= 0; 0 = never.
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
        blocks: int = 3,
        width: int = 16,
        kernel_size: int = 7,
        stride_every: int = 1,
        dropout: float = 0.1,
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("blocks", blocks, 1)
        check_int("width", width, 1)
        check_kernel("kernel_size", kernel_size)
        check_int("stride_every", stride_every, 0)
        dropout = check_dropout("dropout", dropout)

        kernels = block_kernels(kernel_size)
        layers: list[nn.Module] = []
        c_in, c_out = in_channels, width
        for i in range(blocks):
            stride = 2 if stride_every and i > 0 and i % stride_every == 0 else 1
            if stride == 2:
                c_out *= 2
            layers.append(_ResidualBlock(c_in, c_out, kernels, stride))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.make_head(c_in, num_classes, dropout, hrv_fusion, n_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time)
        x = self.features(x)  # (batch, channels, ceil(time / 2**downsamples))
        return x.mean(dim=-1)  # (batch, channels)
