"""InceptionTime-style family (``inception_time``)."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.cnn import check_dropout, check_int, check_kernel
from ape_nas.models.heads import HeadedClassifier
from ape_nas.models.registry import register_model

RESIDUAL_EVERY = 3


def branch_kernels(kernel_size: int) -> tuple[int, int, int]:
    """The three parallel kernels of a module: ``(k, k//2, k//4)``, each made odd (``| 1``).

    The paper uses (40, 20, 10); ``kernel_size=39`` gives (39, 19, 9).
    """
    return kernel_size, kernel_size // 2 | 1, kernel_size // 4 | 1


class _InceptionModule(nn.Module):
    """Bottleneck → three parallel convs, plus max-pool → 1x1 conv; concatenated, BN, ReLU."""

    def __init__(self, c_in: int, filters: int, kernels: tuple[int, int, int], bottleneck: int) -> None:
        super().__init__()
        # as in the paper, the bottleneck is skipped on single-channel input
        if bottleneck > 0 and c_in > 1:
            self.bottleneck: nn.Module = nn.Conv1d(c_in, bottleneck, 1, bias=False)
            c_branch = bottleneck
        else:
            self.bottleneck = nn.Identity()
            c_branch = c_in
        self.convs = nn.ModuleList(nn.Conv1d(c_branch, filters, k, padding=k // 2, bias=False) for k in kernels)
        self.pool_branch = nn.Sequential(
            nn.MaxPool1d(3, stride=1, padding=1),
            nn.Conv1d(c_in, filters, 1, bias=False),
        )
        self.bn = nn.BatchNorm1d(4 * filters)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, c_in, time)
        z = self.bottleneck(x)  # (batch, bottleneck or c_in, time)
        branches = [conv(z) for conv in self.convs]  # 3 x (batch, filters, time)
        branches.append(self.pool_branch(x))  # (batch, filters, time)
        return self.act(self.bn(torch.cat(branches, dim=1)))  # (batch, 4 * filters, time)


class _Shortcut(nn.Module):
    """1x1 conv + BN from the input of a group of modules to its output."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), nn.BatchNorm1d(c_out))

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        # x: (batch, c_out, time), residual: (batch, c_in, time) -> (batch, c_out, time)
        return torch.relu(x + self.proj(residual))


@register_model("inception_time")
class InceptionTime(HeadedClassifier):
    """InceptionTime-style network: inception modules with residual shortcuts, global average pooling, head.

    Each module runs an optional 1x1 bottleneck and three parallel 'same'-padded convolutions of kernels
    ``k``, ``k//2``, ``k//4`` (made odd), plus a max-pool → 1x1 conv branch; the ``4 * filters`` outputs are
    concatenated, batch-normalised and ReLU'd. After every 3 modules a 1x1 conv + BN shortcut from the group's
    input is added (modules left over when ``depth`` is not a multiple of 3 get none). The time axis is never
    shortened, so any window length >= 1 sample works. After Ismail Fawaz et al., "InceptionTime: Finding
    AlexNet for time series classification" (Data Mining and Knowledge Discovery, 2020); one network, not the
    ensemble of five.

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        depth: number of inception modules, >= 1 (the paper uses 6).
        filters: output channels of each of the 4 branches, >= 1 (the paper uses 32).
        kernel_size: largest of the three parallel kernels, odd, >= 1 (the paper uses 40).
        bottleneck: bottleneck channels, >= 0; 0 = no bottleneck (also skipped on single-channel input).
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
        depth: int = 3,
        filters: int = 8,
        kernel_size: int = 31,
        bottleneck: int = 8,
        dropout: float = 0.1,
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("depth", depth, 1)
        check_int("filters", filters, 1)
        check_kernel("kernel_size", kernel_size)
        check_int("bottleneck", bottleneck, 0)
        dropout = check_dropout("dropout", dropout)

        kernels = branch_kernels(kernel_size)
        c_out = 4 * filters
        self.inception = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        c_in = c_res = in_channels
        for i in range(depth):
            self.inception.append(_InceptionModule(c_in, filters, kernels, bottleneck))
            c_in = c_out
            if (i + 1) % RESIDUAL_EVERY == 0:
                self.shortcuts.append(_Shortcut(c_res, c_out))
                c_res = c_out
        self.make_head(c_out, num_classes, dropout, hrv_fusion, n_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time)
        residual = x
        for i, module in enumerate(self.inception):
            x = module(x)  # (batch, 4 * filters, time)
            if (i + 1) % RESIDUAL_EVERY == 0:
                x = self.shortcuts[i // RESIDUAL_EVERY](x, residual)  # (batch, 4 * filters, time)
                residual = x
        return x.mean(dim=-1)  # (batch, 4 * filters)
