"""Training-time augmentations (ape_nas/augment.py): seeded, shape-keeping, pure, bounded where physiology says so,
and applied by the task's training step only."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ape_nas import augment
from ape_nas.augment import AUGMENTATIONS, HR_LIMITS_BPM, MAX_STRETCH, TYPICAL_HR_BPM, Context
from ape_nas.spec import TrialSpec

CTX = Context(rate_hz=64.0)
ON = {  # every augmentation switched on for every window
    "time_warp": {"p": 1.0, "max_stretch": 0.2},
    "amplitude_scale": {"p": 1.0, "scale": 0.3},
    "baseline_wander": {"p": 1.0, "amplitude": 0.5, "max_hz": 0.5},
    "jitter": {"p": 1.0, "sigma": 0.1},
    "mixup": {"p": 1.0, "alpha": 0.4},
}
SIGNAL_AUGS = [name for name in AUGMENTATIONS if name not in augment.LABEL_MIXING]


def _batch(n: int = 8, channels: int = 2, length: int = 640) -> torch.Tensor:
    t = torch.arange(length) / CTX.rate_hz
    x = torch.sin(2 * math.pi * 1.2 * t).repeat(n, channels, 1)
    return x + 0.1 * torch.randn(n, channels, length, generator=torch.Generator().manual_seed(0))


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", SIGNAL_AUGS)
def test_a_signal_augmentation_is_seeded_keeps_the_shape_and_leaves_its_input(name: str):
    fn, x = AUGMENTATIONS[name].fn, _batch()
    before = x.clone()
    a = fn(x, _gen(1), CTX, **ON[name])
    b = fn(x, _gen(1), CTX, **ON[name])
    c = fn(x, _gen(2), CTX, **ON[name])
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b), "same seed, same output"
    assert not torch.equal(a, c), "another seed, another output"
    assert not torch.equal(a, x), "p=1 changes every window"
    assert torch.equal(x, before), "the input is never modified"


@pytest.mark.parametrize("name", SIGNAL_AUGS)
def test_p_zero_switches_an_augmentation_off(name: str):
    x = _batch()
    out = AUGMENTATIONS[name].fn(x, _gen(3), CTX, **{**ON[name], "p": 0.0})
    assert torch.allclose(out, x, atol=1e-6)


def test_mixup_is_seeded_mixes_labels_into_soft_targets_and_features_alike():
    x, y = _batch(), torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    features = torch.arange(16, dtype=torch.float32).reshape(8, 2)
    a = augment.mixup(x, y, _gen(1), num_classes=2, features=features, **ON["mixup"])
    b = augment.mixup(x, y, _gen(1), num_classes=2, features=features, **ON["mixup"])
    c = augment.mixup(x, y, _gen(5), num_classes=2, features=features, **ON["mixup"])
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    xm, soft, fm = a
    assert xm.shape == x.shape and soft.shape == (8, 2) and fm.shape == features.shape
    assert torch.allclose(soft.sum(dim=1), torch.ones(8))
    assert ((soft >= 0) & (soft <= 1)).all() and not torch.equal(soft, torch.nn.functional.one_hot(y, 2).float())
    # one convex weight and one partner per window, the same for the window, its label and its features
    onehot = torch.nn.functional.one_hot(y, 2).float()
    mixed_rows = [float(v) for v in soft[:, 1] if 0.0 < float(v) < 1.0]
    assert mixed_rows, "some windows were mixed with a window of the other class"
    for i in range(8):
        found = [
            (lam, j)
            for lam in (mixed_rows[0], 1.0 - mixed_rows[0])
            for j in range(8)
            if torch.allclose(xm[i], lam * x[i] + (1 - lam) * x[j], atol=1e-5)
            and torch.allclose(soft[i], lam * onehot[i] + (1 - lam) * onehot[j], atol=1e-5)
            and torch.allclose(fm[i], lam * features[i] + (1 - lam) * features[j], atol=1e-4)
        ]
        assert found, f"window {i} is not one convex mix of two windows, their labels and features"
    off = augment.mixup(x, y, _gen(1), num_classes=2, features=features, p=0.0, alpha=0.4)
    assert off[0] is x and off[1] is y and off[2] is features


def test_warp_factors_stay_within_the_physiological_bound():
    assert math.isclose(MAX_STRETCH, 0.25)
    # the typical heart rates stay inside the physiological limits under the largest stretch, both ways
    assert TYPICAL_HR_BPM[0] / (1 + MAX_STRETCH) >= HR_LIMITS_BPM[0] - 1e-9
    assert TYPICAL_HR_BPM[1] * (1 + MAX_STRETCH) <= HR_LIMITS_BPM[1] + 1e-9
    for s in (0.05, 0.2, MAX_STRETCH, 0.9):  # a larger max_stretch is clipped to MAX_STRETCH
        f = augment.warp_factors(_gen(0), 10_000, s).numpy()
        bound = 1 + min(s, MAX_STRETCH)
        assert f.min() >= 1 / bound - 1e-12 and f.max() <= bound + 1e-12
        assert f.min() < 1 / bound + 0.02 and f.max() > bound - 0.02, "the range is used"


def _beats_per_minute(x: np.ndarray, rate: float) -> float:
    spectrum = np.abs(np.fft.rfft(x - x.mean(), n=len(x) * 8))
    return float(np.fft.rfftfreq(len(x) * 8, 1 / rate)[spectrum.argmax()] * 60)


@pytest.mark.parametrize("bpm", [50.0, 75.0, 160.0])
def test_time_warp_moves_the_heart_rate_by_the_factor_and_no_further(bpm: float):
    rate, length = 64.0, 64 * 30
    x = torch.sin(2 * math.pi * bpm / 60 * torch.arange(length, dtype=torch.float64) / rate)[None, None, :]
    for r in (1 / (1 + MAX_STRETCH), 1.0, 1 + MAX_STRETCH):
        out = augment.warp(x, torch.tensor([r], dtype=torch.float64))[0, 0].numpy()
        assert out.shape == (length,)
        assert _beats_per_minute(out, rate) == pytest.approx(bpm / r, rel=0.02)
        assert HR_LIMITS_BPM[0] - 1 <= _beats_per_minute(out, rate) <= HR_LIMITS_BPM[1] + 1
    warped = augment.time_warp(x.repeat(64, 1, 1), _gen(0), Context(rate), p=1.0, max_stretch=0.9)
    rates = [_beats_per_minute(w[0].numpy(), rate) for w in warped]
    assert min(rates) >= bpm / (1 + MAX_STRETCH) * 0.98 and max(rates) <= bpm * (1 + MAX_STRETCH) * 1.02


def test_baseline_wander_is_slow_and_bounded():
    x = torch.zeros(32, 1, 64 * 30)
    out = augment.baseline_wander(x, _gen(0), CTX, p=1.0, amplitude=0.3, max_hz=0.5)
    assert out.abs().max() <= 0.3 + 1e-6
    assert all(_beats_per_minute(w[0].numpy(), CTX.rate_hz) / 60 <= 0.5 + 0.02 for w in out)


def test_apply_draws_per_epoch_and_batch_and_each_augmentation_its_own_stream():
    x, y = _batch(), torch.tensor([0, 1] * 4)
    kw = {"seed": 7, "num_classes": 2, "rate_hz": CTX.rate_hz}
    one = augment.apply({"jitter": ON["jitter"]}, x, y, epoch=0, batch=0, **kw)[0]
    assert torch.equal(one, augment.apply({"jitter": ON["jitter"]}, x, y, epoch=0, batch=0, **kw)[0])
    assert not torch.equal(one, augment.apply({"jitter": ON["jitter"]}, x, y, epoch=1, batch=0, **kw)[0])
    assert not torch.equal(one, augment.apply({"jitter": ON["jitter"]}, x, y, epoch=0, batch=1, **kw)[0])
    assert not torch.equal(one, augment.apply({"jitter": ON["jitter"]}, x, y, epoch=0, batch=0, **{**kw, "seed": 8})[0])
    # adding an augmentation before it leaves jitter's noise as it was
    scaled = augment.apply({"amplitude_scale": {"p": 0.0}, "jitter": ON["jitter"]}, x, y, epoch=0, batch=0, **kw)[0]
    assert torch.allclose(scaled, one)
    assert augment.apply({}, x, y, epoch=0, batch=0, **kw) == (x, y, None)
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment.apply({"warp": {}}, x, y, epoch=0, batch=0, **kw)


def _spec(aug: dict) -> TrialSpec:
    data = {"window_s": 10.0, "channels": ["ecg", "ppg"]}
    return TrialSpec(
        model="cnn1d", arch={"depth": 2, "width": 8}, optim={}, data=data, protocol={}, training={}, seed=3, augment=aug
    )


def test_augment_batch_keeps_the_batch_structure_and_is_a_no_op_without_augmentation():
    x, y, features = _batch(length=1280), torch.tensor([0, 1] * 4), torch.randn(8, 5)
    plain = (x, y)
    assert augment.augment_batch(_spec({}), plain, 2, 0, 0) is plain
    x2, y2 = augment.augment_batch(_spec(ON), (x, y), 2, 0, 0)
    assert x2.shape == x.shape and y2.shape == (8, 2)
    x3, f3, y3 = augment.augment_batch(_spec(ON), (x, features, y), 2, 0, 0)
    assert torch.equal(x3, x2) and f3.shape == features.shape and torch.equal(y3, y2)


def test_the_task_augments_training_batches_only():
    from ape_nas.task import CardiacTask

    torch.manual_seed(0)
    x, y = _batch(length=1280), torch.tensor([0, 1] * 4)
    plain = CardiacTask(_spec({}).to_dict(), in_channels=2, num_classes=2, class_weights=[1.0, 3.0])
    mixed = CardiacTask(_spec(ON).to_dict(), in_channels=2, num_classes=2, class_weights=[1.0, 3.0])
    mixed.net.load_state_dict(plain.net.state_dict())
    plain.eval(), mixed.eval()  # no dropout: the two networks differ only by what the step feeds them
    with torch.no_grad():
        a, b = plain.training_step((x, y), 0), mixed.training_step((x, y), 0)
        assert torch.isfinite(b) and not torch.isclose(a, b)
        assert torch.equal(b, mixed.training_step((x, y), 0)), "the same batch index draws the same augmentation"
        assert not torch.equal(b, mixed.training_step((x, y), 1))
        plain.validation_step((x, y), 0)
        mixed.validation_step((x, y), 0)
    assert plain._val_loss.read() == pytest.approx(mixed._val_loss.read()), "validation is never augmented"
