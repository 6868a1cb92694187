"""Operation ``attention``: a pre-norm transformer block over time with a convolutional position signal."""

from __future__ import annotations

import math

import torch
from torch import nn

from ape_nas.models.ops._layers import check_params, make_act, same_conv


def effective_heads(channels: int, heads: int) -> int:
    """The heads actually used: ``gcd(channels, heads)``, so that every width splits into equal heads."""
    return math.gcd(channels, heads)


class AttentionOp(nn.Module):
    """Depthwise convolution of ``kernel`` added to the input (a position signal that works for any length), then
    LayerNorm → multi-head self-attention over time (``gcd(channels, heads)`` heads) → residual, and LayerNorm →
    MLP (``channels`` → ``expand * channels`` → activation → ``channels``) → residual. Time and memory grow with
    the square of the length it sees: place it after some downsampling. LayerNorm is fixed (no ``norm``)."""

    def __init__(self, channels: int, *, kernel: int = 7, expand: int = 2, heads: int = 4, act: str = "relu") -> None:
        super().__init__()
        check_params(channels, kernel=kernel, expand=expand, heads=heads, act=act)
        self.heads = effective_heads(channels, heads)
        self.head_dim = channels // self.heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.position = same_conv(channels, channels, kernel, groups=channels, bias=True)
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, expand * channels), make_act(act), nn.Linear(expand * channels, channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time)
        z = (x + self.position(x)).transpose(1, 2)  # (batch, time, channels)
        qkv = self.qkv(self.norm1(z)).unflatten(-1, (3, self.heads, self.head_dim))  # (batch, time, 3, heads, dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (batch, heads, time, dim) each
        weights = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)  # (batch, heads, time, time)
        z = z + self.proj((weights @ v).transpose(1, 2).flatten(2))  # (batch, time, channels)
        z = z + self.mlp(self.norm2(z))  # (batch, time, channels)
        return z.transpose(1, 2)  # (batch, channels, time)
