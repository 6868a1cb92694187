"""How far to trust a saliency map over time: faithfulness, a sanity check, and localisation, per window.

Every measure returns one number *per window*, so a summary over windows (or, better, over subjects) carries its
uncertainty (:func:`summarise`). Maps are ``(B, T)`` relevance over time, larger = more evidence for the target
(:func:`ape_nas.explain.saliency.attribute`); windows are ``(B, C, T)`` torch tensors.

**Deletion / insertion** (Petsiuk et al., "RISE", BMVC 2018; with ROAD's on-manifold removal, Rong et al. 2022).
A window is cut into segments of ``segment`` samples (default ``ceil(T / N_SEGMENTS)``), ranked by summed
relevance, most salient first (equal relevance: a seeded random order). *Deletion* removes the top segments,
``N_SEGMENTS / STEPS`` more at each of ``STEPS`` steps, with :func:`ape_nas.explain.perturb.interpolate` (the
removed samples become straight lines between the kept neighbours). *Insertion* starts from the fully removed
window — each channel's mean, a flat line without any beat, which is what interpolation makes of a window with
nothing kept (and the flat baseline :mod:`ape_nas.explain.saliency` uses for Integrated Gradients and Occlusion) —
and restores the top segments into it at the same steps, the rest interpolated between the restored ones. The score
at each step is the network's softmax probability of the target class; the AUC is the trapezoid over the fraction
of samples removed / restored, so it lies in [0, 1]. Cost: every step of every window is a forward pass (batched),
``B·(methods + n_random)·2·(STEPS - 1) + 2·B`` in all; that, not the bookkeeping, is the time it takes.

* ``deletion_auc`` — lower is better (the evidence the map points at is the evidence the network uses).
* ``insertion_auc`` — higher is better.
* ``deletion_gain`` = random-order deletion AUC − the map's; ``insertion_gain`` = the map's − random-order's:
  higher is better, 0 = no better than removing segments in a random order (the control: ``n_random`` seeded
  orders per window, averaged; the same for every method, so it is computed once).

**Model-parameter randomisation** (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, cascading
from the top). The parameterised layers of a deep copy of the network are re-initialised from the output towards
the input, cumulatively; after each stage the maps are recomputed and compared with the original ones by
Spearman rank correlation over time, per window. ``randomisation_rank_corr`` (after *full* randomisation, of the
*absolute* maps, as Adebayo et al. and Quantus's MPRT summarise: a gradient's sign may flip while its structure
stays) — lower is better: a map that survives randomisation of the network does not explain the network. The
signed correlations are kept too. :func:`edge_map` is the model-independent control (|first difference|, an edge
detector): its correlation stays 1 by construction — a method that behaves like it fails the check.

**Localisation** against a planted ground truth (a cue placed in known beats by a synthetic benchmark), with
``masks`` ``(B, T)`` bool, True on the planted samples. Each score's chance level is the mask's fraction of the
window (``mask_fraction``: what a map without information scores in expectation); :func:`random_localisation`
measures it empirically.

* ``mass_on_mask`` — fraction of the positive relevance that falls on the mask (Arras et al.'s relevance mass
  accuracy on the positive part); higher is better, 1 = all relevance on the cue.
* ``rank_on_mask`` — of the K highest-relevance samples (K = the mask's size), the fraction on the mask (relevance
  rank accuracy); higher is better.
* ``pointing_game`` — is the most relevant sample on the mask (1/0; tied maxima count by the fraction of them on
  the mask)? Higher is better.

The summary (:func:`summarise`, :func:`summary_table`) is the mean over windows with a 95 % bootstrap interval;
pass ``groups`` (each window's subject) to resample subjects, the unit of independence (see :mod:`ape_nas.stats`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ape_nas.explain.perturb import interpolate
from ape_nas.stats import DEFAULT_BOOT, DEFAULT_LEVEL, subject_bootstrap

N_SEGMENTS = 32
"""Default number of segments a window is cut into for deletion / insertion (``segment = ceil(T / N_SEGMENTS)``)."""

STEPS = 16
"""Default number of curve points after the first (each removes or restores ``N_SEGMENTS / STEPS`` segments more)."""

N_RANDOM = 3
"""Default number of random segment orders the control averages over."""

BATCH = 1024
"""Perturbed windows per forward pass."""

Perturbation = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ExplainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], np.ndarray]

DIRECTIONS: dict[str, str] = {
    "deletion_auc": "lower",
    "insertion_auc": "higher",
    "deletion_gain": "higher",
    "insertion_gain": "higher",
    "randomisation_rank_corr": "lower",
    "randomisation_rank_corr_signed": "lower",
    "mass_on_mask": "higher",
    "rank_on_mask": "higher",
    "pointing_game": "higher",
    "mask_fraction": "chance",
    "q_mass_on_mask": "higher",
    "q_rank_on_mask": "higher",
    "q_pointing_game": "higher",
    "q_auc": "higher",
    "q_region_aopc": "higher",
    "q_pixel_flipping": "lower",
    "q_faithfulness_correlation": "higher",
    "q_mprt": "lower",
}
"""Metric → the direction in which it is better (``chance``: the reference level, not a score)."""

RANDOM = "random"
"""The row of the random-order (deletion/insertion) or random-map (localisation) control in a results table."""


# ---------------------------------------------------------------------------------------------------------------------
# Deletion and insertion
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curves:
    """Deletion and insertion curves of B windows at S = ``steps`` + 1 points (point 0: nothing removed /
    nothing restored; point S - 1: everything).

    Attributes:
        fraction: (B, S) fraction of the window's samples removed (deletion) or restored (insertion) at each point.
        deletion: (B, S) softmax probability of the target after removing the top segments.
        insertion: (B, S) probability after restoring the top segments into the fully removed window.
        deletion_auc: (B,) trapezoid area under ``deletion`` over ``fraction`` (lower = more faithful).
        insertion_auc: (B,) area under ``insertion`` (higher = more faithful).
    """

    fraction: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray


def segment_length(length: int, segment: int | None = None) -> int:
    """Samples per segment: ``segment`` if given (>= 1), else ``ceil(length / N_SEGMENTS)``."""
    if segment is None:
        return max(1, math.ceil(length / N_SEGMENTS))
    if isinstance(segment, bool) or not isinstance(segment, int) or segment < 1:
        raise ValueError(f"segment must be an integer >= 1, got {segment!r}")
    return segment


def segment_order(maps: np.ndarray, segment: int, *, seed: int | None = None) -> np.ndarray:
    """(B, T) maps → (B, n_segments) segment indices, most salient (largest summed relevance) first. Segments of
    equal relevance (e.g. Grad-CAM's zeros) keep time order, or, with ``seed``, a seeded random order (the map says
    nothing about them, and time order would always delete the window's start first). The last segment is shorter
    where ``segment`` does not divide T."""
    maps = np.asarray(maps, dtype=np.float64)
    sums = np.add.reduceat(maps, np.arange(0, maps.shape[1], segment), axis=1)  # (B, n_segments)
    if seed is None:
        return np.argsort(-sums, axis=1, kind="stable")
    shuffle = np.argsort(np.random.default_rng([seed, 1]).random(sums.shape), axis=1)  # (B, n_segments)
    shuffled = np.take_along_axis(sums, shuffle, axis=1)
    return np.take_along_axis(shuffle, np.argsort(-shuffled, axis=1, kind="stable"), axis=1)


def _step_counts(n_seg: int, steps: int | None) -> np.ndarray:
    """Segments removed at each curve point: ``steps`` + 1 evenly spaced counts from 0 to ``n_seg``."""
    if steps is None:
        steps = min(n_seg, STEPS)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= n_seg:
        raise ValueError(f"steps must be an integer in [1, {n_seg}] (the number of segments), got {steps!r}")
    return np.round(np.arange(steps + 1) * n_seg / steps).astype(int)


def _probabilities(
    net: nn.Module, x: torch.Tensor, target: torch.Tensor, features: torch.Tensor | None
) -> torch.Tensor:
    logits = net(x) if features is None else net(x, features)
    return torch.softmax(logits.float(), dim=1).gather(1, target.unsqueeze(1))[:, 0]


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.sum((y[..., 1:] + y[..., :-1]) * np.diff(x, axis=-1), axis=-1) / 2.0


def _curves(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    orders: np.ndarray,
    segment: int,
    steps: int | None,
    perturbation: Perturbation,
    features: torch.Tensor | None,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``orders`` (B, R, n_segments): R segment orders per window → fraction, deletion and insertion probabilities,
    each (B, R, S). The two end points (the window itself, the fully removed window) are shared by every order and
    both curves, so a window costs R·2·(S - 2) + 2 forward passes, batched ``batch_size`` at a time."""
    b, _, t = x.shape
    n_seg = math.ceil(t / segment)
    r = orders.shape[1]
    counts = _step_counts(n_seg, steps)  # (S,)
    seg_of_t = np.arange(t) // segment  # (T,)
    seg_len = np.bincount(seg_of_t, minlength=n_seg)
    rank = np.empty_like(orders)  # rank[b, r, segment] = position of the segment in order r
    np.put_along_axis(rank, orders, np.broadcast_to(np.arange(n_seg), orders.shape), axis=2)
    rank_t = torch.as_tensor(rank[:, :, seg_of_t], device=x.device)  # (B, R, T)
    removed = np.concatenate([np.zeros((b, r, 1)), np.cumsum(seg_len[orders], axis=2)], axis=2) / t
    fraction = removed[:, :, counts]  # (B, R, S)

    # States: first each window itself and fully removed (order 0, count 0, deletion / insertion), then the inner
    # points of every order and both curves. Mask of a state: rank < count (deletion) or rank >= count (insertion).
    inner = counts[1:-1]
    w, o, kind, k = np.meshgrid(np.arange(b), np.arange(r), np.arange(2), inner, indexing="ij")
    ends = np.arange(b).repeat(2), np.zeros(2 * b, int), np.tile([0, 1], b), np.zeros(2 * b, int)
    window, order, kinds, count = (
        torch.as_tensor(np.concatenate([e, a.reshape(-1)]), device=x.device)
        for e, a in zip(ends, (w, o, kind, k), strict=True)
    )
    probs = torch.empty(len(window), dtype=torch.float32)
    target = torch.as_tensor(target, dtype=torch.long, device=x.device)
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for a in range(0, len(window), batch_size):
                sl = slice(a, a + batch_size)
                ws = window[sl]
                top = rank_t[ws, order[sl]] < count[sl].unsqueeze(1)  # (n, T) the first `count` segments
                mask = top ^ (kinds[sl] == 1).unsqueeze(1)  # True = removed
                f = None if features is None else features[ws]
                probs[sl] = _probabilities(net, perturbation(x[ws], mask), target[ws], f).cpu()
    finally:
        net.train(was_training)
    p = probs.numpy()
    full, empty = p[: 2 * b : 2, None, None], p[1 : 2 * b : 2, None, None]  # (B, 1, 1)
    mid = p[2 * b :].reshape(b, r, 2, len(inner))
    deletion = np.concatenate([np.broadcast_to(full, (b, r, 1)), mid[:, :, 0], np.broadcast_to(empty, (b, r, 1))], 2)
    insertion = np.concatenate([np.broadcast_to(empty, (b, r, 1)), mid[:, :, 1], np.broadcast_to(full, (b, r, 1))], 2)
    return fraction, deletion, insertion


def _finish(fraction: np.ndarray, deletion: np.ndarray, insertion: np.ndarray) -> Curves:
    # (B, R, S) -> curves averaged over the R orders; the AUC of each order, averaged
    return Curves(
        fraction=fraction.mean(axis=1),
        deletion=deletion.mean(axis=1),
        insertion=insertion.mean(axis=1),
        deletion_auc=_trapezoid(deletion, fraction).mean(axis=1),
        insertion_auc=_trapezoid(insertion, fraction).mean(axis=1),
    )


def _random_orders(b: int, n_seg: int, n_draws: int, seed: int) -> np.ndarray:
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 1:
        raise ValueError(f"n_random must be an integer >= 1, got {n_draws!r}")
    return np.argsort(np.random.default_rng(seed).random((b, n_draws, n_seg)), axis=2)  # (B, n_draws, n_seg)


def _check_maps(name: str, maps: np.ndarray, x: torch.Tensor) -> np.ndarray:
    maps = np.asarray(maps)
    if maps.shape != (x.shape[0], x.shape[2]):
        raise ValueError(f"{name}: maps must be (batch, time) = {(x.shape[0], x.shape[2])}, got {maps.shape}")
    return maps


def deletion_insertion(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    maps: np.ndarray | None,
    *,
    segment: int | None = None,
    steps: int | None = None,
    n_random: int = N_RANDOM,
    seed: int = 0,
    perturbation: Perturbation = interpolate,
    features: torch.Tensor | None = None,
    batch_size: int = BATCH,
) -> Curves:
    """Deletion and insertion curves of ``maps`` ((B, T)) for windows ``x`` ((B, C, T)) and targets ((B,));
    ``maps=None``: the random-order control (``n_random`` seeded orders per window, averaged). ``seed`` also
    orders segments of equal relevance (:func:`segment_order`).

    ``segment``: samples per segment (default ``ceil(T / N_SEGMENTS)``); ``steps``: curve points after 0 (default
    ``min(n_segments, STEPS)``, at evenly spaced segment counts). ``perturbation(x, mask) -> x'``
    removes the masked samples (default :func:`~ape_nas.explain.perturb.interpolate`; ROAD's noise:
    ``functools.partial(noisy_interpolate, rng=np.random.default_rng(0))``). ``features``: the HRV features of a
    fusing network (``net(x, features)``). The network is evaluated in eval mode.

    Example:
        >>> c = deletion_insertion(net, x, y, attribute(net, x, y, "gradcam"))
        >>> c.deletion_auc.shape, c.deletion.shape  # (B,), (B, 17)
    """
    seg = segment_length(x.shape[2], segment)
    if maps is None:
        orders = _random_orders(x.shape[0], math.ceil(x.shape[2] / seg), n_random, seed)
    else:
        orders = segment_order(_check_maps("maps", maps, x), seg, seed=seed)[:, None, :]
    return _finish(*_curves(net, x, target, orders, seg, steps, perturbation, features, batch_size))


def faithfulness(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    maps: Mapping[str, np.ndarray],
    *,
    segment: int | None = None,
    steps: int | None = None,
    n_random: int = N_RANDOM,
    seed: int = 0,
    perturbation: Perturbation = interpolate,
    features: torch.Tensor | None = None,
    batch_size: int = BATCH,
    curves: dict[str, Curves] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-window deletion/insertion results of every method's maps and of the random-order control, from one
    batched pass (the end points and the control are shared by all methods). ``curves``: a dict that receives
    each method's :class:`Curves` (and the control's, under ``"random"``), for plotting.

    Returns ``{method: {"deletion_auc", "insertion_auc", "deletion_gain", "insertion_gain"}}`` plus
    ``{"random": {"deletion_auc", "insertion_auc"}}``, each a (B,) array (directions: :data:`DIRECTIONS`). Keyword
    arguments as in :func:`deletion_insertion`. Cost: B·(methods + n_random)·2·(steps - 1) + 2·B forward passes.

    Example:
        >>> maps = {m: attribute(net, x, y, m) for m in METHODS}
        >>> summary_table(faithfulness(net, x, y, maps))["gradcam"]["deletion_gain"]["point"]
    """
    seg = segment_length(x.shape[2], segment)
    n_seg = math.ceil(x.shape[2] / seg)
    names = list(maps)
    own = [segment_order(_check_maps(name, maps[name], x), seg, seed=seed)[:, None] for name in names]  # (B, 1, n_seg)
    orders = np.concatenate([*own, _random_orders(x.shape[0], n_seg, n_random, seed)], axis=1)
    fraction, deletion, insertion = _curves(net, x, target, orders, seg, steps, perturbation, features, batch_size)
    m = len(names)
    control = _finish(fraction[:, m:], deletion[:, m:], insertion[:, m:])
    out: dict[str, dict[str, np.ndarray]] = {}
    for j, name in enumerate(names):
        c = _finish(fraction[:, j : j + 1], deletion[:, j : j + 1], insertion[:, j : j + 1])
        if curves is not None:
            curves[name] = c
        out[name] = {
            "deletion_auc": c.deletion_auc,
            "insertion_auc": c.insertion_auc,
            "deletion_gain": control.deletion_auc - c.deletion_auc,
            "insertion_gain": c.insertion_auc - control.insertion_auc,
        }
    out[RANDOM] = {"deletion_auc": control.deletion_auc, "insertion_auc": control.insertion_auc}
    if curves is not None:
        curves[RANDOM] = control
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Model-parameter randomisation
# ---------------------------------------------------------------------------------------------------------------------


def edge_map(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """The model-independent control explanation: ``|x[t] - x[t-1]|`` summed over channels, (B, C, T) → (B, T)
    float32 (0 at t = 0). Any network, trained or random, gets the same map.

    Example:
        >>> edge_map(np.array([[[0.0, 1.0, 3.0, 2.0]]]))
        array([[0., 1., 2., 1.]], dtype=float32)
    """
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    return np.abs(np.diff(a, axis=2, prepend=a[:, :, :1])).sum(axis=1).astype(np.float32)


def parameterised_layers(net: nn.Module) -> list[str]:
    """Names of the modules that hold parameters of their own (convolutions, norms, linear layers, ...), in
    registration order — input to output for every family here, whose head is registered last."""
    return [name for name, m in net.named_modules() if any(True for _ in m.parameters(recurse=False))]


def _randomise(module: nn.Module, init: str, seed: int) -> None:
    devices = sorted({p.device.index or 0 for p in module.parameters(recurse=False) if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        reset = getattr(module, "reset_parameters", None)
        if init == "reset" and callable(reset):
            reset()
            return
        # a seeded normal of each tensor's own scale: no structure left, activations neither vanish nor explode
        for p in module.parameters(recurse=False):
            rms = float(p.detach().float().pow(2).mean().sqrt())
            p.normal_(0.0, rms if rms > 0 else 0.01)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row of ``a`` with the same row of ``b`` ((B, T) each → (B,)); ties get
    average ranks. A constant row has no order: two constant rows correlate 1 (the same non-order), one constant
    row against a varying one 0 (it keeps nothing of the other's order)."""
    from scipy.stats import rankdata

    ra = rankdata(np.asarray(a, dtype=np.float64), axis=1)
    rb = rankdata(np.asarray(b, dtype=np.float64), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    na, nb = np.sqrt((ra**2).sum(axis=1)), np.sqrt((rb**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ra * rb).sum(axis=1) / (na * nb)
    const_a, const_b = na == 0, nb == 0
    r = np.where(const_a & const_b, 1.0, np.where(const_a | const_b, 0.0, r))
    return np.clip(r, -1.0, 1.0)


@dataclass(frozen=True)
class Randomisation:
    """Cascading randomisation of one explanation method.

    Attributes:
        stages: the layer randomised at each stage, output first; stage i has ``stages[: i + 1]`` randomised.
        rank_corr: (n_stages, B) Spearman correlation of the absolute maps with the original absolute maps.
        rank_corr_signed: (n_stages, B) the same for the signed maps.
    """

    stages: tuple[str, ...]
    rank_corr: np.ndarray
    rank_corr_signed: np.ndarray

    @property
    def final(self) -> np.ndarray:
        """(B,) correlation of the absolute maps after every layer is randomised (the summary's number)."""
        return self.rank_corr[-1]

    def per_window(self) -> dict[str, np.ndarray]:
        """``{"randomisation_rank_corr": (B,), "randomisation_rank_corr_signed": (B,)}`` after full randomisation."""
        return {
            "randomisation_rank_corr": self.rank_corr[-1],
            "randomisation_rank_corr_signed": self.rank_corr_signed[-1],
        }


INITS = ("reset", "normal")


def cascading_randomisation(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    explain_fn: ExplainFn,
    *,
    init: str = "reset",
    seed: int = 0,
    layers: Sequence[str] | None = None,
) -> Randomisation:
    """Re-initialise the parameterised layers of a deep copy of ``net`` from the output towards the input,
    cumulatively, and compare ``explain_fn(copy, x, target)`` ((B, T)) with the original maps after each stage.

    ``init``: ``"reset"`` — each module's own ``reset_parameters`` (what Quantus's MPRT does; a module without one
    gets the normal below); ``"normal"`` — every parameter drawn from N(0, rms²), rms = the original tensor's root
    mean square (0.01 for an all-zero tensor). Seeded per stage (``seed + stage``) without touching the global
    random state. ``layers``: the modules to randomise, input to output (default :func:`parameterised_layers`).
    ``net`` itself is not modified.

    Example:
        >>> r = cascading_randomisation(net, x, y, explainer("gradcam"))
        >>> float(r.final.mean())  # near 0 for a method that depends on the network
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(repr(i) for i in INITS)}, got {init!r}")
    names = list(parameterised_layers(net) if layers is None else layers)
    if not names:
        raise ValueError("the network has no parameterised layer to randomise")
    original = np.asarray(explain_fn(net, x, target), dtype=np.float64)
    model = copy.deepcopy(net)
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise ValueError(f"layers: no module named {', '.join(map(repr, unknown))} in the network")
    corr, corr_signed = [], []
    stages = tuple(reversed(names))
    for i, name in enumerate(stages):
        _randomise(modules[name], init, seed + i)
        maps = np.asarray(explain_fn(model, x, target), dtype=np.float64)
        corr.append(spearman_rows(np.abs(original), np.abs(maps)))
        corr_signed.append(spearman_rows(original, maps))
    return Randomisation(stages, np.stack(corr), np.stack(corr_signed))


EDGE = "edge"
"""The row of the model-independent control explanation (:func:`edge_map`) in a randomisation table."""


def randomisation_scores(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    explainers: Mapping[str, ExplainFn],
    *,
    init: str = "reset",
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """``{method: Randomisation.per_window()}`` for every ``{method: explain_fn}``, plus the ``"edge"`` control
    row (:func:`edge_map`, which must stay at 1)."""
    fns = {**explainers, EDGE: lambda _net, xx, _t: edge_map(xx)}
    return {
        method: cascading_randomisation(net, x, target, fn, init=init, seed=seed).per_window()
        for method, fn in fns.items()
    }


# ---------------------------------------------------------------------------------------------------------------------
# Localisation against a planted ground truth
# ---------------------------------------------------------------------------------------------------------------------


def _check_masks(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks)
    if maps.ndim != 2 or maps.shape != masks.shape:
        raise ValueError(f"maps and masks must both be (batch, time), got {maps.shape} and {masks.shape}")
    return maps, masks.astype(bool)


def mask_fraction(masks: np.ndarray) -> np.ndarray:
    """(B,) the mask's fraction of the window: the chance level of every localisation score."""
    return np.asarray(masks, dtype=bool).mean(axis=1)


def mass_on_mask(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(B,) fraction of the positive relevance that lies on the mask; NaN for a map without positive relevance or
    an empty mask. 1 = everything on the cue; a map without information scores :func:`mask_fraction` on average.

    Example:
        >>> mass_on_mask(np.array([[3.0, 1.0, -5.0, 0.0]]), np.array([[True, False, True, False]]))
        array([0.75])
    """
    maps, masks = _check_masks(maps, masks)
    pos = np.clip(maps, 0.0, None)
    total = pos.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (pos * masks).sum(axis=1) / total
    return np.where((total > 0) & masks.any(axis=1), out, np.nan)


def rank_on_mask(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(B,) of the K most relevant samples (K = the mask's size), the fraction on the mask (relevance rank
    accuracy). Samples tied at the K-th value share the remaining places in proportion, so a constant map scores
    exactly :func:`mask_fraction`. NaN for an empty mask."""
    maps, masks = _check_masks(maps, masks)
    k = masks.sum(axis=1)
    out = np.full(len(maps), np.nan)
    for i in np.flatnonzero(k > 0):
        a, m = maps[i], masks[i]
        v = np.partition(a, -k[i])[-k[i]]  # the K-th largest value
        above, tied = a > v, a == v
        hits = (above & m).sum() + (k[i] - above.sum()) * (tied & m).sum() / tied.sum()
        out[i] = hits / k[i]
    return out


def pointing_game(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(B,) 1 where the most relevant sample is on the mask, else 0; with tied maxima, the fraction of them on the
    mask. NaN for an empty mask."""
    maps, masks = _check_masks(maps, masks)
    top = maps == maps.max(axis=1, keepdims=True)
    out = (top & masks).sum(axis=1) / top.sum(axis=1)
    return np.where(masks.any(axis=1), out, np.nan)


LOCALISATION: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mass_on_mask": mass_on_mask,
    "rank_on_mask": rank_on_mask,
    "pointing_game": pointing_game,
}


def localisation(maps: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Every localisation score of ``maps`` against ``masks`` ((B, T) each), per window, with the chance level
    ``mask_fraction``."""
    return {**{name: fn(maps, masks) for name, fn in LOCALISATION.items()}, "mask_fraction": mask_fraction(masks)}


def random_localisation(masks: np.ndarray, *, n_draws: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """The empirical random-map baseline: each localisation score of ``n_draws`` maps of independent uniform noise
    per window, averaged over the draws (→ :func:`mask_fraction` as ``n_draws`` grows)."""
    masks = np.asarray(masks, dtype=bool)
    rng = np.random.default_rng(seed)
    draws = [localisation(rng.random(masks.shape), masks) for _ in range(n_draws)]
    return {name: np.mean([d[name] for d in draws], axis=0) for name in draws[0]}


def localisation_scores(
    maps: Mapping[str, np.ndarray], masks: np.ndarray, *, n_draws: int = 100, seed: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """``{method: localisation(maps[method], masks)}`` plus the ``"random"`` row (:func:`random_localisation`)."""
    out = {method: localisation(m, masks) for method, m in maps.items()}
    out[RANDOM] = random_localisation(masks, n_draws=n_draws, seed=seed)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------------------------------


def merge(*results: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Join ``{method: {metric: (B,)}}`` results (faithfulness, randomisation, localisation, Quantus) into one
    table's input; rows keep their first appearance order.

    Example:
        >>> merge({"gradcam": {"deletion_auc": a}}, {"gradcam": {"mass_on_mask": b}, "random": {"mass_on_mask": c}})
        {'gradcam': {'deletion_auc': a, 'mass_on_mask': b}, 'random': {'mass_on_mask': c}}
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for result in results:
        for method, metrics in result.items():
            out.setdefault(method, {}).update(metrics)
    return out


def summarise(
    per_window: Mapping[str, np.ndarray],
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = DEFAULT_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Mean of each per-window metric with its bootstrap interval: ``{metric: {point, low, high, n}}``.

    Windows whose value is not finite (NaN: e.g. a map without positive relevance) are left out; ``n`` counts the
    rest. ``groups``: each window's subject — resample subjects (:func:`ape_nas.stats.subject_bootstrap`), the honest
    choice when a subject has several windows; without it every window is its own group (a window bootstrap).

    Example:
        >>> s = summarise({"deletion_auc": np.array([0.1, 0.2, 0.3])}, n_boot=200)["deletion_auc"]
        >>> round(s["point"], 3), s["n"]
        (0.2, 3)
    """
    out: dict[str, dict[str, float]] = {}
    for name, values in per_window.items():
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        g = np.arange(v.size).astype(str) if groups is None else np.asarray(groups).astype(str)
        if g.shape != v.shape:
            raise ValueError(f"{name}: {v.size} windows but {g.size} groups")
        ok = np.isfinite(v)
        v, g = v[ok], g[ok]
        if v.size == 0:
            out[name] = {"point": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
            continue
        iv = subject_bootstrap(lambda idx, v=v: float(v[idx].mean()), g, n_boot=n_boot, level=level, seed=seed)
        out[name] = {"point": iv.point, "low": iv.low, "high": iv.high, "n": int(v.size)}
    return out


def summary_table(
    results: Mapping[str, Mapping[str, np.ndarray]],
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_boot: int = DEFAULT_BOOT,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {metric: per-window array}}`` (e.g. :func:`faithfulness` merged with randomisation and
    localisation results) → ``{method: {metric: {point, low, high, n}}}``; every cell uses the same seed, so with
    ``groups`` every metric resamples the same subjects."""
    return {
        method: summarise(metrics, groups=groups, n_boot=n_boot, level=level, seed=seed)
        for method, metrics in results.items()
    }


def _columns(table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for metrics in table.values():
        cols += [m for m in metrics if m not in cols]
    return cols


def _cell(cell: Mapping[str, float] | None, digits: int) -> str:
    if cell is None or not math.isfinite(cell["point"]):
        return "—"
    if not math.isfinite(cell["low"]):
        return f"{cell['point']:.{digits}f}"
    return f"{cell['point']:.{digits}f} [{cell['low']:.{digits}f}, {cell['high']:.{digits}f}]"


def _header(metric: str) -> str:
    arrow = {"lower": " ↓", "higher": " ↑"}.get(DIRECTIONS.get(metric, ""), "")
    return metric + arrow


def format_table(table: Mapping[str, Mapping[str, Mapping[str, float]]], digits: int = 3) -> str:
    """Plain text of a :func:`summary_table`: one row per method, one column per metric (↓ lower / ↑ higher is
    better), cells ``mean [low, high]``, ``—`` where a method has no value."""
    cols = _columns(table)
    rows = [["method", *(_header(c) for c in cols)]]
    rows += [[method, *(_cell(metrics.get(c), digits) for c in cols)] for method, metrics in table.items()]
    widths = [max(len(r[j]) for r in rows) for j in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def rich_table(
    table: Mapping[str, Mapping[str, Mapping[str, float]]], *, title: str | None = None, digits: int = 3
) -> Any:
    """The same as a ``rich.table.Table`` (for :func:`ape_nas.console.make_console`)."""
    from rich.table import Table

    cols = _columns(table)
    out = Table(title=title)
    out.add_column("method")
    for c in cols:
        out.add_column(_header(c), justify="right")
    for method, metrics in table.items():
        out.add_row(method, *(_cell(metrics.get(c), digits) for c in cols))
    return out
