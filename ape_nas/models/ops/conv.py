"""Operation ``conv``: convolution → norm → activation (→ squeeze-and-excitation)."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.ops._layers import check_params, make_act, make_norm, make_se, same_conv


class ConvOp(nn.Module):
    """'Same'-padded convolution of ``kernel`` → norm → activation, optionally followed by squeeze-and-excitation."""

    def __init__(
        self, channels: int, *, kernel: int = 7, se: bool = False, act: str = "relu", norm: str = "batch"
    ) -> None:
        super().__init__()
        check_params(channels, kernel=kernel, se=se, act=act, norm=norm)
        self.conv = same_conv(channels, channels, kernel, bias=norm == "none")
        self.norm = make_norm(norm, channels)
        self.act = make_act(act)
        self.se = make_se(se, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time)
        return self.se(self.act(self.norm(self.conv(x))))
