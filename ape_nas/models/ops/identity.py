"""Operation ``identity``: no layer, so a search can choose a stage's depth by choosing its operations."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.ops._layers import check_params


class IdentityOp(nn.Module):
    """The input unchanged. :meth:`ape_nas.models.searched.Searched1d.canonical_arch` drops identity blocks, so a
    network never holds one; building it is still allowed."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        check_params(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels, time)
        return x
