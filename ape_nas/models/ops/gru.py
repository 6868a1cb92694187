"""Operation ``gru``: a bidirectional GRU over time with a residual."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.ops._layers import check_params, make_norm


class GruOp(nn.Module):
    """Bidirectional GRU of ``ceil(channels / 2)`` hidden units per direction → 1x1 projection back to
    ``channels`` → norm, added to the input. Uses ``norm`` only (the GRU's gates are its nonlinearity; no
    ``kernel``, ``act`` or ``se``). Its time is linear in the length but sequential: slower than a convolution."""

    def __init__(self, channels: int, *, norm: str = "batch") -> None:
        super().__init__()
        check_params(channels, norm=norm)
        hidden = (channels + 1) // 2
        self.gru = nn.GRU(channels, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Conv1d(2 * hidden, channels, 1, bias=norm == "none")
        self.norm = make_norm(norm, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time)
        h, _ = self.gru(x.transpose(1, 2))  # (batch, time, 2 * hidden)
        return x + self.norm(self.proj(h.transpose(1, 2)))  # (batch, channels, time)
