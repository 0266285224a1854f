"""Exact properties of the piece / region counters (Chen, Gamst & Walker 2016; the list is in the book's
Reconstruction notes, "Counting pieces and regions")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from randweights.analysis import regions, regression
from randweights.errors import ConfigError


def one_layer(knots: np.ndarray, out_weights: np.ndarray, seed: int = 0) -> nn.Sequential:
    """1-n-1 net whose unit i switches at x = knots[i] (w_i = +-1 at random, b_i = -w_i * knot_i)."""
    rng = np.random.default_rng(seed)
    w = rng.choice([-1.0, 1.0], size=len(knots)) * rng.uniform(0.5, 2.0, size=len(knots))
    hidden, out = nn.Linear(1, len(knots)), nn.Linear(len(knots), 1)
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor(w)[:, None])
        hidden.bias.copy_(torch.tensor(-w * knots))
        out.weight.copy_(torch.tensor(out_weights)[None, :])
        out.bias.zero_()
    return nn.Sequential(hidden, nn.ReLU(), out).double()


@pytest.mark.parametrize("n", [5, 20, 100])
def test_one_hidden_layer_has_n_plus_one_pieces(n):
    rng = np.random.default_rng(n)
    knots = np.sort(rng.uniform(-0.9, 0.9, n))
    assert np.diff(knots).min() > 1e-9
    net = one_layer(knots, rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.5, n), seed=n)
    p = regions.line_pieces(net, -1.0, 1.0)
    assert p.activation_pieces == n + 1
    assert p.function_pieces == n + 1
    np.testing.assert_allclose(p.knots, knots, atol=1e-12)
    x = np.linspace(-1, 1, 777)
    with torch.no_grad():
        np.testing.assert_allclose(p(x)[:, 0], net(torch.tensor(x)[:, None])[:, 0].numpy(), atol=1e-12)


def test_one_layer_random_nets_never_exceed_n_plus_one():
    for seed in range(5):
        net = regression.regression_mlp((1, 30, 1), "normal", seed=seed)
        assert regions.line_pieces(net, -1e4, 1e4).activation_pieces <= 31


def test_dead_output_weight_separates_activation_from_function_pieces():
    knots = np.array([-0.5, 0.0, 0.5])
    net = one_layer(knots, np.array([1.0, 0.0, -2.0]))
    p = regions.line_pieces(net, -1.0, 1.0)
    assert p.activation_pieces == 4
    assert p.function_pieces == 3
    np.testing.assert_allclose(p.knots, [-0.5, 0.5])


def tent_map(depth: int) -> nn.Sequential:
    """Telgarsky's construction: hidden [relu(x), relu(x - 1/2)], read-out 2 h1 - 4 h2 fed to the next layer."""
    layers: list[nn.Module] = []
    first = nn.Linear(1, 2)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0], [1.0]]))
        first.bias.copy_(torch.tensor([0.0, -0.5]))
    layers += [first, nn.ReLU()]
    for _ in range(depth - 1):
        mid = nn.Linear(2, 2)
        with torch.no_grad():
            mid.weight.copy_(torch.tensor([[2.0, -4.0], [2.0, -4.0]]))
            mid.bias.copy_(torch.tensor([0.0, -0.5]))
        layers += [mid, nn.ReLU()]
    out = nn.Linear(2, 1)
    with torch.no_grad():
        out.weight.copy_(torch.tensor([[2.0, -4.0]]))
        out.bias.zero_()
    return nn.Sequential(*layers, out).double()


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 8])
def test_tent_map_has_two_to_the_depth_pieces(depth):
    eps = 1e-3
    p = regions.line_pieces(tent_map(depth), eps, 1 - eps)
    assert p.function_pieces == 2**depth
    assert p.activation_pieces == 2**depth
    assert p.activation_pieces <= regions.max_pieces_bound([2] * depth)


def test_always_on_and_linear_nets_have_one_piece():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)).double()
    with torch.no_grad():
        for layer in (net[0], net[2]):
            layer.weight.abs_()
            layer.bias.fill_(0.1)
    p = regions.segment_pieces(net, [0.1, 0.2, 0.3], [1.0, 2.0, 0.5])  # positive inputs: every unit stays on
    assert p.activation_pieces == 1 and p.function_pieces == 1
    linear = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.Linear(5, 3))
    q = regions.segment_pieces(linear, torch.randn(4), torch.randn(4), (-100.0, 100.0))
    assert q.activation_pieces == 1 and q.function_pieces == 1


def test_sampled_count_is_a_monotone_lower_bound_that_reaches_the_exact_count():
    found = False
    for seed in range(20):
        net = regression.regression_mlp((1, 8, 8, 1), "normal", seed=seed)
        exact = regions.line_pieces(net, -3.0, 3.0)
        shortest = float((exact.ends - exact.starts).min())
        counts = [regions.sampled_pieces(net, [0.0], [1.0], 2**k + 1, (-3.0, 3.0)) for k in range(2, 17)]
        assert all(c <= exact.activation_pieces for c in counts)
        assert counts == sorted(counts)  # nested grids
        if 6.0 / 2**16 < shortest:  # every piece holds a sample of the finest grid
            assert counts[-1] == exact.activation_pieces
            found = True
    assert found


def test_sampled_count_bounds_exact_on_high_dimensional_segment():
    net = regression.regression_mlp((50, 32, 32, 4), "normal", seed=1)
    a, b = torch.randn(2, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = regions.segment_pieces(net, a, b)
    for n in (10, 100, 10_000):
        assert regions.sampled_pieces(net, a, b, n) <= exact.activation_pieces
    assert exact.function_pieces <= exact.activation_pieces
    batched = regions.segments_pieces(net, torch.stack([a, b, a]), torch.stack([b, a, a + 1]))
    assert batched[0].activation_pieces == exact.activation_pieces
    np.testing.assert_allclose(np.sort(1 - batched[1].boundaries), exact.boundaries, atol=1e-9)  # reversed segment


def test_pieces_reproduce_the_network_output():
    net = regression.regression_mlp((1, 32, 32, 32, 1), "normal", seed=3).double()
    p = regions.line_pieces(net, -3.0, 3.0)
    x = np.linspace(-3, 3, 2001)
    with torch.no_grad():
        np.testing.assert_allclose(p(x)[:, 0], net(torch.tensor(x)[:, None])[:, 0].numpy(), atol=1e-10)


def lines_net(weight: np.ndarray, bias: np.ndarray) -> nn.Sequential:
    hidden, out = nn.Linear(2, len(bias)), nn.Linear(len(bias), 1)
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor(weight))
        hidden.bias.copy_(torch.tensor(bias))
    return nn.Sequential(hidden, nn.ReLU(), out).double()


def test_first_layer_arrangement_counts():
    assert regions.first_layer_regions(lines_net(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.1, -0.2])), [0, 0], [1, 0], [0, 1]) == 4
    assert regions.first_layer_regions(lines_net(np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([0.1, -0.2])), [0, 0], [1, 0], [0, 1]) == 3
    assert regions.first_layer_regions(lines_net(np.array([[1.0, 0.0]]), np.array([5.0])), [0, 0], [1, 0], [0, 1]) == 1  # outside


def test_grid_count_of_a_one_layer_net_is_one_plus_lines_plus_intersections():
    # five lines, intersections well apart and inside the window, no three concurrent
    w = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    b = np.array([0.5, -0.5, 0.3, -0.45, -0.1])
    net = lines_net(w, b)
    exact = regions.first_layer_regions(net, [0, 0], [1, 0], [0, 1])
    assert exact == 1 + 5 + 8  # 4 grid crossings + the diagonal meets each of the 4 axis lines inside
    assert regions.region_map(net, [0, 0], [1, 0], [0, 1], resolution=256).count == exact
    rng = np.random.default_rng(0)
    for _ in range(3):
        net = lines_net(rng.standard_normal((12, 2)), rng.uniform(-1, 1, 12))
        exact = regions.first_layer_regions(net, [0, 0], [1, 0], [0, 1], (-2, 2, -2, 2))
        for res in (32, 128, 512):
            assert regions.region_map(net, [0, 0], [1, 0], [0, 1], (-2, 2, -2, 2), res).count <= exact


def test_pattern_hash_matches_exact_unique():
    net = regression.regression_mlp((2, 80, 80, 1), "normal", seed=0)
    x = torch.rand(20_000, 2, dtype=torch.float64) * 4 - 2
    words = regions.pack_patterns(regions.activation_patterns(net, x))
    assert words.shape == (20_000, 3)
    labels, first = regions.unique_patterns(words)
    _, exact = np.unique(words, axis=0, return_inverse=True)
    assert labels.max() + 1 == exact.max() + 1
    assert np.array_equal(words[first][labels], words)  # same label <=> same pattern


def rescale_and_permute(net: nn.Sequential, seed: int = 0) -> nn.Sequential:
    """Positive rescaling of every hidden unit (w, b -> a w, a b; next column / a) and a permutation of units."""
    import copy

    gen = torch.Generator().manual_seed(seed)
    out = copy.deepcopy(net).double()
    linears = [m for m in out if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for layer, nxt in zip(linears[:-1], linears[1:]):
            n = layer.out_features
            alpha = torch.rand(n, generator=gen, dtype=torch.float64) * 3 + 0.2
            perm = torch.randperm(n, generator=gen)
            layer.weight.mul_(alpha[:, None])
            layer.bias.mul_(alpha)
            nxt.weight.div_(alpha[None, :])
            layer.weight.copy_(layer.weight[perm])
            layer.bias.copy_(layer.bias[perm])
            nxt.weight.copy_(nxt.weight[:, perm])
    return out


def test_rescaling_and_permuting_units_leaves_counts_unchanged():
    net = regression.regression_mlp((1, 16, 16, 1), "normal", seed=4).double()
    other = rescale_and_permute(net)
    p, q = regions.line_pieces(net, -5, 5), regions.line_pieces(other, -5, 5)
    assert (p.activation_pieces, p.function_pieces) == (q.activation_pieces, q.function_pieces)
    np.testing.assert_allclose(p.knots, q.knots, atol=1e-9)
    net2 = regression.regression_mlp((2, 24, 24, 1), "normal", seed=5).double()
    assert regions.region_map(net2, [0, 0], [1, 0], [0, 1], resolution=128).count == regions.region_map(rescale_and_permute(net2), [0, 0], [1, 0], [0, 1], resolution=128).count


def test_random_init_mean_knots_within_15_percent_of_neurons():
    """Companion result (Chen, Gamst & Walker 2018): knots on the whole line ~ #neurons; 20 seeds, random biases."""
    for hidden in [(16, 16), (32,)]:
        knots = [regions.line_pieces(regression.regression_mlp((1, *hidden, 1), "normal", seed=s), -1e4, 1e4).knot_count for s in range(20)]
        assert abs(np.mean(knots) / sum(hidden) - 1) <= 0.15, (hidden, np.mean(knots))


def test_zero_bias_init_puts_first_layer_knots_at_zero():
    net = regression.regression_mlp((1, 64, 64, 1), "zero", seed=0)
    p = regions.line_pieces(net, -1, 1)
    np.testing.assert_allclose(p.knots, [0.0], atol=1e-12)  # positively homogeneous: one knot, at 0


def test_parametrized_and_batchnorm_layers_are_read_as_effective_weights():
    from randweights.methods import edge_popup

    torch.manual_seed(0)
    net = edge_popup.apply(nn.Sequential(nn.Flatten(), nn.Linear(6, 20), nn.ReLU(), nn.Linear(20, 20), nn.ReLU(), nn.Linear(20, 3)), 0.5)
    net.eval()
    bn = nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 10), nn.ReLU(), nn.BatchNorm1d(10), nn.Linear(10, 2))
    bn.train()
    bn(torch.randn(64, 6) * 3 + 1)  # running statistics
    bn.eval()
    a, b = torch.randn(2, 6)
    for model in (net, bn):
        p = regions.segment_pieces(model, a, b)
        t = np.linspace(0, 1, 301)
        with torch.no_grad():
            y = model(a + torch.tensor(t, dtype=torch.float32)[:, None] * (b - a)).double().numpy()
        np.testing.assert_allclose(p(t), y, atol=1e-4)
    masked = [m for m in net.modules() if isinstance(m, nn.Linear)][0].weight
    assert (masked == 0).float().mean() == pytest.approx(0.5, abs=0.01)


def test_unsupported_layers_raise_config_error():
    with pytest.raises(ConfigError):
        regions.affine_layers(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    with pytest.raises(ConfigError):
        regions.segment_pieces(nn.Sequential(nn.Linear(2, 2)), [0, 0], [1, 1], (1.0, 0.0))
