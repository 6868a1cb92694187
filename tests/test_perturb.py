"""On-manifold removal for 1-D windows (``ape_nas.explain.perturb``): known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ape_nas.explain.perturb import interpolate, noisy_interpolate


def _mask(t: int, *spans: tuple[int, int], b: int = 1) -> torch.Tensor:
    m = torch.zeros(b, t, dtype=torch.bool)
    for lo, hi in spans:
        m[:, lo:hi] = True
    return m


def test_removed_samples_lie_on_the_line_between_the_kept_neighbours():
    x = torch.tensor([[[0.0, 9.0, 9.0, 3.0, 7.0, -1.0, 5.0]]])
    m = torch.tensor([[False, True, True, False, False, True, False]])
    assert interpolate(x, m).tolist() == [[[0.0, 1.0, 2.0, 3.0, 7.0, 6.0, 5.0]]]


def test_edges_are_held_constant_and_a_fully_removed_window_is_its_mean():
    x = torch.tensor([[[4.0, 8.0, 2.0, 6.0, 1.0]]])
    assert interpolate(x, torch.tensor([[True, True, False, False, True]])).tolist() == [[[2.0, 2.0, 2.0, 6.0, 6.0]]]
    torch.testing.assert_close(interpolate(x, torch.ones(1, 5, dtype=torch.bool)), torch.full((1, 1, 5), 4.2))


def test_a_straight_line_is_reconstructed_exactly_and_nothing_removed_is_identity():
    t = torch.linspace(-3.0, 5.0, 200)
    x = torch.stack([t, 2 * t + 1]).unsqueeze(0)  # (1, 2, 200): two channels, the same removed samples
    m = _mask(200, (10, 50), (51, 52), (120, 199))
    torch.testing.assert_close(interpolate(x, m), x)
    assert torch.equal(interpolate(x, _mask(200)), x)


def test_each_window_and_channel_uses_its_own_mask_and_values():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((3, 2, 40)), dtype=torch.float32)
    m = torch.as_tensor(rng.random((3, 40)) < 0.4)
    m[:, 0] = False  # keep a sample at each edge so that every removed sample is an interpolation
    m[:, -1] = False
    y = interpolate(x, m)
    for b in range(3):
        kept = np.flatnonzero(~m[b].numpy())
        for c in range(2):
            expected = np.interp(np.arange(40), kept, x[b, c, kept].numpy())
            np.testing.assert_allclose(y[b, c].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_inputs_are_not_modified_and_bad_shapes_are_refused():
    x = torch.randn(2, 1, 30)
    before = x.clone()
    interpolate(x, _mask(30, (5, 9), b=2))
    assert torch.equal(x, before)
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(batch, time\)"):
        interpolate(x, torch.zeros(2, 29, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"x must be \(batch, channels, time\)"):
        interpolate(x[0], _mask(30))


def test_road_noise_is_on_the_removed_samples_only_scaled_to_the_signal_and_seeded():
    g = torch.Generator().manual_seed(1)
    x = 3.0 * torch.randn(8, 1, 2000, generator=g)  # channel std 3
    m = _mask(2000, (100, 1900), b=8)
    clean = interpolate(x, m)
    noisy = noisy_interpolate(x, m, np.random.default_rng(0), noise=0.1)
    assert torch.equal(noisy[..., ~m[0]], x[..., ~m[0]])
    residual = (noisy - clean)[..., m[0]]
    assert float(residual.std()) == pytest.approx(0.1 * 3.0, rel=0.05)
    assert torch.equal(noisy, noisy_interpolate(x, m, 0, noise=0.1))  # a seed draws what its generator draws
    torch.testing.assert_close(noisy_interpolate(x, m, 7), noisy_interpolate(x, m, 7))
    torch.testing.assert_close(noisy_interpolate(x, m, 7, noise=0.0), clean)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        noisy_interpolate(x, m, 0, noise=-1.0)
