"""Locality measures of first-layer masks: FFT displacement maps are exact; scalar measures are calibrated."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from randweights.analysis import locality as L


def random_masks(units=5, channels=3, size=8, density=0.3, seed=0):
    return np.random.default_rng(seed).random((units, channels, size, size)) < density


@pytest.mark.parametrize("seed, density", [(0, 0.3), (1, 0.05), (2, 0.9)])
def test_fft_maps_equal_bruteforce_pair_counting(seed, density):
    m = random_masks(seed=seed, density=density)
    sc, dc = L.displacement_maps(m)
    bsc, bdc = L.displacement_maps_bruteforce(m)
    assert sc.shape == (15, 15)
    assert np.array_equal(sc, bsc) and np.array_equal(dc, bdc)


def test_map_symmetry_and_totals():
    m = random_masks(units=7, size=9, seed=4)
    sc, dc = L.displacement_maps(m)
    n = m.reshape(7, 3, -1).sum(2).astype(np.int64)  # n_uc
    assert np.array_equal(sc, sc[::-1, ::-1]) and np.array_equal(dc, dc[::-1, ::-1])
    assert sc.sum() == (n * (n - 1)).sum()
    assert dc.sum() == ((n.sum(1) ** 2) - (n**2).sum(1)).sum()
    assert sc[8, 8] == 0  # no distinct same-channel pair at d = 0


def test_cross_channel_peak_at_zero_for_aligned_channels():
    m = np.zeros((1, 3, 8, 8), bool)
    m[0, :, 2, 3] = True  # the same pixel in R, G, B
    _, dc = L.displacement_maps(m)
    assert dc[7, 7] == 6 and dc.sum() == 6


def patch_among_random(rng, units=200, size=32, channels=3, density=0.1):
    m = rng.random((units, channels, size, size)) < density
    m[0] = False
    m[0, :, 10:15, 12:17] = True  # unit 0: a 5x5 patch in every channel
    return m


def test_patch_is_local_and_random_masks_score_one():
    rng = np.random.default_rng(0)
    m = patch_among_random(rng)
    ratios = L.locality_ratios(m)
    assert ratios[0] < 0.3
    assert abs(np.mean(ratios[1:]) - 1) < 0.05
    assert abs(L.locality_ratio(m[1:]) - 1) < 0.05


def test_random_masks_on_a_restricted_support_score_one():
    """Masks confined to the centre (as MNIST's borders would make them) are not called local."""
    rng = np.random.default_rng(1)
    m = np.zeros((200, 1, 28, 28), bool)
    m[:, :, 6:22, 6:22] = rng.random((200, 1, 16, 16)) < 0.2
    assert abs(L.locality_ratio(m) - 1) < 0.05
    full = np.ones((1, 28, 28), bool)
    assert L.locality_ratio(m, full) < 0.8  # against the whole image they would look local


def test_centroid_radius_and_out_degree():
    m = np.zeros((2, 3, 9, 9), bool)
    m[0, 0, 4, 2] = m[0, 0, 4, 6] = True
    m[1, :, 0:3, 0:3] = True
    centers, radii = L.centroids_and_radii(m)
    assert np.allclose(centers[0], [4, 4]) and np.isclose(radii[0], 2)
    assert np.allclose(centers[1], [1, 1])
    out = L.out_degree_map(m)
    assert out.shape == (3, 9, 9) and out.sum() == L.in_degree(m).sum() == 2 + 27


def test_near_origin_mass_patch_vs_random():
    rng = np.random.default_rng(2)
    m = patch_among_random(rng)
    sc_patch, _ = L.displacement_maps(m[:1])
    sup = L.support(m)
    assert L.near_origin_mass(sc_patch) > 5 * L.random_near_origin_mass(sup)


def test_summary_and_degree_bins():
    m = random_masks(units=40, size=8, density=0.2, seed=5)
    s = L.summary(m)
    assert set(s) >= {"locality_ratio", "rms_radius", "near_origin_mass", "near_origin_mass_random"}
    deg = L.in_degree(m)
    bins = L.degree_bins(deg, 4)
    covered = sum(((deg >= lo) & (deg < hi)).sum() for lo, hi in bins)
    assert covered == (deg >= 2).sum()  # half-open bins drop no unit


def test_ablation_zeroes_units_and_restores():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.randn(5, 4)
    base = net(x)
    intact = net[1](net[0](x))
    with L.ablate_units(net[0], [0, 2]):
        hidden = net[1](net[0](x))
        assert (hidden[:, [0, 2]] == 0).all() and torch.equal(hidden[:, 1], intact[:, 1])
    assert torch.equal(net(x), base)
    masks = np.zeros((3, 1, 2, 2), bool)
    masks[0, 0, 0, :] = True
    masks[1] = True
    assert L.unit_order(masks, "most").tolist() == [1, 0, 2]
    assert L.unit_order(masks, "least")[0] == 2
    accs = L.ablation_curve(net, net[0], masks, [0, 3], lambda model: float(model(x).abs().sum()), "most")
    assert accs[1] == pytest.approx(float(net[2].bias.abs().sum() * 5))


def test_random_displacement_map_is_the_expectation():
    """Averaged over many random masks with fixed per-channel counts, S^sc approaches the closed form."""
    rng = np.random.default_rng(3)
    units, c, h = 400, 2, 6
    masks = np.zeros((units, c, h, h), bool)
    for u in range(units):
        for ch, n in enumerate((5, 9)):
            masks[u, ch].reshape(-1)[rng.choice(h * h, n, replace=False)] = True
    expected = L.random_displacement_map(masks, np.ones((c, h, h), bool))
    sc, _ = L.displacement_maps(masks)
    assert np.isclose(expected.sum(), sc.sum())
    assert np.abs(sc - expected).max() / expected.max() < 0.1
