"""Operation ``tcn``: a temporal-convolution residual block of two dilated convolutions."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.ops._layers import check_params, make_act, make_norm, make_se, same_conv


class TcnOp(nn.Module):
    """Two dilated convolutions (``kernel``, ``dilation``), each → norm → activation (→ SE), added to the input.

    The padding is 'same' (symmetric), so the block is non-causal: a window is classified as a whole and every
    output step may see the future. The receptive field grows by ``2 * dilation * (kernel - 1)`` samples. After
    Bai et al., "An empirical evaluation of generic convolutional and recurrent networks for sequence modeling"
    (2018), without their causal padding and weight normalisation.
    """

    def __init__(
        self,
        channels: int,
        *,
        kernel: int = 7,
        dilation: int = 2,
        se: bool = False,
        act: str = "relu",
        norm: str = "batch",
    ) -> None:
        super().__init__()
        check_params(channels, kernel=kernel, dilation=dilation, se=se, act=act, norm=norm)
        bias = norm == "none"
        self.body = nn.Sequential(
            same_conv(channels, channels, kernel, dilation=dilation, bias=bias),
            make_norm(norm, channels),
            make_act(act),
            same_conv(channels, channels, kernel, dilation=dilation, bias=bias),
            make_norm(norm, channels),
            make_act(act),
            make_se(se, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time)
        return x + self.body(x)
