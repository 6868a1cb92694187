"""Exact-name registry of 1-D operations, the blocks of :class:`ape_nas.models.searched.Searched1d`.

An operation is an ``nn.Module`` mapping ``(batch, channels, time)`` → ``(batch, channels, time)`` for any length
>= 1, defined in its own file of this package with the constructor::

    Op(channels: int, *, <its parameters, keyword-only with defaults>)

The parameters an operation uses are read from that signature (:func:`op_params`), like a family's architecture
arguments; each parameter name has one meaning, one default and one check (``_layers.CHECKS``) across all
operations. A new operation is one file here plus one line in :data:`OPS` (and a check in ``_layers`` for a
parameter no operation had before).

Example:
    >>> from ape_nas.models.ops import build_op, op_params
    >>> op_params("tcn")
    {'kernel': 7, 'dilation': 2, 'se': False, 'act': 'relu', 'norm': 'batch'}
    >>> block = build_op("tcn", 16, kernel=5, dilation=4)
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from ape_nas.errors import UnknownNameError
from ape_nas.models.ops._layers import CHECKS
from ape_nas.models.ops.attention import AttentionOp
from ape_nas.models.ops.basic import BasicOp
from ape_nas.models.ops.conv import ConvOp
from ape_nas.models.ops.gru import GruOp
from ape_nas.models.ops.identity import IdentityOp
from ape_nas.models.ops.inception import InceptionOp
from ape_nas.models.ops.inverted_residual import InvertedResidualOp
from ape_nas.models.ops.sep_conv import SepConvOp
from ape_nas.models.ops.tcn import TcnOp

#: operation name → class (one line per operation, one file per operation)
OPS: dict[str, type[nn.Module]] = {
    "conv": ConvOp,
    "sep_conv": SepConvOp,
    "inverted_residual": InvertedResidualOp,
    "basic": BasicOp,
    "tcn": TcnOp,
    "inception": InceptionOp,
    "attention": AttentionOp,
    "gru": GruOp,
    "identity": IdentityOp,
}


def _signature_params(cls: type[nn.Module]) -> dict[str, Any]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    if not params or params[0].name != "channels":
        raise TypeError(f"{cls.__name__}: constructor must start with (channels), got {[p.name for p in params]}")
    defaults: dict[str, Any] = {}
    for p in params[1:]:
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is inspect.Parameter.empty:
            raise TypeError(f"{cls.__name__}: parameter {p.name!r} must be keyword-only with a default")
        if p.name not in CHECKS:
            raise TypeError(f"{cls.__name__}: parameter {p.name!r} has no check in ape_nas.models.ops._layers.CHECKS")
        defaults[p.name] = p.default
    return defaults


_PARAMS_OF: dict[str, dict[str, Any]] = {name: _signature_params(cls) for name, cls in OPS.items()}


def _union() -> dict[str, Any]:
    union: dict[str, Any] = {}
    for name, params in _PARAMS_OF.items():
        for key, default in params.items():
            if key in union and union[key] != default:
                raise TypeError(f"operation {name!r}: {key!r} defaults to {default!r}, elsewhere to {union[key]!r}")
            union[key] = default
    return {key: union[key] for key in CHECKS if key in union}  # in the order of CHECKS


#: every operation parameter with its default (the union over :data:`OPS`)
PARAMS: dict[str, Any] = _union()


def get_op(name: str) -> type[nn.Module]:
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise UnknownNameError("operation", str(name), list(OPS)) from None


def op_params(name: str) -> dict[str, Any]:
    """The parameters operation ``name`` uses, with their defaults, in its signature's order."""
    get_op(name)
    return dict(_PARAMS_OF[name])


def build_op(name: str, channels: int, **params: Any) -> nn.Module:
    """Operation ``name`` on ``channels`` channels; ``params`` must be parameters it uses (ValueError otherwise)."""
    cls = get_op(name)
    unknown = sorted(set(params) - set(_PARAMS_OF[name]))
    if unknown:
        raise ValueError(
            f"operation {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"expected some of: {', '.join(_PARAMS_OF[name]) or '(none)'}"
        )
    return cls(channels, **params)


__all__ = ["OPS", "PARAMS", "build_op", "get_op", "op_params"]
