"""Linear pieces and activation regions of ReLU MLPs (Chen, Gamst & Walker 2016, "The empirical size of trained
neural networks", arXiv 1611.09444). The paper gives no formal definitions or code; ours are in the book's
Reconstruction notes ("Counting pieces and regions").

A ReLU MLP with a linear top layer is piecewise linear (PL) in its input. Along a segment
``x(t) = start + t * (end - start)`` it is PL in ``t``:

* an **activation piece** is a maximal interval of ``t`` on which the on/off pattern of every hidden ReLU is
  constant; its boundaries are the zero crossings of the pre-activations;
* a **function piece** is a maximal interval on which the output is affine; a **knot** is a ``t`` where the
  output slope changes (the maximum over output coordinates of ``|delta slope|`` exceeds a tolerance). Function
  pieces <= activation pieces: a unit may switch without any effect downstream (dead paths, cancellations).

:func:`segment_pieces` counts both exactly (float64, all intervals of a layer batched in one tensor),
:func:`sampled_pieces` gives the cheap lower bound from patterns on a grid, :func:`region_map` labels a 2-D
plane by hashing activation patterns (a lower bound on the regions hit by the window), and
:func:`first_layer_regions` gives the exact ``1 + L + I`` count of a one-layer arrangement in a box.

Works on any ``nn.Sequential`` (nested allowed) of ``Linear`` / ``ReLU`` / ``Flatten`` / ``Identity`` /
``Dropout`` / eval-mode ``BatchNorm1d``. Each ``Linear``'s ``layer.weight`` is read, so layers whose effective weight is produced by a
parametrization (Edge-Popup, the Bernoulli supermask, Slot Machines, pruning masks) are handled as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

Layer = tuple[torch.Tensor, torch.Tensor, bool]  # (weight (out, in), bias (out,), ReLU after it?) in float64
ModelLike = nn.Module | Sequence[Layer]
_PASS = (nn.Flatten, nn.Identity, nn.Dropout)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (small matrices: threads only add overhead, and on a shared
    CPU they spin against each other); the previous setting is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- model -> layers
def _leaves(module: nn.Module):
    if isinstance(module, nn.Sequential):
        for child in module:
            yield from _leaves(child)
    else:
        yield module


@torch.no_grad()
def affine_layers(model: ModelLike) -> list[Layer]:
    """The model as a list of float64 affine maps, each flagged when a ReLU follows it.

    Consecutive Linear layers without a ReLU between them are composed into one map. A trailing ReLU is kept by
    appending an identity read-out, so the last entry is always the (linear) output layer.
    """
    if not isinstance(model, nn.Module):
        return [(torch.as_tensor(w, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), bool(r)) for w, b, r in model]
    layers: list[list] = []
    for leaf in _leaves(model):
        if isinstance(leaf, (nn.Linear, nn.BatchNorm1d)):
            w, b = _affine_of(leaf)
            if layers and not layers[-1][2]:  # compose with the previous affine map
                w_prev, b_prev, _ = layers[-1]
                layers[-1] = [w @ w_prev, w @ b_prev + b, False]
            else:
                layers.append([w, b, False])
        elif isinstance(leaf, nn.ReLU):
            if not layers:
                raise ConfigError("model", "ReLU before the first Linear", "a Linear first")
            layers[-1][2] = True
        elif not isinstance(leaf, _PASS):
            raise ConfigError("model", type(leaf).__name__, "nn.Sequential of Linear / ReLU / Flatten / Identity / Dropout / BatchNorm1d")
    if not layers:
        raise ConfigError("model", "no Linear layer", "at least one Linear")
    if layers[-1][2]:
        n = layers[-1][0].shape[0]
        layers.append([torch.eye(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64), False])
    return [(w, b, r) for w, b, r in layers]


def _affine_of(leaf: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) in float64 of a Linear (its effective ``weight``) or an eval-mode BatchNorm1d."""
    if isinstance(leaf, nn.Linear):
        w = leaf.weight.detach().to("cpu", torch.float64)
        b = torch.zeros(w.shape[0], dtype=torch.float64) if leaf.bias is None else leaf.bias.detach().to("cpu", torch.float64)
        return w, b
    if leaf.training or leaf.running_mean is None:
        raise ConfigError("model", "BatchNorm1d in training mode or without running stats", "model.eval() first")
    mean, var = (t.detach().to("cpu", torch.float64) for t in (leaf.running_mean, leaf.running_var))
    scale = 1.0 / torch.sqrt(var + leaf.eps)
    shift = -mean * scale
    if leaf.affine:
        gamma, beta = (t.detach().to("cpu", torch.float64) for t in (leaf.weight, leaf.bias))
        scale, shift = scale * gamma, shift * gamma + beta
    return torch.diag(scale), shift


def hidden_units(model: ModelLike) -> int:
    """Number of hidden ReLU units (the "#neurons" of the companion paper)."""
    return sum(w.shape[0] for w, _, relu in affine_layers(model) if relu)


def max_pieces_bound(widths: Sequence[int]) -> float:
    """The bound prod_l (n_l + 1) on activation pieces along any line, n_l the width of hidden layer l (function
    pieces are at most the activation pieces)."""
    return float(np.prod([n + 1 for n in widths], dtype=np.float64))


# ---------------------------------------------------------------------------------------------- exact 1-D count
@dataclass
class Pieces:
    """Exact PL structure of a network along one segment, ``t`` in ``[starts[0], ends[-1]]``."""

    starts: np.ndarray  # (P,) left end of each activation piece
    ends: np.ndarray  # (P,)
    slopes: np.ndarray  # (P, outputs) d output / d t on each activation piece
    intercepts: np.ndarray  # (P, outputs)
    knots: np.ndarray  # t of the function knots (slope changes)

    @property
    def activation_pieces(self) -> int:
        return len(self.starts)

    @property
    def function_pieces(self) -> int:
        return len(self.knots) + 1

    @property
    def boundaries(self) -> np.ndarray:
        """t of the activation boundaries (every unit switch, with or without effect on the output)."""
        return self.starts[1:]

    @property
    def knot_count(self) -> int:
        return len(self.knots)

    def __call__(self, t) -> np.ndarray:
        """The network's output at ``t`` from the pieces (for checks)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        i = np.clip(np.searchsorted(self.starts, t, side="right") - 1, 0, len(self.starts) - 1)
        return self.slopes[i] * t[:, None] + self.intercepts[i]


def _split(lo, hi, a, b, tol):
    """Split every interval ``[lo_i, hi_i]`` at the zero crossings of ``a_i * t + b_i`` (one column per unit)
    strictly inside it. Crossings closer than ``tol`` to each other or to the ends are merged (zero-bias init puts
    many crossings at the same t). Returns the new intervals and the index of the interval each came from."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -b / a
    inside = (a != 0) & (t > lo[:, None] + tol) & (t < hi[:, None] - tol)
    rows, cols = torch.nonzero(inside, as_tuple=True)
    ids = torch.cat([torch.arange(len(lo)), rows])
    pts = torch.cat([lo, t[rows, cols]])
    order = torch.argsort(pts, stable=True)
    order = order[torch.argsort(ids[order], stable=True)]
    ids, pts = ids[order], pts[order]
    same = ids[1:] == ids[:-1]
    keep = torch.ones(len(ids), dtype=torch.bool)
    keep[1:] = ~(same & (pts[1:] - pts[:-1] <= tol))
    ids, pts = ids[keep], pts[keep]
    ends = hi[ids].clone()
    nxt = ids[1:] == ids[:-1]
    ends[:-1][nxt] = pts[1:][nxt]
    return pts, ends, ids


def _as_rows(x, d: int | None = None) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float64)
    return x.reshape(x.shape[0], -1) if d is None else x.reshape(-1, d)


@torch.no_grad()
@single_thread()
def segments_pieces(
    model: ModelLike,
    starts,
    ends,
    t_range: tuple[float, float] = (0.0, 1.0),
    rel_tol: float = 1e-10,
    slope_tol: float = 1e-9,
) -> list[Pieces]:
    """Exact pieces of ``model`` along ``S`` segments ``x(t) = starts[s] + t * (ends[s] - starts[s])``,
    ``t`` in ``t_range``, all segments and intervals batched.

    Per hidden layer: every interval carries the affine map ``z(t) = A t + B`` of the layer's pre-activations;
    intervals are split at the crossings ``t* = -B/A`` strictly inside them (deduplicated within
    ``rel_tol * (t1 - t0)``), the pattern is read at each sub-interval's midpoint and applied. After the last
    layer, neighbouring pieces whose output slopes differ by at most ``slope_tol * max|slope|`` are merged
    into one function piece. Cost O(pieces * sum_l n_l n_(l-1)).
    """
    layers = affine_layers(model)
    d = layers[0][0].shape[1]
    x0, x1 = _as_rows(starts, d), _as_rows(ends, d)
    if x0.shape != x1.shape:
        raise ConfigError("ends", tuple(x1.shape), f"the shape of starts {tuple(x0.shape)}")
    t0, t1 = map(float, t_range)
    if not t1 > t0:
        raise ConfigError("t_range", t_range, "(t0, t1) with t1 > t0")
    tol = rel_tol * (t1 - t0)
    n_seg = x0.shape[0]
    a, b = x1 - x0, x0.clone()
    lo = torch.full((n_seg,), t0, dtype=torch.float64)
    hi = torch.full((n_seg,), t1, dtype=torch.float64)
    seg = torch.arange(n_seg)
    for w, bias, relu in layers:
        a, b = a @ w.T, b @ w.T + bias
        if not relu:
            continue
        lo, hi, parent = _split(lo, hi, a, b, tol)
        a, b, seg = a[parent], b[parent], seg[parent]
        on = (a * ((lo + hi) / 2)[:, None] + b) > 0
        a, b = a * on, b * on
    return [_pieces(lo[m], hi[m], a[m], b[m], slope_tol) for m in (seg == s for s in range(n_seg))]


def _pieces(lo, hi, a, b, slope_tol) -> Pieces:
    slopes = a.numpy()
    scale = float(np.abs(slopes).max()) if slopes.size else 0.0
    jump = np.abs(np.diff(slopes, axis=0)).max(axis=1) if len(slopes) > 1 else np.zeros(0)
    knots = lo.numpy()[1:][jump > slope_tol * scale] if scale > 0 else np.zeros(0)
    return Pieces(lo.numpy(), hi.numpy(), slopes, b.numpy(), knots)


def segment_pieces(model: ModelLike, start, end, t_range: tuple[float, float] = (0.0, 1.0), **tol) -> Pieces:
    """Exact pieces along one segment from ``start`` (t = 0) to ``end`` (t = 1); see :func:`segments_pieces`."""
    start = torch.as_tensor(start, dtype=torch.float64).reshape(1, -1)
    end = torch.as_tensor(end, dtype=torch.float64).reshape(1, -1)
    return segments_pieces(model, start, end, t_range, **tol)[0]


def line_pieces(model: ModelLike, lo: float, hi: float, **tol) -> Pieces:
    """Exact pieces of a scalar-input network on ``x`` in ``[lo, hi]`` (t is x itself)."""
    return segment_pieces(model, [0.0], [1.0], (lo, hi), **tol)


# ---------------------------------------------------------------------------------------------- sampled / 2-D
@torch.no_grad()
def activation_patterns(model: ModelLike, x) -> torch.Tensor:
    """Boolean on/off pattern of every hidden ReLU (``pre-activation > 0``) at the rows of ``x``: (N, units)."""
    layers = affine_layers(model)
    h = _as_rows(x, layers[0][0].shape[1])
    out = []
    for w, bias, relu in layers:
        h = h @ w.T + bias
        if relu:
            out.append(h > 0)
            h = h.clamp_min_(0)
    return torch.cat(out, 1) if out else torch.zeros(len(h), 0, dtype=torch.bool)


def sampled_pieces(model: ModelLike, start, end, n: int, t_range: tuple[float, float] = (0.0, 1.0)) -> int:
    """Lower bound on the activation pieces: 1 + the number of neighbouring samples, among ``n`` equispaced
    ``t`` (ends included), whose patterns differ. It never over-counts unless a sample falls exactly on a
    boundary; grids with ``n = 2^k + 1`` are nested, so the count is monotone in k."""
    if n < 2:
        raise ConfigError("n", n, ">= 2")
    start = torch.as_tensor(start, dtype=torch.float64).reshape(1, -1)
    end = torch.as_tensor(end, dtype=torch.float64).reshape(1, -1)
    t = torch.linspace(t_range[0], t_range[1], n, dtype=torch.float64)[:, None]
    changes = 0
    prev = None
    for chunk in torch.split(t, 1 << 15):
        pats = activation_patterns(model, start + chunk * (end - start))
        if prev is not None:
            pats = torch.cat([prev, pats])
        changes += int((pats[1:] != pats[:-1]).any(1).sum())
        prev = pats[-1:]
    return changes + 1


def pack_patterns(patterns: torch.Tensor) -> np.ndarray:
    """Pack boolean patterns (N, U) into (N, ceil(U / 64)) uint64 words."""
    n, u = patterns.shape
    words = max(1, -(-u // 64))
    packed = np.zeros((n, words * 8), dtype=np.uint8)
    packed[:, : -(-u // 8)] = np.packbits(patterns.numpy(), axis=1, bitorder="little")
    return packed.view(np.uint64)


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 wrap-around arithmetic): a bijection that spreads every input bit."""
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def unique_patterns(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label rows of packed patterns by identity: ``(labels (N,), first index of each label)``.

    Rows of several words are hashed to one uint64 by chaining the splitmix64 finaliser over the words (a plain
    linear hash ``sum_k word_k r_k mod 2^64`` with random odd ``r_k`` collides on high-bit differences); the
    hashes are made unique, and a check compares every row with its label's representative and falls back to an
    exact row-wise ``unique`` if any differ. One-word patterns need no hash."""
    if words.shape[1] == 1:
        h = words[:, 0]
    else:
        h = np.zeros(len(words), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(words.shape[1]):
                h = _mix64(h ^ words[:, k])
    _, inverse = torch.unique(torch.from_numpy(h.view(np.int64)), return_inverse=True)
    labels = inverse.numpy()
    first = np.zeros(labels.max() + 1 if len(labels) else 0, dtype=np.int64)
    first[labels] = np.arange(len(labels))  # one (any) row per label: its representative
    if words.shape[1] > 1 and not np.array_equal(words[first][labels], words):
        _, first, labels = np.unique(words, axis=0, return_index=True, return_inverse=True)
        labels = labels.reshape(-1)
    return labels, first


@dataclass
class RegionMap:
    """Activation regions of a network on the window ``extent`` of the plane ``origin + s v1 + t v2``."""

    labels: np.ndarray  # (G, G) region id per pixel; rows follow t (from extent[2] up), columns follow s
    extent: tuple[float, float, float, float]  # (s0, s1, t0, t1)

    @property
    def count(self) -> int:
        """Distinct patterns seen: a lower bound on the regions meeting the window (small ones are missed)."""
        return int(self.labels.max()) + 1 if self.labels.size else 0

    @property
    def resolution(self) -> int:
        return self.labels.shape[0]


@torch.no_grad()
@single_thread()
def region_map(
    model: ModelLike,
    origin,
    v1,
    v2,
    extent: tuple[float, float, float, float] = (-1.0, 1.0, -1.0, 1.0),
    resolution: int = 512,
    chunk: int = 1 << 16,
) -> RegionMap:
    """Label a ``resolution`` x ``resolution`` grid (pixel centres, ends included) on a plane by hashing the
    activation pattern at each point. The number of distinct labels is a lower bound on the regions the window
    meets: regions smaller than a grid cell are missed."""
    layers = affine_layers(model)
    d = layers[0][0].shape[1]
    origin, v1, v2 = (torch.as_tensor(v, dtype=torch.float64).reshape(d) for v in (origin, v1, v2))
    s = torch.linspace(extent[0], extent[1], resolution, dtype=torch.float64)
    t = torch.linspace(extent[2], extent[3], resolution, dtype=torch.float64)
    tt, ss = torch.meshgrid(t, s, indexing="ij")
    coords = torch.stack([ss.reshape(-1), tt.reshape(-1)], 1)
    basis = torch.stack([v1, v2])
    words = np.concatenate([pack_patterns(activation_patterns(layers, origin + c @ basis)) for c in torch.split(coords, chunk)])
    labels, _ = unique_patterns(words)
    return RegionMap(labels.reshape(resolution, resolution), tuple(map(float, extent)))


def plane_through(x0, x1, x2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(origin, v1, v2)`` of the plane through three points: x0 at (0, 0), x1 at (1, 0), x2 at (0, 1)."""
    x0, x1, x2 = (torch.as_tensor(v, dtype=torch.float64).reshape(-1) for v in (x0, x1, x2))
    return x0, x1 - x0, x2 - x0


@torch.no_grad()
def first_layer_regions(model: ModelLike, origin, v1, v2, extent=(-1.0, 1.0, -1.0, 1.0)) -> int:
    """Exact number of regions the first hidden layer's lines cut the (open) window into: ``1 + L + I`` with L
    lines crossing the window and I pairwise intersections inside it (lines in general position). This is also
    the region count of a one-hidden-layer net."""
    w, b, _ = affine_layers(model)[0]
    d = w.shape[1]
    origin, v1, v2 = (torch.as_tensor(v, dtype=torch.float64).reshape(d) for v in (origin, v1, v2))
    coef = torch.stack([w @ v1, w @ v2], 1).numpy()  # line j: coef_j . (s, t) + c_j = 0
    c = (w @ origin + b).numpy()
    s0, s1, t0, t1 = extent
    corners = np.array([[s0, t0], [s0, t1], [s1, t0], [s1, t1]])
    vals = corners @ coef.T + c
    crossing = (vals.min(0) < 0) & (vals.max(0) > 0)
    coef, c = coef[crossing], c[crossing]
    inter = 0
    for i in range(len(c)):
        for j in range(i + 1, len(c)):
            m = np.stack([coef[i], coef[j]])
            if abs(np.linalg.det(m)) < 1e-14:
                continue
            p = np.linalg.solve(m, -np.array([c[i], c[j]]))
            inter += bool(s0 < p[0] < s1 and t0 < p[1] < t1)
    return 1 + len(c) + inter
