"""What a network computes for one window: multiply-accumulates (MACs) per module, and :func:`summary`, a plain-text
table in the manner of torchinfo (module tree, output shape, parameters, MACs).

MACs are ``torch.utils.flop_counter.FlopCounterMode``'s FLOPs / 2 for a batch-1 inference forward (eval mode,
``torch.inference_mode``), so they count matrix products, convolutions and attention (q·kᵀ and a·v), not
element-wise work (norms, activations, pooling, gates). Ops the counter does not know are added
(:data:`EXTRA_FLOP_FORMULAS`): recurrent layers (GRU, LSTM, RNN: counted as whole layers, which also keeps a long
sequence from being counted step by step), the CPU's scaled-dot-product attention kernel, and the inference fast
paths of ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from ape_nas.metrics import human

aten = torch.ops.aten

Shape = Sequence[int]


def _recurrent_flops(*args: Any, **kwargs: Any) -> int:
    """``aten.gru`` / ``lstm`` / ``rnn_tanh`` / ``rnn_relu``, either overload: ``.input(input, hx, params, …)`` or,
    for packed sequences, ``.data(data, batch_sizes, hx, params, …)``. Every step of every sequence multiplies
    by each weight matrix of each layer and direction once (input, hidden and LSTM projection weights)."""
    packed = isinstance(args[1], torch.Size) and len(args[1]) == 1  # batch_sizes, not a hidden state
    params = args[3] if packed else args[2]
    steps = math.prod(args[0][:-1])  # time steps × sequences
    return 2 * steps * sum(w[0] * w[1] for w in params if len(w) == 2)


def _cpu_sdpa_flops(query: Shape, key: Shape, value: Shape, *args: Any, **kwargs: Any) -> int:
    return sdpa_flop_count(query, key, value)


def _attention_flops(batch: int, q_len: int, kv_len: int, embed: int) -> int:
    """Multi-head attention of embedding ``embed``: q, k, v and output projections and the two products
    (heads split ``embed``, so the products cost as one head of width ``embed``)."""
    projections = 2 * batch * embed * embed * (q_len + 2 * kv_len + q_len)
    return projections + 2 * 2 * batch * q_len * kv_len * embed


def _native_mha_flops(query: Shape, key: Shape, value: Shape, embed_dim: int, *args: Any, **kwargs: Any) -> int:
    # (batch, q_len, embed), (batch, kv_len, embed)
    return _attention_flops(query[0], query[1], key[1], embed_dim)


def _encoder_layer_flops(src: Shape, embed_dim: int, *args: Any, **kwargs: Any) -> int:
    """``_transformer_encoder_layer_fwd``: self-attention plus the feed-forward block (embed → ffn → embed)."""
    ffn_weight_1 = args[12]  # after num_heads, qkv/proj weights and biases, use_gelu, norm_first, eps, 4 norms
    batch, length = (1, src[0]) if len(src) == 2 else (src[0], src[1])
    return _attention_flops(batch, length, length, embed_dim) + 2 * 2 * batch * length * embed_dim * ffn_weight_1[0]


def _with_overloads(formulas: dict[Any, Any]) -> dict[Any, Any]:
    """Each op packet's formula also under each of its overloads: ``FlopCounterMode`` decomposes every composite
    op whose overload (not packet) is missing from its table, so a recurrent layer would be counted step by step
    (slowly: thousands of ops for a long window, and an LSTM's oneDNN kernel not at all)."""
    out = dict(formulas)
    for packet, formula in formulas.items():
        out.update({getattr(packet, name): formula for name in packet.overloads()})
    return out


#: FLOP formulas (on shapes) for the ops ``FlopCounterMode`` does not count
EXTRA_FLOP_FORMULAS: dict[Any, Any] = _with_overloads(
    {
        aten.gru: _recurrent_flops,
        aten.lstm: _recurrent_flops,
        aten.rnn_tanh: _recurrent_flops,
        aten.rnn_relu: _recurrent_flops,
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
        aten._native_multi_head_attention: _native_mha_flops,
        aten._transformer_encoder_layer_fwd: _encoder_layer_flops,
    }
)


def example_inputs(net: nn.Module, in_channels: int, length: int, n_features: int = 0) -> tuple[torch.Tensor, ...]:
    """One window ``(1, in_channels, length)`` of zeros, and ``(1, n_features)`` zero HRV features for a network
    that takes them (``n_features`` 0: the network's own ``n_features``)."""
    x = torch.zeros(1, in_channels, length)
    if not getattr(net, "uses_features", False):
        return (x,)
    n = n_features or int(getattr(net, "n_features", 0))
    if n < 1:
        raise ValueError("this network takes the windows' HRV features: give n_features (their number)")
    return x, torch.zeros(1, n)


@contextlib.contextmanager
def evaluating(net: nn.Module) -> Iterator[None]:
    """Eval mode for the block; every module's own training flag is restored afterwards."""
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _tracker_names(net: nn.Module) -> dict[int, str]:
    """``id(module)`` → the name ``ModuleTracker`` (and so ``FlopCounterMode``) gives it when ``net`` is called
    first: the root's class name, then ``.child`` per level (a module shared by two parents: the last path)."""
    names: dict[int, str] = {}

    def visit(mod: nn.Module, name: str) -> None:
        names[id(mod)] = name
        for child_name, child in mod.named_children():
            visit(child, f"{name}.{child_name}")

    visit(net, type(net).__name__)
    return names


def module_flops(
    net: nn.Module, inputs: tuple[torch.Tensor, ...], hook: Callable[..., None] | None = None
) -> tuple[int, dict[str, int]]:
    """FLOPs of ``net(*inputs)`` in inference: the total and, per module path of ``net.named_modules()`` (``""``:
    the network), the FLOPs inside that module's calls (all of them; a container's include its children's).
    ``hook``: a forward hook on every module during that forward."""
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)
    handles = [m.register_forward_hook(hook) for m in net.modules()] if hook else []
    try:
        with evaluating(net), torch.inference_mode(), counter:
            net(*inputs)
    finally:
        for h in handles:
            h.remove()
    counts = {key: sum(ops.values()) for key, ops in counter.get_flop_counts().items()}
    ids = _tracker_names(net)
    per_module = {path: counts.get(ids[id(m)], 0) for path, m in net.named_modules()}
    return counter.get_total_flops(), per_module


def count_macs(net: nn.Module, in_channels: int, length: int, *, n_features: int = 0) -> int:
    """Multiply-accumulates of one batch-1 inference forward of a ``(1, in_channels, length)`` window."""
    total, _ = module_flops(net, example_inputs(net, in_channels, length, n_features))
    return total // 2


def count_params(net: nn.Module, trainable: bool = True) -> int:
    """Parameters of ``net`` (each shared tensor once); ``trainable``: only those that require grad."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable)


# ---------------------------------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------------------------------


def _shape_text(output: Any) -> str:
    tensors = [t for t in torch.utils._pytree.tree_leaves(output) if isinstance(t, torch.Tensor)]
    return ", ".join("(" + ", ".join(map(str, t.shape)) + ")" for t in tensors) or "-"


def _module_macs(net: nn.Module, flops: dict[str, int], calls: dict[int, int]) -> dict[str, int]:
    """MACs per module path: a called module's own count; a container never called (a ``ModuleList``) the sum of
    its children's."""
    out: dict[str, int] = {}

    def visit(path: str, mod: nn.Module) -> int:
        children = [visit(f"{path}.{name}" if path else name, child) for name, child in mod.named_children()]
        out[path] = flops.get(path, 0) // 2 if calls.get(id(mod)) else sum(children)
        return out[path]

    visit("", net)
    return out


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded)

    return [line(header), "-" * len(line(header)), *(line(r).rstrip() for r in rows)]


def summary(net: nn.Module, in_channels: int, length: int, *, n_features: int = 0) -> str:
    """A plain-text table of ``net`` for one batch-1 window ``(1, in_channels, length)``: one row per module
    (indented by depth; containers and leaves), its type, output shape (a module called k > 1 times: its first
    call's, ``×k``; a module never called: ``-``), parameters (a container's: all below it) and MACs (all its
    calls); then the totals (trainable parameters and MACs as :func:`count_params` and :func:`count_macs`) and
    the input shape."""
    inputs = example_inputs(net, in_channels, length, n_features)
    shapes: dict[int, str] = {}  # by id(module): the output shape of its first call
    calls: dict[int, int] = {}

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        calls[id(mod)] = calls.get(id(mod), 0) + 1
        shapes.setdefault(id(mod), _shape_text(output))

    total_flops, flops = module_flops(net, inputs, hook)
    macs = _module_macs(net, flops, calls)
    rows = []
    for path, mod in net.named_modules():
        depth = path.count(".") + 1 if path else 0
        name = path.rsplit(".", 1)[-1] if path else type(mod).__name__
        shape = shapes.get(id(mod), "-")
        if calls.get(id(mod), 0) > 1:
            shape += f" ×{calls[id(mod)]}"
        params = count_params(mod, trainable=False)
        rows.append([" " * (2 * depth) + name, type(mod).__name__, shape, f"{params:,}", f"{macs[path]:,}"])
    lines = _table(["Module", "Type", "Output shape", "Params", "MACs"], rows, right={3, 4})
    params, all_params = count_params(net), count_params(net, trainable=False)
    frozen = f" (+{all_params - params:,} frozen)" if all_params != params else ""
    total = total_flops // 2
    given = " + ".join("(" + ", ".join(map(str, t.shape)) + ")" for t in inputs)
    lines += [
        "-" * len(lines[0]),
        f"Trainable params: {params:,} ({human(params)}){frozen}",
        f"MACs per window: {total:,} ({human(total)})",
        f"Input: {given}" + (" (window + HRV features)" if len(inputs) > 1 else " (batch, channels, time)"),
    ]
    return "\n".join(lines)
