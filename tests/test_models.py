"""Contract tests for every registered model family (a new family gets them by registering)."""

from __future__ import annotations

import inspect
import math
import typing

import pytest
import torch

from ape_nas.errors import UnknownNameError, UserError
from ape_nas.models import build_model, get_family, list_models
from ape_nas.models.heads import FUSIONS, MissingFeaturesError
from ape_nas.models.inception import branch_kernels
from ape_nas.models.registry import SIZE_ARGS
from ape_nas.models.resnet import block_kernels

FAMILIES = list_models()


@pytest.fixture(autouse=True)
def _seed_and_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def test_the_three_families_are_registered():
    assert {"cnn1d", "resnet1d", "inception_time"} <= set(FAMILIES)


@pytest.mark.parametrize("name", FAMILIES)
def test_description_is_one_line(name):
    family = get_family(name)
    assert family.description
    assert family.description == inspect.getdoc(family.cls).splitlines()[0]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("time", [640, 1001, 64, 65])
def test_forward_shape_and_finite(name, in_channels, time):
    net = build_model(name, in_channels=in_channels, num_classes=4)
    net.train()
    out = net(torch.randn(2, in_channels, time))
    assert out.shape == (2, 4)
    assert torch.isfinite(out).all()
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(1, in_channels, time))
    assert out.shape == (1, 4)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_backward_reaches_every_parameter(name):
    net = build_model(name, in_channels=2, num_classes=3)
    net.train()
    out = net(torch.randn(4, 2, 256))
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", FAMILIES)
def test_arch_defaults_match_constructor_and_are_typed(name):
    family = get_family(name)
    params = inspect.signature(family.cls.__init__).parameters
    ctor_defaults = {
        n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in SIZE_ARGS
    }
    assert set(SIZE_ARGS) <= set(params), "every family takes the data sizes (n_features)"
    assert family.arch_defaults == ctor_defaults
    assert family.arch_params == list(ctor_defaults)
    hints = typing.get_type_hints(family.cls.__init__)
    for arg, default in family.arch_defaults.items():
        assert arg in hints, f"{name}.{arg} has no type hint"
        hint = hints[arg]
        assert isinstance(default, hint), f"{name}.{arg}: default {default!r} is not {hint}"
    # every argument is documented in the class docstring
    doc = inspect.getdoc(family.cls)
    for arg in family.arch_defaults:
        assert f"{arg}:" in doc, f"{name}.{arg} is not documented"


@pytest.mark.parametrize("name", FAMILIES)
def test_explicit_defaults_build_the_same_model(name):
    family = get_family(name)
    torch.manual_seed(1)
    a = build_model(name, 1, 2)
    torch.manual_seed(1)
    b = build_model(name, 1, 2, **family.arch_defaults)
    assert _same_state(a, b)


def test_unknown_family_lists_known_names():
    with pytest.raises(UnknownNameError) as err:
        build_model("resnet", 1, 2)
    message = str(err.value)
    assert "'resnet'" in message
    for name in FAMILIES:
        assert name in message
    assert isinstance(err.value, UserError)


@pytest.mark.parametrize("name", FAMILIES)
def test_unknown_arch_argument_is_named(name):
    with pytest.raises(UserError, match="no_such_arg"):
        build_model(name, 1, 2, no_such_arg=3)


# ---- the HRV fusion head (every family) --------------------------------------------------------------------------

HYBRID = [(name, fusion) for name in FAMILIES for fusion in FUSIONS if fusion != "none"]
N_FEATURES = 11


@pytest.mark.parametrize(("name", "fusion"), HYBRID)
@pytest.mark.parametrize("time", [640, 65])
def test_fusion_forward_shape_and_finite_also_with_nan_features(name, fusion, time):
    net = build_model(name, in_channels=2, num_classes=3, n_features=N_FEATURES, hrv_fusion=fusion)
    features = torch.randn(4, N_FEATURES) * 30
    features[0, 3] = features[2, :] = float("nan")  # features that could not be computed
    net.train()
    out = net(torch.randn(4, 2, time), features)
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    net.eval()
    with torch.no_grad():
        assert torch.isfinite(net(torch.randn(1, 2, time), features[2:3])).all()


@pytest.mark.parametrize(("name", "fusion"), HYBRID)
def test_fusion_backward_reaches_every_parameter_and_uses_the_features(name, fusion):
    net = build_model(name, in_channels=2, num_classes=3, n_features=N_FEATURES, hrv_fusion=fusion)
    net.train()
    x, features = torch.randn(4, 2, 256), torch.randn(4, N_FEATURES)
    torch.nn.functional.cross_entropy(net(x, features), torch.tensor([0, 1, 2, 0])).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, pname
    net.eval()
    with torch.no_grad():
        assert not torch.allclose(net(x, features), net(x, features + 1.0)), "the features change the output"


@pytest.mark.parametrize(("name", "fusion"), HYBRID)
def test_a_fusing_network_without_features_is_a_clear_error(name, fusion):
    net = build_model(name, 1, 2, n_features=N_FEATURES, hrv_fusion=fusion).eval()
    assert net.uses_features
    with pytest.raises(MissingFeaturesError, match=r"net\(x, features\)"):
        net(torch.randn(2, 1, 64))
    with pytest.raises(MissingFeaturesError, match=rf"\(batch, {N_FEATURES}\)"):
        net(torch.randn(2, 1, 64), torch.randn(2, N_FEATURES - 1))


@pytest.mark.parametrize("name", FAMILIES)
def test_fusion_needs_features_and_a_known_mode(name):
    with pytest.raises(UserError, match=r"hrv_fusion 'concat' needs the window's HRV features"):
        build_model(name, 1, 2, hrv_fusion="concat")
    with pytest.raises(UserError, match=r"hrv_fusion must be one of 'none', 'concat', 'gated'"):
        build_model(name, 1, 2, n_features=3, hrv_fusion="sum")


@pytest.mark.parametrize("name", FAMILIES)
def test_without_fusion_features_are_ignored_and_the_state_is_as_before(name):
    """hrv_fusion none: the network of old checkpoints (same parameter names), features accepted and ignored."""
    torch.manual_seed(3)
    net = build_model(name, 1, 2, n_features=N_FEATURES).eval()
    assert not net.uses_features and net.n_features == 0
    assert [k for k in net.state_dict() if k.startswith("head")] == ["head.weight", "head.bias"]
    x = torch.randn(2, 1, 128)
    with torch.no_grad():
        assert torch.equal(net(x), net(x, torch.randn(2, N_FEATURES)))
    torch.manual_seed(3)
    assert _same_state(net, build_model(name, 1, 2))


@pytest.mark.parametrize(("name", "fusion"), HYBRID)
def test_gated_and_concat_start_alike(name, fusion):
    """The gate starts at 1: a gated network's first output equals the concat network with the same weights."""
    torch.manual_seed(5)
    gated = build_model(name, 1, 2, n_features=N_FEATURES, hrv_fusion="gated").eval()
    concat = build_model(name, 1, 2, n_features=N_FEATURES, hrv_fusion="concat").eval()
    concat.load_state_dict({k: v for k, v in gated.state_dict().items() if ".gate." not in k})
    x, f = torch.randn(3, 1, 200), torch.randn(3, N_FEATURES)
    with torch.no_grad():
        assert torch.allclose(gated(x, f), concat(x, f), atol=1e-6)


@pytest.mark.parametrize(("name", "fusion"), HYBRID)
def test_fusion_tiny_overfit_from_the_features_alone(name, fusion):
    """Windows of pure noise, the class in the features: a fusing network learns it (the path to the head works)."""
    g = torch.Generator().manual_seed(11)
    y = torch.arange(16) % 2
    x = torch.randn(16, 1, 128, generator=g)
    features = torch.randn(16, N_FEATURES, generator=g) * 0.3
    features[:, 0] += 2.0 * y - 1.0
    torch.manual_seed(0)
    net = build_model(name, 1, 2, n_features=N_FEATURES, hrv_fusion=fusion)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(40):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x, features), y).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        assert (net(x, features).argmax(dim=1) == y).float().mean().item() == 1.0


INVALID = [
    ("cnn1d", "depth", 0),
    ("cnn1d", "depth", 2.0),
    ("cnn1d", "width", 0),
    ("cnn1d", "growth", 0.0),
    ("cnn1d", "growth", 10.0),
    ("cnn1d", "kernel_size", 4),
    ("cnn1d", "kernel_size", 0),
    ("cnn1d", "pool", 0),
    ("cnn1d", "dropout", 1.0),
    ("cnn1d", "dropout", -0.1),
    ("cnn1d", "norm", "layer"),
    ("resnet1d", "blocks", 0),
    ("resnet1d", "width", -1),
    ("resnet1d", "kernel_size", 8),
    ("resnet1d", "stride_every", -1),
    ("resnet1d", "stride_every", True),
    ("resnet1d", "dropout", 1.5),
    ("inception_time", "depth", 0),
    ("inception_time", "filters", 0),
    ("inception_time", "kernel_size", 40),
    ("inception_time", "bottleneck", -1),
    ("inception_time", "dropout", 1.0),
    ("tcn", "levels", 0),
    ("tcn", "width", 0),
    ("tcn", "kernel_size", 0),
    ("tcn", "dropout", 1.0),
    ("tcn", "weight_norm", 1),
    ("tcn", "weight_norm", "yes"),
    ("tcn", "pooling", "max"),
    ("transformer", "embedding", "linear"),
    ("transformer", "patch", 0),
    ("transformer", "d_model", 0),
    ("transformer", "d_model", 30),  # not a multiple of the default 4 heads
    ("transformer", "heads", 0),
    ("transformer", "layers", 0),
    ("transformer", "ff_mult", 0),
    ("transformer", "ff_mult", 1.5),
    ("transformer", "positional", "learned"),
    ("transformer", "pooling", "max"),
    ("transformer", "dropout", -0.1),
    ("rnn", "cell", "rnn"),
    ("rnn", "hidden", 0),
    ("rnn", "layers", 0),
    ("rnn", "bidirectional", "yes"),
    ("rnn", "downsample", 0),
    ("rnn", "downsample", 2.0),
    ("rnn", "dropout", 1.0),
    ("fcn", "width", 0),
    ("fcn", "kernel_size", 0),
    ("fcn", "kernel_size", 8.0),
    ("fcn", "dropout", 1.0),
    ("xresnet1d", "depth", 20),
    ("xresnet1d", "depth", 18.0),
    ("xresnet1d", "width", 0.0),
    ("xresnet1d", "width", 5.0),
    ("xresnet1d", "kernel_size", 4),
    ("xresnet1d", "dropout", 1.0),
]


@pytest.mark.parametrize(("name", "arg", "value"), INVALID)
def test_invalid_arch_value_raises_value_error_naming_the_argument(name, arg, value):
    with pytest.raises(ValueError, match=rf"^{arg} must be"):
        get_family(name).cls(1, 2, **{arg: value})
    # through the registry it is also a one-line user error naming the family
    with pytest.raises(UserError, match=rf"^model family '{name}': {arg} must be"):
        build_model(name, 1, 2, **{arg: value})


@pytest.mark.parametrize(("name", "arg"), [("cnn1d", "in_channels"), ("resnet1d", "num_classes")])
def test_invalid_io_sizes_raise(name, arg):
    kwargs = {"in_channels": 1, "num_classes": 2, arg: 0}
    with pytest.raises(ValueError, match=arg):
        build_model(name, **kwargs)


@pytest.mark.parametrize(
    ("name", "arch"),
    [
        ("cnn1d", {"depth": 1, "width": 4, "growth": 1, "kernel_size": 1, "pool": 1, "dropout": 0, "norm": "none"}),
        ("cnn1d", {"depth": 6, "width": 4, "growth": 2.0, "kernel_size": 3, "pool": 3}),
        ("cnn1d", {"depth": 3, "width": 8, "growth": 0.5}),
        ("resnet1d", {"blocks": 1, "width": 4, "kernel_size": 1, "stride_every": 0}),
        ("resnet1d", {"blocks": 5, "width": 4, "kernel_size": 9, "stride_every": 2}),
        ("inception_time", {"depth": 1, "filters": 2, "kernel_size": 1, "bottleneck": 0}),
        ("inception_time", {"depth": 7, "filters": 2, "kernel_size": 9, "bottleneck": 4}),
        ("tcn", {"levels": 1, "width": 1, "kernel_size": 1, "dropout": 0, "pooling": "last"}),
        ("tcn", {"levels": 9, "width": 4, "kernel_size": 2, "weight_norm": True}),
        ("transformer", {"embedding": "conv", "patch": 1, "d_model": 4, "heads": 1, "layers": 1, "ff_mult": 1}),
        ("transformer", {"patch": 64, "d_model": 5, "heads": 5, "positional": "sinusoidal", "pooling": "cls"}),
        ("rnn", {"cell": "lstm", "hidden": 1, "layers": 1, "downsample": 1, "dropout": 0}),
        ("rnn", {"cell": "lstm", "hidden": 8, "layers": 3, "bidirectional": True, "downsample": 16}),
        ("fcn", {"width": 1, "kernel_size": 1}),
        ("fcn", {"width": 4, "kernel_size": 2}),
        ("fcn", {"width": 4, "kernel_size": 16}),
        ("xresnet1d", {"depth": 18, "width": 0.05, "kernel_size": 1}),
        ("xresnet1d", {"depth": 34, "width": 0.1, "kernel_size": 3}),
        ("xresnet1d", {"depth": 50, "width": 0.125, "kernel_size": 7}),
    ],
)
@pytest.mark.parametrize("time", [1, 7, 300])
def test_edge_architectures_and_short_windows(name, arch, time):
    net = build_model(name, 3, 2, **arch)
    net.train()
    assert net(torch.randn(2, 3, time)).shape == (2, 2)
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, time)).shape == (1, 2)


def test_kernel_rules():
    assert block_kernels(7) == (7, 3, 3)
    assert block_kernels(9) == (9, 5, 3)
    assert block_kernels(3) == (3, 3, 3)
    assert block_kernels(1) == (1, 1, 1)
    assert branch_kernels(39) == (39, 19, 9)
    assert branch_kernels(41) == (41, 21, 11)
    assert branch_kernels(1) == (1, 1, 1)


@pytest.mark.parametrize("name", FAMILIES)
def test_defaults_are_small(name):
    net = build_model(name, 1, 2)
    assert 1_000 < sum(p.numel() for p in net.parameters()) < 200_000


def _same_state(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", FAMILIES)
def test_same_seed_same_weights_and_outputs(name):
    x = torch.randn(3, 2, 200)
    torch.manual_seed(123)
    a = build_model(name, 2, 3)
    torch.manual_seed(123)
    b = build_model(name, 2, 3)
    assert _same_state(a, b)
    a.eval()
    b.eval()
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    torch.manual_seed(124)
    c = build_model(name, 2, 3)
    assert not _same_state(a, c)


def _frequency_task(n: int = 16, rate: float = 128.0, seconds: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """n windows (n, 1, time): class 0 is a 2 Hz sine, class 1 a 6 Hz sine, random phase/amplitude, plus noise."""
    g = torch.Generator().manual_seed(7)
    t = torch.arange(int(rate * seconds)) / rate  # (time,)
    y = torch.arange(n) % 2  # (n,)
    freq = torch.where(y == 0, 2.0, 6.0)[:, None]  # (n, 1)
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    amp = 0.5 + torch.rand(n, 1, generator=g)
    x = amp * torch.sin(2 * math.pi * freq * t + phase) + 0.3 * torch.randn(n, t.numel(), generator=g)
    return x[:, None, :], y  # (n, 1, time), (n,)


@pytest.mark.parametrize("name", FAMILIES)
def test_tiny_overfit(name):
    x, y = _frequency_task()
    torch.manual_seed(0)
    net = build_model(name, 1, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(x).argmax(dim=1) == y).float().mean().item()
    assert accuracy > 0.9


# ---- the LightningModule built from a TrialSpec ----------------------------------------------------------------


def _task_spec(**optim: object) -> dict:
    from ape_nas.spec import TrialSpec

    optim = {"lr": 1e-2, "batch_size": 4, "optimizer": "adamw", "weight_decay": 0.0, **optim}
    arch = {"depth": 2, "width": 4}
    spec = TrialSpec(model="cnn1d", arch=arch, optim=optim, data={}, protocol={}, training={}, seed=0)
    return spec.to_dict()


def test_train_loss_is_the_mean_over_the_same_epochs_batches():
    """Lightning validates before ``on_train_epoch_end``: the epoch's metrics must carry this epoch's loss."""
    import lightning as L
    from lightning.pytorch.callbacks import Callback
    from torch.utils.data import DataLoader, TensorDataset

    from ape_nas.task import CardiacTask

    class Record(Callback):
        def __init__(self) -> None:
            self.batches: dict[int, list[tuple[float, int]]] = {}
            self.logged: dict[int, float] = {}

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.batches.setdefault(trainer.current_epoch, []).append((float(outputs["loss"]), len(batch[1])))

        def on_validation_end(self, trainer, pl_module):
            self.logged[trainer.current_epoch] = float(trainer.callback_metrics["train_loss"])

    x, y = _frequency_task(n=12)
    data = DataLoader(TensorDataset(x, y), batch_size=5, shuffle=False)  # batches of 5, 5, 2: weights matter
    record = Record()
    trainer = L.Trainer(
        max_epochs=3, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[record],
    )  # fmt: skip
    torch.manual_seed(0)
    trainer.fit(CardiacTask(_task_spec(), in_channels=1, num_classes=2), data, data)
    assert sorted(record.logged) == [0, 1, 2]
    for epoch, batches in record.batches.items():
        expected = sum(loss * n for loss, n in batches) / sum(n for _, n in batches)
        assert record.logged[epoch] == pytest.approx(expected, rel=1e-5), f"epoch {epoch}"
    assert record.logged[0] != pytest.approx(record.logged[2], rel=1e-3), "the loss moves, so a lag would show"


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.5, False), (0.9, True)])
def test_sgd_momentum_and_nesterov_come_from_the_spec(momentum, nesterov):
    from ape_nas.task import CardiacTask

    spec = _task_spec(optimizer="sgd", momentum=momentum, nesterov=nesterov)
    group = CardiacTask(spec, in_channels=1, num_classes=2).configure_optimizers().param_groups[0]
    assert (group["momentum"], group["nesterov"]) == (momentum, nesterov)


def test_the_metric_collection_has_every_class_metric():
    from ape_nas.metrics import CLASS_METRICS
    from ape_nas.task import make_metrics

    assert set(make_metrics(2)) == set(CLASS_METRICS)


def _small_trial_spec(**training: object):
    from _common import QUICKSTART, SMALL_SETS

    from ape_nas.experiments import load_experiment
    from ape_nas.spec import TrialSpec

    base = load_experiment(QUICKSTART, [*SMALL_SETS, "training.max_epochs=2"]).base()
    base["training"].update(training)
    arch = {**get_family("cnn1d").arch_defaults, "depth": 2, "width": 4}
    return TrialSpec.from_dict({"model": "cnn1d", "arch": arch, "optim": {"lr": 3e-3}, **base})


def test_run_trial_logs_train_loss_for_every_validated_epoch():
    from ape_nas.objective import run_trial
    from ape_nas.reporting import MemoryTracker

    tracker = MemoryTracker()
    result = run_trial(_small_trial_spec(patience=5), tracker=tracker)
    steps = {key: [s for k, _, s in tracker.metrics if k == key] for key in ("train_loss", "val_f1_macro")}
    assert steps["train_loss"] == steps["val_f1_macro"] == [0, 1]
    assert [h["epoch"] for h in result.history] == [0, 1] and all("train_loss" in h for h in result.history)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: 'gpu' would train on it")
def test_a_gpu_accelerator_without_a_gpu_is_one_user_error():
    from ape_nas.objective import run_trial

    with pytest.raises(UserError, match=r"training\.accelerator is gpu") as err:
        run_trial(_small_trial_spec(accelerator="gpu"))
    assert "\n" not in str(err.value)


def test_the_accelerator_is_the_specs_alone():
    from ape_nas.objective import run_trial, train_final

    assert "accelerator" not in inspect.signature(run_trial).parameters
    assert "accelerator" not in inspect.signature(train_final).parameters
