"""Saliency over time for 1-D windows, through Captum (not re-implemented here).

Every method maps ``(B, C, T)`` windows and ``(B,)`` target classes to ``(B, T)`` relevance over time (float32;
larger = more evidence for the target):

* ``gradcam`` — Captum's ``LayerGradCam`` on a layer with a time axis (default: :func:`default_layer`, the last
  layer of the feature extractor whose output is ``(B, channels, time')``), ReLU'd and linearly upsampled to T.
* ``integrated_gradients`` — Captum's ``IntegratedGradients`` from a flat baseline (each channel's window mean,
  a signal without any beat; zeros would be a signal the network never saw after per-window normalisation),
  ``IG_STEPS`` steps; signed attributions summed over channels.
* ``occlusion`` — Captum's ``Occlusion`` with a window of ``OCCLUSION_S`` seconds (at least 4 samples) sliding by
  half of it, the occluded part set to the same flat baseline; signed, summed over channels.
* ``gradient`` — Captum's ``Saliency`` (absolute input gradient, Simonyan et al. 2014), summed over channels.

A network whose family explains itself natively (``prototype_similarity``: the part-based family) also gets the
method ``prototypes`` (:mod:`ape_nas.explain.prototypes`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ape_nas.errors import UnknownNameError, UserError

METHODS = ("gradcam", "integrated_gradients", "occlusion", "gradient")
NATIVE = "prototypes"
IG_STEPS = 16
OCCLUSION_S = 0.5  # seconds: about half a beat at rest (a QRS and its T wave, or a pulse upstroke and its peak)
CHUNK = 64  # windows per attribution call (bounds memory of IG's interpolation batch)


def available_methods(net: nn.Module) -> list[str]:
    """The methods that apply to ``net``: the four Captum methods, and ``prototypes`` for a part-based network."""
    return [*METHODS, NATIVE] if hasattr(net, "prototype_similarity") else list(METHODS)


def check_methods(names: list[str], net: nn.Module) -> list[str]:
    known = available_methods(net)
    for name in names:
        if name == NATIVE and name not in known:
            raise UserError(f"--method {NATIVE}: only a part-based network (protonet1d) explains itself natively")
        if name not in known:
            raise UnknownNameError("explanation method", name, known)
    return names


def _recorder(seen: dict[str, tuple[int, ...]], name: str) -> Callable[..., None]:
    def hook(_m: nn.Module, _i: Any, out: Any) -> None:  # returns None: the output is left as it is
        if torch.is_tensor(out):
            seen.setdefault(name, tuple(out.shape))

    return hook


def _time_layers(net: nn.Module, in_channels: int, features: torch.Tensor | None) -> list[str]:
    """Names of the modules whose output is ``(B, channels, time')`` with time' > 1, in the order their outputs are
    produced. The time axis is the one that scales with the input length (two probe lengths), so a channels-last
    layer (a transformer's encoder) is not mistaken for one."""
    shapes: dict[int, dict[str, tuple[int, ...]]] = {}
    for length in (512, 1024):
        seen: dict[str, tuple[int, ...]] = {}
        hooks = [module.register_forward_hook(_recorder(seen, name)) for name, module in net.named_modules() if name]
        try:
            with torch.no_grad():
                f = None if features is None else features[:1]
                net(torch.zeros(1, in_channels, length), f)
        finally:
            for h in hooks:
                h.remove()
        shapes[length] = seen
    short, long = shapes[512], shapes[1024]
    return [
        name
        for name, s in short.items()
        if len(s) == 3 and name in long and long[name][1] == s[1] and long[name][2] > s[2] > 1
    ]


def default_layer(net: nn.Module, in_channels: int, features: torch.Tensor | None = None) -> str:
    """The layer Grad-CAM looks at by default: the last channels-first layer with a time axis."""
    layers = _time_layers(net, in_channels, features)
    if not layers:
        raise UserError("gradcam: this network has no layer with a (channels, time) output to look at")
    return layers[-1]


def resolve_layer(net: nn.Module, name: str | None, in_channels: int, features: torch.Tensor | None = None) -> str:
    if name is None:
        return default_layer(net, in_channels, features)
    layers = _time_layers(net, in_channels, features)
    if name not in layers:
        shown = ", ".join(layers[-8:])
        raise UserError(
            f"--layer {name}: not a layer of this network with a (channels, time) output; the last such layers are: "
            f"{shown}"
        )
    return name


def _module(net: nn.Module, name: str) -> nn.Module:
    return dict(net.named_modules())[name]


def _flat(x: torch.Tensor) -> torch.Tensor:
    # (B, C, T) -> each channel's window mean, broadcast over time
    return x.mean(dim=2, keepdim=True).expand_as(x).contiguous()


def _occlusion_width(rate: float | None, length: int) -> int:
    width = round(OCCLUSION_S * rate) if rate else length // 32
    return int(max(4, min(width, length)))


def _one_chunk(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    method: str,
    layer: str | None,
    features: torch.Tensor | None,
    rate: float | None,
) -> torch.Tensor:
    import captum.attr as ca

    extra = None if features is None else (features,)
    if method == "gradcam":
        assert layer is not None
        cam = ca.LayerGradCam(net, _module(net, layer)).attribute(
            x, target=target, additional_forward_args=extra, relu_attributions=True
        )  # (B, 1, T')
        return ca.LayerAttribution.interpolate(cam, (x.shape[2],), interpolate_mode="linear")[:, 0]
    if method == "integrated_gradients":
        attr = ca.IntegratedGradients(net).attribute(
            x,
            baselines=_flat(x),
            target=target,
            additional_forward_args=extra,
            n_steps=IG_STEPS,
            internal_batch_size=max(len(x) * 8, 1),
        )
        return attr.sum(dim=1)
    if method == "occlusion":
        width = _occlusion_width(rate, x.shape[2])
        attr = ca.Occlusion(net).attribute(
            x,
            sliding_window_shapes=(x.shape[1], width),
            strides=(x.shape[1], max(1, width // 2)),
            baselines=_flat(x),
            target=target,
            additional_forward_args=extra,
            perturbations_per_eval=64,
        )
        return attr.sum(dim=1)
    if method == "gradient":
        return ca.Saliency(net).attribute(x, target=target, abs=True, additional_forward_args=extra).sum(dim=1)
    raise UnknownNameError("explanation method", method, list(METHODS))


def attribute(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    method: str,
    *,
    layer: str | None = None,
    features: torch.Tensor | None = None,
    rate: float | None = None,
) -> np.ndarray:
    """(B, C, T) windows and (B,) target class indices → (B, T) float32 relevance over time.

    ``layer``: Grad-CAM's layer (dotted module name; default :func:`default_layer`). ``rate``: the windows' sample
    rate in Hz, which sets Occlusion's window (``OCCLUSION_S``; without it T/32 samples). ``net`` is put in eval
    mode (normalisation statistics frozen, no dropout).

    Example:
        >>> net = build_model("cnn1d", in_channels=1, num_classes=2)
        >>> attribute(net, torch.randn(4, 1, 960), torch.tensor([0, 1, 1, 0]), "gradcam").shape
        (4, 960)
    """
    net.eval()
    if method == NATIVE:
        from ape_nas.explain.prototypes import prototype_map

        return np.asarray(prototype_map(net, x, target, features), dtype=np.float32)
    if method == "gradcam":
        layer = resolve_layer(net, layer, x.shape[1], features)
    target = torch.as_tensor(target, dtype=torch.long)
    out = []
    with warnings.catch_warnings():  # Captum notes that it set requires_grad on the input: expected here
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
        for a in range(0, len(x), CHUNK):
            sl = slice(a, a + CHUNK)
            f = None if features is None else features[sl]
            out.append(_one_chunk(net, x[sl], target[sl], method, layer, f, rate).detach())
    if not out:
        return np.zeros((0, x.shape[2]), dtype=np.float32)
    return torch.cat(out).to(torch.float32).cpu().numpy()


def explainer(
    method: str, *, layer: str | None = None, rate: float | None = None
) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], np.ndarray]:
    """``attribute`` with the method fixed: ``fn(net, x, target) -> (B, T)`` (for the faithfulness measures, which
    re-explain perturbed or randomised networks)."""

    def fn(net: nn.Module, x: torch.Tensor, target: torch.Tensor, **kw: Any) -> np.ndarray:
        return attribute(net, x, target, method, layer=layer, rate=rate, **kw)

    return fn
