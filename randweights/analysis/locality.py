"""Locality of first-layer masks (Pellegrini & Biroli 2021; the measures of the paper's official
post-processing notebook, github.com/phiandark/SiftingFeatures ``src/IMP_PostProcess.ipynb``, and ours).

A first-layer mask is a boolean array ``masks[u, c, y, x]``: unit ``u`` is connected to channel ``c`` of pixel
``(y, x)``. Displacements ``d = (y2 - y1, x2 - x1)`` over ordered pairs of distinct connections of one unit are
counted into the same-channel map S^sc (c1 = c2) and the cross-channel map S^dc (c1 != c2), both of shape
(2H - 1, 2W - 1) with d = 0 at index (H - 1, W - 1). They are computed exactly by FFT autocorrelation on a
(2H - 1, 2W - 1) canvas, which is just large enough that no displacement wraps around.

The scalar measures are ours (the paper has maps and histograms only):

* locality ratio of a unit: its mean same-channel pairwise distance divided by the EXPECTED one for a uniformly
  random mask with the same per-channel counts on the same pixel support (pixels that any unit uses). For a
  random subset of a set, the expected mean pair distance is the set's own mean pair distance, so the
  denominator is exact (no Monte Carlo). L < 1: local; random masks: about 1;
* receptive-field centroid and RMS radius (channels pooled by position);
* near-origin mass: the share of same-channel pairs at |d| <= r, with its random-support value.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def as_units(masks, input_shape=None) -> np.ndarray:
    """(U, C, H, W) booleans from (U, C, H, W) or (U, C*H*W) (with ``input_shape``) arrays or tensors."""
    m = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
    if m.ndim == 2:
        m = m.reshape(m.shape[0], *input_shape)
    if m.ndim == 3:
        m = m[:, None]
    return m.astype(bool)


# ---------------------------------------------------------------------------------------------- degrees
def in_degree(masks: np.ndarray) -> np.ndarray:
    """C^in_u: number of inputs connected to each unit."""
    return masks.reshape(masks.shape[0], -1).sum(1)


def out_degree_map(masks: np.ndarray) -> np.ndarray:
    """(C, H, W): for each input, the number of units connected to it (the pixel out-degree map)."""
    return masks.sum(0)


def support(masks: np.ndarray) -> np.ndarray:
    """(C, H, W) booleans: the inputs used by at least one unit."""
    return masks.any(0)


# ---------------------------------------------------------------------------------------------- maps
def _spectra(masks: np.ndarray) -> np.ndarray:
    _, _, h, w = masks.shape
    return np.fft.rfft2(masks.astype(np.float64), s=(2 * h - 1, 2 * w - 1))


def _centered(corr: np.ndarray, h: int, w: int) -> np.ndarray:
    """Circular correlation on the (2H-1, 2W-1) canvas -> displacement-indexed map, d = 0 at the centre."""
    return np.rint(np.fft.fftshift(corr, axes=(-2, -1))).astype(np.int64)


def unit_maps(masks: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit S^sc_u and S^dc_u, each (U, 2H - 1, 2W - 1) int64 (ordered pairs of distinct connections)."""
    u, c, h, w = masks.shape
    sc = np.zeros((u, 2 * h - 1, 2 * w - 1), np.int64)
    dc = np.zeros_like(sc)
    for start in range(0, u, chunk):
        f = _spectra(masks[start : start + chunk])  # (n, C, 2H-1, W)
        same = (f * f.conj()).real.sum(1)  # sum_c |F_c|^2
        total = np.abs(f.sum(1)) ** 2  # |sum_c F_c|^2 = same + cross
        same_map = _centered(np.fft.irfft2(same, s=(2 * h - 1, 2 * w - 1)), h, w)
        all_map = _centered(np.fft.irfft2(total, s=(2 * h - 1, 2 * w - 1)), h, w)
        counts = masks[start : start + chunk].reshape(len(same_map), -1).sum(1)
        same_map[:, h - 1, w - 1] -= counts  # drop the self-pairs at d = 0
        sc[start : start + chunk] = same_map
        dc[start : start + chunk] = all_map - same_map
        dc[start : start + chunk, h - 1, w - 1] -= counts
    return sc, dc


def displacement_maps(masks: np.ndarray, units=None) -> tuple[np.ndarray, np.ndarray]:
    """S^sc and S^dc summed over ``units`` (default all), (2H - 1, 2W - 1) int64 each."""
    m = masks if units is None else masks[units]
    if len(m) == 0:
        _, _, h, w = masks.shape
        z = np.zeros((2 * h - 1, 2 * w - 1), np.int64)
        return z, z.copy()
    sc, dc = unit_maps(m)
    return sc.sum(0), dc.sum(0)


def displacement_maps_bruteforce(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference: count every ordered pair of distinct connections of every unit (small masks only)."""
    u, c, h, w = masks.shape
    sc = np.zeros((2 * h - 1, 2 * w - 1), np.int64)
    dc = np.zeros_like(sc)
    for unit in masks:
        conn = np.argwhere(unit)
        for i, (c1, y1, x1) in enumerate(conn):
            for j, (c2, y2, x2) in enumerate(conn):
                if i == j:
                    continue
                target = sc if c1 == c2 else dc
                target[y2 - y1 + h - 1, x2 - x1 + w - 1] += 1
    return sc, dc


def random_displacement_map(masks: np.ndarray, support_mask: np.ndarray | None = None) -> np.ndarray:
    """Expected S^sc of uniformly random masks with the same per-unit, per-channel counts on the support:
    sum_uc n_uc (n_uc - 1) / (|S_c| (|S_c| - 1)) * A_c(d), A_c the support's own pair map (exact, no sampling)."""
    u, c, h, w = masks.shape
    sup = support(masks) if support_mask is None else np.asarray(support_mask, bool).reshape(c, h, w)
    maps, _ = unit_maps(sup[:, None])  # (C, 2H-1, 2W-1): ordered distinct pairs of each channel's support
    counts = masks.reshape(u, c, -1).sum(2).astype(np.float64)
    size = sup.reshape(c, -1).sum(1).astype(np.float64)
    denom = size * (size - 1)
    weight = np.divide((counts * (counts - 1)).sum(0), denom, out=np.zeros(c), where=denom > 0)
    return np.tensordot(weight, maps.astype(np.float64), axes=1)


def _distance_grid(h: int, w: int) -> np.ndarray:
    dy = np.arange(-(h - 1), h)[:, None]
    dx = np.arange(-(w - 1), w)[None, :]
    return np.sqrt(dy**2 + dx**2)


def _support_pairs(sup: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel: (number of ordered distinct pairs, sum of their distances) on the support."""
    c, h, w = sup.shape
    maps, _ = unit_maps(sup[:, None])  # each channel as its own "unit": same-channel pairs of that channel
    dist = _distance_grid(h, w)
    return maps.sum((1, 2)).astype(np.float64), (maps * dist).sum((1, 2))


# ---------------------------------------------------------------------------------------------- scalars
def locality_ratios(masks: np.ndarray, support_mask: np.ndarray | None = None) -> np.ndarray:
    """Per-unit locality ratio (NaN for units without a same-channel pair). ``support_mask`` (C, H, W): the
    pixels a random reference mask may use; default: those used by any unit of ``masks``."""
    u, c, h, w = masks.shape
    sup = support(masks) if support_mask is None else np.asarray(support_mask, bool).reshape(c, h, w)
    pairs_c, dist_c = _support_pairs(sup)
    mean_ref = np.divide(dist_c, pairs_c, out=np.zeros_like(dist_c), where=pairs_c > 0)
    dist = _distance_grid(h, w)
    counts = masks.reshape(u, c, -1).sum(2).astype(np.float64)  # n_uc
    unit_pairs = counts * (counts - 1)  # ordered same-channel pairs per unit and channel
    out = np.full(u, np.nan)
    for start in range(0, u, 256):
        sc, _ = unit_maps(masks[start : start + 256])
        own = (sc * dist).sum((1, 2))
        ref = unit_pairs[start : start + 256] @ mean_ref
        ok = ref > 0
        out[start : start + 256][ok] = own[ok] / ref[ok]
    return out


def locality_ratio(masks: np.ndarray, support_mask: np.ndarray | None = None) -> float:
    """Mean of the per-unit locality ratios over units with at least one same-channel pair."""
    r = locality_ratios(masks, support_mask)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


def centroids_and_radii(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: centroid (y, x) of its connected pixel positions (channels pooled, weighted by how many
    channels connect) and RMS radius about it. Units without connections get NaN."""
    u, c, h, w = masks.shape
    weight = masks.sum(1).astype(np.float64)  # (U, H, W)
    total = weight.sum((1, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = (weight * yy).sum((1, 2)) / total
        cx = (weight * xx).sum((1, 2)) / total
        r2 = (weight * ((yy - cy[:, None, None]) ** 2 + (xx - cx[:, None, None]) ** 2)).sum((1, 2)) / total
    return np.stack([cy, cx], 1), np.sqrt(r2)


def near_origin_mass(s_sc: np.ndarray, radius: float = 2.0) -> float:
    """Share of the pairs of a displacement map at |d| <= radius."""
    h, w = (s_sc.shape[0] + 1) // 2, (s_sc.shape[1] + 1) // 2
    near = _distance_grid(h, w) <= radius
    total = s_sc.sum()
    return float(s_sc[near].sum() / total) if total else float("nan")


def random_near_origin_mass(support_mask: np.ndarray, radius: float = 2.0) -> float:
    """The near-origin mass of a random mask on ``support_mask`` (C, H, W): the support's own pair share."""
    maps, _ = unit_maps(np.asarray(support_mask, bool)[:, None])
    return near_origin_mass(maps.sum(0), radius)


def summary(masks: np.ndarray, support_mask: np.ndarray | None = None, radius: float = 2.0) -> dict:
    """The scalar locality measures of one set of first-layer masks (one IMP round)."""
    sup = support(masks) if support_mask is None else support_mask
    sc, _ = displacement_maps(masks)
    _, radii = centroids_and_radii(masks)
    deg = in_degree(masks)
    return {
        "locality_ratio": locality_ratio(masks, sup),
        "rms_radius": float(np.nanmean(radii)) if np.isfinite(radii).any() else float("nan"),
        "near_origin_mass": near_origin_mass(sc, radius),
        "near_origin_mass_random": random_near_origin_mass(sup, radius),
        "mean_in_degree": float(deg.mean()),
        "connected_units": int((deg > 0).sum()),
    }


def degree_bins(degrees: np.ndarray, n_bins: int = 6) -> list[tuple[int, int]]:
    """Half-open in-degree bins [lo, hi) from max(min degree, 2), equal in count of units (quantiles); the
    last bin is open-ended (hi = max + 1)."""
    d = degrees[degrees >= 2]
    if len(d) == 0:
        return []
    edges = np.unique(np.quantile(d, np.linspace(0, 1, n_bins + 1)).astype(int))
    edges[-1] = d.max() + 1
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


# ---------------------------------------------------------------------------------------------- ablation
def unit_order(masks: np.ndarray, how: str, seed: int = 0) -> np.ndarray:
    """Units sorted for ablation: ``most`` / ``least`` connected first, or ``random``."""
    deg = in_degree(masks)
    if how == "most":
        return np.argsort(-deg, kind="stable")
    if how == "least":
        return np.argsort(deg, kind="stable")
    if how == "random":
        return np.random.default_rng(seed).permutation(len(deg))
    raise ValueError(f"how: got {how!r}, allowed: most, least, random")


class ablate_units:
    """Context manager: the outputs of ``units`` of ``layer`` (a Linear) are zeroed in every forward, so the
    following ReLU passes 0 (node ablation; BatchNorm keeps its saved running statistics in eval mode)."""

    def __init__(self, layer: nn.Module, units):
        self.layer = layer
        self.units = torch.as_tensor(np.asarray(units, dtype=np.int64))
        self.handle = None

    def _hook(self, module, inputs, output):
        output = output.clone()
        output[:, self.units] = 0
        return output

    def __enter__(self):
        self.handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def ablation_curve(model: nn.Module, layer: nn.Module, masks: np.ndarray, counts, evaluate: Callable[[nn.Module], float], how: str, seed: int = 0) -> list[float]:
    """Accuracy (``evaluate(model)``) after zeroing the first ``k`` units in :func:`unit_order` for each k."""
    order = unit_order(masks, how, seed)
    out = []
    for k in counts:
        with ablate_units(layer, order[: int(k)]):
            out.append(evaluate(model))
    return out
