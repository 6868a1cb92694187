"""Training-time augmentations of cardiac windows, chosen by exact name in a space's ``augment`` section.

Each augmentation is a pure function of a ``(batch, channels, time)`` tensor, a ``torch.Generator`` and its
options; it returns a tensor of the same shape and never modifies its input. Options are checked by
:data:`AUGMENTATIONS` (name → option fields, the one table ``ape_nas.space`` validates against) and every
spec carries all of them (defaults filled in), under ``spec.augment``. An empty ``spec.augment`` (every spec
recorded before augmentations existed) trains exactly as before: :func:`augment_batch` returns its inputs.

Applied in training only (:meth:`ape_nas.task.CardiacTask.training_step`, one call of :func:`augment_batch`),
never to validation, test or prediction windows, in the fixed order of :data:`AUGMENTATIONS` (not the file's):

* ``time_warp`` — uniform stretch of a window about its centre by a factor ``r`` drawn log-uniformly in
  ``[1 / (1 + max_stretch), 1 + max_stretch]``, linear interpolation, positions past an edge reflected back
  (length kept). A stretch by ``r`` divides the implied heart rate by ``r``. ``max_stretch`` is bounded by
  :data:`MAX_STRETCH` (0.25): a window whose heart rate is in the usual range of the recordings,
  :data:`TYPICAL_HR_BPM` (50–160 bpm), stays inside the physiological limits :data:`HR_LIMITS_BPM` (40–200 bpm).
  Every channel is stretched alike; values of beat-interval channels (z-scored) are not rescaled.
* ``amplitude_scale`` — each (window, channel) multiplied by a factor uniform in ``[1 - scale, 1 + scale]``.
* ``baseline_wander`` — each (window, channel) gets one slow sinusoid (breathing, movement drift): frequency
  uniform in [:data:`MIN_WANDER_HZ`, ``max_hz``] Hz, random phase, amplitude uniform in ``[0, amplitude]``
  (z-score units). The sample rate is the window's length over ``spec.data.window_s``.
* ``jitter`` — additive Gaussian noise of standard deviation ``sigma`` (z-score units), every sample.
* ``mixup`` — a batch is mixed with a permutation of itself, ``lam * x + (1 - lam) * x[perm]``, ``lam`` from
  Beta(``alpha``, ``alpha``); the labels are mixed the same way into soft targets ``(batch, classes)``.

``p`` (every augmentation) is the probability that a window (``mixup``: a batch) is augmented; ``p: 0``
switches one off, so a space can search whether to use it (``p: {type: categorical, choices: [0.0, 0.5]}``).

Determinism: the draws of augmentation ``k`` in batch ``b`` of epoch ``e`` come from a generator seeded with
``SeedSequence([spec.seed, e, b, k])``: the same spec trains the same way on every run, and adding or removing
one augmentation leaves the draws of the others unchanged.

Loss with ``mixup``: the targets are class probabilities; ``torch.nn.CrossEntropyLoss`` takes them as they are
(class weights and label smoothing apply). Its mean over the batch then divides by the batch size, not by the
sum of the samples' class weights; over the training set the class weights average to 1, so both agree on
average.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ape_nas.schema import Field

if TYPE_CHECKING:
    import torch

HR_LIMITS_BPM = (40.0, 200.0)  # physiological limits a warped window must stay within
TYPICAL_HR_BPM = (50.0, 160.0)  # heart rates of the recordings' windows (rest to laboratory stress)
# the largest stretch that maps TYPICAL_HR_BPM inside HR_LIMITS_BPM, both ways: min(200/160, 50/40) - 1 = 0.25
MAX_STRETCH = min(HR_LIMITS_BPM[1] / TYPICAL_HR_BPM[1], TYPICAL_HR_BPM[0] / HR_LIMITS_BPM[0]) - 1.0
MIN_WANDER_HZ = 0.05  # the slowest baseline wander drawn


@dataclass(frozen=True)
class Context:
    """What an augmentation may need besides the batch: the sample rate of its windows."""

    rate_hz: float


def _p(default: float) -> Field:
    return Field(float, default, low=0.0, high=1.0, doc="probability that a window is augmented")


@dataclass(frozen=True)
class Augmentation:
    name: str
    fn: Callable[..., Any]
    options: dict[str, Field]
    doc: str


def _mask(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    import torch

    return torch.rand(n, generator=gen) < p


def warp_factors(gen: torch.Generator, n: int, max_stretch: float) -> torch.Tensor:
    """``n`` stretch factors, log-uniform in ``[1 / (1 + max_stretch), 1 + max_stretch]`` (``max_stretch`` is
    clipped to :data:`MAX_STRETCH`)."""
    import torch

    bound = math.log1p(min(max(max_stretch, 0.0), MAX_STRETCH))
    return torch.exp((torch.rand(n, generator=gen, dtype=torch.float64) * 2.0 - 1.0) * bound)


def warp(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Stretch each window ``i`` of ``x`` about its centre by ``factors[i]`` (> 1: slower), length kept.

    Output sample ``t`` reads the input at ``c + (t - c) / r`` (``c`` the centre), linearly interpolated;
    positions past an edge are reflected back into the window.
    """
    import torch

    n, channels, length = x.shape
    if length < 2:
        return x.clone()
    t = torch.arange(length, dtype=torch.float64)
    c = (length - 1) / 2.0
    pos = c + (t[None, :] - c) / factors.to(torch.float64)[:, None]  # (n, time)
    last = float(length - 1)
    pos = pos.abs()  # reflect at 0
    pos = torch.where(pos > last, 2.0 * last - pos, pos).clamp(0.0, last)  # reflect at the end
    i0 = pos.floor().long().clamp(0, length - 2)
    w = (pos - i0).to(x.dtype).to(x.device)[:, None, :]
    i0 = i0.to(x.device)[:, None, :].expand(n, channels, length)
    a, b = x.gather(2, i0), x.gather(2, i0 + 1)
    return a + (b - a) * w


def time_warp(
    x: torch.Tensor, gen: torch.Generator, ctx: Context, *, p: float = 0.5, max_stretch: float = 0.1
) -> torch.Tensor:
    import torch

    mask = _mask(gen, len(x), p)
    factors = torch.where(mask, warp_factors(gen, len(x), max_stretch), torch.ones(len(x), dtype=torch.float64))
    return warp(x, factors)


def amplitude_scale(
    x: torch.Tensor, gen: torch.Generator, ctx: Context, *, p: float = 0.5, scale: float = 0.2
) -> torch.Tensor:
    import torch

    n, channels, _ = x.shape
    factor = 1.0 + (torch.rand(n, channels, 1, generator=gen) * 2.0 - 1.0) * scale
    factor = torch.where(_mask(gen, n, p)[:, None, None], factor, torch.ones_like(factor))
    return x * factor.to(x.dtype).to(x.device)


def baseline_wander(
    x: torch.Tensor, gen: torch.Generator, ctx: Context, *, p: float = 0.5, amplitude: float = 0.2, max_hz: float = 0.5
) -> torch.Tensor:
    import torch

    n, channels, length = x.shape
    hz = MIN_WANDER_HZ + torch.rand(n, channels, 1, generator=gen, dtype=torch.float64) * (max_hz - MIN_WANDER_HZ)
    phase = torch.rand(n, channels, 1, generator=gen, dtype=torch.float64) * (2.0 * math.pi)
    amp = torch.rand(n, channels, 1, generator=gen, dtype=torch.float64) * amplitude
    amp = torch.where(_mask(gen, n, p)[:, None, None], amp, torch.zeros_like(amp))
    t = torch.arange(length, dtype=torch.float64) / ctx.rate_hz
    wave = amp * torch.sin(2.0 * math.pi * hz * t + phase)
    return x + wave.to(x.dtype).to(x.device)


def jitter(x: torch.Tensor, gen: torch.Generator, ctx: Context, *, p: float = 1.0, sigma: float = 0.05) -> torch.Tensor:
    import torch

    noise = torch.randn(x.shape, generator=gen) * sigma
    noise = torch.where(_mask(gen, len(x), p)[:, None, None], noise, torch.zeros_like(noise))
    return x + noise.to(x.dtype).to(x.device)


def mixup(
    x: torch.Tensor,
    y: torch.Tensor,
    gen: torch.Generator,
    *,
    num_classes: int,
    p: float = 1.0,
    alpha: float = 0.2,
    features: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Mix a batch with a permutation of itself: ``(lam * x + (1 - lam) * x[perm], soft targets, features)``.

    ``y``: labels ``(batch,)`` or class probabilities ``(batch, classes)``; the mixed targets are class
    probabilities. ``features`` (HRV features per window, or None) are mixed alike. With probability ``1 - p``,
    or ``alpha`` 0, everything comes back unchanged."""
    import numpy as np
    import torch

    use = bool(_mask(gen, 1, p)[0])
    perm = torch.randperm(len(x), generator=gen)
    # Beta draw: torch's Beta takes no generator; numpy's, seeded from this generator, keeps it reproducible
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha)) if alpha > 0 else 1.0
    if not use or lam == 1.0 or len(x) < 2:
        return x, y, features
    soft = soft_targets(y, num_classes, x.dtype) if y.dim() == 1 else y
    idx = perm.to(x.device)
    mixed = None if features is None else lam * features + (1.0 - lam) * features[idx.to(features.device)]
    return lam * x + (1.0 - lam) * x[idx], lam * soft + (1.0 - lam) * soft[idx], mixed


AUGMENTATIONS: dict[str, Augmentation] = {
    a.name: a
    for a in (
        Augmentation(
            "time_warp",
            time_warp,
            {
                "p": _p(0.5),
                "max_stretch": Field(float, 0.1, low=0.0, high=MAX_STRETCH, doc="largest stretch, both ways"),
            },
            "uniform stretch of the window; heart rate kept within physiological limits",
        ),
        Augmentation(
            "amplitude_scale",
            amplitude_scale,
            {"p": _p(0.5), "scale": Field(float, 0.2, low=0.0, high=0.9, doc="factor in [1 - scale, 1 + scale]")},
            "per-channel gain",
        ),
        Augmentation(
            "baseline_wander",
            baseline_wander,
            {
                "p": _p(0.5),
                "amplitude": Field(float, 0.2, low=0.0, high=5.0, doc="largest amplitude (z-score units)"),
                "max_hz": Field(float, 0.5, low=MIN_WANDER_HZ, high=2.0, doc="fastest wander, Hz"),
            },
            "slow sinusoidal drift",
        ),
        Augmentation(
            "jitter",
            jitter,
            {"p": _p(1.0), "sigma": Field(float, 0.05, low=0.0, high=5.0, doc="noise std (z-score units)")},
            "additive Gaussian noise",
        ),
        Augmentation(
            "mixup",
            mixup,
            {
                "p": Field(float, 1.0, low=0.0, high=1.0, doc="probability that a batch is mixed"),
                "alpha": Field(float, 0.2, low=0.0, high=10.0, doc="Beta(alpha, alpha) mixing weights"),
            },
            "convex combination of windows and of their labels",
        ),
    )
}
LABEL_MIXING = frozenset({"mixup"})  # augmentations that change the targets


def defaults(name: str) -> dict[str, Any]:
    """Every option of augmentation ``name`` with its default."""
    return {key: f.default for key, f in AUGMENTATIONS[name].options.items()}


def generator(seed: int, epoch: int, batch: int, index: int) -> torch.Generator:
    """The generator of augmentation number ``index`` (its place in :data:`AUGMENTATIONS`) in one batch."""
    import numpy as np
    import torch

    state = np.random.SeedSequence([int(seed), int(epoch), int(batch), int(index)]).generate_state(2, np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def soft_targets(y: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    import torch

    return torch.nn.functional.one_hot(y.long(), num_classes).to(dtype)


def apply(
    settings: Mapping[str, Mapping[str, Any]],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int,
    epoch: int,
    batch: int,
    num_classes: int,
    rate_hz: float,
    features: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Augment one training batch: ``(x, y, features)`` → the same, augmented. ``y`` comes back as it was unless
    labels were mixed, then as class probabilities ``(batch, classes)``; ``features`` (HRV features per window)
    change only by mixing. ``settings``: augmentation name → its options (``spec.augment``)."""
    import torch

    if not settings:
        return x, y, features
    unknown = set(settings) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"unknown augmentation(s) {sorted(unknown)}; known: {', '.join(AUGMENTATIONS)}")
    ctx = Context(rate_hz=float(rate_hz))
    with torch.no_grad():
        for index, (name, aug) in enumerate(AUGMENTATIONS.items()):
            if name not in settings:
                continue
            options = {**defaults(name), **settings[name]}
            gen = generator(seed, epoch, batch, index)
            if name in LABEL_MIXING:
                x, y, features = aug.fn(x, y, gen, num_classes=num_classes, features=features, **options)
            else:
                x = aug.fn(x, gen, ctx, **options)
    return x, y, features


def augment_batch(spec: Any, batch: Sequence[Any], num_classes: int, epoch: int, index: int) -> Any:
    """The task's one call: a training batch ``(x, y)`` or ``(x, features, y)`` augmented as the TrialSpec's
    ``augment`` says (seeded from ``spec.seed``, ``epoch`` and the batch ``index``); returned as it came when the
    spec has no augmentation. The sample rate is the windows' length over ``spec.data["window_s"]``."""
    settings = getattr(spec, "augment", None) or {}
    if not settings:
        return batch
    x, features, y = (batch[0], batch[1], batch[2]) if len(batch) == 3 else (batch[0], None, batch[1])
    rate = x.shape[-1] / float(spec.data["window_s"])
    x, y, features = apply(
        settings,
        x,
        y,
        seed=spec.seed,
        epoch=epoch,
        batch=index,
        num_classes=num_classes,
        rate_hz=rate,
        features=features,
    )
    return (x, features, y) if len(batch) == 3 else (x, y)


__all__ = [
    "AUGMENTATIONS",
    "HR_LIMITS_BPM",
    "MAX_STRETCH",
    "TYPICAL_HR_BPM",
    "Context",
    "amplitude_scale",
    "apply",
    "augment_batch",
    "baseline_wander",
    "defaults",
    "jitter",
    "mixup",
    "time_warp",
    "warp",
    "warp_factors",
]
