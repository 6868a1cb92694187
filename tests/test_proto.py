"""The part-based family ``protonet1d`` (ape_nas.models.proto) and its native explanations (ape_nas.explain.prototypes).

The contract tests every family gets (shapes, backward, fusion head, defaults) are in test_models.py; here: what
makes it a prototype network — exact receptive fields, the projection onto the nearest training patch (recorded,
not moved), the records surviving checkpoints and exports, the ProtoPNet regulariser, and learning a localised part.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ape_nas.errors import UserError
from ape_nas.explain.prototypes import nearest_segment, plot_prototypes, prototype_map, prototype_report
from ape_nas.models import build_model
from ape_nas.models.proto import receptive_field

RECORDS = ("prototype_segments", "prototype_distances", "prototype_origins")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _net(in_channels: int = 2, num_classes: int = 3, **arch: object) -> torch.nn.Module:
    return build_model("protonet1d", in_channels, num_classes, **{"width": 8, "latent": 8, **arch})


def _data(n: int, channels: int, time: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, time, generator=g), torch.arange(n) % classes


def _localised(n: int, seed: int, time: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Noise windows (n, 1, time) with one short part at a random place: class 0 a bump, class 1 a biphasic wave
    (both 3 units high, ~20 samples wide); returns the windows, labels and the parts' centres."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    centre = torch.randint(40, time - 40, (n,), generator=g)
    u = (torch.arange(time)[None, :] - centre[:, None]) / 4.0  # (n, time)
    bump, wave = torch.exp(-0.5 * u**2), -1.6 * u * torch.exp(-0.5 * u**2)
    x = 3.0 * torch.where(y[:, None] == 0, bump, wave) + 0.5 * torch.randn(n, time, generator=g)
    return x[:, None, :], y, centre


# ---- shapes and the class connections ----------------------------------------------------------------------------


@pytest.mark.parametrize("time", [64, 65, 301])
def test_shapes_of_the_forward_the_similarity_maps_and_the_records(time):
    net = _net(prototypes_per_class=2).eval()
    x = torch.randn(4, 2, time)
    with torch.no_grad():
        assert net(x).shape == (4, 3)
        sim = net.prototype_similarity(x)
    m, t_latent = 6, net.latent_length(time)
    assert net.n_prototypes == m and t_latent == math.ceil(time / 8)  # depth 3, pool 2
    assert sim.shape == (4, m, t_latent) and torch.isfinite(sim).all() and (sim > 0).all()
    assert net.class_connection().shape == (3, m)
    assert net.prototype_class.tolist() == [0, 0, 1, 1, 2, 2]
    assert net.prototype_segments.shape == (m, 2, net.rf_size)
    assert net.prototype_distances.shape == (m,) and not net.projected
    assert net.prototype_origins.shape == (m, 3) and (net.prototype_origins == -1).all()
    assert prototype_map(net, x, torch.tensor([0, 1, 2, 0])).shape == (4, time)


def test_logits_are_the_class_connections_times_the_best_similarities():
    net = _net().eval()
    x = torch.randn(3, 2, 200)
    with torch.no_grad():
        evidence = net.prototype_similarity(x).amax(dim=2)  # (batch, M)
        expected = evidence @ net.class_connection().T + net.head.bias
        assert torch.allclose(net(x), expected, atol=1e-5)
    own = net.prototype_class[None, :] == torch.arange(3)[:, None]  # ProtoPNet's initial connections
    assert torch.equal(net.class_connection(), torch.where(own, 1.0, -0.5))


@pytest.mark.parametrize("fusion", ["concat", "gated"])
def test_a_fusing_head_starts_with_the_same_class_connections(fusion):
    net = _net(hrv_fusion=fusion, n_features=5)
    assert torch.equal(net.class_connection(), _net().class_connection())
    assert net.head.linear.weight.shape == (3, net.n_prototypes + 5)


@pytest.mark.parametrize(
    ("arg", "value"),
    [("latent", 0), ("prototypes_per_class", 0), ("cluster_cost", -0.1), ("separation_cost", math.nan),
     ("separation_cost", True), ("kernel_size", 4), ("pool", 0), ("depth", 0), ("norm", "layer")],
)  # fmt: skip
def test_invalid_arch_values_name_the_argument(arg, value):
    with pytest.raises(UserError, match=rf"^model family 'protonet1d': {arg} must be"):
        build_model("protonet1d", 1, 2, **{arg: value})


# ---- the receptive field -----------------------------------------------------------------------------------------


def test_receptive_field_of_a_layer_stack():
    assert receptive_field([]) == (1, 1, 0)
    assert receptive_field([(7, 1, 3)]) == (7, 1, 3)
    # conv 7, pool 2, conv 7, pool 2: 1 + 6 + 1 + 6·2 + 1·2 = 22 samples, stride 4, offset 3 + 3·2
    assert receptive_field([(7, 1, 3), (2, 2, 0), (7, 1, 3), (2, 2, 0)]) == (22, 4, 9)


@pytest.mark.parametrize(
    "arch",
    [{}, {"depth": 2, "kernel_size": 5, "pool": 3}, {"depth": 2, "kernel_size": 3, "pool": 1},
     {"depth": 4, "kernel_size": 1, "pool": 2}, {"depth": 2, "norm": "none"}],
    ids=str,
)  # fmt: skip
def test_input_span_is_exact(arch):
    """Change one input sample: exactly the latent positions whose span contains it change (eval mode)."""
    net = _net(**arch).double().eval()
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)):  # not the identity
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    time = 150
    x = torch.randn(1, 2, time, dtype=torch.float64)
    with torch.no_grad():
        base = net.encode(x)  # (1, latent, T')
        assert base.shape[2] == net.latent_length(time)
        for t in (0, 1, 5, 37, 74, 75, 148, 149):
            changed: set[int] = set()
            for delta in (5.0, -5.0, 50.0, -50.0):  # both signs and sizes: no ReLU or max-pool hides every one
                moved = x.clone()
                moved[0, 1, t] += delta
                diff = (net.encode(moved) - base).abs().amax(dim=1)[0]  # (T',)
                changed |= set(torch.nonzero(diff > 0).flatten().tolist())
            spans = [net.input_span(j) for j in range(base.shape[2])]
            assert changed == {j for j, (a, b) in enumerate(spans) if a <= t < b}, f"sample {t}"
    assert net.input_span(0, time)[0] == 0 and net.input_span(base.shape[2] - 1, time)[1] == time


# ---- projection onto the nearest training patch ---------------------------------------------------------------


def _brute_force_nearest(net, x, y, ids):
    """Per prototype, by loops in float64: (distance, window id, start, label, segment) of the nearest latent
    position among the windows of its class."""
    with torch.no_grad():
        z = net.encode(x).double()  # (n, D, T')
    protos = net.prototypes.detach().double()
    out = []
    for m, cls in enumerate(net.prototype_class.tolist()):
        best = (math.inf, -1, -1, -1)
        for n in range(len(x)):
            if int(y[n]) != cls:
                continue
            for j in range(z.shape[2]):
                d = float(((z[n, :, j] - protos[m]) ** 2).sum())
                if d < best[0]:
                    best = (d, int(ids[n]), net.input_span(j)[0], cls)
        out.append(best)
    return out


def test_projection_records_the_true_nearest_training_patch_and_changes_no_prediction():
    net = _net(num_classes=3).train()
    x, y = _data(10, 2, 120, classes=2, seed=1)  # no window of class 2
    ids = np.arange(100, 110)[::-1].copy()  # the caller's window ids, in batch order
    probe = torch.randn(5, 2, 173)
    net.eval()
    with torch.no_grad():
        before = net(probe)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    net.project_prototypes(DataLoader(TensorDataset(x, torch.zeros(10, 4), y), batch_size=3), indices=ids)
    assert net.training, "the mode is restored"
    for key, value in net.state_dict().items():  # only the records change; BN statistics too stay
        assert key in RECORDS or torch.equal(value, state[key]), key
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(probe), before)
    expected = _brute_force_nearest(net, x, y, ids)
    for m, (distance, window, start, label) in enumerate(expected):
        if label == -1:  # class 2 has no training window: nothing recorded
            assert math.isinf(float(net.prototype_distances[m])) and (net.prototype_origins[m] == -1).all()
            assert nearest_segment(net, m) is None
            continue
        assert net.prototype_origins[m].tolist() == [window, start, label], f"prototype {m}"
        assert float(net.prototype_distances[m]) == pytest.approx(distance, rel=1e-4, abs=1e-5)
        n = int(np.flatnonzero(ids == window)[0])
        segment = net.prototype_segments[m]  # (C, rf_size): the window's samples of the span, zeros outside
        for i in range(net.rf_size):
            t = start + i
            assert torch.equal(segment[:, i], x[n, :, t] if 0 <= t < x.shape[2] else torch.zeros(2)), (m, i)
        assert nearest_segment(net, m) == {
            "window": window, "start": start, "stop": start + net.rf_size, "label": label,
            "distance": float(net.prototype_distances[m]),
        }  # fmt: skip
    assert not net.projected and sum(math.isfinite(d) for d in net.prototype_distances.tolist()) == 8  # 2 classes


def _projected(in_channels: int = 2, num_classes: int = 2, **arch: object) -> torch.nn.Module:
    net = _net(in_channels, num_classes, **arch)
    x, y = _data(8, in_channels, 128, num_classes, seed=2)
    net.project_prototypes([(x, y)])
    assert net.projected
    return net.eval()


def test_the_records_survive_a_checkpoint_round_trip(tmp_path):
    from ape_nas.objective import save_checkpoint

    net = _projected(hrv_fusion="concat", n_features=3)
    ws = SimpleNamespace(
        X=np.zeros((1, 2, 128), np.float32), class_names=["a", "b"], channels=["ecg", "ppg"], rate_hz=64.0,
        fingerprint="f",
    )  # fmt: skip
    split = SimpleNamespace(to_dict=lambda: {"train": [], "val": [], "test": []})
    path = save_checkpoint(SimpleNamespace(to_dict=dict), net, ws, {}, {}, 0, split)
    ckpt = torch.load(path, weights_only=True)
    fresh = build_model("protonet1d", 2, 2, width=8, latent=8, hrv_fusion="concat", n_features=3)
    fresh.load_state_dict(ckpt["state_dict"])  # strict
    for name in RECORDS:
        assert torch.equal(getattr(fresh, name), getattr(net, name)), name
    x, f = torch.randn(3, 2, 100), torch.randn(3, 3)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x, f), net(x, f))


def test_the_records_survive_torchscript_and_onnx_export(tmp_path):
    """As ``export`` writes a bundle: ONNX equals PyTorch after projection; model.ts holds every record, and its
    state dict loads strictly into a fresh network (as ``transfer.source.bundle_source`` does)."""
    from ape_nas.handoff.convert import PARITY_TOL, Probabilities, export_onnx, export_torchscript, quiet_exporters
    from ape_nas.handoff.onnx_session import ort_probs, ort_session

    net = _projected()
    model = Probabilities(net).eval()
    x = torch.randn(4, 2, 256)
    export_onnx(model, x[:2], tmp_path / "model.onnx")
    session = ort_session(tmp_path / "model.onnx")
    with torch.no_grad():
        for probe in (x, torch.randn(3, 2, 333)):
            assert np.abs(ort_probs(session, probe.numpy()) - model(probe).numpy()).max() <= PARITY_TOL
    export_torchscript(model, x[:2], tmp_path / "model.ts")
    with quiet_exporters():
        scripted = torch.jit.load(str(tmp_path / "model.ts"))
    state = {k.removeprefix("net."): v for k, v in scripted.state_dict().items()}
    fresh = build_model("protonet1d", 2, 2, width=8, latent=8)
    fresh.load_state_dict(state)  # strict
    for name in RECORDS:
        assert torch.equal(getattr(fresh, name), getattr(net, name)), name
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-6)


def test_a_copy_of_a_network_in_training_drops_the_last_forward():
    import copy
    import pickle

    net = _net().train()
    net(torch.randn(2, 2, 64))
    assert net._last.min_distances is not None
    for twin in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert twin._last.min_distances is None
        assert float(twin.regularisation_loss(torch.tensor([0, 1]))) == 0.0


# ---- training: the regulariser and the task's hook ---------------------------------------------------------------


def _own_class_distance(net, x, y) -> float:
    """Mean over windows of the smallest squared distance to a prototype of the window's class."""
    net.eval()
    with torch.no_grad():
        d = net.distances(net.encode(x)).amin(dim=2)  # (n, M)
    own = y[:, None] == net.prototype_class[None, :]
    return float(torch.where(own, d, torch.inf).amin(dim=1).mean())


def test_regularisation_loss_is_protopnets_cluster_and_separation_cost():
    net = _net(num_classes=3, prototypes_per_class=2, cluster_cost=0.5, separation_cost=0.1).train()
    assert float(net.regularisation_loss(torch.tensor([0]))) == 0.0, "no forward yet: nothing to regularise"
    x, y = _data(4, 2, 96, 3, seed=3)
    net(x)
    d = net._last.min_distances.detach()  # (4, 6)
    clst = sum(min(float(d[i, m]) for m in range(6) if m // 2 == int(y[i])) for i in range(4)) / 4
    sep = sum(min(float(d[i, m]) for m in range(6) if m // 2 != int(y[i])) for i in range(4)) / 4
    assert float(net.regularisation_loss(y).detach()) == pytest.approx(0.5 * clst - 0.1 * sep, rel=1e-5)
    assert net._last.min_distances is None, "used once"
    net(x)  # soft targets (mixup) weight each class's terms; one-hot ones are the labels
    soft = F.one_hot(y, 3).float()
    assert float(net.regularisation_loss(soft).detach()) == pytest.approx(0.5 * clst - 0.1 * sep, rel=1e-5)
    net.eval()
    net(x)
    assert float(net.regularisation_loss(y)) == 0.0, "an eval forward leaves nothing"


def test_the_task_adds_the_networks_regulariser_to_the_training_loss():
    from ape_nas.spec import TrialSpec
    from ape_nas.task import CardiacTask

    optim = {"lr": 1e-2, "batch_size": 4, "optimizer": "adamw", "weight_decay": 0.0}
    arch = {"depth": 2, "width": 8, "latent": 8}
    spec = TrialSpec(model="protonet1d", arch=arch, optim=optim, data={}, protocol={}, training={}, seed=0)
    task = CardiacTask(spec.to_dict(), in_channels=2, num_classes=2).train()
    x, y = _data(6, 2, 128, 2, seed=4)
    loss = task.training_step((x, y), 0)
    ce = task.loss_fn(task.net(x), y)
    assert float(loss.detach()) == pytest.approx(float((ce + task.net.regularisation_loss(y)).detach()), rel=1e-5)
    assert task._train_loss.read() == pytest.approx(float(ce.detach()), rel=1e-5), "train_loss: the cross-entropy"


def test_the_regulariser_pulls_windows_towards_their_own_class_prototypes():
    x, y, _ = _localised(32, seed=5, time=128)
    runs = {}
    for costs in ((0.8, 0.08), (0.0, 0.0)):
        torch.manual_seed(5)
        net = _net(1, 2, prototypes_per_class=2, cluster_cost=costs[0], separation_cost=costs[1])
        start = _own_class_distance(net, x, y)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(25):
            net.train()
            opt.zero_grad()
            (F.cross_entropy(net(x), y) + net.regularisation_loss(y)).backward()
            opt.step()
        runs[costs] = (start, _own_class_distance(net, x, y))
    (start, regularised), (same_start, plain) = runs[(0.8, 0.08)], runs[(0.0, 0.0)]
    assert start == same_start
    assert regularised < 0.5 * start and regularised < 0.5 * plain, runs


def test_a_short_training_finds_a_localised_part_and_points_at_it(tmp_path):
    x, y, _ = _localised(48, seed=0)
    x_test, y_test, centre = _localised(64, seed=100)
    torch.manual_seed(0)
    net = _net(1, 2, prototypes_per_class=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(40):
        net.train()
        opt.zero_grad()
        (F.cross_entropy(net(x), y) + net.regularisation_loss(y)).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(x_test).argmax(dim=1) == y_test).float().mean().item()
    assert accuracy > 0.8, "chance is 0.5"
    net.project_prototypes(DataLoader(TensorDataset(x, y), batch_size=16))
    assert net.projected
    # the most contributing prototype fired where the part is, and the relevance peaks there: for at least one
    # class (the other may be told by the absence of that class's part, which is nowhere in particular)
    report = prototype_report(net, x_test, y_test, top=2)
    assert [len(r["prototypes"]) for r in report] == [2] * 64
    assert all(a["contribution"] >= b["contribution"] for a, b in (r["prototypes"] for r in report))
    first = [r["prototypes"][0] for r in report]
    hits = np.array([e["start"] <= int(c) < e["stop"] for e, c in zip(first, centre, strict=True)])
    peaks = np.abs(prototype_map(net, x_test, y_test).argmax(axis=1) - centre.numpy()) <= net.rf_size // 2
    assert max(hits[y_test.numpy() == k].mean() for k in (0, 1)) > 0.8, hits
    assert max(peaks[y_test.numpy() == k].mean() for k in (0, 1)) > 0.8, peaks
    # and it draws the window beside each prototype's nearest training segment
    path = plot_prototypes(net, x_test[:1], y_test[:1], tmp_path / "p.png", rate_hz=128.0, class_names=["a", "b"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the native explanations -----------------------------------------------------------------------------------


def test_prototype_map_spreads_each_positions_evidence_over_its_span():
    net = _net(num_classes=3).eval()
    x, target, time = torch.randn(2, 2, 77), torch.tensor([2, 0]), 77
    with torch.no_grad():
        per_position = torch.einsum("bm,bmj->bj", net.class_connection()[target], net.prototype_similarity(x))
    got = prototype_map(net, x, target)
    assert got.dtype == np.float32
    for t in range(time):
        covering = [j for j in range(per_position.shape[1]) if net.input_span(j)[0] <= t < net.input_span(j)[1]]
        assert covering, f"sample {t} is seen by some position"
        np.testing.assert_allclose(got[:, t], per_position[:, covering].mean(dim=1).numpy(), rtol=1e-5, atol=1e-6)


def test_the_report_ranks_by_contribution_and_places_the_firing_in_the_window():
    net = _projected(num_classes=3)
    x = torch.randn(3, 2, 100)
    report = prototype_report(net, x, torch.tensor([1, 1, 0]), top=3)
    with torch.no_grad():
        sim = net.prototype_similarity(x)
        logits = net(x)
    for b, r in enumerate(report):
        assert r["window"] == b and r["logit"] == pytest.approx(float(logits[b, r["target"]]))
        contributions = net.class_connection()[r["target"]].detach() * sim[b].amax(dim=1)
        assert [e["prototype"] for e in r["prototypes"]] == torch.argsort(contributions, descending=True)[:3].tolist()
        for e in r["prototypes"]:
            assert e["class"] == e["prototype"] // 4
            assert e["similarity"] == pytest.approx(float(sim[b, e["prototype"]].max()))
            assert (e["start"], e["stop"]) == net.input_span(e["position"], 100)
            assert 0 <= e["start"] < e["stop"] <= 100
            assert e["nearest"]["window"] in range(8)


def test_prototype_explanations_need_a_part_based_network():
    with pytest.raises(UserError, match="protonet1d"):
        prototype_map(build_model("cnn1d", 1, 2), torch.randn(1, 1, 64), torch.tensor([0]))


# ---- training hands the records to the checkpoint ----------------------------------------------------------------


def test_a_trial_records_its_prototypes_from_training_windows_only():
    """run_trial: the checkpoint (weights of the best epoch) carries prototypes projected onto windows of the
    training subjects, never validation or test subjects."""
    from _common import QUICKSTART, SMALL_SETS

    from ape_nas.data.prepare import prepare_windows
    from ape_nas.experiments import load_experiment
    from ape_nas.models import get_family
    from ape_nas.objective import run_trial
    from ape_nas.spec import TrialSpec

    base = load_experiment(QUICKSTART, [*SMALL_SETS, "training.max_epochs=1"]).base()
    arch = {**get_family("protonet1d").arch_defaults, "depth": 2, "width": 8, "latent": 8, "prototypes_per_class": 2}
    spec = TrialSpec.from_dict({"model": "protonet1d", "arch": arch, "optim": {"lr": 3e-3}, **base})
    result = run_trial(spec)
    ckpt = torch.load(result.checkpoint, weights_only=True)
    state = ckpt["state_dict"]
    assert torch.isfinite(state["prototype_distances"]).all()
    ws = prepare_windows(spec.data)
    windows = state["prototype_origins"][:, 0].numpy()
    subjects = set(ws.subject_ids(windows).tolist())
    assert subjects <= set(result.split.train) and not subjects & set(result.split.val + result.split.test)
    assert state["prototype_origins"][:, 2].tolist() == ws.y[windows].tolist() == [0, 0, 1, 1]
    net = build_model("protonet1d", ckpt["in_channels"], ckpt["num_classes"], **arch)
    net.load_state_dict(state)
    assert net.projected
