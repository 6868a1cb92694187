"""Operation ``inception``: parallel convolutions of three kernels and a max-pool branch, with a residual."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.inception import branch_kernels
from ape_nas.models.ops._layers import EdgeMaxPool, check_params, make_act, make_norm, make_se, same_conv

BRANCHES = 4


def branch_widths(channels: int) -> list[int]:
    """``channels`` split over the 4 branches, the first ones one wider when it does not divide (some are 0 when
    ``channels < 4``; those branches are left out)."""
    return [channels // BRANCHES + (1 if i < channels % BRANCHES else 0) for i in range(BRANCHES)]


class InceptionOp(nn.Module):
    """1x1 bottleneck to ``max(1, channels // 4)`` → parallel convolutions of kernels ``kernel``, ``kernel//2`` and
    ``kernel//4`` (each made odd, see :func:`ape_nas.models.inception.branch_kernels`), plus max-pool(3) → 1x1 conv
    of the input; concatenated to ``channels`` (:func:`branch_widths`) → norm → activation (→ SE), added to the
    input. After Ismail Fawaz et al., "InceptionTime" (2020)."""

    def __init__(
        self, channels: int, *, kernel: int = 7, se: bool = False, act: str = "relu", norm: str = "batch"
    ) -> None:
        super().__init__()
        check_params(channels, kernel=kernel, se=se, act=act, norm=norm)
        bottleneck = max(1, channels // BRANCHES)
        widths = branch_widths(channels)
        bias = norm == "none"
        self.bottleneck = nn.Conv1d(channels, bottleneck, 1, bias=False)
        self.convs = nn.ModuleList(
            same_conv(bottleneck, w, k, bias=bias) for w, k in zip(widths[:3], branch_kernels(kernel), strict=True) if w
        )
        self.pool_branch = (
            nn.Sequential(EdgeMaxPool(3, 1), nn.Conv1d(channels, widths[-1], 1, bias=bias)) if widths[-1] else None
        )
        self.norm = make_norm(norm, channels)
        self.act = make_act(act)
        self.se = make_se(se, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time)
        z = self.bottleneck(x)  # (batch, bottleneck, time)
        branches = [conv(z) for conv in self.convs]  # (batch, widths[i], time) each
        if self.pool_branch is not None:
            branches.append(self.pool_branch(x))  # (batch, widths[3], time)
        return x + self.se(self.act(self.norm(torch.cat(branches, dim=1))))  # (batch, channels, time)
