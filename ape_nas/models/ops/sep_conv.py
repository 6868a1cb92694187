"""Operation ``sep_conv``: depthwise-separable convolution → norm → activation (→ squeeze-and-excitation)."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.ops._layers import check_params, make_act, make_norm, make_se, same_conv


class SepConvOp(nn.Module):
    """Depthwise convolution of ``kernel`` → pointwise 1x1 convolution → norm → activation (→ SE): the receptive
    field of ``conv`` at about ``1/kernel`` of its weights."""

    def __init__(
        self, channels: int, *, kernel: int = 7, se: bool = False, act: str = "relu", norm: str = "batch"
    ) -> None:
        super().__init__()
        check_params(channels, kernel=kernel, se=se, act=act, norm=norm)
        self.depthwise = same_conv(channels, channels, kernel, groups=channels, bias=False)
        self.pointwise = nn.Conv1d(channels, channels, 1, bias=norm == "none")
        self.norm = make_norm(norm, channels)
        self.act = make_act(act)
        self.se = make_se(se, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time)
        return self.se(self.act(self.norm(self.pointwise(self.depthwise(x)))))
