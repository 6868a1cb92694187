"""The classification head every family shares, with the option of fusing the window's HRV feature vector.

Every family subclasses :class:`HeadedClassifier`: it builds its feature extractor, implements :meth:`embed`
(windows → one vector per window) and calls :meth:`~HeadedClassifier.make_head`. The head is chosen by the
architecture argument ``hrv_fusion`` that every family therefore has:

* ``none`` (default): dropout → linear layer on the embedding. The network ignores any HRV features it is
  given; its parameters are named exactly as before the option existed (``head.weight``, ``head.bias``), so old
  checkpoints load.
* ``concat``: dropout → linear layer on ``[embedding, features]``. The features are the window's HRV features
  transformed as the HRV baseline transforms them (:class:`FeatureInput`), so the baseline's logistic
  regression is the special case of zero embedding weights: a searched model can start from what the baseline
  knows.
* ``gated``: as ``concat``, but the embedding is first scaled channel by channel by ``2·sigmoid(W f + b)``, a
  gate computed from the features (FiLM-style; W and b start at zero, so the gate starts at 1 and the model at
  ``concat``).

Contract: ``forward(x, features=None)`` with ``x`` (batch, channels, time) and ``features`` (batch,
n_features) float → (batch, num_classes) logits. ``features`` are the window's raw HRV features
(:data:`ape_nas.hrv.FEATURE_NAMES`; z-scored within the subject where the model was trained so), NaN where a
feature could not be computed: the fitted part of the baseline's transform (column choice, ``sign·log1p``,
median imputation, standardisation; statistics of the training subjects only) is the network's first layer,
:class:`FeatureInput`, whose statistics are buffers (in every checkpoint's state dict and in the ONNX graph).
So an ensemble of members fitted on different subjects still takes one feature vector. A fusing network
called without features raises :class:`MissingFeaturesError`; ``n_features`` (the length of the feature vector)
is a data size like ``in_channels``, passed by :func:`ape_nas.models.build_model`, not an architecture argument.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

FUSIONS = ("none", "concat", "gated")


class MissingFeaturesError(ValueError):
    """A network that fuses HRV features was called without them (or with the wrong number of them)."""


def uses_features(net: nn.Module) -> bool:
    """Does ``net`` need the window's HRV features (``forward(x, features)``)? Any module may say so with a
    ``uses_features`` attribute (e.g. an ensemble of members of which one fuses); plain modules do not."""
    return bool(getattr(net, "uses_features", False))


class FeatureInput(nn.Module):
    """The fitted HRV transform as a layer: raw features (NaN allowed) → ``sign·log1p`` → NaN replaced by the
    training medians → ``(x - mean) / scale`` → times ``keep`` (0 for columns no training window had).

    Statistics are buffers set by :meth:`load_stats` (defaults: identity, every column kept, median 0). The
    numpy reference is :meth:`ape_nas.features.HrvTransform.apply`."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.register_buffer("keep", torch.ones(n_features))
        self.register_buffer("medians", torch.zeros(n_features))
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))

    @torch.no_grad()
    def load_stats(self, keep: Any, medians: Any, mean: Any, scale: Any) -> None:
        """Per-feature statistics (sequences of ``n_features`` numbers; ``scale`` > 0)."""
        for name, values in (("keep", keep), ("medians", medians), ("mean", mean), ("scale", scale)):
            buf = getattr(self, name)
            t = torch.as_tensor(values, dtype=buf.dtype)
            if t.shape != buf.shape:
                raise ValueError(f"{name}: expected {tuple(buf.shape)} values, got {tuple(t.shape)}")
            buf.copy_(t)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        # raw: (batch, n_features), NaN where a feature could not be computed -> (batch, n_features), finite
        finite = torch.isfinite(raw)
        x = torch.where(finite, raw, torch.zeros_like(raw))
        x = torch.sign(x) * torch.log1p(torch.abs(x))
        x = torch.where(finite, x, self.medians)
        return (x - self.mean) / self.scale * self.keep


class FusionHead(nn.Module):
    """Linear layer on ``[embedding, features]``; ``gated``: the embedding scaled by ``2·sigmoid(W f + b)`` first."""

    def __init__(self, embed_dim: int, n_features: int, num_classes: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode == "gated":
            self.gate = nn.Linear(n_features, embed_dim)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)
        self.linear = nn.Linear(embed_dim + n_features, num_classes)

    def forward(self, z: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        # z: (batch, embed_dim), features: (batch, n_features) -> (batch, num_classes)
        if self.mode == "gated":
            z = z * (2.0 * torch.sigmoid(self.gate(features)))
        return self.linear(torch.cat([z, features], dim=1))


class HeadedClassifier(nn.Module):
    """Base of every family: ``embed`` (windows → vectors) plus the shared head (see the module docstring)."""

    hrv_fusion: str = "none"
    n_features: int = 0

    def make_head(self, embed_dim: int, num_classes: int, dropout: float, hrv_fusion: Any, n_features: Any) -> None:
        """Build the head; ``hrv_fusion`` must be one of :data:`FUSIONS`, and a fusing head needs
        ``n_features >= 1`` (ValueError naming the argument otherwise)."""
        if hrv_fusion not in FUSIONS:
            raise ValueError(f"hrv_fusion must be one of {', '.join(repr(f) for f in FUSIONS)}, got {hrv_fusion!r}")
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 0:
            raise ValueError(f"n_features must be an integer >= 0, got {n_features!r}")
        if hrv_fusion != "none" and n_features < 1:
            raise ValueError(
                f"hrv_fusion {hrv_fusion!r} needs the window's HRV features, but n_features is {n_features} "
                "(no HRV feature is available for these windows)"
            )
        self.hrv_fusion = hrv_fusion
        self.n_features = n_features if hrv_fusion != "none" else 0
        self.dropout = nn.Dropout(dropout)
        if hrv_fusion == "none":
            self.head: nn.Module = nn.Linear(embed_dim, num_classes)
        else:
            self.feature_input = FeatureInput(n_features)
            self.head = FusionHead(embed_dim, n_features, num_classes, hrv_fusion)

    @property
    def uses_features(self) -> bool:
        return self.hrv_fusion != "none"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, time) → (batch, embed_dim)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        # x: (batch, in_channels, time), features: (batch, n_features) or None -> (batch, num_classes)
        z = self.dropout(self.embed(x))
        if self.hrv_fusion == "none":
            return self.head(z)  # features, if any, are not used
        if features is None:
            raise MissingFeaturesError(
                f"this network fuses HRV features (hrv_fusion={self.hrv_fusion!r}): call it as net(x, features) "
                f"with features of shape (batch, {self.n_features})"
            )
        if features.dim() != 2 or features.shape[1] != self.n_features:
            raise MissingFeaturesError(
                f"features must have shape (batch, {self.n_features}), got {tuple(features.shape)}"
            )
        return self.head(z, self.feature_input(features.to(z.dtype)))
