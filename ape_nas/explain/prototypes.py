"""Native explanations of the part-based family (``protonet1d``, :mod:`ape_nas.models.proto`): "this part of the
window looks like that prototype, which is this piece of a training window".

* :func:`prototype_map` — ``(B, T)`` relevance for the target class: at every latent position ``j`` the
  prototypes' similarities weighted by their connection to the target, ``Σ_m w[target, m] · sim_m(j)``, spread
  evenly over the input samples position ``j`` sees (each sample: the mean over the positions that see it). The
  ``prototypes`` method of :mod:`ape_nas.explain.saliency`.
* :func:`prototype_report` — per window, the prototypes that contributed most to the target's logit
  (``w[target, m] · max_j sim_m(j)``): their class, similarity, contribution, where in the window they fired (in
  samples) and their recorded nearest training segment.
* :func:`plot_prototypes` — one window with where its top prototypes fired, beside each prototype's nearest
  training segment (PNG through matplotlib's Agg canvas).

Any module with the family's explanation API works: ``prototype_similarity(x, features)`` → ``(B, M, T')``,
``class_connection()`` → ``(K, M)``, ``input_span(j, time)``, ``rf_size``/``rf_stride``/``rf_offset``, and the
buffers ``prototype_class``, ``prototype_segments``, ``prototype_distances``, ``prototype_origins``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ape_nas.errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn


def _check(net: Any) -> None:
    if not hasattr(net, "prototype_similarity"):
        raise UserError("prototype explanations need a part-based network (protonet1d); this one has no prototypes")


def _inputs(x: Any, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    x = torch.as_tensor(x, dtype=torch.float32)
    if x.dim() == 2:  # one window (channels, time)
        x = x[None]
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if len(target) == 1 and len(x) > 1:
        target = target.expand(len(x))
    if x.dim() != 3 or len(target) != len(x):
        raise ValueError(f"x must be (batch, channels, time) with one target each; got {tuple(x.shape)}, {len(target)}")
    return x, target


def spread(values: torch.Tensor, size: int, stride: int, offset: int, time: int) -> torch.Tensor:
    """Latent values ``(B, T')`` → input time ``(B, time)``: position ``j``'s value over the samples
    ``[j·stride - offset, j·stride - offset + size)``, each sample the mean over the positions that cover it."""
    import torch
    import torch.nn.functional as F

    ones = torch.ones(1, 1, size, dtype=values.dtype, device=values.device)
    total = F.conv_transpose1d(values[:, None, :], ones, stride=stride)[:, 0]  # (B, (T'-1)·stride + size)
    count = F.conv_transpose1d(torch.ones_like(values[:1, None, :]), ones, stride=stride)[:, 0]  # (1, same)
    # index i of the transposed convolution is input sample i - offset
    short = max(0, offset + time - total.shape[1])
    total, count = F.pad(total, (0, short)), F.pad(count, (0, short))
    total, count = total[:, offset : offset + time], count[:, offset : offset + time]
    return total / count.clamp(min=1.0)


def prototype_map(net: nn.Module, x: Any, target: Any, features: torch.Tensor | None = None) -> np.ndarray:
    """Relevance over input time for the target class: ``(B, C, T)`` windows and ``(B,)`` targets → ``(B, T)``
    float32, ``Σ_m w[target, m] · sim_m(j)`` of each latent position ``j`` spread over the samples it sees.

    Example:
        >>> prototype_map(net, torch.randn(4, 1, 1280), torch.tensor([0, 1, 1, 0])).shape
        (4, 1280)
    """
    import torch

    _check(net)
    x, target = _inputs(x, target)
    net.eval()
    with torch.no_grad():
        sim = net.prototype_similarity(x, features)  # (B, M, T')
        w = net.class_connection()[target.to(sim.device)]  # (B, M)
        per_position = (w[:, :, None] * sim).sum(dim=1)  # (B, T')
        out = spread(per_position, net.rf_size, net.rf_stride, net.rf_offset, x.shape[2])
    return out.to(torch.float32).cpu().numpy()


def nearest_segment(net: nn.Module, m: int) -> dict[str, Any] | None:
    """Prototype ``m``'s recorded nearest training patch (None before projection): ``window`` (training-window
    id), ``start``/``stop`` (its span in that window's samples, ``stop - start = rf_size``), ``label`` and
    ``distance`` (squared, in latent space)."""
    distance = float(net.prototype_distances[m])
    if not np.isfinite(distance):
        return None
    window, start, label = (int(v) for v in net.prototype_origins[m])
    return {"window": window, "start": start, "stop": start + int(net.rf_size), "label": label, "distance": distance}


def prototype_report(
    net: nn.Module, x: Any, target: Any, top: int = 3, features: torch.Tensor | None = None
) -> list[dict[str, Any]]:
    """Per window: the ``top`` prototypes by contribution ``w[target, m] · max_j sim_m(j)`` to the target's logit.

    Each window: ``{"window": b, "target": class, "logit": target logit, "prototypes": [...]}``; each prototype:
    ``prototype`` (index m), ``class``, ``similarity`` (max over time), ``contribution``, ``position`` (the latent
    position where it fired), ``start``/``stop`` (the samples of this window that position sees, clipped to it)
    and ``nearest`` (:func:`nearest_segment`)."""
    import torch

    _check(net)
    x, target = _inputs(x, target)
    net.eval()
    with torch.no_grad():
        logits = net(x, features)  # (B, K)
        sim = net.prototype_similarity(x, features)  # (B, M, T')
        best, where = sim.max(dim=2)  # (B, M)
        contribution = net.class_connection()[target.to(sim.device)] * best  # (B, M)
    classes = net.prototype_class.tolist()
    reports = []
    for b in range(len(x)):
        order = torch.argsort(contribution[b], descending=True)[: max(top, 0)].tolist()
        entries = []
        for m in order:
            start, stop = net.input_span(int(where[b, m]), x.shape[2])
            entries.append(
                {
                    "prototype": m,
                    "class": classes[m],
                    "similarity": float(best[b, m]),
                    "contribution": float(contribution[b, m]),
                    "position": int(where[b, m]),
                    "start": start,
                    "stop": stop,
                    "nearest": nearest_segment(net, m),
                }
            )
        t = int(target[b])
        reports.append({"window": b, "target": t, "logit": float(logits[b, t]), "prototypes": entries})
    return reports


def plot_prototypes(
    net: nn.Module,
    x: Any,
    target: Any,
    path: str | Path,
    *,
    features: torch.Tensor | None = None,
    top: int = 3,
    rate_hz: float | None = None,
    class_names: list[str] | None = None,
    channel: int = 0,
) -> Path:
    """Draw one window (``x`` (1, C, T) or (C, T); the first of a batch) with where its ``top`` prototypes fired
    for ``target``, beside each prototype's recorded nearest training segment; written to ``path`` (PNG).
    ``rate_hz``: time in seconds instead of samples; ``channel``: the channel drawn."""
    from matplotlib.figure import Figure

    x, target = _inputs(x, target)
    x, target = x[:1], target[:1]
    f = None if features is None else features[:1]
    report = prototype_report(net, x, target, top=top, features=f)[0]
    entries = report["prototypes"]
    signal = x[0, channel].numpy()
    scale = 1.0 / rate_hz if rate_hz else 1.0
    unit = "s" if rate_hz else "samples"

    def name(k: int) -> str:
        return class_names[k] if class_names and 0 <= k < len(class_names) else f"class {k}"

    rows = max(len(entries), 1)
    fig = Figure(figsize=(12, 1.8 + 1.6 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, 2, width_ratios=[3, 1])
    ax = fig.add_subplot(grid[:, 0])
    ax.plot(np.arange(len(signal)) * scale, signal, color="0.2", linewidth=0.8)
    colours = [f"C{i}" for i in range(len(entries))]
    for i, (e, colour) in enumerate(zip(entries, colours, strict=True)):
        ax.axvspan(e["start"] * scale, e["stop"] * scale, color=colour, alpha=0.25)
        label = f"P{e['prototype']} ({name(e['class'])}): sim {e['similarity']:.2f}, {e['contribution']:+.2f}"
        at = ax.get_xaxis_transform()  # x in data, y in axes fractions: labels stacked from the top
        ax.text(e["start"] * scale, 0.98 - 0.08 * i, label, transform=at, color=colour, fontsize=8, va="top")
    ax.set_title(f"window: evidence for {name(report['target'])} (logit {report['logit']:.2f})", fontsize=10)
    ax.set_xlabel(unit)
    for row, (e, colour) in enumerate(zip(entries, colours, strict=True)):
        side = fig.add_subplot(grid[row, 1])
        near = e["nearest"]
        if near is None:
            side.text(0.5, 0.5, "not projected", ha="center", va="center", transform=side.transAxes)
        else:
            segment = net.prototype_segments[e["prototype"], channel].cpu().numpy()
            side.plot((near["start"] + np.arange(len(segment))) * scale, segment, color=colour, linewidth=0.9)
            side.set_title(f"P{e['prototype']}: training window {near['window']} ({name(near['label'])})", fontsize=8)
        side.tick_params(labelsize=7)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
