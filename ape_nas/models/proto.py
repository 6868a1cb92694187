"""Part-based interpretable family (``protonet1d``): a 1-D prototype network after ProtoPNet.

A window is classified by how closely parts of it resemble learned prototypical parts ("this looks like that"):

* a small conv encoder (conv → norm → ReLU → max-pool blocks, then ProtoPNet's add-on layers: 1×1 conv → ReLU →
  1×1 conv → sigmoid) maps ``(B, C, T)`` to a latent ``(B, D, T')`` with ``T' = ceil(T / pool**depth)``;
* ``M = num_classes · prototypes_per_class`` prototype vectors ``p_m`` live in that latent space, each with a
  class identity (prototype ``m`` belongs to class ``m // prototypes_per_class``; :attr:`prototype_class`);
* the squared L2 distance of every latent position to every prototype, ``d (B, M, T')``, becomes a similarity map
  ``sim = log((d + 1) / (d + 1e-4))``; its maximum over time ``(B, M)`` says how strongly each prototype's part
  occurs anywhere in the window;
* the head, a linear layer ``M → classes`` (the shared :class:`~ape_nas.models.heads.HeadedClassifier` head, so
  ``hrv_fusion`` works as in every family), starts at ProtoPNet's class connections: +1 from a prototype to its
  own class, -0.5 to the others (bias 0).

Each latent position sees an exact span of input samples (:meth:`ProtoNet1d.input_span`; the encoder's
receptive field :attr:`~ProtoNet1d.rf_size`, stride :attr:`~ProtoNet1d.rf_stride`, offset
:attr:`~ProtoNet1d.rf_offset`): that is how a prototype is shown as a piece of signal.

Training: ProtoPNet's cluster and separation costs are the optional regulariser
:meth:`~ProtoNet1d.regularisation_loss` (``cluster_cost · Clst − separation_cost · Sep`` from the last training
forward; :class:`ape_nas.task.CardiacTask` adds it to the loss of every network that has the method). After
training, :meth:`~ProtoNet1d.project_prototypes` records, for every prototype, the nearest latent patch of the
training windows of its own class — the input segment, its distance and its origin — in persistent buffers.
Unlike ProtoPNet's "push" the prototype is *not* replaced: the trained network's predictions stay exactly as
they were validated, and the record is what explanations show (``ape_nas.explain.prototypes``). Not
implemented: ProtoPNet's last-layer stage (L1 on the negative connections).

After Chen et al., "This looks like that: deep learning for interpretable image recognition" (NeurIPS 2019).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ape_nas.models.cnn import NORMS, check_choice, check_dropout, check_int, check_kernel
from ape_nas.models.heads import FusionHead, HeadedClassifier
from ape_nas.models.registry import register_model

SIM_EPS = 1e-4  # ProtoPNet's epsilon in log((d + 1) / (d + eps)): the largest similarity is log(1 / eps) ≈ 9.2
OWN_CLASS, OTHER_CLASS = 1.0, -0.5  # ProtoPNet's initial class-connection weights
ORIGIN_FIELDS = ("window", "start", "label")  # the columns of ProtoNet1d.prototype_origins


class _LastForward:
    """What the last training forward leaves for :meth:`ProtoNet1d.regularisation_loss` (min distances with their
    graph). Never copied, pickled, saved or exported: a copy of the network starts without it."""

    __slots__ = ("min_distances",)

    def __init__(self) -> None:
        self.min_distances: torch.Tensor | None = None

    def __reduce__(self) -> tuple[type, tuple[()]]:  # deepcopy and pickle: an empty record
        return _LastForward, ()


def receptive_field(layers: Sequence[tuple[int, int, int]]) -> tuple[int, int, int]:
    """``(size, stride, offset)`` of a stack of 1-D layers given as ``(kernel, stride, left padding)``: output
    position ``j`` sees the input samples ``[j·stride - offset, j·stride - offset + size)`` (before clipping to
    the window)."""
    size, stride, offset = 1, 1, 0
    for kernel, step, pad in layers:
        size += (kernel - 1) * stride
        offset += pad * stride
        stride *= step
    return size, stride, offset


@register_model("protonet1d")
class ProtoNet1d(HeadedClassifier):
    """Part-based prototype network (ProtoPNet for 1-D signals): conv encoder, learned prototypes, similarity maps.

    The encoder has ``depth`` blocks of conv (``width`` channels, odd ``kernel_size``, 'same' padding) → norm →
    ReLU → max-pool (kernel = stride = ``pool``, ceil mode), then 1×1 conv → ReLU → 1×1 conv → sigmoid to a
    ``latent``-dimensional space. Every class has ``prototypes_per_class`` prototypes there; a window's evidence for
    a prototype is the largest similarity ``log((d + 1) / (d + 1e-4))`` over time, ``d`` the squared distance of a
    latent position to the prototype, and the logits are a linear layer on those ``M`` evidences (initialised
    +1 own class, -0.5 others). Any window length >= 1 sample works (the prototypes need at least one latent
    position; a prototype's part is :attr:`rf_size` samples long). See :mod:`ape_nas.models.proto`.

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        depth: number of conv blocks of the encoder, >= 1.
        width: channels of every conv block, >= 1.
        kernel_size: odd convolution kernel, >= 1.
        pool: max-pool kernel and stride per block, >= 1 (1 = no pooling).
        latent: dimension D of the latent space and of each prototype, >= 1.
        prototypes_per_class: prototypes of each class, >= 1 (``M = num_classes · prototypes_per_class``).
        cluster_cost: weight of ProtoPNet's cluster cost (mean over windows of the smallest distance to a prototype
            of the window's class), >= 0; 0 with ``separation_cost`` 0 switches the regulariser off.
        separation_cost: weight of ProtoPNet's separation cost (the smallest distance to another class's
            prototype, subtracted), >= 0.
        dropout: dropout probability on the prototype evidences before the head, in [0, 1).
        norm: ``"batch"`` (BatchNorm1d) or ``"none"``.
        hrv_fusion: head over the prototype evidences alone (``"none"``) or fused with the window's HRV features
            (``"concat"``, ``"gated"``; see :mod:`ape_nas.models.heads`).
        n_features: length of the HRV feature vector (a data size set by training, not searched); used only
            when ``hrv_fusion`` is not ``"none"``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        depth: int = 3,
        width: int = 16,
        kernel_size: int = 7,
        pool: int = 2,
        latent: int = 16,
        prototypes_per_class: int = 4,
        cluster_cost: float = 0.8,
        separation_cost: float = 0.08,
        dropout: float = 0.0,
        norm: str = "batch",
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("depth", depth, 1)
        check_int("width", width, 1)
        check_kernel("kernel_size", kernel_size)
        check_int("pool", pool, 1)
        check_int("latent", latent, 1)
        check_int("prototypes_per_class", prototypes_per_class, 1)
        self.cluster_cost = _check_weight("cluster_cost", cluster_cost)
        self.separation_cost = _check_weight("separation_cost", separation_cost)
        dropout = check_dropout("dropout", dropout)
        check_choice("norm", norm, NORMS)

        blocks: list[nn.Module] = []
        layers: list[tuple[int, int, int]] = []  # (kernel, stride, left padding) of every layer that moves in time
        c_in = in_channels
        for _ in range(depth):
            block: list[nn.Module] = [
                nn.Conv1d(c_in, width, kernel_size, padding=kernel_size // 2, bias=norm == "none")
            ]
            layers.append((kernel_size, 1, kernel_size // 2))
            if norm == "batch":
                block.append(nn.BatchNorm1d(width))
            block.append(nn.ReLU(inplace=True))
            if pool > 1:
                block.append(nn.MaxPool1d(pool, ceil_mode=True))
                layers.append((pool, pool, 0))
            blocks.append(nn.Sequential(*block))
            c_in = width
        self.features = nn.Sequential(*blocks)
        # ProtoPNet's add-on layers: the latent space is the unit cube, where the prototypes start (uniform)
        self.add_on = nn.Sequential(
            nn.Conv1d(width, latent, 1), nn.ReLU(inplace=True), nn.Conv1d(latent, latent, 1), nn.Sigmoid()
        )
        self.rf_size, self.rf_stride, self.rf_offset = receptive_field(layers)
        self.in_channels, self.num_classes = in_channels, num_classes
        self.n_prototypes = num_classes * prototypes_per_class
        m = self.n_prototypes
        self.prototypes = nn.Parameter(torch.rand(m, latent))  # (M, D)
        self.register_buffer("prototype_class", torch.arange(m) // prototypes_per_class)  # (M,) class of each
        # the nearest training patch of each prototype (project_prototypes); before projection: zeros, inf, -1
        self.register_buffer("prototype_segments", torch.zeros(m, in_channels, self.rf_size))  # (M, C, rf_size)
        self.register_buffer("prototype_distances", torch.full((m,), math.inf))  # (M,) squared latent distance
        self.register_buffer("prototype_origins", torch.full((m, len(ORIGIN_FIELDS)), -1, dtype=torch.long))
        self._last = _LastForward()
        self.make_head(m, num_classes, dropout, hrv_fusion, n_features)
        with torch.no_grad():
            connection = torch.full((num_classes, m), OTHER_CLASS)
            connection[self.prototype_class, torch.arange(m)] = OWN_CLASS
            linear = self.head.linear if isinstance(self.head, FusionHead) else self.head
            linear.weight[:, :m] = connection
            linear.bias.zero_()

    # ---- the forward path ------------------------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, in_channels, time) → latent (batch, latent, ceil(time / pool**depth)), values in (0, 1)."""
        return self.add_on(self.features(x))

    def distances(self, z: torch.Tensor) -> torch.Tensor:
        """Squared L2 distance of every latent position to every prototype: (batch, D, T') → (batch, M, T')."""
        # ||z||² - 2 p·z + ||p||², the cross term a 1×1 convolution (counted as MACs, one ONNX Conv)
        z2 = (z * z).sum(dim=1, keepdim=True)  # (batch, 1, T')
        pz = F.conv1d(z, self.prototypes[:, :, None])  # (batch, M, T')
        p2 = (self.prototypes * self.prototypes).sum(dim=1)[None, :, None]  # (1, M, 1)
        return torch.clamp(z2 - 2.0 * pz + p2, min=0.0)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time) -> (batch, M): the largest similarity of each prototype over time
        d = self.distances(self.encode(x))  # (batch, M, T')
        min_d = d.amin(dim=2)  # (batch, M); sim is decreasing in d, so max sim = sim(min d)
        if self.training:
            self._last.min_distances = min_d
        return torch.log((min_d + 1.0) / (min_d + SIM_EPS))

    # ---- training --------------------------------------------------------------------------------------------

    def regularisation_loss(self, y: torch.Tensor) -> torch.Tensor:
        """ProtoPNet's ``cluster_cost · Clst − separation_cost · Sep`` of the last training forward (and forgets
        it). ``y``: its class indices ``(batch,)`` or class probabilities ``(batch, classes)`` (mixup), which weight
        each class's terms. ``Clst``: mean over windows of the smallest distance from any latent position to a
        prototype of the window's class; ``Sep``: the same to a prototype of another class (0 with one class).
        Zero when no training forward came before or both weights are 0."""
        min_d, self._last.min_distances = self._last.min_distances, None
        if min_d is None or (self.cluster_cost == 0 and self.separation_cost == 0):
            return self.prototypes.new_zeros(())
        k = self.num_classes
        target = y.to(min_d.dtype) if y.dim() == 2 else F.one_hot(y.long(), k).to(min_d.dtype)  # (batch, K)
        own = self.prototype_class[None, :] == torch.arange(k, device=min_d.device)[:, None]  # (K, M)
        inf = torch.full_like(min_d[:, None, :], math.inf)
        to_own = torch.where(own[None], min_d[:, None, :], inf).amin(dim=2)  # (batch, K)
        loss = self.cluster_cost * (target * to_own).sum(dim=1).mean()
        if k > 1:
            to_other = torch.where(~own[None], min_d[:, None, :], inf).amin(dim=2)  # (batch, K)
            loss = loss - self.separation_cost * (target * to_other).sum(dim=1).mean()
        return loss

    @torch.no_grad()
    def project_prototypes(self, batches: Iterable[Sequence[torch.Tensor]], indices: Any = None) -> None:
        """Record each prototype's nearest training patch: over every latent position of the windows of the
        prototype's own class, the one of smallest squared distance (the first of equal ones). The prototypes are
        not moved: predictions are unchanged. Run in eval mode (norm statistics untouched); the mode is restored.

        ``batches``: the training windows as batches ``(x, y)`` or ``(x, features, y)`` (features unused; ``y``
        class indices or probabilities), unaugmented, in a fixed order. ``indices``: the window ids to record,
        ``indices[i]`` for the i-th window of ``batches`` (default: i). Fills :attr:`prototype_segments`
        ``(M, C, rf_size)`` (the input samples of the patch's span, zeros where it reaches past the window),
        :attr:`prototype_distances` ``(M,)`` and :attr:`prototype_origins` ``(M, 3)``: window id, first sample
        of the span (negative where it starts before the window), label. A prototype whose class has no training
        window keeps distance inf and origin -1.

        Example:
            >>> net.project_prototypes(DataLoader(TensorDataset(x, y), batch_size=256))
        """
        was_training = self.training
        self.eval()
        m = self.n_prototypes
        device = self.prototypes.device
        best = torch.full((m,), math.inf, device=device)
        segments = torch.zeros_like(self.prototype_segments)
        origins = torch.full_like(self.prototype_origins, -1)
        seen = 0
        try:
            for batch in batches:
                x, y = batch[0].to(device=device, dtype=self.prototypes.dtype), batch[-1].to(device)
                labels = y.argmax(dim=1) if y.dim() == 2 else y.long()  # (batch,)
                d = self.distances(self.encode(x))  # (batch, M, T')
                own = labels[:, None] == self.prototype_class[None, :]  # (batch, M)
                d = torch.where(own[:, :, None], d, torch.full_like(d, math.inf))
                t_latent = d.shape[2]
                value, where = d.permute(1, 0, 2).reshape(m, -1).min(dim=1)  # (M,): over windows × positions
                for p in torch.nonzero(value < best).flatten().tolist():
                    b, j = divmod(int(where[p]), t_latent)
                    start = j * self.rf_stride - self.rf_offset
                    best[p] = value[p]
                    segments[p] = _crop(x[b], start, self.rf_size)
                    window = seen + b if indices is None else int(indices[seen + b])
                    origins[p] = torch.tensor([window, start, int(labels[b])])
                seen += len(x)
        finally:
            self.train(was_training)
        self.prototype_segments.copy_(segments)
        self.prototype_distances.copy_(best)
        self.prototype_origins.copy_(origins)

    # ---- native explanation API ------------------------------------------------------------------------------

    @property
    def projected(self) -> bool:
        """Has every prototype a recorded nearest training patch (:meth:`project_prototypes`)?"""
        return bool(torch.isfinite(self.prototype_distances).all())

    def prototype_similarity(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Similarity maps ``log((d + 1) / (d + 1e-4))``: (batch, in_channels, time) → (batch, M, T'); latent
        position ``j`` sees the input samples :meth:`input_span` ``(j)``. ``features`` are accepted for the common
        signature and not used (HRV features enter only the head)."""
        d = self.distances(self.encode(x))
        return torch.log((d + 1.0) / (d + SIM_EPS))

    def class_connection(self) -> torch.Tensor:
        """The head's weights from the prototype evidences to the logits, (num_classes, M) (a fusing head's
        feature columns left out); ``logits = class_connection() @ max_t sim + bias`` without HRV fusion."""
        linear = self.head.linear if isinstance(self.head, FusionHead) else self.head
        return linear.weight[:, : self.n_prototypes]

    def latent_length(self, time: int) -> int:
        """T', the latent positions of a window of ``time`` samples: ``ceil(time / pool**depth)``."""
        return -(-time // self.rf_stride)

    def input_span(self, position: int, time: int | None = None) -> tuple[int, int]:
        """The input samples ``[start, stop)`` latent position ``position`` sees (exact: every sample outside it
        leaves that position unchanged); clipped to ``[0, time)`` when the window length ``time`` is given."""
        start = position * self.rf_stride - self.rf_offset
        stop = start + self.rf_size
        return (start, stop) if time is None else (max(start, 0), min(stop, time))


def _check_weight(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _crop(x: torch.Tensor, start: int, size: int) -> torch.Tensor:
    """Samples ``[start, start + size)`` of one window (channels, time), zeros where the span leaves it."""
    out = x.new_zeros(x.shape[0], size)
    lo, hi = max(start, 0), min(start + size, x.shape[1])
    if hi > lo:
        out[:, lo - start : hi - start] = x[:, lo:hi]
    return out
