"""Properties of the least-squares linear-spline baselines and the spline-equivalent size (definitions in the
book's Reconstruction notes, "Counting pieces and regions")."""

from __future__ import annotations

import numpy as np
import pytest

from randweights.analysis import regression, splines
from randweights.errors import ConfigError


def data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-1, 1, n))
    return x, regression.target_1d(x)


def pl_target(x):
    return np.abs(x - 0.3) - 2 * np.maximum(x + 0.2, 0) + 0.5 * np.maximum(x - 0.7, 0)


def test_known_knots_recover_a_piecewise_linear_target_exactly():
    x = np.random.default_rng(1).uniform(-1, 1, 100)
    s = splines.fit_knots(x, pl_target(x), [-0.2, 0.3, 0.7], (-1, 1))
    xt = np.linspace(-1, 1, 501)
    assert s.mse(xt, pl_target(xt)) < 1e-20
    assert s.num_knots == 3


def test_hat_basis_spans_the_truncated_power_basis():
    x, y = data(150)
    knots = np.sort(np.random.default_rng(2).uniform(-0.9, 0.9, 7))
    s = splines.fit_knots(x, y, knots, (-1, 1))
    basis = np.column_stack([np.ones_like(x), x] + [np.maximum(x - k, 0) for k in knots])
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    np.testing.assert_allclose(s(x), basis @ coef, atol=1e-10)


def test_nested_uniform_knots_never_increase_training_error():
    x, y = data()
    errs = [splines.fit_uniform(x, y, k, (-1, 1)).mse(x, y) for k in (0, 1, 3, 7, 15, 31)]  # k -> 2k + 1 is nested
    assert all(b <= a + 1e-12 for a, b in zip(errs, errs[1:]))
    assert splines.fit_uniform(x, 3 * x - 1, 0).mse(x, 3 * x - 1) < 1e-20  # a line needs no knot


def test_interpolating_spline_passes_through_every_point():
    x, y = data(64)
    y = y + np.random.default_rng(0).normal(0, 0.3, len(x))
    s = splines.fit_interpolating(x, y)
    np.testing.assert_allclose(s(x), y, atol=1e-12)
    assert s.num_knots == len(x) - 2


def test_free_knots_are_no_worse_than_uniform_and_find_known_knots():
    x, y = data()
    for k in (2, 6):
        assert splines.fit_free(x, y, k, (-1, 1)).mse(x, y) <= splines.fit_uniform(x, y, k, (-1, 1)).mse(x, y) + 1e-12
    xs = np.random.default_rng(3).uniform(-1, 1, 300)
    two = np.abs(xs - 0.3) - 2 * np.maximum(xs + 0.2, 0)
    free = splines.fit_free(xs, two, 2, (-1, 1), steps=200)
    assert free.mse(xs, two) < 1e-6
    np.testing.assert_allclose(free.knots, [-0.2, 0.3], atol=1e-2)


def test_spline_equivalent_size_is_the_smallest_matching_knot_count():
    x, y = data()
    xt = np.linspace(-1, 1, 401)
    yt = regression.target_1d(xt)
    target = 0.03
    k = splines.spline_equivalent_size(x, y, xt, yt, target, "uniform", 100, (-1, 1))
    assert k is not None and k > 0
    assert splines.fit_uniform(x, y, k, (-1, 1)).mse(xt, yt) <= target
    assert all(splines.fit_uniform(x, y, j, (-1, 1)).mse(xt, yt) > target for j in range(k))
    kf = splines.spline_equivalent_size(x, y, xt, yt, target, "free", 64, (-1, 1))
    assert kf is not None and kf <= k + 1
    assert splines.spline_equivalent_size(x, y, xt, yt, -1.0, "uniform", 10) is None
    with pytest.raises(ConfigError):
        splines.spline_equivalent_size(x, y, xt, yt, target, "cubic")
