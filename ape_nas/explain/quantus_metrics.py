"""Quantus (0.6) metrics that work on ``(B, C, T)`` windows, run with our on-manifold perturbation and explainers.

Quantus is imported lazily (it pulls in OpenCV and scikit-image: seconds at import). Every function returns
per-window arrays like :mod:`ape_nas.explain.faithfulness`, so the same :func:`~ape_nas.explain.faithfulness.summarise`
applies. Quantus's own global random draws (``np.random``; ``torch.manual_seed`` in MPRT) are seeded here and the
caller's global random state is restored afterwards.

Used, with what each means here (direction in :data:`DIRECTIONS`):

* ``RelevanceMassAccuracy`` (``q_mass_on_mask``), ``RelevanceRankAccuracy`` (``q_rank_on_mask``), ``PointingGame``
  (``q_pointing_game``), ``AUC`` (``q_auc``: ROC AUC of the map as a detector of the mask's samples; chance 0.5) —
  shape-agnostic (they flatten), exact on 1-D. Quantus's mass accuracy divides the relevance on the mask by the
  *total* (signed) relevance; ours by the positive relevance, so the maps are clipped at 0 first and then the two
  agree (tested). Its pointing game counts a hit if *any* tied maximum is on the mask; ours counts the fraction.
* ``RegionPerturbation`` (``q_region_aopc``: AOPC, the mean drop of the target probability over the first
  ``regions`` most relevant segments removed, MoRF; higher is better) — Quantus views a 1-D window as a
  ``(C, 1, T)`` image and pads the height to the patch size, so :func:`quantus_perturbation` is told the padded
  row length and interpolates every row. Unlike our deletion curve, Quantus removes each new segment from the
  *already imputed* window, so earlier straight pieces act as kept anchors; both stay on the manifold.
* ``PixelFlipping`` (``q_pixel_flipping``: mean target probability as samples are removed ``segment`` at a time in
  order of their own relevance; lower is better) — sample-ranked, not segment-ranked; incremental like the above.
* ``FaithfulnessCorrelation`` (``q_faithfulness_correlation``: Pearson correlation, over random subsets of
  ``segment`` samples, between the relevance removed and the probability drop; higher is better) — subsets are
  scattered samples, which interpolation barely changes on a smooth signal, so this one is noisy for 1-D.
* ``MPRT`` (``q_mprt``: Spearman correlation of the absolute maps after full cascading randomisation, Quantus's
  ``reset_parameters`` order; lower is better) — NaN for a window whose map becomes constant (an all-zero Grad-CAM),
  where :func:`ape_nas.explain.faithfulness.spearman_rows` says 0.

Tried and not used (Quantus 0.6.0, ``(B, 1, T)`` float32 input, ``channel_first=True``; see :data:`NOT_USED`).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ape_nas.explain import faithfulness
from ape_nas.explain.faithfulness import ExplainFn, Perturbation, segment_length
from ape_nas.explain.perturb import interpolate

DIRECTIONS: dict[str, str] = {k: v for k, v in faithfulness.DIRECTIONS.items() if k.startswith("q_")}
"""Metric → the direction in which it is better."""

NOT_USED: dict[str, str] = {
    "IROF": "image only: ValueError 'Make sure that x is 3 dimensional e.g., (3, 224, 224) to calculate "
    "super-pixels. shape: (480, 1)' (SLIC super-pixels)",
    "Focus": "image only (needs a mosaic of four images): IndexError 'tuple index out of range' in focus.py",
    "ROAD": "its default noisy_linear_imputation is 2-D (eight pixel neighbours): IndexError 'tuple index out of "
    "range' in helpers/utils.py offset_coordinates. It runs with quantus_perturbation passed as perturb_func, but "
    "returns only the batch accuracy per percentage (no per-window score, so no interval over windows); our "
    "deletion curve with noisy_interpolate is the per-window equivalent",
    "Infidelity": "AssertionError 'pad_width and padded_axes have different lengths' (its patch padding assumes "
    "2-D inputs)",
    "SmoothMPRT": "AssertionError 'The elements in the attribution vector are all equal to zero ...' as soon as a "
    "randomised network's Grad-CAM map is all zero (common); MPRT is used instead",
    "Monotonicity": "runs, but applies perturb_func to *restore* features onto a constant baseline; a removal "
    "perturbation (interpolation) leaves the constant unchanged, so every window scores True trivially",
    "FaithfulnessEstimate, MonotonicityCorrelation, Selectivity, SensitivityN, Sufficiency, EfficientMPRT, "
    "RandomLogit, TopKIntersection, AttributionLocalisation": "run on (B, 1, T) without error; not used: they "
    "duplicate the measures above (sample-level variants of deletion, other randomisation summaries) or, like "
    "RandomLogit's default SSIM similarity, are designed for images",
}
"""Quantus metrics tried on ``(B, 1, T)`` windows and why they are not part of :func:`quantus_scores`."""


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed numpy's and torch's global generators (which Quantus draws from) and restore them afterwards."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


def quantus_perturbation(length: int, perturbation: Perturbation = interpolate) -> Callable[..., np.ndarray]:
    """Our perturbation as a Quantus ``perturb_func``.

    Quantus hands it either a batch flattened to ``(B, N)`` with flat indices ``(B, I)`` (PixelFlipping,
    RegionPerturbation, FaithfulnessCorrelation, ...) or one window ``(C, T)`` with flat indices ``(I,)`` (ROAD).
    Every run of ``length`` values (a channel; a padded row of RegionPerturbation's image view) is one time series;
    a time is removed from every row when any row's index at that time is given.

    Example:
        >>> f = quantus_perturbation(5)
        >>> f(arr=np.array([[0.0, 9.0, 9.0, 3.0, 7.0]]), indices=np.array([[1, 2]]))
        array([[0., 1., 2., 3., 7.]])
    """

    def perturb(arr: np.ndarray, indices: Any, **_: Any) -> np.ndarray:
        a = np.asarray(arr)
        idx = np.asarray(indices)
        batched = idx.ndim == 2
        b = a.shape[0] if batched else 1
        if a.size % (b * length):
            raise ValueError(f"quantus_perturbation: {a.shape} does not split into rows of {length} samples")
        x = torch.as_tensor(a.reshape(b, -1, length), dtype=torch.float32)
        mask = torch.zeros(b, length, dtype=torch.bool)
        if idx.size:
            rows = torch.as_tensor(idx.reshape(b, -1) % length, dtype=torch.long)
            mask.scatter_(1, rows, True)
        return perturbation(x, mask).numpy().astype(a.dtype).reshape(a.shape)

    return perturb


def quantus_explain_func(explain_fn: ExplainFn) -> Callable[..., np.ndarray]:
    """Our ``explain_fn(net, x, target) -> (B, T)`` as a Quantus ``explain_func(model, inputs, targets)``."""

    def explain(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> np.ndarray:
        device = next(model.parameters()).device
        x = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
        y = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device)
        return np.asarray(explain_fn(model, x, y), dtype=np.float32)

    return explain


def _arrays(x: torch.Tensor | np.ndarray, target: Any) -> tuple[np.ndarray, np.ndarray]:
    xn = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    yn = target.detach().cpu().numpy() if torch.is_tensor(target) else np.asarray(target)
    return xn.astype(np.float32), yn.astype(np.int64)


def quantus_localisation(
    x: torch.Tensor | np.ndarray, target: Any, maps: np.ndarray, masks: np.ndarray
) -> dict[str, np.ndarray]:
    """Quantus's localisation scores of ``maps`` against ``masks`` ((B, T) each; maps clipped at 0, see above)."""
    import quantus

    xn, yn = _arrays(x, target)
    a = np.clip(np.asarray(maps, dtype=np.float32), 0.0, None)[:, None, :]  # (B, 1, T)
    s = np.asarray(masks, dtype=bool)[:, None, :].astype(np.float32)
    common = {"model": None, "x_batch": xn, "y_batch": yn, "a_batch": a, "s_batch": s, "channel_first": True}
    metrics = {
        "q_mass_on_mask": quantus.RelevanceMassAccuracy(disable_warnings=True),
        "q_rank_on_mask": quantus.RelevanceRankAccuracy(disable_warnings=True),
        "q_pointing_game": quantus.PointingGame(disable_warnings=True),
        "q_auc": quantus.AUC(disable_warnings=True),
    }
    return {name: np.asarray(m(**common), dtype=np.float64) for name, m in metrics.items()}


def quantus_faithfulness(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    maps: np.ndarray,
    *,
    segment: int | None = None,
    regions: int | None = None,
    n_runs: int = 50,
    seed: int = 0,
    perturbation: Perturbation = interpolate,
) -> dict[str, np.ndarray]:
    """Quantus's RegionPerturbation (MoRF AOPC over the first ``regions`` segments, default all), PixelFlipping
    and FaithfulnessCorrelation (``n_runs`` random subsets) of ``maps`` ((B, T)) with our perturbation; segments
    and steps of ``segment`` samples as in :func:`~ape_nas.explain.faithfulness.deletion_insertion`. The network
    runs on the CPU in eval mode, target probabilities from softmax."""
    import quantus
    from scipy.stats import ConstantInputWarning

    xn, yn = _arrays(x, target)
    t = xn.shape[2]
    seg = segment_length(t, segment)
    n_seg = math.ceil(t / seg)
    a = np.asarray(maps, dtype=np.float32)[:, None, :]  # (B, 1, T)
    net = net.eval()
    common = {"model": net, "x_batch": xn, "y_batch": yn, "a_batch": a, "channel_first": True, "softmax": True}
    common["device"] = "cpu"
    with _seeded(seed), warnings.catch_warnings():
        # a random subset without relevance has a constant sum: Pearson is NaN there (kept, documented)
        warnings.simplefilter("ignore", ConstantInputWarning)
        region = quantus.RegionPerturbation(
            patch_size=seg,
            order="morf",
            regions_evaluation=regions or n_seg,
            normalise=False,
            perturb_func=quantus_perturbation(n_seg * seg, perturbation),
            disable_warnings=True,
        )(**common)
        flipping = quantus.PixelFlipping(
            features_in_step=seg,
            normalise=False,
            perturb_func=quantus_perturbation(t, perturbation),
            disable_warnings=True,
        )(**common)
        correlation = quantus.FaithfulnessCorrelation(
            nr_runs=n_runs,
            subset_size=seg,
            return_aggregate=False,
            perturb_func=quantus_perturbation(t, perturbation),
            disable_warnings=True,
        )(**common)
    return {
        "q_region_aopc": np.asarray(region, dtype=np.float64).mean(axis=1),
        "q_pixel_flipping": np.asarray(flipping, dtype=np.float64).mean(axis=1),
        "q_faithfulness_correlation": np.asarray(correlation, dtype=np.float64),
    }


def quantus_randomisation(
    net: nn.Module, x: torch.Tensor, target: torch.Tensor, explain_fn: ExplainFn, *, seed: int = 0
) -> dict[str, np.ndarray]:
    """Quantus's MPRT (cascading, top down, ``reset_parameters``, Spearman of absolute max-normalised maps):
    ``{"q_mprt": (B,)}`` after the last layer. ``net`` itself is not modified (Quantus randomises a deep copy)."""
    import quantus

    xn, yn = _arrays(x, target)
    net = net.eval()
    with _seeded(seed):
        scores = quantus.MPRT(seed=seed, return_last_correlation=True, disable_warnings=True)(
            model=net,
            x_batch=xn,
            y_batch=yn,
            a_batch=None,
            channel_first=True,
            explain_func=quantus_explain_func(explain_fn),
            device="cpu",
        )
    return {"q_mprt": np.asarray(scores, dtype=np.float64)}


def quantus_scores(
    net: nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    maps: Mapping[str, np.ndarray],
    *,
    masks: np.ndarray | None = None,
    explainers: Mapping[str, ExplainFn] | None = None,
    segment: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, np.ndarray]]:
    """``{method: {q_metric: (B,)}}``: the faithfulness metrics of every method's maps, the localisation metrics
    when ``masks`` are given, and MPRT for the methods in ``explainers`` (``{method: explain_fn}``)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for method, m in maps.items():
        res = quantus_faithfulness(net, x, target, m, segment=segment, seed=seed)
        if masks is not None:
            res.update(quantus_localisation(x, target, m, masks))
        if explainers and method in explainers:
            res.update(quantus_randomisation(net, x, target, explainers[method], seed=seed))
        out[method] = res
    return out
