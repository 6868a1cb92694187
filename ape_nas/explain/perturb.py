"""Perturbations of 1-D windows that stay on the signal's manifold: removed samples are *imputed*, not zeroed.

Deleting part of a heart signal by setting it to zero (or to the dataset mean) creates a step that no training
window ever had; a network's score then falls because the input left its domain, not because evidence was removed
(Hooker et al. 2019, Rong et al. 2022). Here a removed sample is replaced by what a smooth signal through the kept
neighbours would have there:

* :func:`interpolate` — per channel, linear interpolation between the nearest kept samples on either side; before
  the first or after the last kept sample the value is held constant. A window with nothing kept becomes each
  channel's window mean (a flat line: no beat, no morphology — the "fully removed" window that an insertion
  curve starts from). In 1-D, the solution of ROAD's imputation system (every removed sample equals the mean of
  its neighbours; Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
  ICML 2022) *is* this linear interpolation, so no linear system needs solving.
* :func:`noisy_interpolate` — ROAD's "noisy linear imputation": the same, plus Gaussian noise on the imputed
  samples only, so the straight pieces do not themselves become a tell-tale feature. ROAD adds noise of standard
  deviation 0.01 to images normalised to unit pixel variance; a signal's scale is not fixed here, so the noise's
  standard deviation is ``noise`` times the channel's standard deviation over the window (default 0.05).

Inputs are torch tensors (the model eats them, and everything stays on the model's device): ``x`` is
``(batch, channels, time)`` float, ``mask`` is ``(batch, time)`` bool with True = removed (the same samples of
every channel). Outputs are new tensors; the inputs are not modified.
"""

from __future__ import annotations

import numpy as np
import torch

ROAD_NOISE = 0.05
"""Default noise of :func:`noisy_interpolate`, as a fraction of each channel's standard deviation over the window."""


def _check(x: torch.Tensor, mask: torch.Tensor) -> None:
    if x.ndim != 3:
        raise ValueError(f"x must be (batch, channels, time), got shape {tuple(x.shape)}")
    if mask.dtype != torch.bool or mask.shape != (x.shape[0], x.shape[2]):
        raise ValueError(
            f"mask must be a bool tensor of shape (batch, time) = {(x.shape[0], x.shape[2])}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )


def interpolate(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Replace the removed samples (``mask`` True) of every channel by linear interpolation between the nearest kept
    samples on each side; constant extrapolation at the edges; a fully removed window becomes each channel's mean.

    Example:
        >>> x = torch.tensor([[[0.0, 9.0, 9.0, 3.0, 7.0]]])
        >>> interpolate(x, torch.tensor([[False, True, True, False, True]]))
        tensor([[[0., 1., 2., 3., 3.]]])
    """
    _check(x, mask)
    b, c, t = x.shape
    pos = torch.arange(t, device=x.device, dtype=torch.int32)
    kept = ~mask
    # nearest kept sample at or before / at or after each position (-1 / t where there is none); (B, T)
    left = torch.where(kept, pos, -1).cummax(dim=1).values
    right = (t - 1) - torch.where(kept.flip(1), pos, -1).cummax(dim=1).values.flip(1)
    lo = torch.where(left >= 0, left, right).clamp_(0, t - 1)  # constant extrapolation at the edges
    hi = torch.where(right < t, right, left).clamp_(0, t - 1)
    span = (hi - lo).to(x.dtype)
    w = (pos - lo).to(x.dtype).div_(span.clamp(min=1))  # 0 where lo == hi
    x_lo = x.gather(2, lo.long().unsqueeze(1).expand(b, c, t))
    x_hi = x.gather(2, hi.long().unsqueeze(1).expand(b, c, t))
    filled = torch.lerp(x_lo, x_hi, w.unsqueeze(1))  # (B, C, T)
    none_kept = mask.all(dim=1)
    if bool(none_kept.any()):  # nothing kept: the channel's window mean
        filled = torch.where(none_kept[:, None, None], x.mean(dim=2, keepdim=True), filled)
    return torch.where(mask.unsqueeze(1), filled, x)


def noisy_interpolate(
    x: torch.Tensor,
    mask: torch.Tensor,
    rng: np.random.Generator | int,
    *,
    noise: float = ROAD_NOISE,
) -> torch.Tensor:
    """:func:`interpolate` plus Gaussian noise on the removed samples (ROAD's noisy linear imputation in 1-D).

    The noise's standard deviation is ``noise`` × the channel's standard deviation over the (unperturbed) window.
    ``rng`` (a numpy generator or a seed) draws the noise, so a run is reproducible on any device.

    Example:
        >>> x = torch.sin(torch.linspace(0, 12, 480)).reshape(1, 1, 480)
        >>> m = torch.zeros(1, 480, dtype=torch.bool); m[:, 100:160] = True
        >>> y = noisy_interpolate(x, m, 0)
        >>> bool((y[..., ~m[0]] == x[..., ~m[0]]).all())
        True
    """
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    filled = interpolate(x, mask)
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    z = torch.from_numpy(gen.standard_normal(tuple(x.shape), dtype=np.float32)).to(device=x.device, dtype=x.dtype)
    scale = noise * x.std(dim=2, keepdim=True, unbiased=False)  # (B, C, 1)
    return torch.where(mask.unsqueeze(1), filled + scale * z, filled)
