"""Operation ``inverted_residual``: MobileNetV2's expand → depthwise → project block with a residual."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.ops._layers import check_params, make_act, make_norm, make_se, same_conv


class InvertedResidualOp(nn.Module):
    """1x1 expansion to ``expand * channels`` → norm → activation → depthwise convolution of ``kernel`` → norm →
    activation (→ SE on the expanded channels) → 1x1 projection → norm, added to the input. After Sandler et al.,
    "MobileNetV2: Inverted residuals and linear bottlenecks" (CVPR 2018)."""

    def __init__(
        self,
        channels: int,
        *,
        kernel: int = 7,
        expand: int = 2,
        se: bool = False,
        act: str = "relu",
        norm: str = "batch",
    ) -> None:
        super().__init__()
        check_params(channels, kernel=kernel, expand=expand, se=se, act=act, norm=norm)
        hidden = channels * expand
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.Conv1d(channels, hidden, 1, bias=bias),
            make_norm(norm, hidden),
            make_act(act),
            same_conv(hidden, hidden, kernel, groups=hidden, bias=bias),
            make_norm(norm, hidden),
            make_act(act),
            make_se(se, hidden),
            nn.Conv1d(hidden, channels, 1, bias=bias),
            make_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time)
        return x + self.body(x)
