"""Contract: every saliency method runs on every registered family (the part-based one with its native method too),
and gives one finite relevance value per input sample; Grad-CAM's default layer has a time axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ape_nas.errors import UserError
from ape_nas.explain.beatsync import beat_profile
from ape_nas.explain.saliency import METHODS, NATIVE, attribute, available_methods, check_methods, default_layer
from ape_nas.models import build_model, list_models

FAMILIES = list_models()


def _net(name: str, **arch: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, 2, 3, **arch).eval()


@pytest.mark.parametrize("name", FAMILIES)
def test_every_method_on_every_family(name: str) -> None:
    net = _net(name)
    x = torch.randn(3, 2, 640)
    target = torch.tensor([0, 1, 2])
    methods = available_methods(net)
    assert set(METHODS) <= set(methods)
    assert (NATIVE in methods) == (name == "protonet1d")
    for method in methods:
        maps = attribute(net, x, target, method, rate=64.0)
        assert maps.shape == (3, 640) and maps.dtype == np.float32, method
        assert np.isfinite(maps).all(), method
        if method in ("gradient", "integrated_gradients"):
            assert np.abs(maps).sum() > 0, method
    out = net(x)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_gradcam_default_layer_has_a_time_axis(name: str) -> None:
    net = _net(name)
    layer = default_layer(net, 2)
    seen: dict[int, tuple[int, ...]] = {}
    module = dict(net.named_modules())[layer]
    handle = module.register_forward_hook(lambda _m, _i, out: seen.__setitem__(len(seen), tuple(out.shape)))
    with torch.no_grad():
        net(torch.zeros(1, 2, 512))
        net(torch.zeros(1, 2, 1024))
    handle.remove()
    assert seen[1][2] > seen[0][2] > 1 and seen[1][1] == seen[0][1]  # (batch, channels, time')


def test_fusing_network_is_explained_with_its_features() -> None:
    net = build_model("cnn1d", 1, 2, n_features=4, hrv_fusion="concat").eval()
    x, f = torch.randn(2, 1, 640), torch.randn(2, 4)
    for method in METHODS:
        assert attribute(net, x, torch.tensor([0, 1]), method, features=f).shape == (2, 640)


def test_gradient_map_marks_the_only_samples_a_model_reads() -> None:
    class Window(torch.nn.Module):  # logit 1 = energy of samples 100-139; logit 0 = 0
        def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
            e = (x[:, :, 100:140] ** 2).sum(dim=(1, 2))
            return torch.stack([torch.zeros_like(e), e], dim=1)

    x = torch.randn(4, 1, 400)
    for method in ("gradient", "integrated_gradients", "occlusion"):
        maps = np.abs(attribute(Window(), x, torch.ones(4, dtype=torch.long), method, rate=100.0))
        inside = maps[:, 100:140].sum(axis=1)
        outside = np.delete(maps, np.s_[100:140], axis=1).sum(axis=1)
        if method == "occlusion":  # 50-sample windows sliding by 25: those overlapping 100-139 span 75-174
            outside = np.delete(maps, np.s_[75:175], axis=1).sum(axis=1)
        assert (outside <= 1e-6 * inside).all(), method


def test_unknown_and_native_methods_are_user_errors() -> None:
    net = _net("cnn1d")
    with pytest.raises(UserError, match="lime"):
        check_methods(["lime"], net)
    with pytest.raises(UserError, match="part-based"):
        check_methods([NATIVE], net)


def test_beat_profile_finds_relevance_locked_after_each_beat() -> None:
    rng = np.random.default_rng(0)
    length, maps, signal, beats = 1920, [], [], []
    for _ in range(6):
        b = np.cumsum(rng.uniform(40, 60, size=60))
        b = b[b < length - 1]
        t = np.arange(length)[None, :]
        signal.append(np.exp(-0.5 * ((t - b[:, None]) / 3) ** 2).sum(axis=0))
        maps.append(np.exp(-0.5 * ((t - (b[:, None] + 10)) / 2) ** 2).sum(axis=0))  # 10 samples after each peak
        beats.append(b)
    prof = beat_profile(np.array(maps), np.array(signal), beats, ["a"] * 3 + ["b"] * 3, 64.0)
    for cls in "ab":
        k = int(np.argmax(prof.saliency[cls]))
        assert abs(prof.phase[k] - 10 / 50) < 0.03  # 10 samples of a 40-60-sample interval
    assert prof.phase_locking > 0.7 and prof.between_beats < 0.05
    noise = beat_profile(rng.normal(size=(6, length)), np.array(signal), beats, ["a"] * 6, 64.0)
    assert noise.phase_locking < 0.05


def test_the_help_names_the_default_methods() -> None:
    from ape_nas.commands.explain import DEFAULT_METHODS

    assert ",".join(METHODS) == DEFAULT_METHODS
