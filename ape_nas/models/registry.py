"""Exact-name registry of model families.

Every family is an ``nn.Module`` (in practice a :class:`~ape_nas.models.heads.HeadedClassifier`) with one
constructor signature::

    Family(in_channels: int, num_classes: int, *, <arch keyword arguments with defaults>, n_features: int = 0)

and ``forward(x, features=None)``: ``(batch, channels, time)`` windows of any length (and, for a network that
fuses them, the windows' ``(batch, n_features)`` HRV features) → ``(batch, num_classes)`` logits. The accepted
architecture arguments are read from the signature, so a search space can be checked against them before any
trial runs (no guessing with try/except TypeError). ``n_features`` is a data size like ``in_channels``
(:data:`SIZE_ARGS`), not an architecture argument.

Example:
    >>> from ape_nas.models import build_model
    >>> net = build_model("cnn1d", in_channels=1, num_classes=2, depth=3)
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ape_nas.errors import UnknownNameError, UserError
from ape_nas.spec import TrialSpec


@dataclass(frozen=True)
class ModelFamily:
    name: str
    cls: type[nn.Module]
    description: str
    arch_defaults: dict[str, Any]

    @property
    def arch_params(self) -> list[str]:
        return list(self.arch_defaults)


_FAMILIES: dict[str, ModelFamily] = {}

#: keyword-only constructor arguments that are data sizes (set from the data by training), not architecture
SIZE_ARGS = ("n_features",)


class InvalidArchError(UserError, ValueError):
    """An architecture value a family rejects (e.g. an even kernel size); names family and argument."""


def _arch_defaults(cls: type[nn.Module]) -> dict[str, Any]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # drop self
    head = [p.name for p in params[:2]]
    if head != ["in_channels", "num_classes"]:
        raise TypeError(f"{cls.__name__}: constructor must start with (in_channels, num_classes), got {head}")
    missing = [name for name in SIZE_ARGS if name not in {p.name for p in params[2:]}]
    if missing:
        raise TypeError(f"{cls.__name__}: constructor must accept keyword-only {', '.join(missing)} (data sizes)")
    defaults: dict[str, Any] = {}
    for p in params[2:]:
        if p.name in SIZE_ARGS:
            continue
        if p.kind is not inspect.Parameter.KEYWORD_ONLY or p.default is inspect.Parameter.empty:
            raise TypeError(f"{cls.__name__}: architecture argument {p.name!r} must be keyword-only with a default")
        defaults[p.name] = p.default
    return defaults


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register a family under an exact name."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _FAMILIES:
            raise ValueError(f"model family {name!r} registered twice")
        doc = inspect.getdoc(cls) or ""
        _FAMILIES[name] = ModelFamily(name, cls, doc.splitlines()[0] if doc else "", _arch_defaults(cls))
        return cls

    return decorate


def list_models() -> list[str]:
    return sorted(_FAMILIES)


def get_family(name: str) -> ModelFamily:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise UnknownNameError("model family", name, list(_FAMILIES)) from None


def build_model(name: str, in_channels: int, num_classes: int, *, n_features: int = 0, **arch: Any) -> nn.Module:
    """Build a registered family; unknown names or architecture arguments raise a UserError.

    ``n_features``: length of the windows' HRV feature vector, needed when ``arch`` asks for ``hrv_fusion``.
    """
    family = get_family(name)
    unknown = sorted(set(arch) - set(family.arch_defaults))
    if unknown:
        raise UserError(
            f"model family {name!r} has no architecture argument(s) {', '.join(unknown)}; "
            f"expected some of: {', '.join(family.arch_params)}"
        )
    try:
        return family.cls(in_channels, num_classes, n_features=n_features, **arch)
    except ValueError as exc:  # the families validate their arguments with ValueError
        raise InvalidArchError(f"model family {name!r}: {exc}") from None


def arch_defaults() -> dict[str, dict[str, Any]]:
    """Every family's architecture defaults: ``{family: {argument: default}}`` (for :meth:`Space.sample`)."""
    return {name: dict(family.arch_defaults) for name, family in sorted(_FAMILIES.items())}


def canonical_arch(name: str, arch: dict[str, Any]) -> dict[str, Any]:
    """The family's canonical form of ``arch`` (a family whose networks can be described in several ways, such as
    ``searched1d``'s genomes, defines ``canonical_arch``); other families' arguments are already canonical."""
    family = get_family(name)
    canonical = getattr(family.cls, "canonical_arch", None)
    if canonical is None:
        return dict(arch)
    try:
        return canonical(arch)
    except ValueError as exc:
        raise InvalidArchError(f"model family {name!r}: {exc}") from None


def canonical_spec(spec: TrialSpec) -> TrialSpec:
    """``spec`` with its architecture in the family's canonical form: equal networks get equal digests."""
    arch = canonical_arch(spec.model, spec.arch)
    return spec if arch == spec.arch else dataclasses.replace(spec, arch=arch)
