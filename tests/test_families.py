"""The stock families the field compares against (tcn, transformer, rnn, fcn, xresnet1d): export to ONNX and
TorchScript with parity, any window length, sizes, and what makes each family what it claims to be.

The contract tests every family gets (shapes, backward, fusion head, invalid values) are in test_models.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ape_nas.handoff.convert import PARITY_TOL, Probabilities, export_onnx, quiet_exporters
from ape_nas.handoff.onnx_session import ort_probs, ort_session
from ape_nas.models import build_model

NEW = ["tcn", "transformer", "rnn", "fcn", "xresnet1d"]
LENGTHS = (1, 7, 32, 33, 64, 65, 300, 640, 1001)
OTHER_LENGTHS = (1, 7, 65, 1001)  # besides the export example's length

# (family, arch, example length, ONNX recurrent node). The rnn examples are short: torch.export unrolls the
# recurrence over the example's steps before it gives up on a dynamic time axis (export_onnx then falls back to
# the TorchScript-based exporter, whose GRU/LSTM nodes take any length), and that takes longer the more steps.
EXPORTS = [
    ("tcn", {}, 256, None),
    ("transformer", {}, 256, None),
    ("transformer", {"embedding": "conv", "positional": "sinusoidal", "pooling": "cls"}, 256, None),
    ("rnn", {}, 64, "GRU"),
    ("rnn", {"cell": "lstm", "bidirectional": True}, 64, "LSTM"),
    ("fcn", {}, 256, None),
    ("xresnet1d", {}, 256, None),
]


def _id(case: tuple) -> str:
    name, arch = case[0], case[1]
    return name + "".join(f"-{k}={v}" for k, v in arch.items())


@pytest.fixture(autouse=True)
def _seed_and_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _windows(batch: int, time: int, seed: int, channels: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, channels, time)).astype(np.float32)


def _n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# ---- export ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", EXPORTS, ids=_id)
def test_onnx_export_dynamic_batch_and_time_with_parity(case, tmp_path: Path):
    import onnx

    name, arch, length, recurrent = case
    model = Probabilities(build_model(name, 2, 3, **arch)).eval()
    path = tmp_path / f"{name}.onnx"
    info = export_onnx(model, torch.from_numpy(_windows(2, length, 0)), path)
    assert info["attempts"][-1]["ok"] and info["opset"] >= 17
    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[2].dim_param, f"batch and time are symbolic: {info}"
    if recurrent:
        assert recurrent in {node.op_type for node in graph.node}, "the recurrent cell is one ONNX node"
    session = ort_session(path)
    for batch, time in [(1, length), (3, length), *((2, t) for t in OTHER_LENGTHS)]:
        x = _windows(batch, time, seed=time + batch)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = ort_probs(session, x)
        assert got.shape == (batch, 3)
        assert np.abs(got - expected).max() <= PARITY_TOL, f"batch {batch}, {time} samples ({info['exporter']})"


@pytest.mark.parametrize("case", EXPORTS, ids=_id)
def test_torchscript_trace_parity_at_every_batch_and_length(case):
    name, arch, length, _ = case
    model = Probabilities(build_model(name, 2, 3, **arch)).eval()
    with quiet_exporters(), torch.no_grad():
        traced = torch.jit.trace(model, torch.from_numpy(_windows(2, length, 0)), check_trace=False)
    for batch, time in [(1, length), (3, length), *((2, t) for t in OTHER_LENGTHS)]:
        x = torch.from_numpy(_windows(batch, time, seed=time + batch))
        with torch.no_grad():
            diff = (traced(x) - model(x)).abs().max().item()
        assert diff <= PARITY_TOL, f"batch {batch}, {time} samples"


# ---- any length, batch 1 and 2, train and eval -----------------------------------------------------------------

#: the longest window whose last batch norm sees one value per channel at batch 1 (PyTorch refuses to train
#: on that): fcn keeps the length, xresnet1d divides it by 32. tcn, transformer and rnn have no batch norm.
SINGLE_VALUE_BN = {"fcn": 1, "xresnet1d": 32}


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("batch", [1, 2])
def test_any_window_length_in_train_and_eval_mode(name, batch):
    net = build_model(name, 1, 3)
    for time in LENGTHS:
        x = torch.randn(batch, 1, time)
        net.train()
        if batch == 1 and time <= SINGLE_VALUE_BN.get(name, 0):
            with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
                net(x)
        else:
            out = net(x)
            assert out.shape == (batch, 3) and torch.isfinite(out).all(), f"train, {time} samples"
        net.eval()
        with torch.no_grad():
            out = net(x)
        assert out.shape == (batch, 3) and torch.isfinite(out).all(), f"eval, {time} samples"


VARIANTS = [
    ("tcn", {"weight_norm": True, "pooling": "last", "kernel_size": 4}),
    ("transformer", {"embedding": "conv", "positional": "sinusoidal", "pooling": "cls", "patch": 8}),
    ("rnn", {"cell": "lstm", "bidirectional": True, "layers": 3, "downsample": 1}),
    ("fcn", {"width": 8, "kernel_size": 16}),
    ("xresnet1d", {"depth": 50, "width": 0.125}),
    ("xresnet1d", {"depth": 34, "kernel_size": 9}),
]


@pytest.mark.parametrize("case", VARIANTS, ids=_id)
def test_variants_backward_reaches_every_parameter(case):
    name, arch = case
    net = build_model(name, 2, 3, **arch).train()
    torch.nn.functional.cross_entropy(net(torch.randn(4, 2, 256)), torch.tensor([0, 1, 2, 0])).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname


# ---- sizes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW)
def test_defaults_are_small_enough_to_train_on_a_cpu(name):
    """10k-100k parameters at one input channel, like the older families' defaults (inception_time 9k, cnn1d
    23k, resnet1d 54k; test_models allows up to 200k): an epoch over a few thousand 60-s windows takes seconds
    to minutes on a CPU, and a subject-wise split of a wearable study has no more windows than that. Larger
    networks (fcn width 128, xresnet1d width 1) are the search space's to choose."""
    assert 10_000 <= _n_params(build_model(name, 1, 2)) <= 100_000


def test_fcn_width_128_is_the_papers_network():
    net = build_model("fcn", 1, 2, width=128)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv1d)]
    assert [tuple(c.weight.shape) for c in convs] == [(128, 1, 8), (256, 128, 5), (128, 256, 3)]
    assert _n_params(net) == 128 * 8 + 256 * 128 * 5 + 128 * 256 * 3 + 2 * (128 + 256 + 128) + 128 * 2 + 2
    # even kernels keep the length: (k - 1) // 2 zeros on the left, the rest on the right
    with torch.no_grad():
        assert net.features(torch.randn(1, 1, 37)).shape == (1, 128, 37)


@pytest.mark.parametrize(("depth", "blocks", "channels"), [(18, 8, 64), (34, 16, 64), (50, 16, 256)])
def test_xresnet_width_1_is_the_benchmarks_network(depth, blocks, channels):
    from ape_nas.models.xresnet import _ResBlock

    net = build_model("xresnet1d", 1, 2, depth=depth, width=1.0)
    stem = [m for m in net.features[:3].modules() if isinstance(m, nn.Conv1d)]
    assert [c.out_channels for c in stem] == [32, 32, 64] and stem[0].stride == (2,)
    assert all(c.kernel_size == (5,) for c in stem)
    assert sum(isinstance(m, _ResBlock) for m in net.modules()) == blocks
    assert net.head.in_features == 2 * channels  # concat pooling: max and mean
    with torch.no_grad():
        assert net.features(torch.randn(1, 1, 1920)).shape == (1, channels, 60)  # time / 32
        assert net.features(torch.randn(1, 1, 1921)).shape == (1, channels, 61)  # ceil at every halving


# ---- what each family claims -----------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_tcn_does_not_look_ahead(pooling):
    """Per-step features are causal; so the embedding of a prefix is computed from that prefix's steps."""
    net = build_model("tcn", 1, 2, pooling=pooling).eval()
    x = torch.randn(2, 1, 300)
    y = x.clone()
    y[..., 120:] = 5 * torch.randn(2, 1, 180)  # other future samples
    with torch.no_grad():
        fx, fy = net.features(x), net.features(y)
        assert torch.allclose(fx[..., :120], fy[..., :120], atol=1e-6), "the past does not see the future"
        assert not torch.allclose(fx[..., 120:], fy[..., 120:])
        prefix = net.embed(x[..., :120])
        expected = fx[..., 119] if pooling == "last" else fx[..., :120].mean(dim=-1)
        assert torch.allclose(prefix, expected, atol=1e-5)


def test_tcn_receptive_field():
    from ape_nas.models.tcn import receptive_field

    assert receptive_field(6, 5) == 505
    net = build_model("tcn", 1, 2, levels=3, kernel_size=3).eval()
    x = torch.randn(1, 1, 100)
    y = x.clone()
    y[..., 99 - receptive_field(3, 3)] += 10.0  # one sample before the last step's receptive field
    with torch.no_grad():
        assert torch.allclose(net.features(x)[..., -1], net.features(y)[..., -1], atol=1e-6)
        y[..., 100 - receptive_field(3, 3)] += 10.0  # the first sample in it
        assert not torch.allclose(net.features(x)[..., -1], net.features(y)[..., -1])


@pytest.mark.parametrize("embedding", ["patch", "conv"])
def test_transformer_accepts_windows_shorter_than_a_patch(embedding):
    net = build_model("transformer", 1, 2, embedding=embedding, patch=16).eval()
    with torch.no_grad():
        for time in (1, 5, 15, 16, 17, 33):
            assert net.tokens(torch.randn(2, 1, time)).shape == (2, math.ceil(time / 16), 32)
        x = torch.randn(2, 1, 5)
        out = net(x)
        assert out.shape == (2, 2) and torch.isfinite(out).all()
        # a short window is one token: the same as the window zero-padded to a whole patch
        assert torch.allclose(out, net(F.pad(x, (0, 11))), atol=1e-6)


def test_transformer_sinusoidal_code_follows_the_token_count():
    from ape_nas.models.transformer import _SinusoidalPosition

    pos = _SinusoidalPosition(6)
    for tokens in (1, 3, 50):
        code = pos(torch.zeros(2, tokens, 6))  # (2, tokens, 6)
        t = torch.arange(tokens, dtype=torch.float32)[:, None]
        angles = t * pos.inv_freq  # (tokens, 3)
        assert torch.allclose(code[0], torch.cat([angles.sin(), angles.cos()], dim=-1), atol=1e-6)
    assert torch.equal(
        _SinusoidalPosition(5)(torch.zeros(1, 4, 5)), _SinusoidalPosition(6)(torch.zeros(1, 4, 6))[..., :5]
    )


def test_rnn_lstm_and_gru_are_different_networks():
    torch.manual_seed(0)
    gru = build_model("rnn", 1, 2, cell="gru").eval()
    torch.manual_seed(0)
    lstm = build_model("rnn", 1, 2, cell="lstm").eval()
    assert type(gru.rnn) is nn.GRU and type(lstm.rnn) is nn.LSTM
    recurrent = [sum(p.numel() for p in net.rnn.parameters()) for net in (gru, lstm)]
    assert recurrent[0] * 4 == recurrent[1] * 3, "three gates against four"
    x = torch.randn(2, 1, 200)
    with torch.no_grad():
        assert not torch.allclose(gru(x), lstm(x))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_summary_is_the_last_hidden_state(cell, bidirectional):
    net = build_model("rnn", 1, 2, cell=cell, bidirectional=bidirectional, hidden=8).eval()
    x = torch.randn(2, 1, 103)
    with torch.no_grad():
        steps = net.frontend(x).transpose(1, 2)  # (2, ceil(103 / 4), 8)
        assert steps.shape == (2, 26, 8)
        out, _ = net.rnn(steps)  # (2, 26, directions * 8): top layer at every step
        z = net.embed(x)
    if bidirectional:
        assert torch.allclose(z, torch.cat([out[:, -1, :8], out[:, 0, 8:]], dim=1), atol=1e-6)
    else:
        assert torch.allclose(z, out[:, -1], atol=1e-6)
