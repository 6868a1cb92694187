"""Recurrent family (``rnn``): GRU or LSTM, optionally behind a strided-convolution front end."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.cnn import check_choice, check_dropout, check_int
from ape_nas.models.heads import HeadedClassifier
from ape_nas.models.registry import register_model
from ape_nas.models.tcn import check_flag

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


@register_model("rnn")
class RNN(HeadedClassifier):
    """Recurrent network: optional strided-conv front end, stacked GRU or LSTM, last hidden state(s), head.

    With ``downsample > 1`` a convolution (kernel ``2 downsample - 1``, stride ``downsample``, padding
    ``downsample - 1``) → ReLU maps the window to ``hidden`` channels at ``ceil(time / downsample)`` steps, so a
    60 s window at 32 Hz (1920 samples) is 480 steps at the default 4; with ``downsample=1`` the recurrent
    layers read the raw samples. ``layers`` stacked GRU or LSTM layers (``cell``) of ``hidden`` units follow
    (batch first; dropout between layers). The embedding is the final hidden state of the top layer (``h_n``;
    for an LSTM its hidden, not its cell state); bidirectional: the forward direction's state after the last
    step and the backward direction's after the first, concatenated (``2 hidden``). No normalisation, so any
    batch size and window length >= 1 sample works. The recurrent baseline of benchmarks such as Strodthoff et
    al., "Deep learning for ECG analysis: benchmarks and insights from PTB-XL" (IEEE JBHI 2021; an LSTM and a
    bidirectional LSTM, pooled over all steps there), summarised here by the last state; cells of Hochreiter and
    Schmidhuber (1997) and Cho et al. (2014).

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        cell: ``"gru"`` or ``"lstm"``.
        hidden: hidden units per layer and direction (and front-end channels), >= 1.
        layers: stacked recurrent layers, >= 1.
        bidirectional: run each layer in both directions.
        downsample: stride of the convolutional front end, >= 1; 1 = no front end.
        dropout: dropout probability between recurrent layers and before the linear head, in [0, 1).
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
        cell: str = "gru",
        hidden: int = 48,
        layers: int = 2,
        bidirectional: bool = False,
        downsample: int = 4,
        dropout: float = 0.1,
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_choice("cell", cell, tuple(CELLS))
        check_int("hidden", hidden, 1)
        check_int("layers", layers, 1)
        check_flag("bidirectional", bidirectional)
        check_int("downsample", downsample, 1)
        dropout = check_dropout("dropout", dropout)

        if downsample > 1:
            k = 2 * downsample - 1
            self.frontend: nn.Module = nn.Sequential(
                nn.Conv1d(in_channels, hidden, k, stride=downsample, padding=downsample - 1), nn.ReLU()
            )
            c_in = hidden
        else:
            self.frontend = nn.Identity()
            c_in = in_channels
        self.directions = 2 if bidirectional else 1
        self.rnn = CELLS[cell](
            c_in,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.make_head(self.directions * hidden, num_classes, dropout, hrv_fusion, n_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time)
        x = self.frontend(x).transpose(1, 2)  # (batch, ceil(time / downsample), hidden or in_channels)
        _, state = self.rnn(x)
        h_n = state[0] if isinstance(state, tuple) else state  # (layers * directions, batch, hidden); LSTM: h, not c
        return h_n[-self.directions :].transpose(0, 1).flatten(1)  # (batch, directions * hidden)
