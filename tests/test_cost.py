"""The measured cost of a network (ape_nas.cost) and its architecture table (ape_nas.models.summary)."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ape_nas import cost as cost_module
from ape_nas.cost import CONSTRAINTS, COST_METRICS, Cost, describe_violations, measure, violations
from ape_nas.models import build_model, list_models
from ape_nas.models.summary import count_macs, summary

FAST = {"latency_runs": 5, "warmup": 1}
WINDOW = 1920  # a 60-s window at 32 Hz


def cnn(**arch) -> nn.Module:
    return build_model("cnn1d", 1, 2, **arch)


class Recurrent(nn.Module):
    """(1, C, T) → a GRU or LSTM over the T steps → linear head on the last output."""

    def __init__(self, cell: type[nn.RNNBase], channels: int, hidden: int, **kwargs) -> None:
        super().__init__()
        self.rnn = cell(channels, hidden, batch_first=True, **kwargs)
        self.head = nn.Linear(hidden * (2 if kwargs.get("bidirectional") else 1), 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.transpose(1, 2))
        return self.head(out[:, -1])


class Attention(nn.Module):
    """Parameter-free self-attention of the T samples (heads × T × C/heads): only q·kᵀ and a·v cost MACs."""

    def __init__(self, heads: int) -> None:
        super().__init__()
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        q = x.transpose(1, 2).reshape(b, t, self.heads, c // self.heads).transpose(1, 2)
        return F.scaled_dot_product_attention(q, q, q).mean(dim=(1, 2))


class Encoder(nn.Module):
    """(1, E, T) → a Transformer encoder layer (or bare multi-head attention) over the T steps."""

    def __init__(self, embed: int, ffn: int = 0) -> None:
        super().__init__()
        self.ffn = ffn
        if ffn:
            self.layer: nn.Module = nn.TransformerEncoderLayer(embed, 2, ffn, batch_first=True)
        else:
            self.layer = nn.MultiheadAttention(embed, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)
        return (self.layer(h) if self.ffn else self.layer(h, h, h)[0]).mean(dim=1)


class Twice(nn.Module):
    """One linear layer called twice (shared weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.linear(x.mean(dim=1)))


@pytest.fixture(scope="module")
def small_cost() -> tuple[nn.Module, Cost]:
    net = cnn(depth=3, width=8, pool=4)
    return net, measure(net, 1, WINDOW, **FAST)


# ---------------------------------------------------------------------------------------------------------------------
# params and MACs
# ---------------------------------------------------------------------------------------------------------------------


def test_params_are_the_trainable_parameters(small_cost):
    net, cost = small_cost
    assert cost.params == sum(p.numel() for p in net.parameters()) > 0
    net.head.weight.requires_grad_(False)
    try:
        assert measure(net, 1, 64, **FAST).params == cost.params - net.head.weight.numel()
    finally:
        net.head.weight.requires_grad_(True)


def test_conv1d_and_linear_macs_are_the_hand_counts():
    conv = nn.Conv1d(3, 8, 5, padding=2)
    assert measure(conv, 3, 100, **FAST).macs == 8 * 3 * 5 * 100  # out channels × in channels × kernel × outputs
    strided = nn.Conv1d(2, 4, 7, stride=2)
    assert count_macs(strided, 2, 101) == 4 * 2 * 7 * 48  # (101 - 7) // 2 + 1 outputs
    linear = nn.Sequential(nn.Flatten(), nn.Linear(2 * 50, 4))
    assert measure(linear, 2, 50, **FAST).macs == 2 * 50 * 4


def test_conv_net_macs_scale_with_the_window_length():
    net = cnn()
    macs = [count_macs(net, 1, n) for n in (960, 1920, 3840)]
    for shorter, longer in itertools.pairwise(macs):
        assert 1.95 < longer / shorter < 2.05


@pytest.mark.parametrize("cell", [nn.GRU, nn.LSTM])
def test_recurrent_macs_are_the_hand_count(cell):
    channels, hidden, steps = 4, 16, 500
    gates = 3 if cell is nn.GRU else 4
    hand = steps * gates * hidden * (channels + hidden) + hidden * 2  # every step: input and state weights; head
    net = Recurrent(cell, channels, hidden)
    macs = measure(net, channels, steps, **FAST).macs
    assert macs > 0
    assert macs == pytest.approx(hand, rel=0.02)


def test_stacked_bidirectional_recurrent_macs():
    channels, hidden, steps = 3, 8, 200
    net = Recurrent(nn.GRU, channels, hidden, num_layers=2, bidirectional=True)
    first, second = 3 * hidden * (channels + hidden), 3 * hidden * (2 * hidden + hidden)
    assert count_macs(net, channels, steps) == steps * 2 * (first + second) + 2 * hidden * 2


def test_attention_macs_are_the_hand_count():
    channels, heads, steps = 8, 2, 300
    macs = measure(Attention(heads), channels, steps, **FAST).macs
    assert macs == 2 * steps * steps * channels  # q·kᵀ and a·v: heads × T × T × C/heads each


@pytest.mark.parametrize("ffn", [0, 32])
def test_attention_layers_fast_paths_are_counted(ffn):
    embed, steps = 16, 100
    attention = 4 * steps * embed * embed + 2 * steps * steps * embed  # q, k, v, out projections; two products
    assert count_macs(Encoder(embed, ffn), embed, steps) == attention + 2 * steps * embed * ffn


# ---------------------------------------------------------------------------------------------------------------------
# latency and memory
# ---------------------------------------------------------------------------------------------------------------------


def test_latency_is_larger_for_a_much_bigger_network(small_cost):
    _, small = small_cost
    big = measure(cnn(depth=4, width=32, growth=2.0, kernel_size=15, pool=2), 1, WINDOW, **FAST)
    assert big.macs > 30 * small.macs
    assert math.isfinite(small.latency_ms) and small.latency_ms > 0
    assert math.isfinite(big.latency_ms)
    assert big.latency_ms > 3 * small.latency_ms


def test_peak_memory_grows_with_the_window_and_holds_the_largest_activation():
    net = cnn(depth=3, width=8, pool=4)
    short, long = (measure(net, 1, n, **FAST).peak_memory_mb for n in (960, 3840))
    assert long > 3 * short
    largest = 8 * 3840 * 4 / 2**20  # the first conv's output: 8 channels × 3840 samples, float32
    assert long >= largest


def test_peak_memory_counts_only_the_activations_alive_together():
    net = cnn(depth=4, width=8, growth=1.0, pool=1)  # 4 × (conv → norm → ReLU in place), each 8 × 2000 floats
    activation = 8 * 2000 * 4
    peak = measure(net, 1, 2000, **FAST).peak_memory_mb * 2**20
    # at most: the previous block's output (held by the outer Sequential), a conv's output and its norm's output;
    # never all 8 that the 4 blocks produce
    assert 2 * activation <= peak <= 3 * activation + 1024


def test_measure_leaves_the_network_and_torch_as_they_were():
    net = cnn(depth=2, width=4)
    net.train()
    net.features[1].eval()  # mixed training flags stay mixed
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [m.training for m in net.modules()]
    threads = torch.get_num_threads()
    cost = measure(net, 1, 640, **FAST)
    assert cost.latency_ms > 0
    assert [m.training for m in net.modules()] == flags
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics included
    assert torch.get_num_threads() == threads
    assert torch.is_grad_enabled()


def test_a_network_that_fuses_hrv_features_is_measured_with_them():
    net = cnn(depth=2, width=4, hrv_fusion="gated", n_features=5)
    plain = cnn(depth=2, width=4)
    cost = measure(net, 1, 640, n_features=5, **FAST)
    embed = net.channels[-1]
    body = count_macs(plain, 1, 640) - embed * 2
    assert cost.macs == body + 5 * embed + (embed + 5) * 2  # + the gate (features → embedding), a wider head
    assert cost.latency_ms > 0


# ---------------------------------------------------------------------------------------------------------------------
# Cost and constraints
# ---------------------------------------------------------------------------------------------------------------------


def test_cost_round_trips_through_a_dict(small_cost):
    _, cost = small_cost
    data = cost.to_dict()
    assert tuple(data) == COST_METRICS
    assert Cost.from_dict(data) == cost
    with pytest.raises(ValueError, match="latency_ms"):
        Cost.from_dict({k: v for k, v in data.items() if k != "latency_ms"})


def test_violations_and_their_description():
    cost = Cost(params=1_200_000, macs=40_000_000, latency_ms=2.0, peak_memory_mb=1.5)
    limits = {"params_max": 500_000, "latency_ms_max": 5.0, "peak_memory_mb_max": 1.0}
    assert violations(cost, limits) == {"params_max": 700_000.0, "latency_ms_max": -3.0, "peak_memory_mb_max": 0.5}
    text = describe_violations(cost, limits)
    assert text == "params 1.2M > params_max 500k; peak_memory_mb 1.5 MiB > peak_memory_mb_max 1 MiB"
    assert describe_violations(cost, {"macs_max": 1e9}) == ""
    assert set(CONSTRAINTS.values()) == set(COST_METRICS)
    with pytest.raises(ValueError, match="params_min"):
        violations(cost, {"params_min": 1})


# ---------------------------------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------------------------------


def _rows(text: str) -> list[str]:
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    return lines[rules[0] + 1 : rules[1]]


def _total(text: str, label: str) -> int:
    match = re.search(rf"^{label}: ([\d,]+)", text, re.M)
    assert match, text
    return int(match.group(1).replace(",", ""))


def test_summary_lists_every_module_and_totals_as_measured(small_cost):
    net, cost = small_cost
    text = summary(net, 1, WINDOW)
    rows = _rows(text)
    modules = list(net.named_modules())
    assert len(rows) == len(modules)
    for row, (path, mod) in zip(rows, modules, strict=True):
        depth = path.count(".") + 1 if path else 0
        name = path.rsplit(".", 1)[-1] if path else type(mod).__name__
        assert row.startswith(" " * 2 * depth + name + " "), row
        assert f" {type(mod).__name__} " in row
    conv = next(r for r in rows if " Conv1d " in r)
    assert "(1, 8, 1920)" in conv and conv.split()[-1] == f"{8 * 1 * 7 * 1920:,}"  # the first conv's MACs
    assert _total(text, "Trainable params") == cost.params
    assert _total(text, "MACs per window") == cost.macs
    assert "Input: (1, 1, 1920)" in text


def test_summary_of_repeated_calls_and_tuple_outputs():
    text = summary(Twice(), 3, 8)
    linear = next(r for r in _rows(text) if " Linear " in r)
    assert "(1, 8) ×2" in linear and linear.split()[-1] == "128"  # both calls: 2 × 8 × 8
    gru = summary(Recurrent(nn.GRU, 2, 4), 2, 10)
    assert "(1, 10, 4), (1, 1, 4)" in next(r for r in _rows(gru) if " GRU " in r)
    encoder = Encoder(16, 32)  # hooks take it off its inference fast path: its layers' MACs show, the total stays
    text = summary(encoder, 16, 100)
    assert _total(text, "MACs per window") == count_macs(encoder, 16, 100)
    assert next(r for r in _rows(text) if r.lstrip().startswith("linear1 ")).split()[-1] == f"{100 * 16 * 32:,}"


@pytest.mark.parametrize("family", list_models())
def test_summary_works_for_every_family(family):
    net = build_model(family, 2, 3)
    text = summary(net, 2, 640)
    assert _total(text, "Trainable params") == sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert _total(text, "MACs per window") == count_macs(net, 2, 640) > 0
    assert len(_rows(text)) == len(list(net.named_modules()))
    fused = summary(build_model(family, 2, 3, hrv_fusion="concat", n_features=5), 2, 640)
    assert "Input: (1, 2, 640) + (1, 5)" in fused


def test_export_falls_back_to_the_next_exporter(monkeypatch, tmp_path):
    def broken(net, inputs, path):
        raise RuntimeError("unsupported operator")

    exporters = dict(cost_module.EXPORTERS)
    inputs = (torch.zeros(1, 1, 32),)
    monkeypatch.setattr(cost_module, "EXPORTERS", (("broken", broken), ("torchscript", exporters["torchscript"])))
    assert cost_module.export_fixed(cnn(depth=1, width=2), inputs, tmp_path / "net.onnx") == "torchscript"
    assert (tmp_path / "net.onnx").stat().st_size > 0
    monkeypatch.setattr(cost_module, "EXPORTERS", (("broken", broken),))
    with pytest.raises(RuntimeError, match="broken: RuntimeError: unsupported operator"):
        cost_module.export_fixed(cnn(depth=1, width=2), inputs, tmp_path / "net.onnx")
