"""Least-squares continuous linear splines, the baselines of Chen, Gamst & Walker (2016), arXiv 1611.09444:
"initialising and training a neural network is very different from fitting a linear spline" (abstract).

The paper's exact baselines are unknown; we reconstruct three of them (the book's Reconstruction notes), all here:

* (a) fixed uniform knots, least squares (:func:`fit_uniform`);
* (b) free knots, least squares over the knot positions too (:func:`fit_free`: knots start at quantiles of the
  data, then L-BFGS on the variable-projection loss, the coefficients solved exactly for each knot set);
* (c) the interpolating spline with a knot at every training input (:func:`fit_interpolating`).

A spline with knots ``k_1 < ... < k_K`` inside ``[lo, hi]`` spans the same functions on ``[lo, hi]`` as the
truncated-power basis ``[1, x, (x - k_j)_+]``; we fit in the equivalent hat-function basis on the nodes
``lo, k_1..k_K, hi`` (values at the nodes), which is far better conditioned. Outside ``[lo, hi]`` the end
pieces are extended linearly. With more nodes than data the least-squares problem is underdetermined and the
minimum-norm solution is taken.

:func:`spline_equivalent_size` is the "spline-equivalent size" (our definition; the paper's is unknown): the
fewest knots with which such a spline, fit to the same training data, reaches a given test error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError


@dataclass
class LinearSpline:
    """A continuous PL function: ``values`` at ``nodes`` (sorted; the first and last are the domain ends)."""

    nodes: np.ndarray
    values: np.ndarray

    @property
    def knots(self) -> np.ndarray:
        return self.nodes[1:-1]

    @property
    def num_knots(self) -> int:
        return len(self.nodes) - 2

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return (_hat_basis(torch.from_numpy(x.reshape(-1)), torch.from_numpy(self.nodes)) @ torch.from_numpy(self.values)).numpy().reshape(x.shape)

    def mse(self, x, y) -> float:
        return float(np.mean((self(x) - np.asarray(y, dtype=np.float64)) ** 2))


def _hat_basis(x: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
    """(N, M) matrix of the M hat functions on ``nodes`` at ``x``; differentiable in ``nodes``. Rows sum to 1."""
    m = len(nodes)
    seg = torch.clamp(torch.searchsorted(nodes.detach().contiguous(), x.contiguous(), right=True) - 1, 0, m - 2)
    left, right = nodes[seg], nodes[seg + 1]
    u = (x - left) / (right - left)
    basis = x.new_zeros(len(x), m)
    rows = torch.arange(len(x))
    basis = basis.index_put((rows, seg), 1 - u).index_put((rows, seg + 1), u, accumulate=True)
    return basis


def _solve(basis: torch.Tensor, y: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    if ridge > 0:
        gram = basis.T @ basis + ridge * torch.eye(basis.shape[1], dtype=basis.dtype)
        return torch.linalg.solve(gram, basis.T @ y)
    return torch.linalg.pinv(basis) @ y


def _check_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape or len(x) < 2:
        raise ConfigError("x, y", (x.shape, y.shape), "two 1-D arrays of the same length >= 2")
    return x, y


def fit_knots(x, y, knots, domain: tuple[float, float] | None = None) -> LinearSpline:
    """Least-squares spline with the given interior ``knots`` on ``domain`` (default: the data's range)."""
    x, y = _check_xy(x, y)
    lo, hi = domain if domain is not None else (float(x.min()), float(x.max()))
    knots = np.unique(np.asarray(knots, dtype=np.float64))
    knots = knots[(knots > lo) & (knots < hi)]
    nodes = np.concatenate([[lo], knots, [hi]])
    values = _solve(_hat_basis(torch.from_numpy(x), torch.from_numpy(nodes)), torch.from_numpy(y))
    return LinearSpline(nodes, values.numpy())


def uniform_knots(num_knots: int, domain: tuple[float, float]) -> np.ndarray:
    """``num_knots`` equally spaced interior knots of ``domain``."""
    if num_knots < 0:
        raise ConfigError("num_knots", num_knots, ">= 0")
    return np.linspace(domain[0], domain[1], num_knots + 2)[1:-1]


def fit_uniform(x, y, num_knots: int, domain: tuple[float, float] | None = None) -> LinearSpline:
    """Baseline (a): least squares with ``num_knots`` uniform knots."""
    x, y = _check_xy(x, y)
    domain = domain if domain is not None else (float(x.min()), float(x.max()))
    return fit_knots(x, y, uniform_knots(num_knots, domain), domain)


def fit_interpolating(x, y) -> LinearSpline:
    """Baseline (c): the spline through every training point (knots at all interior inputs; duplicates averaged)."""
    x, y = _check_xy(x, y)
    xs, inverse = np.unique(x, return_inverse=True)
    ys = np.bincount(inverse, weights=y) / np.bincount(inverse)
    return LinearSpline(xs, ys)


def fit_free(x, y, num_knots: int, domain: tuple[float, float] | None = None, steps: int = 60, seed: int = 0) -> LinearSpline:
    """Baseline (b): free-knot least squares. Knots start at the data quantiles; their positions are
    ``lo + (hi - lo) * cumsum(softmax(theta))`` (always ordered and inside), optimised with L-BFGS on
    ``min_values ||y - B(knots) values||^2`` (variable projection; values by a tiny-ridge normal solve)."""
    x, y = _check_xy(x, y)
    lo, hi = domain if domain is not None else (float(x.min()), float(x.max()))
    if num_knots == 0:
        return fit_knots(x, y, [], (lo, hi))
    q = np.quantile(x, np.linspace(0, 1, num_knots + 2)[1:-1])
    gaps = np.diff(np.concatenate([[lo], np.clip(q, lo, hi), [hi]]))
    theta = torch.tensor(np.log(np.maximum(gaps, 1e-3 * (hi - lo))), requires_grad=True)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def nodes_of(th):
        return lo + (hi - lo) * torch.cat([th.new_zeros(1), torch.cumsum(torch.softmax(th, 0), 0)])

    def loss_of(th):
        basis = _hat_basis(xt, nodes_of(th))
        values = _solve(basis, yt, ridge=1e-9)
        return ((basis @ values - yt) ** 2).mean()

    opt = torch.optim.LBFGS([theta], lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_of(theta)
        loss.backward()
        return loss

    try:
        opt.step(closure)
    except RuntimeError:  # a singular solve: fall back to the starting knots below
        pass
    candidates = [np.quantile(x, np.linspace(0, 1, num_knots + 2)[1:-1]), uniform_knots(num_knots, (lo, hi))]
    if torch.isfinite(theta).all():
        with torch.no_grad():
            candidates.insert(0, nodes_of(theta).numpy()[1:-1])
    fits = [fit_knots(x, y, k, (lo, hi)) for k in candidates]
    return min(fits, key=lambda s: s.mse(x, y))  # never worse (on the training data) than its starts


def spline_equivalent_size(
    x_train,
    y_train,
    x_test,
    y_test,
    target_mse: float,
    kind: str = "uniform",
    max_knots: int = 256,
    domain: tuple[float, float] | None = None,
) -> int | None:
    """The fewest knots K with which a least-squares ``kind`` ("uniform" or "free") spline fit to the training
    data has test MSE <= ``target_mse`` (the "spline-equivalent size"); None if no K <= max_knots does.

    Uniform: every K from 0 is tried (exact). Free: doubling then bisection, which assumes the test error falls
    with K (true for nested fits, approximately true for free knots)."""
    fit: Callable[[int], LinearSpline]
    if kind == "uniform":
        def fit(k):
            return fit_uniform(x_train, y_train, k, domain)
        for k in range(max_knots + 1):
            if fit(k).mse(x_test, y_test) <= target_mse:
                return k
        return None
    if kind != "free":
        raise ConfigError("kind", kind, "uniform, free")

    def ok(k: int) -> bool:
        return fit_free(x_train, y_train, k, domain).mse(x_test, y_test) <= target_mse

    if ok(0):
        return 0
    hi = 1
    while not ok(hi):
        if hi >= max_knots:
            return None
        hi = min(2 * hi, max_knots)
    lo = hi // 2  # ok(lo) is False (or lo == 0, checked)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi
