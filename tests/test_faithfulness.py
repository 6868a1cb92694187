"""Faithfulness of saliency maps over time (``ape_nas.explain.faithfulness``, ``quantus_metrics``): known answers.

* Deletion / insertion: a hand-built network whose logit is the energy of ``x[..., 240:300]`` only. Its true map
  (the indicator of those samples) removes the cue first, so the target probability falls at the first step.
* Randomisation: a small cnn1d trained for a few steps to find a bump; Grad-CAM and the gradient lose their
  structure when the network is randomised; Integrated Gradients keeps the input's (``x - baseline``) part in its
  absolute map; the model-independent edge detector keeps correlation 1.
* Localisation: a map equal to the mask scores 1, random maps score the mask's fraction, Quantus agrees.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from ape_nas.explain.faithfulness import (
    RANDOM,
    Curves,
    cascading_randomisation,
    deletion_insertion,
    edge_map,
    faithfulness,
    format_table,
    localisation,
    localisation_scores,
    mask_fraction,
    mass_on_mask,
    merge,
    parameterised_layers,
    pointing_game,
    random_localisation,
    randomisation_scores,
    rank_on_mask,
    rich_table,
    segment_order,
    spearman_rows,
    summarise,
    summary_table,
)
from ape_nas.explain.perturb import noisy_interpolate

T = 960
CUE = slice(240, 300)  # one segment of 60 samples
SEGMENT = 60


class CueNet(nn.Module):
    """Logit ``±5·(mean energy of x[..., 240:300] - 0.5)``: class 1 iff the cue is there; nothing else matters."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(5.0))

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        z = self.scale * (x[:, 0, CUE].pow(2).mean(dim=1) - 0.5)  # (B,)
        if features is not None:
            z = z * features[:, 0]
        return torch.stack([-z, z], dim=1)


def _cue_windows(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=torch.float32)
    phase = 6.0 * torch.rand(n, 1, 1, generator=g)
    x = 0.3 * torch.sin(2 * math.pi * t / 240 + phase) + 0.05 * torch.randn(n, 1, T, generator=g)
    x[..., CUE] += 2.0 * torch.sin(math.pi * (t[CUE] - 240) / 15)  # the cue: mean energy 2
    return x


@pytest.fixture(scope="module")
def cue() -> tuple[nn.Module, torch.Tensor, torch.Tensor, np.ndarray]:
    x = _cue_windows(12)
    true = np.zeros((12, T), dtype=np.float32)
    true[:, CUE] = 1.0
    return CueNet().eval(), x, torch.ones(12, dtype=torch.long), true


# ---------------------------------------------------------------------------------------------------------------------
# Deletion and insertion
# ---------------------------------------------------------------------------------------------------------------------


def test_segments_are_ranked_by_summed_relevance_most_salient_first():
    maps = np.array([[0.0, 1.0, 5.0, 0.0, 2.0, 2.0, -1.0]])
    # segments of 2: [0, 1] sum 1, [2, 3] sum 5, [4, 5] sum 4, [6] sum -1
    assert segment_order(maps, 2).tolist() == [[1, 2, 0, 3]]
    assert segment_order(maps, 2, seed=0).tolist() == [[1, 2, 0, 3]]  # no ties: the seed changes nothing
    ties = np.zeros((200, 8))
    ties[:, 5] = 1.0  # one salient segment, seven tied at 0
    orders = segment_order(ties, 1, seed=0)
    assert (orders[:, 0] == 5).all()
    assert len({tuple(o) for o in orders[:, 1:].tolist()}) > 100  # tied segments in a random order, not time order


def test_the_true_map_deletes_the_cue_first_and_beats_the_random_order(cue):
    net, x, y, true = cue
    c = deletion_insertion(net, x, y, true, segment=SEGMENT)  # 16 segments, one per step
    assert c.deletion.shape == (12, 17) and c.fraction[0, 1] == pytest.approx(1 / 16)
    assert (c.deletion[:, 0] > 0.99).all() and (c.deletion[:, 1] < 0.05).all()  # the probability falls at step 1
    assert (c.insertion[:, 0] < 0.05).all() and (c.insertion[:, 1] > 0.99).all()  # and comes back at step 1
    control = deletion_insertion(net, x, y, None, segment=SEGMENT, n_random=3, seed=0)
    assert c.deletion_auc.mean() < 0.06 and control.deletion_auc.mean() > 0.3
    assert c.insertion_auc.mean() > 0.95 and control.insertion_auc.mean() < 0.7
    assert (c.deletion_auc < control.deletion_auc).all() and (c.insertion_auc > control.insertion_auc).all()


def test_road_noise_keeps_the_answer_and_is_reproducible(cue):
    net, x, y, true = cue

    def noisy(seed: int) -> Curves:
        perturbation = functools.partial(noisy_interpolate, rng=np.random.default_rng(seed), noise=0.05)
        return deletion_insertion(net, x, y, true, segment=SEGMENT, perturbation=perturbation)

    c = noisy(0)
    assert (c.deletion[:, 1] < 0.05).all() and c.deletion_auc.mean() < 0.06 and c.insertion_auc.mean() > 0.95
    np.testing.assert_array_equal(c.deletion, noisy(0).deletion)


def test_a_reversed_map_flips_the_order(cue):
    net, x, y, true = cue
    c = deletion_insertion(net, x, y, -true, segment=SEGMENT)
    assert (c.deletion[:, -2] > 0.99).all()  # the cue is the last segment removed
    assert c.deletion_auc.mean() > 0.95 and c.insertion_auc.mean() < 0.06


def test_a_constant_score_has_that_score_as_its_area():
    class Constant(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tensor([[0.0, math.log(7 / 3)]]).expand(len(x), 2)  # P(class 1) = 0.7

    x = torch.randn(3, 2, 100)
    c = deletion_insertion(Constant(), x, torch.ones(3, dtype=torch.long), np.random.rand(3, 100), segment=7)
    assert c.fraction[:, -1].tolist() == [1.0, 1.0, 1.0]  # 15 segments, the last one 2 samples long
    np.testing.assert_allclose(c.deletion_auc, 0.7, rtol=1e-6)
    np.testing.assert_allclose(c.insertion_auc, 0.7, rtol=1e-6)


def test_all_methods_and_the_control_in_one_pass_equal_separate_calls(cue):
    net, x, y, true = cue
    noise = np.random.default_rng(0).random(true.shape)
    res = faithfulness(net, x, y, {"true": true, "noise": noise}, segment=SEGMENT, batch_size=37)
    assert set(res) == {"true", "noise", RANDOM}
    alone = deletion_insertion(net, x, y, noise, segment=SEGMENT)
    np.testing.assert_allclose(res["noise"]["deletion_auc"], alone.deletion_auc, rtol=1e-5)
    control = deletion_insertion(net, x, y, None, segment=SEGMENT)
    np.testing.assert_allclose(res[RANDOM]["insertion_auc"], control.insertion_auc, rtol=1e-5)
    np.testing.assert_allclose(res["true"]["deletion_gain"], control.deletion_auc - res["true"]["deletion_auc"])
    for gain in ("deletion_gain", "insertion_gain"):
        assert (res["true"][gain] > 0.1).all() and res["true"][gain].mean() > 0.3


def test_fused_features_reach_the_network_window_by_window(cue):
    net, x, y, true = cue
    features = torch.tensor([[1.0], [-1.0]]).repeat(6, 1)  # every second window: the cue argues for class 0
    c = deletion_insertion(net, x, y, true, segment=SEGMENT, features=features)
    assert (c.deletion[0::2, 0] > 0.99).all() and (c.deletion[1::2, 0] < 0.01).all()


def test_bad_arguments_are_refused(cue):
    net, x, y, true = cue
    with pytest.raises(ValueError, match="maps must be"):
        deletion_insertion(net, x, y, true[:, :100])
    with pytest.raises(ValueError, match="steps must be an integer in"):
        deletion_insertion(net, x, y, true, segment=SEGMENT, steps=17)
    with pytest.raises(ValueError, match="segment must be"):
        deletion_insertion(net, x, y, true, segment=0)


# ---------------------------------------------------------------------------------------------------------------------
# Randomisation
# ---------------------------------------------------------------------------------------------------------------------


def _bump_windows(n: int, seed: int, t: int = 480) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    pos = torch.randint(40, t - 40, (n, 1), generator=g)
    bump = torch.exp(-0.5 * ((torch.arange(t)[None] - pos) / 6.0) ** 2)
    x = 0.3 * torch.randn(n, 1, t, generator=g)
    x[:, 0] += 2.0 * bump * y[:, None]
    return x, y


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    from ape_nas.models import build_model

    torch.manual_seed(0)
    net = build_model("cnn1d", in_channels=1, num_classes=2, depth=3, width=8)
    x, y = _bump_windows(256, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    for step in range(25):
        idx = torch.arange(step * 32, step * 32 + 32) % 256
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    xt, yt = _bump_windows(12, seed=1)
    with torch.no_grad():
        assert (net(xt).argmax(1) == yt).float().mean() >= 0.9  # it learnt the bump
    return net, xt, yt


def test_spearman_rows_matches_scipy_and_treats_constant_maps_as_documented():
    rng = np.random.default_rng(0)
    a, b = rng.random((4, 50)), rng.random((4, 50))
    b[1] = a[1] ** 3  # same order
    b[2] = np.round(b[2], 1)  # ties
    expected = [spearmanr(a[i], b[i])[0] for i in range(4)]
    np.testing.assert_allclose(spearman_rows(a, b), expected, rtol=1e-10)
    assert spearman_rows(np.zeros((1, 5)), np.zeros((1, 5))).tolist() == [1.0]
    assert spearman_rows(np.zeros((1, 5)), np.arange(5.0)[None]).tolist() == [0.0]


def test_randomisation_destroys_network_dependent_maps_but_not_the_edge_detector(trained):
    """Thresholds measured: after full randomisation Grad-CAM ≈ 0.0 and the gradient ≈ 0.0 (absolute maps);
    Integrated Gradients' signed map ≈ 0.0 while its absolute map keeps ≈ 0.5 (IG multiplies by x - baseline, the
    input's own structure, which Adebayo et al. also observed). The edge detector stays exactly 1."""
    from ape_nas.explain.saliency import explainer

    net, x, y = trained
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert parameterised_layers(net) == [
        "features.0.0",
        "features.0.1",
        "features.1.0",
        "features.1.1",
        "features.2.0",
        "features.2.1",
        "head",
    ]
    gradcam = cascading_randomisation(net, x, y, explainer("gradcam"))
    assert gradcam.stages[0] == "head" and gradcam.rank_corr.shape == (7, 12)
    assert gradcam.final.mean() < 0.3
    ig = cascading_randomisation(net, x, y, explainer("integrated_gradients"))
    assert ig.rank_corr_signed[-1].mean() < 0.3
    assert ig.final.mean() < 0.75
    gradient = cascading_randomisation(net, x, y, explainer("gradient"), init="normal")
    assert gradient.final.mean() < 0.3
    edge = cascading_randomisation(net, x, y, lambda n, xx, t: edge_map(xx))
    assert edge.rank_corr.min() >= 0.99 and edge.rank_corr_signed.min() >= 0.99
    rows = randomisation_scores(net, x[:4], y[:4], {"gradient": explainer("gradient")})
    assert list(rows) == ["gradient", "edge"]
    np.testing.assert_allclose(rows["edge"]["randomisation_rank_corr"], 1.0)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # a deep copy was randomised


def test_edge_map_is_the_absolute_first_difference_summed_over_channels():
    x = np.array([[[0.0, 1.0, 3.0, 2.0], [0.0, 0.0, 1.0, 1.0]]])
    assert edge_map(x).tolist() == [[0.0, 1.0, 3.0, 1.0]]
    assert edge_map(torch.as_tensor(x)).tolist() == [[0.0, 1.0, 3.0, 1.0]]


# ---------------------------------------------------------------------------------------------------------------------
# Localisation
# ---------------------------------------------------------------------------------------------------------------------


def _masks(b: int = 40, t: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    masks = np.zeros((b, t), dtype=bool)
    for i in range(b):  # a few planted beats of 20 samples
        for start in rng.choice(np.arange(0, t - 20, 40), size=3, replace=False):
            masks[i, start : start + 20] = True
    return masks


def test_a_map_equal_to_the_mask_scores_one_and_random_maps_score_the_mask_fraction():
    masks = _masks()
    perfect = localisation(masks.astype(float), masks)
    for name in ("mass_on_mask", "rank_on_mask", "pointing_game"):
        np.testing.assert_allclose(perfect[name], 1.0)
    np.testing.assert_allclose(perfect["mask_fraction"], 60 / 500)
    chance = random_localisation(masks, n_draws=200, seed=1)
    for name in ("mass_on_mask", "rank_on_mask", "pointing_game"):
        assert chance[name].mean() == pytest.approx(0.12, abs=0.015), name
    constant = np.ones(masks.shape)  # no information: exactly chance, ties shared in proportion
    np.testing.assert_allclose(rank_on_mask(constant, masks), mask_fraction(masks))
    np.testing.assert_allclose(pointing_game(constant, masks), mask_fraction(masks))


def test_localisation_known_values():
    maps = np.array([[3.0, 1.0, -5.0, 0.0], [0.0, -1.0, 0.0, 0.0], [1.0, 4.0, 3.0, 2.0]])
    masks = np.array([[True, False, True, False], [True, False, False, False], [True, False, True, False]])
    np.testing.assert_allclose(mass_on_mask(maps, masks), [0.75, np.nan, 0.4])  # no positive relevance: NaN
    np.testing.assert_allclose(rank_on_mask(maps, masks), [0.5, 1 / 3, 0.5])  # row 1: 3 samples tied at 0, 1 hit
    np.testing.assert_allclose(pointing_game(maps, masks), [1.0, 1 / 3, 0.0])


# ---------------------------------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------------------------------


def test_tables_are_built_from_merged_per_window_results():
    masks = _masks(b=6)
    loc = localisation_scores({"mask": masks.astype(float)}, masks, n_draws=20)
    assert list(loc) == ["mask", RANDOM] and (loc["mask"]["mass_on_mask"] == 1.0).all()
    joined = merge({"mask": {"deletion_auc": np.zeros(6)}}, loc)
    assert list(joined) == ["mask", RANDOM] and list(joined["mask"])[:2] == ["deletion_auc", "mass_on_mask"]
    assert "—" in format_table(summary_table(joined, n_boot=50))  # the random row has no deletion_auc


def test_summary_is_the_mean_with_a_bootstrap_interval_and_drops_missing_values():
    values = np.array([0.1, 0.2, 0.3, np.nan])
    s = summarise({"deletion_auc": values}, n_boot=300)["deletion_auc"]
    assert s["point"] == pytest.approx(0.2) and s["n"] == 3 and s["low"] <= 0.2 <= s["high"]
    by_subject = summarise({"m": np.array([0.0, 0.0, 1.0, 1.0])}, groups=["a", "a", "b", "b"], n_boot=300)["m"]
    assert by_subject["n"] == 4 and by_subject["low"] == 0.0 and by_subject["high"] == 1.0
    table = summary_table({"gradcam": {"deletion_auc": values}, RANDOM: {"deletion_auc": values[:3] + 0.3}})
    text = format_table(table)
    assert "deletion_auc ↓" in text and text.splitlines()[1].startswith("gradcam  0.200 [")
    assert rich_table(table, title="faithfulness").row_count == 2


# ---------------------------------------------------------------------------------------------------------------------
# Quantus
# ---------------------------------------------------------------------------------------------------------------------


def test_quantus_localisation_agrees_with_ours():
    from ape_nas.explain.quantus_metrics import quantus_localisation

    masks = _masks(b=20)
    rng = np.random.default_rng(3)
    maps = rng.random(masks.shape) + 2.0 * masks * rng.random((20, 1))  # continuous: no ties
    maps[:5] -= 0.5  # some negative relevance: Quantus sees the positive part, as ours does
    x = torch.randn(20, 1, masks.shape[1])
    q = quantus_localisation(x, np.zeros(20, dtype=int), maps, masks)
    np.testing.assert_allclose(q["q_mass_on_mask"], mass_on_mask(maps, masks), rtol=1e-5)
    np.testing.assert_allclose(q["q_rank_on_mask"], rank_on_mask(maps, masks), rtol=1e-6)
    np.testing.assert_allclose(q["q_pointing_game"], pointing_game(maps, masks))
    assert (q["q_auc"] > 0.5).all()


def test_quantus_perturbation_interpolates_each_row():
    from ape_nas.explain.quantus_metrics import quantus_perturbation

    f = quantus_perturbation(5)
    out = f(arr=np.array([[0.0, 9.0, 9.0, 3.0, 7.0, 0.0, 9.0, 9.0, 6.0, 7.0]]), indices=np.array([[1, 7]]))
    assert out.tolist() == [[0.0, 1.0, 2.0, 3.0, 7.0, 0.0, 2.0, 4.0, 6.0, 7.0]]  # two rows, times 1 and 2 removed
    single = f(arr=np.array([[0.0, 9.0, 9.0, 3.0, 7.0]]), indices=np.array([1, 2]))  # ROAD's one-window call
    assert single.tolist() == [[0.0, 1.0, 2.0, 3.0, 7.0]]


def test_quantus_region_perturbation_removes_the_cue_first_as_our_deletion_does(cue):
    from ape_nas.explain.quantus_metrics import quantus_faithfulness

    net, x, y, true = cue
    q = quantus_faithfulness(net, x, y, true, segment=SEGMENT, regions=1, n_runs=10)
    ours = deletion_insertion(net, x, y, true, segment=SEGMENT)
    np.testing.assert_allclose(q["q_region_aopc"], ours.deletion[:, 0] - ours.deletion[:, 1], atol=1e-5)
    assert (q["q_pixel_flipping"] < 0.05).all()  # the cue's samples are the most relevant: removed in step 1


def test_quantus_mprt_keeps_the_edge_detector_and_drops_the_gradient(trained):
    from ape_nas.explain.quantus_metrics import quantus_randomisation
    from ape_nas.explain.saliency import explainer

    net, x, y = trained
    edge = quantus_randomisation(net, x, y, lambda n, xx, t: edge_map(xx))["q_mprt"]
    np.testing.assert_allclose(edge, 1.0)
    gradient = quantus_randomisation(net, x, y, explainer("gradient"))["q_mprt"]
    ours = cascading_randomisation(net, x, y, explainer("gradient")).final
    assert gradient.mean() < 0.3 and ours.mean() < 0.3
