"""Operation ``basic``: ResNet's basic block (two convolutions and a residual)."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.ops._layers import check_params, make_act, make_norm, make_se, same_conv


class BasicOp(nn.Module):
    """conv(``kernel``) → norm → activation → conv(``kernel``) → norm (→ SE), added to the input, → activation.
    After He et al., "Deep residual learning for image recognition" (CVPR 2016)."""

    def __init__(
        self, channels: int, *, kernel: int = 7, se: bool = False, act: str = "relu", norm: str = "batch"
    ) -> None:
        super().__init__()
        check_params(channels, kernel=kernel, se=se, act=act, norm=norm)
        bias = norm == "none"
        self.body = nn.Sequential(
            same_conv(channels, channels, kernel, bias=bias),
            make_norm(norm, channels),
            make_act(act),
            same_conv(channels, channels, kernel, bias=bias),
            make_norm(norm, channels),
            make_se(se, channels),
        )
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time)
        return self.act(x + self.body(x))
