"""The registry of 1-D operations and the op-level composable family ``searched1d``: every operation in every
position a search space can place it (forward in train and eval mode at long and very short windows, ONNX with a
dynamic batch and time axis, TorchScript), random genomes, canonical genomes, gradients."""

from __future__ import annotations

import copy
import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ape_nas.models.searched  # noqa: F401  (registers searched1d)
from ape_nas.errors import UnknownNameError, UserError
from ape_nas.handoff.convert import PARITY_TOL, Probabilities, export_onnx, export_torchscript, quiet_exporters
from ape_nas.handoff.onnx_session import ort_probs, ort_session
from ape_nas.models import build_model, get_family
from ape_nas.models import ops as O
from ape_nas.models.ops._layers import BatchNorm
from ape_nas.models.searched import DEFAULT_STAGES, DOWNS, HEADS, Searched1d

FAMILY = "searched1d"
OPS = list(O.OPS)
REAL_OPS = [op for op in OPS if op != "identity"]
IN_CHANNELS, CLASSES = 2, 3
LENGTHS = (640, 1001, 7)  # two window lengths and a very short one
EXAMPLE_LENGTH = 200  # export example: every time axis stays > 1 after the genomes' halvings (no 0/1 specialisation)
ORT_LENGTHS = (640, 1001, 7, 1)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _net(**arch: Any) -> torch.nn.Module:
    return build_model(FAMILY, IN_CHANNELS, CLASSES, **arch)


def _check_forward(net: torch.nn.Module, lengths: tuple[int, ...] = LENGTHS) -> None:
    """Train mode at batch 2 and 1, eval mode at batch 1 and 2: (batch, classes), finite."""
    for time in lengths:
        for training, batch in ((True, 2), (True, 1), (False, 1), (False, 2)):
            net.train(training)
            with torch.set_grad_enabled(training):
                out = net(torch.randn(batch, IN_CHANNELS, time))
            assert out.shape == (batch, CLASSES), (time, training, batch)
            assert torch.isfinite(out).all(), (time, training, batch)


# ---- the registry of operations ----------------------------------------------------------------------------------


def test_one_registry_entry_per_file_of_the_package():
    folder = Path(O.__file__).parent
    files = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
    assert files == sorted(O.OPS)
    for name, cls in O.OPS.items():
        assert cls.__module__ == f"ape_nas.models.ops.{name}", name


@pytest.mark.parametrize("name", OPS)
def test_op_params_are_read_from_the_constructor_signature(name):
    params = list(inspect.signature(O.OPS[name].__init__).parameters.values())[1:]
    assert params[0].name == "channels"
    expected = {p.name: p.default for p in params[1:]}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    assert O.op_params(name) == expected
    assert list(O.op_params(name)) == list(expected)  # the signature's order
    for key, default in expected.items():
        assert O.PARAMS[key] == default, f"{name}.{key}: one default for every operation"
    O.op_params(name)["kernel"] = 99  # a copy: the registry is not changed through it
    assert O.op_params(name).get("kernel") != 99


def test_params_is_the_union_and_the_default_first_block_holds_all_of_it():
    union = {k: v for name in OPS for k, v in O.op_params(name).items()}
    assert union == O.PARAMS
    assert set(O.PARAMS) == {"kernel", "se", "act", "norm", "expand", "dilation", "heads"}
    assert O.op_params("identity") == {}
    assert O.op_params("gru") == {"norm": "batch"}
    first = DEFAULT_STAGES[0]
    assert set(first) == {"width", "down", "blocks"}
    assert first["blocks"][0] == {"op": first["blocks"][0]["op"], **O.PARAMS}
    assert list(first["blocks"][0]) == ["op", *O.PARAMS]


def test_unknown_operation_lists_the_known_ones():
    for call in (lambda: O.op_params("conv2d"), lambda: O.build_op("conv2d", 4), lambda: O.get_op("conv2d")):
        with pytest.raises(UnknownNameError) as err:
            call()
        assert err.value.kind == "operation" and "'conv2d'" in str(err.value)
        for name in OPS:
            assert name in str(err.value)


def test_build_op_rejects_parameters_the_operation_does_not_use_and_bad_values():
    with pytest.raises(ValueError, match=r"operation 'gru' has no parameter\(s\) kernel; expected some of: norm"):
        O.build_op("gru", 4, kernel=3)
    with pytest.raises(ValueError, match=r"^kernel must be an odd integer >= 1, got 4"):
        O.build_op("conv", 4, kernel=4)
    with pytest.raises(ValueError, match=r"^channels must be an integer >= 1, got 0"):
        O.build_op("tcn", 0)
    with pytest.raises(ValueError, match=r"^act must be one of 'relu', 'gelu', 'silu', got 'tanh'"):
        O.build_op("basic", 4, act="tanh")
    with pytest.raises(ValueError, match=r"^se must be a bool"):
        O.build_op("sep_conv", 4, se=1)


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("channels", [1, 3, 8])
def test_every_op_keeps_channels_and_length(name, channels):
    params = {k: v for k, v in {"kernel": 5, "heads": 4, "expand": 2, "dilation": 3}.items() if k in O.op_params(name)}
    op = O.build_op(name, channels, **params)
    for time in (1, 2, 5, 64):
        op.train()
        out = op(torch.randn(2, channels, time))
        assert out.shape == (2, channels, time) and torch.isfinite(out).all()
        op.eval()
        with torch.no_grad():
            out = op(torch.randn(1, channels, time))
        assert out.shape == (1, channels, time) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in OPS if "se" in O.op_params(n)])
def test_se_adds_a_squeeze_excitation(name):
    def count(module: torch.nn.Module) -> int:
        return sum(isinstance(m, O._layers.SqueezeExcite) for m in module.modules())

    assert count(O.build_op(name, 8, se=False)) == 0
    assert count(O.build_op(name, 8, se=True)) == 1


@pytest.mark.parametrize("name", [n for n in OPS if "norm" in O.op_params(n)])
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_norm_choice_builds_that_norm(name, norm):
    kinds = {type(m) for m in O.build_op(name, 8, norm=norm).modules()}
    assert (O._layers.BatchNorm in kinds) == (norm == "batch")
    assert (O._layers.ChannelLayerNorm in kinds) == (norm == "layer")


def test_channel_layer_norm_normalises_each_time_step_over_channels():
    norm = O._layers.ChannelLayerNorm(5)
    out = norm(torch.randn(2, 5, 9) * 3 + 1)
    assert torch.allclose(out.mean(dim=1), torch.zeros(2, 9), atol=1e-5)
    assert torch.allclose(out.var(dim=1, unbiased=False), torch.ones(2, 9), atol=1e-3)


def test_batch_norm_trains_on_a_single_value_per_channel():
    """batch 1 whose time axis shrank to one sample: BatchNorm1d raises, ours gives the bias, stats untouched."""
    norm = BatchNorm(3).train()
    with torch.no_grad():
        norm.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    out = norm(torch.randn(1, 3, 1))
    assert torch.equal(out, norm.bias.view(1, 3, 1).detach())
    assert torch.equal(norm.running_mean, torch.zeros(3)) and torch.equal(norm.running_var, torch.ones(3))
    with pytest.raises(ValueError):
        torch.nn.BatchNorm1d(3).train()(torch.randn(1, 3, 1))
    x = torch.randn(2, 3, 4)
    assert torch.allclose(norm(x), torch.nn.BatchNorm1d(3).train()(x) + norm.bias[:, None])


def test_edge_max_pool_equals_the_ceil_mode_pool():
    for time in (1, 2, 3, 8, 11):
        x = torch.randn(2, 3, time)
        assert torch.equal(O._layers.EdgeMaxPool(2, 2)(x), torch.nn.MaxPool1d(2, ceil_mode=True)(x))
        assert torch.equal(O._layers.EdgeMaxPool(3, 1)(x), torch.nn.MaxPool1d(3, 1, padding=1)(x))


def test_inception_branches_cover_any_width():
    from ape_nas.models.ops.inception import branch_widths

    assert branch_widths(10) == [3, 3, 2, 2]
    assert branch_widths(2) == [1, 1, 0, 0]
    for channels in (1, 2, 3, 4, 5, 10):
        op = O.build_op("inception", channels)
        assert (
            sum(conv.out_channels for conv in op.convs) + (op.pool_branch[1].out_channels if op.pool_branch else 0)
            == channels
        )


def test_attention_uses_the_effective_heads():
    assert O.build_op("attention", 10, heads=4).heads == 2
    assert O.build_op("attention", 7, heads=4).heads == 1
    assert O.build_op("attention", 12, heads=8).heads == 4


# ---- every op in every position --------------------------------------------------------------------------------

STEM, WIDER = 6, 10  # a width change 6 -> 10 (odd head splits, inception remainders, odd GRU halves)


def _block(op: str, **params: Any) -> dict[str, Any]:
    return {"op": op, **{k: v for k, v in params.items() if k in O.op_params(op)}}


def _position(op: str, position: str) -> dict[str, Any]:
    """A small genome with ``op`` at ``position``: first block of a stage after each down kind (same width or
    wider), a middle block, or the last block before each head."""
    filler = {"op": "conv", "kernel": 3}
    if position.startswith("first_after_"):
        down, change = position.removeprefix("first_after_").split("_")
        width = WIDER if change == "wider" else STEM
        stages = [{"width": width, "down": down, "blocks": [_block(op, kernel=5), filler]}]
        return {"stem_width": STEM, "stages": stages, "head": "gap"}
    if position == "middle":
        stages = [
            {"width": STEM, "down": "stride", "blocks": [filler]},
            {"width": WIDER, "down": "pool", "blocks": [filler, _block(op, se=True), filler]},
            {"width": WIDER, "down": "none", "blocks": [filler]},
        ]
        return {"stem_width": STEM, "stages": stages, "head": "gap"}
    head = position.removeprefix("last_before_")
    stages = [
        {"width": STEM, "down": "stride", "blocks": [filler]},
        {"width": WIDER, "down": "pool", "blocks": [filler, _block(op)]},
    ]
    return {"stem_width": STEM, "stages": stages, "head": head}


POSITIONS = [
    *(f"first_after_{down}_{change}" for down in DOWNS for change in ("same", "wider")),
    "middle",
    *(f"last_before_{head}" for head in HEADS),
]


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("op", OPS)
def test_every_op_in_every_position_builds_and_runs(op, position):
    genome = _position(op, position)
    net = _net(**genome)
    if op != "identity":
        assert any(isinstance(m, O.OPS[op]) for m in net.modules())
    _check_forward(net)


def _exercised(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial running statistics and affine parameters, so parity compares real outputs."""
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(4, IN_CHANNELS, 300) * 2 + 0.5)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d | torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
        net.head.weight.mul_(5.0)
    return net.eval()


def _check_exports(net: torch.nn.Module, folder: Path, varies: bool = True) -> dict[str, Any]:
    """ONNX (export_onnx's exporter chain) and TorchScript (trace) of the probabilities: parity with PyTorch at
    batch 1 and 3 and at several lengths (dynamic batch and time); returns export_onnx's record. ``varies``: also
    check that the output depends on the input (not for random genomes: layer norm on 1 channel erases it)."""
    model = Probabilities(_exercised(net)).eval()
    example = torch.randn(2, IN_CHANNELS, EXAMPLE_LENGTH)
    info = export_onnx(model, example, folder / "model.onnx")
    session = ort_session(folder / "model.onnx", threads=1)
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[0], str) and shape[1] == IN_CHANNELS, shape  # batch symbolic
    export_torchscript(model, example, folder / "model.ts")
    with quiet_exporters():
        traced = torch.jit.load(str(folder / "model.ts"))
    g = torch.Generator().manual_seed(1)
    for time in ORT_LENGTHS:
        x = torch.randn(3, IN_CHANNELS, time, generator=g)
        with torch.no_grad():
            expected = model(x).numpy()
            assert np.abs(traced(x).numpy() - expected).max() <= PARITY_TOL, ("torchscript", time)
        for batch in (1, 3):
            got = ort_probs(session, x[:batch].numpy())
            assert got.shape == (batch, CLASSES)
            assert np.abs(got - expected[:batch]).max() <= PARITY_TOL, ("onnx", time, batch, info)
    with torch.no_grad():  # the output depends on the input (parity is not compared on a constant)
        x = torch.randn(2, IN_CHANNELS, ORT_LENGTHS[0], generator=g)
        assert not varies or np.abs(model(x[:1]).numpy() - model(x[1:2]).numpy()).max() > 1e-6
    return info


def _export_genome(op: str, head: str) -> dict[str, Any]:
    """For ``gap``: ``op`` after every down kind (same width and wider), as a middle block and last before the
    head, with varied parameters (SE, layer norm, no norm, GELU/SiLU); for the other heads: ``op`` alone before
    the head (its other positions are exported with ``gap``)."""
    b = _block
    if head != "gap":
        return {"stem_width": STEM, "stages": [{"width": WIDER, "down": "stride", "blocks": [b(op)]}], "head": head}
    stages = [
        {"width": WIDER, "down": "stride", "blocks": [b(op, se=True), b(op, norm="layer", act="gelu")]},
        {"width": WIDER, "down": "stride", "blocks": [b(op, kernel=3, heads=3, expand=1, dilation=1)]},
        {"width": WIDER, "down": "pool", "blocks": [b(op, norm="none", act="silu")]},
        {"width": 8, "down": "none", "blocks": [b(op, kernel=5, heads=8, dilation=3, se=True)]},
        {"width": 8, "down": "none", "blocks": [b(op, norm="layer")]},
        {"width": 12, "down": "pool", "blocks": [b(op, kernel=9, expand=3)]},
    ]
    return {"stem_width": STEM, "stages": stages, "head": head}


EXPORTS = [(op, "gap") for op in OPS] + [(op, head) for op in REAL_OPS for head in HEADS if head != "gap"]


@pytest.mark.parametrize(("op", "head"), EXPORTS)
def test_every_op_and_head_exports_with_dynamic_batch_and_time(op, head, tmp_path):
    info = _check_exports(_net(**_export_genome(op, head)), tmp_path)
    assert info["exporter"].endswith("dynamic batch and time"), info
    if op != "gru" and head != "gru":  # torch.export cannot keep a GRU's time axis dynamic (it unrolls the GRU)
        assert info["exporter"] == "torch.export (dynamo), dynamic batch and time", info


# ---- random genomes ----------------------------------------------------------------------------------------------


def _random_genome(rng: np.random.Generator) -> dict[str, Any]:
    """A genome as a search could propose it: numpy scalars, some parameters left out, irrelevant ones set."""
    choices = {
        "kernel": [1, 3, 5, 7, 9],
        "se": [False, True],
        "act": ["relu", "gelu", "silu"],
        "norm": ["batch", "layer", "none"],
        "expand": [1, 2, 3],
        "dilation": [1, 2, 4],
        "heads": [1, 2, 3, 4, 8],
    }
    stages = []
    for _ in range(rng.integers(1, 4)):
        blocks = []
        for _ in range(rng.integers(0, 4)):
            block = {"op": str(rng.choice(OPS))}
            for key, values in choices.items():
                if rng.random() < 0.6:
                    block[key] = rng.choice(values) if key != "se" else rng.random() < 0.5  # numpy types
            blocks.append(block)
        stages.append({"width": rng.integers(1, 13), "down": str(rng.choice(DOWNS)), "blocks": blocks})
    return {
        "stem_width": rng.integers(1, 9),
        "stem_kernel": int(rng.choice([1, 3, 5])),
        "stem_stride": rng.integers(1, 4),
        "stages": stages,
        "head": str(rng.choice(HEADS)),
        "dropout": float(rng.choice([0.0, 0.3])),
    }


GENOMES = [_random_genome(np.random.default_rng(seed)) for seed in range(32)]
#: the genomes exported: the first two of each head
EXPORTED = [i for head in HEADS for i in [j for j, g in enumerate(GENOMES) if g["head"] == head][:2]]


@pytest.mark.parametrize("index", range(len(GENOMES)))
def test_random_genomes_build_and_run(index):
    genome = GENOMES[index]
    net = _net(**genome)
    assert net.genome == Searched1d.canonical_arch(genome)
    _check_forward(net, lengths=(333, 7))


@pytest.mark.parametrize("index", EXPORTED)
def test_random_genomes_export_with_parity(index, tmp_path):
    _check_exports(_net(**GENOMES[index]), tmp_path, varies=False)


def test_the_random_genomes_cover_every_op_head_and_down():
    canonical = [Searched1d.canonical_arch(g) for g in GENOMES]
    blocks = [b for c in canonical for s in c["stages"] for b in s["blocks"]]
    assert {b["op"] for b in blocks} == set(REAL_OPS)
    assert {c["head"] for c in canonical} == set(HEADS)
    assert {s["down"] for c in canonical for s in c["stages"]} == set(DOWNS)
    assert any(not s["blocks"] for c in canonical for s in c["stages"])
    exported = [canonical[i] for i in EXPORTED]
    assert len(exported) == 6 and {c["head"] for c in exported} == set(HEADS)
    assert len({b["op"] for c in exported for s in c["stages"] for b in s["blocks"]}) >= 6


# ---- canonical genomes -------------------------------------------------------------------------------------------


def test_canonical_form_is_idempotent_plain_data_and_complete():
    for genome in GENOMES:
        canonical = Searched1d.canonical_arch(genome)
        assert Searched1d.canonical_arch(canonical) == canonical
        assert json.loads(json.dumps(canonical)) == canonical  # plain data: ints, bools, strings, lists, dicts
        assert list(canonical) == list(get_family(FAMILY).arch_defaults)
        for stage in canonical["stages"]:
            assert list(stage) == ["width", "down", "blocks"] and type(stage["width"]) is int
            for block in stage["blocks"]:
                assert list(block) == ["op", *O.op_params(block["op"])]
                for key, value in block.items():
                    assert type(value) is type(O.PARAMS.get(key, "op")), (key, value)
    assert type(Searched1d.canonical_arch(GENOMES[0])["stem_width"]) is int  # a numpy int became an int


def test_defaults_are_filled_and_the_default_stages_are_never_changed():
    before = copy.deepcopy(DEFAULT_STAGES)
    canonical = Searched1d.canonical_arch({})
    assert canonical == Searched1d.canonical_arch(get_family(FAMILY).arch_defaults)
    assert canonical["stages"][0]["blocks"][0] == {
        "op": "conv",
        "kernel": 7,
        "se": False,
        "act": "relu",
        "norm": "batch",
    }
    canonical["stages"][0]["blocks"][0]["kernel"] = 3
    net = _net()
    net.genome["stages"][0]["width"] = 99
    assert before == DEFAULT_STAGES
    assert Searched1d.canonical_arch({"stages": [{"blocks": [{"op": "tcn"}]}]})["stages"] == [
        {
            "width": DEFAULT_STAGES[0]["width"],
            "down": DEFAULT_STAGES[0]["down"],
            "blocks": [{"op": "tcn", "kernel": 7, "dilation": 2, "se": False, "act": "relu", "norm": "batch"}],
        }
    ]


def test_identity_blocks_and_irrelevant_keys_are_dropped():
    genome = {
        "stages": [
            {
                "width": 8,
                "down": "none",
                "blocks": [{"op": "identity", "kernel": 3}, {"op": "gru", "kernel": 5, "heads": 2}],
            },
            {"width": 12, "down": "pool", "blocks": [{"op": "identity"}, {"op": "identity", "se": True}]},
        ]
    }
    stages = Searched1d.canonical_arch(genome)["stages"]
    assert stages[0]["blocks"] == [{"op": "gru", "norm": "batch"}]
    assert stages[1]["blocks"] == []
    other = {
        "stages": [
            {"width": 8, "down": "none", "blocks": [{"op": "gru", "dilation": 4, "act": "gelu", "norm": "batch"}]},
            {"width": 12, "down": "pool", "blocks": []},
        ]
    }
    assert Searched1d.canonical_arch(other) == Searched1d.canonical_arch(genome)
    assert Searched1d.canonical_arch(other) != Searched1d.canonical_arch({**other, "head": "gru"})


def test_heads_become_the_effective_heads():
    def blocks(heads: int, width: int) -> dict[str, Any]:
        stage = {"width": width, "down": "none", "blocks": [{"op": "attention", "heads": heads}]}
        return Searched1d.canonical_arch({"stages": [stage]})["stages"][0]["blocks"][0]

    assert blocks(8, 12)["heads"] == 4
    assert blocks(8, 12) == blocks(4, 12) and blocks(3, 10) == blocks(1, 10)
    assert blocks(8, 12) != blocks(3, 12)


@pytest.mark.parametrize(
    ("genome", "message"),
    [
        (
            {"stages": [{"blocks": []}, {"blocks": [{"op": "foo"}]}]},
            r"^stages\[1\]\.blocks\[0\]\.op: unknown operation 'foo'; expected one of: conv, ",
        ),
        (
            {"stages": [{"blocks": [{"op": "conv", "kernal": 3}]}]},
            r"^stages\[0\]\.blocks\[0\]: unknown key\(s\) 'kernal'; expected some of: op, kernel",
        ),
        (
            {"stages": [{"blocks": [{"op": "conv"}, {"op": "tcn", "kernel": 4}]}]},
            r"^stages\[0\]\.blocks\[1\]\.kernel must be an odd integer >= 1, got 4",
        ),
        (
            {"stages": [{"blocks": [{"op": "identity", "dilation": 0}]}]},
            r"^stages\[0\]\.blocks\[0\]\.dilation must be an integer >= 1, got 0",
        ),
        ({"stages": [{"blocks": [{"kernel": 3}]}]}, r"^stages\[0\]\.blocks\[0\]: missing key 'op'"),
        ({"stages": [{"blocks": [{"op": "conv", "se": "yes"}]}]}, r"^stages\[0\]\.blocks\[0\]\.se must be a bool"),
        (
            {"stages": [{"blocks": [{"op": "conv", "norm": "group"}]}]},
            r"^stages\[0\]\.blocks\[0\]\.norm must be one of 'batch', 'layer', 'none'",
        ),
        (
            {"stages": [{"width": 8, "downsample": "pool"}]},
            r"^stages\[0\]: unknown key\(s\) 'downsample'; expected some of: width, down, blocks",
        ),
        ({"stages": [{"width": 0}]}, r"^stages\[0\]\.width must be an integer >= 1, got 0"),
        ({"stages": [{"width": 8.0}]}, r"^stages\[0\]\.width must be an integer >= 1, got 8\.0"),
        ({"stages": [{"down": "conv"}]}, r"^stages\[0\]\.down must be one of 'stride', 'pool', 'none'"),
        ({"stages": [{"blocks": {"op": "conv"}}]}, r"^stages\[0\]\.blocks must be a list"),
        ({"stages": ["conv"]}, r"^stages\[0\] must be a mapping"),
        ({"stages": {"width": 8}}, r"^stages must be a list"),
        ({"stem_kernel": 6}, r"^stem_kernel must be an odd integer >= 1, got 6"),
        ({"stem_stride": 0}, r"^stem_stride must be an integer >= 1, got 0"),
        ({"head": "max"}, r"^head must be one of 'gap', 'attention', 'gru', got 'max'"),
        ({"dropout": 1.0}, r"^dropout must be a number in \[0, 1\)"),
    ],
)
def test_bad_genomes_raise_value_errors_naming_the_path(genome, message):
    with pytest.raises(ValueError, match=message):
        Searched1d.canonical_arch(genome)
    with pytest.raises(ValueError, match=message):
        Searched1d(IN_CHANNELS, CLASSES, **genome)
    with pytest.raises(UserError, match=rf"model family '{FAMILY}': " + message.removeprefix("^")):
        _net(**genome)


def test_unknown_architecture_arguments_are_named():
    with pytest.raises(
        ValueError, match=r"^searched1d: unknown architecture argument\(s\) 'widht'; expected some of: stem_width"
    ):
        Searched1d.canonical_arch({"widht": 3})
    with pytest.raises(ValueError, match=r"unknown architecture argument\(s\) 'n_features'"):
        Searched1d.canonical_arch({"n_features": 3})  # a data size, not architecture
    with pytest.raises(UserError, match=r"no architecture argument\(s\) widht"):
        _net(widht=3)


@pytest.mark.parametrize("index", range(0, len(GENOMES), 4))
def test_a_genome_and_its_canonical_form_build_the_same_network(index):
    genome = GENOMES[index]
    torch.manual_seed(7)
    a = _net(**genome)
    torch.manual_seed(7)
    b = _net(**Searched1d.canonical_arch(genome))
    sa, sb = a.state_dict(), b.state_dict()
    assert [(k, v.shape) for k, v in sa.items()] == [(k, v.shape) for k, v in sb.items()]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_irrelevant_keys_do_not_change_the_network():
    lean = {"stages": [{"width": 8, "down": "pool", "blocks": [{"op": "sep_conv", "kernel": 3}]}]}
    noisy = {
        "stages": [
            {
                "width": 8,
                "down": "pool",
                "blocks": [{"op": "sep_conv", "kernel": 3, "heads": 2, "dilation": 8}, {"op": "identity"}],
            }
        ]
    }
    a, b = _net(**lean), _net(**noisy)
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]


# ---- the family's contract -------------------------------------------------------------------------------------


def test_the_family_is_registered_with_a_one_line_description():
    family = get_family(FAMILY)
    assert family.description == inspect.getdoc(Searched1d).splitlines()[0]
    assert family.arch_params == ["stem_width", "stem_kernel", "stem_stride", "stages", "head", "dropout", "hrv_fusion"]
    assert family.arch_defaults["stages"] is DEFAULT_STAGES
    for arg in family.arch_defaults:
        assert f"{arg}:" in inspect.getdoc(Searched1d), arg


def test_the_docstring_examples_build():
    import ast
    import textwrap

    import yaml

    doc = inspect.getdoc(Searched1d)
    stage = ast.literal_eval(doc.split("Each stage is a mapping::")[1].strip().splitlines()[0])
    _check_forward(_net(stages=[stage]), lengths=(640,))
    text = doc.split("e.g. as YAML::")[1].split("\n\n")[1]
    genome = yaml.safe_load(textwrap.dedent(text))
    assert {"stem_width", "stages", "head"} <= set(genome) and len(genome["stages"]) == 3
    _check_forward(_net(**genome), lengths=(640, 7))


@pytest.mark.parametrize("head", HEADS)
def test_backward_reaches_every_parameter_of_a_genome_with_every_op(head):
    stages = [
        {"width": 8, "down": "stride", "blocks": [_block("conv", se=True), _block("sep_conv", norm="layer")]},
        {"width": 10, "down": "pool", "blocks": [_block("inverted_residual", se=True), _block("basic", norm="none")]},
        {
            "width": 10,
            "down": "none",
            "blocks": [_block("tcn", se=True), _block("inception", se=True), {"op": "identity"}],
        },
        {"width": 12, "down": "none", "blocks": [_block("attention", heads=4), _block("gru")]},
    ]
    net = _net(stem_width=6, stages=stages, head=head, hrv_fusion="gated", n_features=5)
    net.train()
    out = net(torch.randn(4, IN_CHANNELS, 256), torch.randn(4, 5))
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    names = [name for name, _ in net.named_parameters()]
    for op in REAL_OPS:
        assert any(isinstance(m, O.OPS[op]) for m in net.modules()), op
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert len(names) > 50


def test_heads_set_the_embedding_size():
    stages = [{"width": 7, "down": "stride", "blocks": []}]
    assert _net(stages=stages, head="gap").head.in_features == 7
    assert _net(stages=stages, head="attention").head.in_features == 7
    assert _net(stages=stages, head="gru").head.in_features == 8  # 2 directions x ceil(7 / 2)
    assert _net(stages=[], stem_width=5).head.in_features == 5


def test_downs_set_the_time_axis():
    def length(stages: list[dict[str, Any]], time: int) -> int:
        net = _net(stem_stride=3, stages=stages).eval()
        x = net.stem(torch.randn(1, IN_CHANNELS, time))
        for stage in net.stages:
            x = stage(x)
        return x.shape[-1]

    for time in (1, 7, 640, 1001):
        stem = math.ceil(time / 3)
        assert length([], time) == stem
        assert length([{"down": "stride"}, {"down": "pool", "width": 4}], time) == math.ceil(math.ceil(stem / 2) / 2)
        assert length([{"down": "none", "width": 4}, {"down": "none"}], time) == stem
