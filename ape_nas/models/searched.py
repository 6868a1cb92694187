"""Op-level composable family (``searched1d``): a network built entirely from a plain-data genome.

The genome is the family's architecture arguments (stem, ``stages``, head); each stage is a transition (downsampling
and/or a channel change) followed by blocks, each block one operation of :mod:`ape_nas.models.ops` with its
parameters. :meth:`Searched1d.canonical_arch` gives every genome one canonical form, so that two genomes that build
the same network compare equal (and a search can recognise a network it has already trained).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ape_nas.models.cnn import check_choice, check_dropout, check_int, check_kernel
from ape_nas.models.heads import FUSIONS, HeadedClassifier
from ape_nas.models.ops import OPS, PARAMS, build_op, op_params
from ape_nas.models.ops._layers import CHECKS, BatchNorm, EdgeMaxPool, as_int, make_norm, same_conv
from ape_nas.models.ops.attention import effective_heads
from ape_nas.models.registry import SIZE_ARGS, register_model

DOWNS = ("stride", "pool", "none")
HEADS = ("gap", "attention", "gru")
STAGE_KEYS = ("width", "down", "blocks")
IDENTITY = "identity"

#: the default stages; the first block of the first stage holds every operation parameter with its default (the
#: search-space loader reads it as the template of the keys a space may set per stage and per block)
DEFAULT_STAGES: list[dict[str, Any]] = [
    {"width": 16, "down": "stride", "blocks": [{"op": "conv", **PARAMS}]},
    {"width": 32, "down": "stride", "blocks": [{"op": "basic", "kernel": 5}]},
]


# ---------------------------------------------------------------------------------------------------------------------
# Canonical genomes (plain data, no torch)
# ---------------------------------------------------------------------------------------------------------------------


def _mapping(path: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{path} must be a mapping, got {value!r}")
    return value


def _sequence(path: str, value: Any) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{path} must be a list, got {value!r}")
    return value


def _unknown_keys(path: str, given: Mapping[str, Any], known: Sequence[str], what: str) -> None:
    unknown = [key for key in given if key not in known]
    if unknown:
        raise ValueError(
            f"{path}: unknown {what} {', '.join(repr(k) for k in unknown)}; expected some of: {', '.join(known)}"
        )


def canonical_block(path: str, block: Any, width: int) -> dict[str, Any] | None:
    """One block in canonical form (``op`` and the parameters that operation uses, defaults filled, in its
    signature's order; ``heads`` as the effective heads on ``width`` channels), or None for ``identity``."""
    block = _mapping(path, block)
    _unknown_keys(path, block, ["op", *PARAMS], "key(s)")
    if "op" not in block:
        raise ValueError(f"{path}: missing key 'op' (one of: {', '.join(OPS)})")
    op = block["op"]
    if not isinstance(op, str) or op not in OPS:
        raise ValueError(f"{path}.op: unknown operation {op!r}; expected one of: {', '.join(OPS)}")
    checked = {key: CHECKS[key](f"{path}.{key}", value) for key, value in block.items() if key != "op"}
    if op == IDENTITY:
        return None
    out: dict[str, Any] = {"op": str(op)}
    for key, default in op_params(op).items():
        out[key] = checked.get(key, default)
    if "heads" in out:
        out["heads"] = effective_heads(width, out["heads"])
    return out


def canonical_stage(path: str, stage: Any) -> dict[str, Any]:
    """One stage in canonical form: ``width``, ``down`` and ``blocks`` (identity blocks dropped); a missing
    ``width`` or ``down`` takes the first default stage's, missing ``blocks`` means none."""
    stage = _mapping(path, stage)
    _unknown_keys(path, stage, STAGE_KEYS, "key(s)")
    width = check_int(f"{path}.width", as_int(stage.get("width", DEFAULT_STAGES[0]["width"])), 1)
    down = str(check_choice(f"{path}.down", stage.get("down", DEFAULT_STAGES[0]["down"]), DOWNS))
    blocks = _sequence(f"{path}.blocks", stage.get("blocks", []))
    canonical = [canonical_block(f"{path}.blocks[{j}]", b, width) for j, b in enumerate(blocks)]
    return {"width": width, "down": down, "blocks": [b for b in canonical if b is not None]}


# ---------------------------------------------------------------------------------------------------------------------
# Layers of the family
# ---------------------------------------------------------------------------------------------------------------------


class _Transition(nn.Module):
    """The start of a stage: ``stride`` (conv k=3 stride 2 → BN → ReLU), ``pool`` (max-pool 2, ceil, then a 1x1
    conv if the width changes) or ``none`` (a 1x1 conv if the width changes)."""

    def __init__(self, c_in: int, c_out: int, down: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if down == "stride":
            layers += [same_conv(c_in, c_out, 3, stride=2, bias=False), BatchNorm(c_out), nn.ReLU()]
        else:
            if down == "pool":
                layers.append(EdgeMaxPool(2, 2))
            if c_in != c_out:
                layers.append(nn.Conv1d(c_in, c_out, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, c_in, time) -> (batch, c_out, ceil(time / 2) or time)
        return self.layers(x)


class _Stage(nn.Module):
    def __init__(self, c_in: int, stage: Mapping[str, Any]) -> None:
        super().__init__()
        width = stage["width"]
        self.down = _Transition(c_in, width, stage["down"])
        self.blocks = nn.Sequential(
            *(build_op(b["op"], width, **{k: v for k, v in b.items() if k != "op"}) for b in stage["blocks"])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, c_in, time) -> (batch, width, ceil(time / 2) or time)
        return self.blocks(self.down(x))


class _MeanPool(nn.Module):
    """Global average pooling over time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time) -> (batch, channels)
        return x.mean(dim=-1)


class _AttentionPool(nn.Module):
    """A learned 1x1 score per time step, softmax over time, the weighted sum of the time steps."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Conv1d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time)
        weights = torch.softmax(self.score(x), dim=-1)  # (batch, 1, time)
        return (x * weights).sum(dim=-1)  # (batch, channels)


class _GruPool(nn.Module):
    """A bidirectional GRU of ``ceil(channels / 2)`` units per direction over time; its two last hidden states
    (the forward one after the last step, the backward one after the first), concatenated."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.hidden = (channels + 1) // 2
        self.gru = nn.GRU(channels, self.hidden, batch_first=True, bidirectional=True)

    @property
    def out_dim(self) -> int:
        return 2 * self.hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time)
        _, h = self.gru(x.transpose(1, 2))  # (2, batch, hidden)
        return torch.cat([h[0], h[1]], dim=1)  # (batch, 2 * hidden)


# ---------------------------------------------------------------------------------------------------------------------
# searched1d
# ---------------------------------------------------------------------------------------------------------------------


@register_model("searched1d")
class Searched1d(HeadedClassifier):
    """Op-level composable network from a plain-data genome: stem, stages of registered operations, pooling head.

    The network is stem → stages → pooling (``head``) → the shared classification head. The stem is a 'same'-padded
    convolution (``stem_kernel``, ``stem_stride``) → BatchNorm → ReLU. Each stage is a mapping::

        {"width": 32, "down": "stride", "blocks": [{"op": "tcn", "kernel": 5, "dilation": 4}, {"op": "attention"}]}

    ``down`` starts the stage: ``stride`` (conv k=3 stride 2 → BN → ReLU, halves the time axis), ``pool`` (max-pool
    2, ceil, halves it; a 1x1 conv if the width changes) or ``none`` (a 1x1 conv if the width changes). Then each
    block of ``blocks`` (possibly none) maps ``width`` channels to ``width`` channels at the same length: ``op`` is an
    operation of :data:`ape_nas.models.ops.OPS` (``conv``, ``sep_conv``, ``inverted_residual``, ``basic``, ``tcn``,
    ``inception``, ``attention``, ``gru``, ``identity``) and the other keys are its parameters (``kernel`` odd,
    ``se`` bool, ``act`` relu/gelu/silu, ``norm`` batch/layer/none, ``expand``, ``dilation``, ``heads``; missing
    ones take :data:`ape_nas.models.ops.PARAMS`' defaults, ones the operation does not use are ignored). A genome,
    e.g. as YAML::

        stem_width: 16
        stages:
          - {width: 16, down: stride, blocks: [{op: conv, kernel: 7}]}
          - {width: 32, down: pool, blocks: [{op: inverted_residual, expand: 4, se: true}, {op: identity}]}
          - {width: 64, down: stride, blocks: [{op: attention, heads: 4}]}
        head: attention

    Works for any window length >= 1 sample (every halving rounds up). :meth:`canonical_arch` gives the genome's
    canonical form (kept as ``self.genome``).

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        stem_width: channels of the stem, >= 1.
        stem_kernel: odd kernel of the stem convolution, >= 1.
        stem_stride: stride of the stem convolution, >= 1 (the time axis becomes ``ceil(time / stem_stride)``).
        stages: list of stage mappings ``{width, down, blocks}`` (see above); may be empty.
        head: pooling over time into the embedding: ``"gap"`` (global average), ``"attention"`` (softmax-weighted
            sum, weights from a learned 1x1 score) or ``"gru"`` (a bidirectional GRU's last hidden states).
        dropout: dropout probability before the linear head, in [0, 1).
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
        stem_width: int = 16,
        stem_kernel: int = 7,
        stem_stride: int = 2,
        stages: list = DEFAULT_STAGES,  # the registry reads defaults from the signature; never mutated
        head: str = "gap",
        dropout: float = 0.1,
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        genome = self.canonical_arch(
            {
                "stem_width": stem_width, "stem_kernel": stem_kernel, "stem_stride": stem_stride, "stages": stages,
                "head": head, "dropout": dropout, "hrv_fusion": hrv_fusion,
            }
        )  # fmt: skip
        self.genome = genome
        width = genome["stem_width"]
        self.stem = nn.Sequential(
            same_conv(in_channels, width, genome["stem_kernel"], stride=genome["stem_stride"], bias=False),
            make_norm("batch", width),
            nn.ReLU(),
        )
        self.stages = nn.ModuleList()
        for stage in genome["stages"]:
            self.stages.append(_Stage(width, stage))
            width = stage["width"]
        if genome["head"] == "attention":
            self.pool: nn.Module = _AttentionPool(width)
            embed_dim = width
        elif genome["head"] == "gru":
            self.pool = _GruPool(width)
            embed_dim = self.pool.out_dim
        else:
            self.pool = _MeanPool()
            embed_dim = width
        self.make_head(embed_dim, num_classes, genome["dropout"], hrv_fusion, n_features)

    @classmethod
    def canonical_arch(cls, arch: Mapping[str, Any]) -> dict[str, Any]:
        """The whole architecture ``arch`` (some or all of the family's arguments) as plain data in one canonical
        form: every argument present (defaults filled), each stage with ``width``, ``down`` and ``blocks``, each
        block with ``op`` and exactly the parameters that operation uses (defaults filled, others dropped; ``heads``
        as ``gcd(width, heads)``), identity blocks dropped, ints as int and bools as bool. Two genomes that build
        the same network have equal canonical forms; it is idempotent and builds no layer.

        Raises ValueError naming the path (e.g. ``stages[1].blocks[0].op``) of an unknown key or operation or a
        bad value.
        """
        arch = _mapping("arch", arch)
        params = inspect.signature(cls.__init__).parameters
        defaults = {
            name: p.default
            for name, p in params.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in SIZE_ARGS
        }
        _unknown_keys("searched1d", arch, list(defaults), "architecture argument(s)")
        values = {**defaults, **arch}
        stages = _sequence("stages", values["stages"])
        return {
            "stem_width": check_int("stem_width", as_int(values["stem_width"]), 1),
            "stem_kernel": check_kernel("stem_kernel", as_int(values["stem_kernel"])),
            "stem_stride": check_int("stem_stride", as_int(values["stem_stride"]), 1),
            "stages": [canonical_stage(f"stages[{i}]", stage) for i, stage in enumerate(stages)],
            "head": str(check_choice("head", values["head"], HEADS)),
            "dropout": check_dropout("dropout", values["dropout"]),
            "hrv_fusion": str(check_choice("hrv_fusion", values["hrv_fusion"], FUSIONS)),
        }

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time)
        x = self.stem(x)  # (batch, stem_width, ceil(time / stem_stride))
        for stage in self.stages:
            x = stage(x)  # (batch, width, ceil(time / 2) or time)
        return self.pool(x)  # (batch, embed_dim)
