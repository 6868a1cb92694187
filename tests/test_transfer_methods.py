"""Adaptation methods of few-shot transfer (:mod:`ape_nas.transfer.methods`): each method trains exactly what it
claims, the source is never touched, the weighted network folds into the plain source architecture (same outputs,
strict load, ONNX parity), runs are reproducible, and weighting learns a trivially separable task."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from ape_nas.errors import UserError
from ape_nas.hrv import FEATURE_NAMES
from ape_nas.models import build_model
from ape_nas.transfer import methods as M

C, T = 2, 96  # channels and samples of the random windows
N_FEATURES = len(FEATURE_NAMES)
FOLD_TOL = 1e-5

#: the adapted network's own parametrization tensors (filter scales, shifts)
OURS = re.compile(r"\.parametrizations\.\w+\.\d+\.(scale|shift)$")

#: a searched network with every kind of layer: BN after a bias-free conv, a depthwise conv, attention (linear
#: layers, LayerNorm, a biased depthwise conv), a GRU with a LayerNorm after its bias-free 1x1 projection, a conv
#: with its own bias (norm none), HRV fusion (FeatureInput buffers)
MIXED: dict[str, Any] = {
    "stem_width": 6,
    "stem_kernel": 5,
    "stages": [
        {
            "width": 8,
            "down": "stride",
            "blocks": [
                {"op": "sep_conv", "kernel": 5},
                {"op": "attention", "heads": 2, "expand": 1},
                {"op": "gru", "norm": "layer"},
                {"op": "conv", "kernel": 3, "norm": "none"},
            ],
        }
    ],
    "head": "gap",
    "hrv_fusion": "concat",
}

#: family, architecture: small networks of each family the fold is checked on
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "cnn1d": ("cnn1d", {"depth": 2, "width": 6}),
    "resnet1d": ("resnet1d", {"blocks": 2, "width": 6}),
    "inception_time": ("inception_time", {"depth": 3, "filters": 3, "kernel_size": 9, "bottleneck": 4}),
    "searched1d": ("searched1d", {**MIXED, "hrv_fusion": "none", "head": "gru"}),
    "tcn": ("tcn", {"levels": 2, "width": 6, "kernel_size": 3}),
    "tcn_weight_norm": ("tcn", {"levels": 2, "width": 6, "kernel_size": 3, "weight_norm": True}),
    "xresnet1d": ("xresnet1d", {"width": 0.125}),
    "cnn1d_hybrid": ("cnn1d", {"depth": 2, "width": 6, "hrv_fusion": "concat"}),
}


# ---- helpers -------------------------------------------------------------------------------------------------------


def _builder(family: str, arch: dict[str, Any]) -> Callable[[int], nn.Module]:
    n_features = N_FEATURES if arch.get("hrv_fusion", "none") != "none" else 0
    return lambda k: build_model(family, C, k, n_features=n_features, **arch)


def _data(n: int, hybrid: bool, seed: int = 0, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, C, T)).astype(np.float32)
    y = np.arange(n) % k
    F = None
    if hybrid:
        F = rng.standard_normal((n, N_FEATURES)).astype(np.float32) * 3
        F[rng.random(F.shape) < 0.1] = np.nan  # features that could not be computed
    return X, y, F


def _call(net: nn.Module, x: torch.Tensor, f: np.ndarray | None) -> torch.Tensor:
    return net(x) if f is None else net(x, torch.from_numpy(f[: len(x)]))


def _source(family: str, arch: dict[str, Any], classes: int = 3) -> nn.Module:
    """A 'trained' source: non-trivial running statistics and norm affines, the HRV transform's statistics."""
    torch.manual_seed(7)
    net = _builder(family, arch)(classes)
    hybrid = arch.get("hrv_fusion", "none") != "none"
    X, _, F = _data(6, hybrid, seed=1)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            _call(net, torch.from_numpy(X) * 2 + 0.5, F)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d | nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
    if hybrid:
        rng = np.random.default_rng(2)
        keep = (rng.random(N_FEATURES) > 0.2).astype(np.float32)
        net.feature_input.load_stats(
            keep, rng.normal(size=N_FEATURES), rng.normal(size=N_FEATURES), rng.uniform(0.5, 2, N_FEATURES)
        )
    return net.eval()


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _source_view(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapted network's own tensors under the source's names (filter scales and shifts left out)."""
    out = {}
    for key, value in state.items():
        if OURS.search(key):
            continue
        m = re.fullmatch(r"(.*\.)?parametrizations\.(\w+)\.original", key)
        out[f"{m[1] or ''}{m[2]}" if m else key] = value
    return out


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


def _is_head(key: str) -> bool:
    return key.startswith("head.")


def _perturb(adapted: M.Adapted) -> None:
    """Filter scales and shifts far from their start (folding must hold for any values, not just a few steps')."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in adapted.net.named_parameters():
            if name.endswith(".scale"):
                p.copy_(torch.empty(p.shape).uniform_(-1.5, 2.0, generator=g))
            elif name.endswith(".shift"):
                p.copy_(torch.empty(p.shape).normal_(0.0, 0.5, generator=g))


# ---- names ---------------------------------------------------------------------------------------------------------


def test_the_methods_by_exact_name_with_sensible_defaults():
    assert list(M.METHODS) == ["weighting", "weighting+shift", "head", "finetune", "bn", "scratch"]
    for name, method in M.METHODS.items():
        assert method.name == name and method.description
        assert method.lr > 0 and method.steps > 0 and method.batch_size > 0 and method.weight_decay >= 0
        assert method.norm in M.NORM_MODES
        assert M.check_method(name) == name
    assert M.METHODS["finetune"].head_lr > M.METHODS["finetune"].lr


@pytest.mark.parametrize("name", ["Weighting", "weights", "", "weighting shift"])
def test_an_unknown_method_is_one_user_error_listing_the_names(name):
    with pytest.raises(UserError) as info:
        M.check_method(name)
    message = str(info.value)
    assert "\n" not in message and repr(name) in message
    assert all(known in message for known in M.METHODS)
    family, arch = FAMILIES["cnn1d"]
    with pytest.raises(UserError):
        M.adapt(name, _source(family, arch), 2, build=_builder(family, arch), seed=0)


def test_a_build_of_another_architecture_is_refused():
    family, arch = FAMILIES["cnn1d"]
    with pytest.raises(ValueError, match="architecture"):
        M.adapt("weighting", _source(family, arch), 2, build=_builder(family, {**arch, "width": 7}), seed=0)


# ---- weighting: only the filter scales and the new head change ------------------------------------------------------


def test_weighting_changes_only_the_filter_scales_and_the_new_head():
    family, arch = "searched1d", {**MIXED, "head": "attention"}
    source = _source(family, arch)
    before = _snapshot(source)
    X, y, F = _data(12, hybrid=True)
    with torch.no_grad():
        out_before = _call(source, torch.from_numpy(X), F)
    adapted = M.adapt("weighting", source, 2, build=_builder(family, arch), seed=0)
    head_start = {k: v for k, v in _snapshot(adapted.net).items() if _is_head(k)}
    losses = M.fit(adapted, X, y, F, seed=0, steps=25)
    assert len(losses) == 25 and all(np.isfinite(losses))
    after = _snapshot(adapted.net)

    # every source tensor but the head, bit for bit (BN buffers, FeatureInput, attention, GRU, norm affines)
    view = _source_view(after)
    body = {k for k in before if not _is_head(k)}
    assert {k for k in view if not _is_head(k)} == body
    different = sorted(k for k in body if not torch.equal(view[k], before[k]))
    assert not different, different
    assert any(".running_var" in k for k in body) and any("feature_input.medians" in k for k in body)
    assert any(".gru." in k for k in body) and any(".qkv." in k for k in body)

    # one scale per output filter of every Conv1d (depthwise ones too), all moved from 1
    scales = adapted.filter_scales()
    convs = {name: m for name, m in source.named_modules() if isinstance(m, nn.Conv1d)}
    assert set(scales) == set(convs)
    assert any(m.groups > 1 for m in convs.values())
    for name, scale in scales.items():
        assert scale.shape == (convs[name].out_channels,)
        assert not torch.equal(scale, torch.ones_like(scale)), name
    moved = torch.cat(list(scales.values())) != 1
    assert moved.float().mean() > 0.5
    assert all(not torch.equal(after[k], v) for k, v in head_start.items())
    assert adapted.trained_parameters() == sum(m.out_channels for m in convs.values()) + sum(
        p.numel() for p in adapted.net.head.parameters()
    )

    # the source itself is untouched: same tensors, no parametrization, same outputs
    assert _changed(before, _snapshot(source)) == set()
    assert not any(parametrize.is_parametrized(m) for m in source.modules())
    with torch.no_grad():
        assert torch.equal(_call(source, torch.from_numpy(X), F), out_before)


def test_a_weight_normalised_source_is_not_touched_by_a_shift_on_its_biases():
    """A deep copy of a parametrized module shares the source's class: a new parametrized tensor must not reach it."""
    family, arch = FAMILIES["tcn_weight_norm"]
    source = _source(family, arch)
    before = _snapshot(source)
    adapted = M.adapt("weighting+shift", source, 2, build=_builder(family, arch), seed=0)
    M.fit(adapted, *_data(8, hybrid=False)[:2], seed=0, steps=3)
    assert _changed(before, _snapshot(source)) == set()
    conv = source.features[0].body[0].conv
    assert set(conv.parametrizations) == {"weight"}
    assert isinstance(conv.bias, nn.Parameter)
    source(torch.zeros(1, C, T))


# ---- each method trains exactly what it claims -------------------------------------------------------------------


def _expected_changes(method: str, state: dict[str, torch.Tensor], net: nn.Module) -> tuple[set[str], set[str]]:
    """(parameters, buffers) ``method`` changes, from the names alone."""
    params = {name for name, _ in net.named_parameters()}
    head = {k for k in params if _is_head(k)}
    norms = {name for name, m in net.named_modules() if isinstance(m, nn.BatchNorm1d | nn.LayerNorm)}
    affines = {k for k in params if k.rsplit(".", 1)[0] in norms}
    statistics = {k for k in state if k.rsplit(".", 1)[0] in norms and k not in params}
    if method == "weighting":
        return head | {k for k in params if k.endswith(".scale")}, set()
    if method == "weighting+shift":
        return head | {k for k in params if OURS.search(k)}, set()
    if method == "head":
        return head, set()
    if method == "finetune":
        return params, set()
    if method == "bn":
        return head | affines, statistics
    return params, statistics  # scratch


@pytest.mark.parametrize("method", list(M.METHODS))
def test_each_method_trains_exactly_its_subset(method):
    family, arch = "searched1d", MIXED
    source = _source(family, arch)
    X, y, F = _data(12, hybrid=True)
    adapted = M.adapt(method, source, 2, build=_builder(family, arch), seed=0)
    before = _snapshot(adapted.net)
    params, buffers = _expected_changes(method, before, adapted.net)
    assert set(adapted.trainable) == params
    assert {k for k, _ in adapted.parameters_trained()} == params
    assert adapted.trained_parameters() == sum(before[k].numel() for k in params)
    M.fit(adapted, X, y, F, seed=0, steps=6, lr=1e-2)
    changed = _changed(before, _snapshot(adapted.net))
    assert changed == params | buffers, (sorted(changed - params - buffers), sorted(params | buffers - changed))
    assert not any("feature_input" in k for k in changed)
    if method in ("weighting", "weighting+shift", "head", "bn"):
        assert adapted.trained_parameters() < sum(p.numel() for p in source.parameters()) / 4


def test_weighting_plus_shift_shifts_conv_biases_or_the_norm_layer_after_a_bias_free_conv():
    cases = {
        "cnn1d": lambda net: {f"{n}.bias" for n, m in net.named_modules() if isinstance(m, nn.BatchNorm1d)},
        "tcn": lambda net: {f"{n}.bias" for n, m in net.named_modules() if isinstance(m, nn.Conv1d)},
        # every module's BatchNorm after the concatenated branches, and the shortcut's BatchNorm
        "inception_time": lambda net: {f"{n}.bias" for n, m in net.named_modules() if isinstance(m, nn.BatchNorm1d)},
    }
    for key, expected in cases.items():
        family, arch = FAMILIES[key]
        source = _source(family, arch)
        adapted = M.adapt("weighting+shift", source, 2, build=_builder(family, arch), seed=0)
        shifted = {
            re.sub(r"parametrizations\.(\w+)\.\d+\.shift$", r"\1", k) for k in adapted.trainable if k.endswith(".shift")
        }
        assert shifted == expected(source), key
    family, arch = "searched1d", MIXED
    adapted = M.adapt("weighting+shift", _source(family, arch), 2, build=_builder(family, arch), seed=0)
    shifted = {k for k in adapted.trainable if k.endswith(".shift")}
    assert any(".blocks.2.norm.parametrizations.bias" in k for k in shifted)  # LayerNorm after the GRU's projection
    assert any(".blocks.1.position.parametrizations.bias" in k for k in shifted)  # attention's biased conv
    assert not any("norm1" in k or "norm2" in k for k in shifted)  # attention's LayerNorms follow no conv


def test_bn_re_estimates_the_statistics_on_the_calibration_windows():
    family, arch = FAMILIES["cnn1d"]
    source = _source(family, arch)
    X, y, _ = _data(10, hybrid=False)
    adapted = M.adapt("bn", source, 2, build=_builder(family, arch), seed=0)
    assert M.fit(adapted, X, y, seed=0, steps=0) == []
    conv, bn = source.features[0][0], adapted.net.features[0][1]
    with torch.no_grad():
        z = conv(torch.from_numpy(X))  # the first BN's input: the source conv's output
    torch.testing.assert_close(bn.running_mean, z.mean(dim=(0, 2)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var, z.transpose(0, 1).flatten(1).var(dim=1), rtol=1e-4, atol=1e-5)
    assert bn.momentum == source.features[0][1].momentum  # restored after the cumulative average


# ---- folding -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["weighting", "weighting+shift", "bn"])
@pytest.mark.parametrize("key", list(FAMILIES))
def test_fold_gives_a_plain_source_network_with_the_same_outputs(key, method):
    family, arch = FAMILIES[key]
    build = _builder(family, arch)
    hybrid = arch.get("hrv_fusion", "none") != "none"
    source = _source(family, arch)
    X, y, F = _data(8, hybrid)
    adapted = M.adapt(method, source, 2, build=build, seed=0)
    M.fit(adapted, X, y, F, seed=0, steps=3)
    _perturb(adapted)
    folded = M.fold(adapted)

    plain = build(2)
    assert type(folded) is type(plain)
    assert folded.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(folded.state_dict(), strict=True)
    assert not any(isinstance(m, M.FilterScale | M.BiasShift) for m in folded.modules())
    if method == "bn":  # nothing to fold: the adapted network's state itself
        state = _snapshot(adapted.net)
        assert all(torch.equal(state[k], v) for k, v in folded.state_dict().items())

    adapted.net.eval()
    x = torch.from_numpy(_data(5, hybrid, seed=9)[0])
    f = _data(5, hybrid, seed=9)[2]
    with torch.no_grad():
        got, expected = _call(folded, x, f), _call(adapted.net, x, f)
    assert expected.std() > 1e-3  # a real comparison, not of constants
    assert (got - expected).abs().max().item() <= FOLD_TOL


def test_the_folded_network_exports_to_onnx_with_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    from ape_nas.handoff.convert import Probabilities, convert

    family, arch = FAMILIES["cnn1d"]
    adapted = M.adapt("weighting+shift", _source(family, arch), 2, build=_builder(family, arch), seed=0)
    X, y, _ = _data(8, hybrid=False)
    M.fit(adapted, X, y, seed=0, steps=3)
    _perturb(adapted)
    expected = M.predict_proba(adapted, X)  # the adapted (unfolded) network's probabilities
    conversion = convert(Probabilities(M.fold(adapted)).eval(), X, expected, tmp_path, 2, lambda _: None)
    assert conversion.parity <= FOLD_TOL
    assert conversion.ts_parity <= FOLD_TOL


# ---- reproducibility and learning ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["weighting", "finetune", "scratch"])
def test_the_same_seed_gives_identical_weights(method):
    family, arch = FAMILIES["cnn1d_hybrid"]
    source = _source(family, arch)
    X, y, F = _data(10, hybrid=True)

    def run(seed: int) -> tuple[dict[str, torch.Tensor], list[float]]:
        torch.rand(17)  # the global RNG in some other state each time
        adapted = M.adapt(method, source, 2, build=_builder(family, arch), seed=seed)
        losses = M.fit(adapted, X, y, F, seed=seed, steps=5, batch_size=4)
        return _snapshot(adapted.net), losses

    (a, la), (b, lb), (c, _) = run(3), run(3), run(4)
    assert la == lb
    assert _changed(a, b) == set()
    assert _changed(a, c)

    # fit alone is seeded too (dropout, batches): two copies of one adapted network, the global RNG elsewhere
    first = M.adapt(method, source, 2, build=_builder(family, arch), seed=3)
    second = copy.deepcopy(first)
    torch.rand(5)
    M.fit(first, X, y, F, seed=8, steps=5, batch_size=4)
    torch.rand(11)
    M.fit(second, X, y, F, seed=8, steps=5, batch_size=4)
    assert _changed(_snapshot(first.net), _snapshot(second.net)) == set()


def _sines(k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class = sine frequency (1 Hz or 4 Hz at 32 Hz), random phase, noise."""
    t = np.arange(256) / 32.0
    y = np.repeat([0, 1], k)
    f = np.where(y == 0, 1.0, 4.0)[:, None]
    X = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi, (2 * k, 1))) + 0.3 * rng.standard_normal((2 * k, 256))
    return X[:, None, :].astype(np.float32), y


@pytest.mark.parametrize("method", ["weighting", "head"])
def test_a_separable_task_is_learnt(method):
    rng = np.random.default_rng(0)
    X, y = _sines(10, rng)
    build = lambda k: build_model("cnn1d", 1, k, depth=3, width=8)  # noqa: E731
    torch.manual_seed(0)
    adapted = M.adapt(method, build(3), 2, build=build, seed=0)
    losses = M.fit(adapted, X, y, seed=0)
    assert len(losses) == M.METHODS[method].steps
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert (M.predict_proba(adapted, X).argmax(1) == y).mean() > 0.9
    X_new, y_new = _sines(10, rng)
    assert (M.predict_proba(M.fold(adapted), X_new).argmax(1) == y_new).mean() > 0.9
