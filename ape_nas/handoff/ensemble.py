"""Ensembles in a bundle: one network whose output is the mean of its members' class probabilities.

:class:`MeanProbability` wraps the member networks (each: windows → logits) and returns ``log(mean_k softmax_k)``:
the export path puts a softmax after every network (:class:`ape_nas.handoff.convert.Probabilities`), and
``softmax(log p) = p`` for a probability vector ``p``, so the bundle's one ONNX graph outputs exactly the mean of
the members' probabilities, and is parity-checked like a single model. Members are either the K best distinct
trials of a sweep (``export --ensemble K``) or the fold models of one cross-validated trial
(``export --ensemble folds``); which ones, and how they scored, is recorded in ``bundle.json`` and the card.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class MeanProbability(nn.Module):
    """Members' logits → log of the mean of their softmax probabilities: (batch, classes).

    ``features`` (HRV features of hybrid models) is passed to every member when given."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.log_k = math.log(len(members))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        logp = [
            torch.log_softmax(member(x) if features is None else member(x, features), dim=1) for member in self.members
        ]
        return torch.logsumexp(torch.stack(logp), dim=0) - self.log_k
