"""Small Transformer-encoder family (``transformer``) over patches of the window."""

from __future__ import annotations

import math

import torch
from torch import nn

from ape_nas.models.cnn import check_choice, check_dropout, check_int
from ape_nas.models.heads import HeadedClassifier
from ape_nas.models.registry import register_model

EMBEDDINGS = ("patch", "conv")
POSITIONALS = ("sinusoidal", "conv")
POOLINGS = ("mean", "cls")
POS_KERNEL = 7  # kernel of the depthwise positional convolution


class _PatchEmbedding(nn.Module):
    """Windows → one token per ``patch`` samples: ``ceil(time / patch)`` tokens, the last one zero-padded.

    ``patch``: Conv1d with kernel = stride = ``patch`` after ``patch - 1`` zeros on the right (constant padding,
    so the token count follows the length in an exported graph). ``conv``: overlapping Conv1d (kernel
    ``2 patch - 1``, stride ``patch``, ``patch - 1`` zeros each side; the same token count) → GELU → 1x1 conv.
    """

    def __init__(self, in_channels: int, d_model: int, patch: int, kind: str) -> None:
        super().__init__()
        if kind == "patch":
            self.proj: nn.Module = nn.Sequential(
                nn.ConstantPad1d((0, patch - 1), 0.0), nn.Conv1d(in_channels, d_model, patch, stride=patch)
            )
        else:
            self.proj = nn.Sequential(
                nn.Conv1d(in_channels, d_model, 2 * patch - 1, stride=patch, padding=patch - 1),
                nn.GELU(),
                nn.Conv1d(d_model, d_model, 1),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time) -> (batch, ceil(time / patch), d_model)
        return self.proj(x).transpose(1, 2)


class _SinusoidalPosition(nn.Module):
    """Adds the sinusoidal position code of Vaswani et al., computed for the tokens at hand (any count).

    Positions come from a cumulative sum over the token axis, not from a table or ``arange(length)``, so an
    exported graph computes them for whatever length it is given."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        half = (d_model + 1) // 2
        inv_freq = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / max(half, 1)))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (ceil(d_model / 2),)
        self.d_model = d_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, tokens, d_model)
        pos = torch.ones_like(x[:1, :, :1]).cumsum(dim=1) - 1.0  # (1, tokens, 1): 0, 1, 2, ...
        angles = pos * self.inv_freq  # (1, tokens, ceil(d_model / 2))
        code = torch.cat([angles.sin(), angles.cos()], dim=-1)[:, :, : self.d_model]  # (1, tokens, d_model)
        return x + code


class _ConvPosition(nn.Module):
    """Adds a depthwise convolution of the tokens (conditional positional encoding, Chu et al. 2023)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, POS_KERNEL, padding=POS_KERNEL // 2, groups=d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, tokens, d_model) -> (batch, tokens, d_model)
        return x + self.conv(x.transpose(1, 2)).transpose(1, 2)


class _SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention, written out (one graph in every exporter, no fused kernel)."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (d_model // heads) ** -0.5
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, tokens, d_model)
        q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        # q, k, v: (batch, heads, tokens, d_model / heads)
        weights = self.drop(torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1))  # (batch, heads, t, t)
        return self.out((weights @ v).transpose(1, 2).flatten(2))  # (batch, tokens, d_model)


class _EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer: x + attention(LN(x)), then x + feed-forward(LN(x))."""

    def __init__(self, d_model: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = _SelfAttention(d_model, heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * d_model, d_model),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, tokens, d_model) -> (batch, tokens, d_model)
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.ff(self.norm2(x)))


@register_model("transformer")
class Transformer(HeadedClassifier):
    """Small Transformer encoder: patch or conv token embedding, positional code, pre-norm layers, pooled, head.

    The window is cut into ``ceil(time / patch)`` tokens of ``d_model`` channels (``embedding="patch"``: one
    linear projection per non-overlapping patch, as in ViT/PatchTST; ``"conv"``: an overlapping strided
    convolution → GELU → 1x1 convolution). The last patch is zero-padded, so a window shorter than one patch is
    one token. Position is added for any token count: ``positional="sinusoidal"`` computes the fixed code of
    Vaswani et al. on the fly from the number of tokens; ``"conv"`` adds a learnable depthwise convolution of
    the tokens (kernel 7; Chu et al., "Conditional positional encodings for vision transformers", ICLR 2023).
    ``layers`` pre-norm encoder layers (multi-head self-attention, feed-forward of ``ff_mult * d_model`` with
    GELU) and a final LayerNorm follow; the embedding is the mean over tokens (``pooling="mean"``) or the
    output of a learnable class token prepended to them (``"cls"``). LayerNorm only, so any batch size and
    window length >= 1 sample works. After Vaswani et al., "Attention is all you need" (NeurIPS 2017), and Nie
    et al., "A time series is worth 64 words" (ICLR 2023).

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        embedding: ``"patch"`` (kernel = stride = ``patch``) or ``"conv"`` (overlapping, stride ``patch``).
        patch: samples per token, >= 1.
        d_model: token channels, >= 1 and a multiple of ``heads``.
        heads: attention heads, >= 1.
        layers: encoder layers, >= 1.
        ff_mult: feed-forward width as a multiple of ``d_model``, >= 1.
        positional: ``"sinusoidal"`` (fixed, computed for the length) or ``"conv"`` (learnable, depthwise).
        pooling: ``"mean"`` over tokens or ``"cls"`` (a class token's output).
        dropout: dropout probability on attention weights, residual branches and before the head, in [0, 1).
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
        embedding: str = "patch",
        patch: int = 16,
        d_model: int = 32,
        heads: int = 4,
        layers: int = 3,
        ff_mult: int = 2,
        positional: str = "conv",
        pooling: str = "mean",
        dropout: float = 0.1,
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_choice("embedding", embedding, EMBEDDINGS)
        check_int("patch", patch, 1)
        check_int("d_model", d_model, 1)
        check_int("heads", heads, 1)
        if d_model % heads:
            raise ValueError(f"d_model must be a multiple of heads ({heads}), got {d_model!r}")
        check_int("layers", layers, 1)
        check_int("ff_mult", ff_mult, 1)
        check_choice("positional", positional, POSITIONALS)
        self.pooling = check_choice("pooling", pooling, POOLINGS)
        dropout = check_dropout("dropout", dropout)

        self.tokens = _PatchEmbedding(in_channels, d_model, patch, embedding)
        self.position: nn.Module = (
            _SinusoidalPosition(d_model) if positional == "sinusoidal" else _ConvPosition(d_model)
        )
        if pooling == "cls":
            self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.encoder = nn.Sequential(*(_EncoderLayer(d_model, heads, ff_mult, dropout) for _ in range(layers)))
        self.norm = nn.LayerNorm(d_model)
        self.make_head(d_model, num_classes, dropout, hrv_fusion, n_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time)
        z = self.position(self.tokens(x))  # (batch, tokens, d_model), tokens = ceil(time / patch)
        if self.pooling == "cls":
            z = torch.cat([self.cls.expand_as(z[:, :1]), z], dim=1)  # (batch, 1 + tokens, d_model)
        z = self.norm(self.encoder(z))  # (batch, [1 +] tokens, d_model)
        return z[:, 0] if self.pooling == "cls" else z.mean(dim=1)  # (batch, d_model)
