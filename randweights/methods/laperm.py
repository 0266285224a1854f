"""LaPerm, "Train-by-Reconnect" (Qiu & Suda, NeurIPS 2020): train only where each initial weight sits.

An ordinary inner optimizer (Adam by default) trains every parameter. Every ``k`` steps (the sync period) each
*permutable* tensor is synchronized: viewed as a matrix with one row per output unit (that unit's incoming
weights; a bias vector is one row), every row takes back its own initial values, placed in the rank order of
the current values (Sec. 3-4 of the paper; Algorithm 1). So ``theta_T = sigma(theta_0)`` with ``sigma`` a
row-wise permutation, and each unit keeps the multiset of its fan-in weights, hence its norms and its number of
zeros. The sync is the Euclidean projection of the weights onto the permutation orbit of the initial weights
(rearrangement inequality). The inner optimizer's state (Adam's moments and step count) is never reset.

Implementation: the initial rows are sorted once (``S``); a sync is one stable row-wise sort of the current
weights and a ``scatter`` of ``S`` into the sorted positions, in place.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import models
from ..bits import index_bits, pack_uint, unpack_uint
from ..config import MethodConfig
from ..data import STATS
from ..errors import ConfigError, check_choice, check_range
from . import transform
from .registry import Codec, Method, Trainer, register

INITS = ("he-uniform", "random-sparse", "weight-agnostic")
INNERS = ("adam", "sgd")
BIAS_FANS = ("kernel", "keras")  # Keras' HeUniform on a bias of n units uses fan_in = n (the official notebooks)
L2_SCOPES = ("all", "hidden-kernels")  # Keras kernel_regularizer sits on the conv and hidden dense kernels only
BIAS_INITS = ("he-uniform", "zeros")  # Keras' default bias_initializer is zeros (the ResNet50 notebook keeps it)
BIASES = ("permute", "free", "none")
INPUTS = ("standardized", "unit", "raw")
IN_DEGREES = ("binomial", "fixed")
WEIGHTED = transform.MATRICES  # Linear, Conv, Embedding weights and attention input projections
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


# ---------------------------------------------------------------------------------------------- settings
def parse_sync_schedule(text: str) -> list[tuple[int, int]]:
    """``"50:100,80:500"`` -> ``[(50, 100), (80, 500)]``: from (0-based) epoch 50 on k = 100, from 80 on k = 500
    (the per-epoch k schedule of the official training loop). Empty text: no change."""
    if not text:
        return []
    try:
        pairs = [tuple(int(v) for v in item.split(":")) for item in text.split(",")]
    except ValueError:
        pairs = [()]
    if any(len(p) != 2 or p[0] < 0 or p[1] < 0 for p in pairs):
        raise ConfigError("sync_schedule", text, "comma-separated EPOCH:K pairs with EPOCH, K >= 0 (K = 0: never)")
    return sorted(pairs)  # type: ignore[arg-type]


def parse_layer_sparsity(text: str) -> list[float]:
    """``"14/15,6/7,2/3"`` -> zero fractions per weight layer, in model order (fractions or decimals)."""
    if not text:
        return []
    try:
        values = [float(Fraction(v.strip())) for v in text.split(",")]
    except (ValueError, ZeroDivisionError):
        values = [-1.0]
    if any(not 0 <= v < 1 for v in values):
        raise ConfigError("layer_sparsity", text, "comma-separated zero fractions in [0, 1), e.g. 14/15,6/7,2/3")
    return values


@dataclass(frozen=True)
class LaPermConfig(MethodConfig):
    """Settings of LaPerm. ``sync_period`` k = 0 never syncs: the plain inner optimizer, the paper's baseline
    (and the rank-substitution probe of Sec. 3 on it)."""

    name = "laperm"
    default_weight_decay = 0.0  # the MNIST notebooks use no regularizer (F2: L2 1e-4 on hidden kernels)
    sync_period: int = field(default=20, metadata={"help": "k: inner-optimizer steps between permutation syncs (0: never, the plain optimizer)"})  # k; Conv7 notebook: 20, F1/F2: 250, CIFAR: 1000
    sync_schedule: str = field(default="", metadata={"help": "'EPOCH:K,...': use k = K from that epoch on (empty: k fixed)"})  # "EPOCH:K,..." k from that epoch on
    inner: str = field(default="adam", metadata={"help": "the inner optimizer whose weights are re-ranked"})
    init: str = field(default="he-uniform", metadata={"help": "the initial weights that are permuted"})
    init_sparsity: float = field(default=0.0, metadata={"help": "fraction of ZEROS drawn at init (weight-agnostic, random-sparse)"})  # fraction of ZEROS drawn at init (random-sparse, weight-agnostic)
    layer_sparsity: str = field(default="", metadata={"help": "per-weight-layer zero fractions, overriding init_sparsity, e.g. '14/15,6/7,2/3'"})  # per-weight-layer zero fractions, overrides init_sparsity ("14/15,6/7,2/3")
    shared_value: float = field(default=0.08, metadata={"help": "weight-agnostic init: the one non-zero magnitude"})  # weight-agnostic: the one non-zero value (F1 0.08, F2 0.03)
    biases: str = field(default="permute", metadata={"help": "biases: permuted like weights, trained freely, or none"})  # permute (He-uniform, one row per layer), free (He-uniform, not permuted), none
    skip_bn: bool = field(default=True, metadata={"help": "train BatchNorm scale and shift freely instead of permuting them"})  # BatchNorm scale/shift are trained freely, never permuted
    inputs: str = field(default="standardized", metadata={"help": "input scaling: as the data pipeline gives them (standardized), pixels in [0, 1] (unit, the paper's F1/F2), or in [0, 255] (raw, the Conv2/4/13 notebooks)"})  # "unit": the model sees pixels in [0, 1] (x / 255, the paper's F1/F2)
    in_degree: str = field(default="binomial", metadata={"help": "zeros at init: each entry on its own (binomial) or equal per unit (fixed)"})  # zeros at init: each entry on its own (official), or "fixed": equal per unit
    logit_scale: float = field(default=1.0, metadata={"help": "logits multiplied by this (a softmax temperature; argmax unchanged)"})  # the logits are multiplied by this (a softmax temperature; argmax unchanged)
    hold_zeros: bool = field(default=False, metadata={"help": "keep the init's zeros at zero after every step (the fixed-mask baseline)"})  # keep the init's zeros at zero after every step (the fixed-mask baseline)
    probe_every: int = field(default=0, metadata={"help": "steps between rank-substitution probes (0: none)"})  # steps between rank-substitution probes (0: none)
    probe_images: int = field(default=2000, metadata={"help": "first test images the probes use"})  # fixed first test images the probes use
    bias_fan: str = field(default="kernel", metadata={"help": "He-uniform bias bound sqrt(6/fan): the kernel's fan_in (kernel) or len(bias) as Keras draws it (keras)"})
    bias_init: str = field(default="he-uniform", metadata={"help": "biases at init: He-uniform (see bias_fan) or zeros (Keras' default, the ResNet50 notebook); the kernels are drawn the same either way"})
    l2_scope: str = field(default="all", metadata={"help": "weight decay on every trained tensor (all) or on hidden kernels only (hidden-kernels, the notebooks' L2)"})

    def __post_init__(self):
        check_range("sync_period", self.sync_period, low=0)
        parse_sync_schedule(self.sync_schedule)
        check_choice("inner", self.inner, INNERS)
        check_choice("init", self.init, INITS)
        check_range("init_sparsity", self.init_sparsity, low=0, high=1, high_open=True)
        parse_layer_sparsity(self.layer_sparsity)
        check_range("shared_value", self.shared_value, low=0, low_open=True)
        check_choice("biases", self.biases, BIASES)
        check_choice("inputs", self.inputs, INPUTS)
        check_choice("in_degree", self.in_degree, IN_DEGREES)
        check_range("logit_scale", self.logit_scale, low=0, low_open=True)
        check_range("probe_every", self.probe_every, low=0)
        check_range("probe_images", self.probe_images, low=1)
        check_choice("bias_fan", self.bias_fan, BIAS_FANS)
        check_choice("bias_init", self.bias_init, BIAS_INITS)
        check_choice("l2_scope", self.l2_scope, L2_SCOPES)

    def default_lr(self, arch: str) -> float:
        """Adam 1e-3 in every notebook of the paper; SGD (not in the paper) 0.1 for MLPs, 0.01 for conv nets."""
        if self.inner == "adam":
            return 1e-3
        return 0.1 if arch in ("lenet-300-100", "f1", "f2", "fcn") else 0.01


# ---------------------------------------------------------------------------------------------- the sync
def rows(tensor: torch.Tensor) -> torch.Tensor:
    """View a tensor as (output units, fan-in): dense (out, in), conv (C_out, C_in*kh*kw), 1-D as one row."""
    return tensor.reshape(1, -1) if tensor.dim() == 1 else tensor.reshape(tensor.shape[0], -1)


def sorted_rows(tensor: torch.Tensor) -> torch.Tensor:
    """S: every row of ``tensor`` sorted ascending (Sec. 4: the only state LaPerm keeps)."""
    return rows(tensor.detach()).sort(dim=1).values.clone()


def row_order(view: torch.Tensor, workspace: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    """Stable ascending argsort of every row of a float32 CPU matrix, as int64 column indices.

    One sort of 64-bit words instead of an argsort: the high half holds the float's order-preserving integer
    key (its bits, with the magnitude bits flipped and one added for negative floats, so -0.0 and +0.0 both give
    0), the low half its column, so equal values keep their column order as in a stable argsort. numpy sorts
    64-bit integers with SIMD, several times faster on a CPU than ``torch.argsort``. ``workspace``
    (:func:`sort_workspace`) saves allocating the buffers at every sync; the result is its first tensor."""
    words, key, sign, columns = workspace if workspace is not None else sort_workspace(view)
    bits = view.view(torch.int32)
    torch.bitwise_right_shift(bits, 31, out=sign)  # -1 for negative floats, 0 otherwise
    torch.bitwise_and(sign, 0x7FFFFFFF, out=key)
    key.bitwise_xor_(bits).sub_(sign)  # the keys in 32 bits (half the traffic), then widened once
    torch.bitwise_left_shift(key.to(torch.int64), 32, out=words)
    words.bitwise_or_(columns)
    words.numpy().sort(axis=1)
    return words.bitwise_and_(0xFFFFFFFF)


def sort_workspace(view: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Buffers for :func:`row_order` on matrices shaped like ``view``."""
    return (torch.empty(view.shape, dtype=torch.int64), torch.empty(view.shape, dtype=torch.int32),
            torch.empty(view.shape, dtype=torch.int32), torch.arange(view.shape[1], dtype=torch.int64))


FAST_MIN = 1 << 12  # entries from which the numpy sort beats torch's per-op overhead


def takes_fast_path(tensor: torch.Tensor) -> bool:
    """Whether :func:`sync_` sorts ``tensor`` with :func:`row_order` (float32, on the CPU, contiguous, large)."""
    view = rows(tensor)
    return (view.numel() >= FAST_MIN and view.dtype == torch.float32 and view.device.type == "cpu"
            and view.is_contiguous() and view.data_ptr() == tensor.data_ptr())


@torch.no_grad()
def sync_(tensor: torch.Tensor, sorted_init: torch.Tensor, fast: bool = True, workspace=None) -> torch.Tensor:
    """In place: write the j-th smallest initial value of each row where the row's j-th smallest current value
    is (equal current values: by position, a stable sort). One sort and one scatter. For large float32 CPU
    tensors the sort is numpy's SIMD sort of packed (key, column) words (:func:`row_order`); elsewhere, or with
    ``fast=False``, ``torch.argsort(stable=True)``. Both give the same weights bit for bit."""
    view = rows(tensor)
    if fast and takes_fast_path(tensor):
        view.detach().scatter_(1, row_order(view.detach(), workspace), sorted_init)
        return tensor
    order = view.argsort(dim=1, stable=True)
    if view.data_ptr() == tensor.data_ptr() and view.is_contiguous():
        view.scatter_(1, order, sorted_init)
    else:
        tensor.copy_(torch.empty_like(view).scatter_(1, order, sorted_init).view_as(tensor))
    return tensor


def sync_period_at(epoch: int, period: int, schedule: list[tuple[int, int]]) -> int:
    """k in force at (0-based) ``epoch``."""
    for start, k in schedule:
        if epoch >= start:
            period = k
    return period


def check_sync_period(sync_period) -> None:
    """``sync_period``: an integer k >= 1, ``0`` or ``math.inf`` (never), or a callable ``epoch -> k``."""
    if callable(sync_period):
        return
    allowed = "an integer >= 1, 0 or math.inf (never sync), or a callable epoch -> k"
    if isinstance(sync_period, bool) or not isinstance(sync_period, (int, float, np.integer, np.floating)):
        raise ConfigError("sync_period", sync_period, allowed)
    k = float(sync_period)
    if not (k == math.inf or k == 0 or (math.isfinite(k) and k >= 1 and k.is_integer())):
        raise ConfigError("sync_period", sync_period, allowed)


class LaPerm(torch.optim.Optimizer):
    """Wrap any torch optimizer: ``step()`` runs the inner step on all its parameters, then, when the step count
    t (from 1) is a multiple of the k in force, syncs every tensor in ``permutable`` to its initial values.

    ``sync_period`` may be an int, ``0``/``math.inf`` (never), or a callable ``epoch -> k`` used with
    ``steps_per_epoch``; k is read at every step. The inner state is kept across syncs. ``hold_zeros`` re-zeroes
    the initial zeros of every tensor after each step (for the fixed-mask baseline).

    A real :class:`torch.optim.Optimizer`: it shares the inner optimizer's ``param_groups`` and ``state``, so
    torch's LR schedulers (``CosineAnnealingLR(laperm)``) set the inner learning rates, and
    ``state_dict()`` / ``load_state_dict()`` carry the inner state and LaPerm's own (sorted initial rows, step
    and sync counts)."""

    def __init__(
        self,
        inner: torch.optim.Optimizer,
        permutable: Iterable[torch.Tensor],
        sync_period: float | Callable[[int], int] = 20,
        steps_per_epoch: int | None = None,
        hold_zeros: bool = False,
    ):
        if not isinstance(inner, torch.optim.Optimizer):
            raise TypeError(f"inner: got {type(inner).__name__}, allowed: a torch.optim.Optimizer")
        check_sync_period(sync_period)
        if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
            raise ConfigError("steps_per_epoch", steps_per_epoch, "None or an integer >= 1")
        super().__init__([dict(g) for g in inner.param_groups], dict(inner.defaults))
        self.inner = inner
        self.param_groups = inner.param_groups  # one list: a scheduler's lr change reaches the inner optimizer
        self.state = inner.state
        self.permutable = list(permutable)
        self.sorted_init = [sorted_rows(p) for p in self.permutable]
        self.workspaces = [sort_workspace(rows(p)) if takes_fast_path(p) else None for p in self.permutable]
        self.zero_masks = [p.detach() != 0 for p in self.permutable] if hold_zeros else None
        self.sync_period = sync_period
        self.steps_per_epoch = steps_per_epoch
        self.step_count = 0
        self.syncs = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def period(self) -> float:
        """k at the current step (0 and inf: never)."""
        k = self.sync_period
        if callable(k):
            epoch = (self.step_count - 1) // self.steps_per_epoch if self.steps_per_epoch else 0
            k = k(max(0, epoch))
        return math.inf if k == 0 else k

    def step(self, closure=None):  # type: ignore[override]
        loss = self.inner.step(closure)
        self.step_count += 1
        if self.zero_masks is not None:
            with torch.no_grad():
                for p, mask in zip(self.permutable, self.zero_masks):
                    p.mul_(mask)
        k = self.period()
        if k != math.inf and self.step_count % int(k) == 0:
            self.sync()
        return loss

    def sync(self) -> None:
        """Synchronize every permutable tensor now (Alg. 1, the 'reconnect' step)."""
        for p, s, w in zip(self.permutable, self.sorted_init, self.workspaces):
            sync_(p, s, workspace=w)
        self.syncs += 1

    @contextlib.contextmanager
    def synced(self):
        """Temporarily replace the weights by their synced version (for evaluation between syncs)."""
        saved = [p.detach().clone() for p in self.permutable]
        for p, s, w in zip(self.permutable, self.sorted_init, self.workspaces):
            sync_(p, s, workspace=w)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, v in zip(self.permutable, saved):
                    p.copy_(v)

    def multisets_kept(self) -> bool:
        """Whether every row of every permutable tensor holds exactly its initial values (bitwise)."""
        return all(torch.equal(sorted_rows(p), s) for p, s in zip(self.permutable, self.sorted_init))

    def state_dict(self) -> dict:  # type: ignore[override]
        return {"inner": self.inner.state_dict(), "sorted_init": [s.clone() for s in self.sorted_init],
                "step_count": self.step_count, "syncs": self.syncs}

    def load_state_dict(self, state: dict) -> None:  # type: ignore[override]
        if len(state["sorted_init"]) != len(self.permutable):
            raise ValueError(f"LaPerm state holds {len(state['sorted_init'])} permutable tensors, this optimizer {len(self.permutable)}")
        self.inner.load_state_dict(state["inner"])
        self.param_groups, self.state = self.inner.param_groups, self.inner.state  # load_state_dict replaces them
        self.sorted_init = [s.clone() for s in state["sorted_init"]]
        self.step_count, self.syncs = state["step_count"], state["syncs"]


# ---------------------------------------------------------------------------------------------- what is permuted
def permutable_tensors(
    model: nn.Module, skip_bias: bool = False, skip_bn: bool = True, include: transform.Selector = None, exclude: transform.Selector = None
) -> list[torch.Tensor]:
    """Weights of Linear/Conv layers, their biases unless ``skip_bias``, norm-layer scale/shift unless ``skip_bn``
    (the official ``skip_bias`` / ``skip_bn`` switches); ``include`` / ``exclude`` pick modules by name, glob or
    predicate (default: all)."""
    return [t for _, t in permutable_named(model, skip_bias, skip_bn, include, exclude)]


def permutable_named(model: nn.Module, skip_bias: bool = False, skip_bn: bool = True, include: transform.Selector = None,
                     exclude: transform.Selector = None) -> list[tuple[str, torch.Tensor]]:
    """``(state-dict key, tensor)`` of every tensor :func:`permutable_tensors` returns, in the same order."""
    out: list[tuple[str, torch.Tensor]] = []
    for name, m in transform.select(model, WEIGHTED + NORMS, include, exclude):
        prefix = f"{name}." if name else ""
        if isinstance(m, WEIGHTED):
            for t in transform.tensor_names(m):
                out.append((prefix + t, transform.tensor(m, t)))
                bias = getattr(m, transform.bias_name(t) or "", None)
                if bias is not None and not skip_bias:
                    out.append((prefix + str(transform.bias_name(t)), bias))
        elif not skip_bn:
            out += [(prefix + n, p) for n in ("weight", "bias") if (p := getattr(m, n, None)) is not None]
    return out


def apply(
    model: nn.Module,
    init: str | None = "he-uniform",
    generator: torch.Generator | None = None,
    include: transform.Selector = None,
    exclude: transform.Selector = None,
    skip_bias: bool = False,
    skip_bn: bool = True,
) -> nn.Module:
    """Make ``model`` ready for LaPerm and return it (in place, as every method's ``apply``); give
    :class:`LaPerm` the tensors :func:`permutable_of` lists. ``init="he-uniform"`` redraws every selected
    Linear/Conv layer (kernel and bias) from ``generator`` (None: the global generator); ``init=None`` keeps the
    existing weights as the initial multisets (permutations of a pretrained network). The model is tagged so
    that :mod:`randweights.compact` can store what LaPerm found as per-row permutation indices."""
    transform.check_model(model)
    if init is not None:
        check_choice("init", init, ("he-uniform",))
    replay = transform.generator_record(generator)
    if init is not None:
        with transform.drawing(generator) as g:
            for _, layer in transform.select(model, WEIGHTED, include, exclude):
                he_uniform_(layer, g)
    named = permutable_named(model, skip_bias, skip_bn, include, exclude)
    modules = [n for n, _ in transform.select(model, WEIGHTED, include, exclude)]
    weights = {"init": init, **replay} if init is not None else {"own": True}
    transform.tag(model, "laperm", [n for n, _ in named], frozen_weights=weights, modules=modules,
                  multiset_fingerprint=multiset_fingerprint([t for _, t in named]))
    return model


def multiset_fingerprint(tensors: list[torch.Tensor]) -> str:
    """The fingerprint of the rows' multisets of ``tensors`` (each row sorted): what a sync keeps. The tag holds
    the initial one, so that saving a model whose weights left their multisets (no sync since the last step)
    is an error naming ``LaPerm.sync`` rather than a file that cannot be loaded."""
    return transform.fingerprint([sorted_rows(t.detach().cpu()) + 0.0 for t in tensors])


def permutable_of(model: nn.Module) -> list[torch.Tensor]:
    """The tensors LaPerm permutes in a model :func:`apply` (or a run) prepared, in model order."""
    tag = transform.tag_of(model)
    if tag is None or tag.get("method") != "laperm":
        raise ConfigError("model", type(model).__name__, "a model prepared by laperm.apply")
    state = dict(model.named_parameters())
    return [state[name] for name in tag["layers"]]


# ---------------------------------------------------------------------------------------------- initializations
def he_uniform_(layer: nn.Module, generator: torch.Generator, bias_fan: str = "kernel", bias_init: str = "he-uniform") -> None:
    """Keras He-uniform U(+-sqrt(6 / fan_in)) for the kernel and (as in the MNIST notebooks) the bias. The bias's
    fan_in is the kernel's (``bias_fan="kernel"``) or, as Keras computes it for a 1-D tensor, its length
    (``"keras"``: what the official notebooks draw). ``bias_init="zeros"``: the bias is drawn all the same (so
    the generator, hence every later kernel, is as with He-uniform biases), then set to zero (Keras' default
    ``bias_initializer``, which the ResNet50 notebook keeps)."""
    for name in transform.tensor_names(layer):
        weight = transform.tensor(layer, name)
        bias: torch.Tensor | None = getattr(layer, transform.bias_name(name) or "", None)
        fan_in = rows(weight).shape[1]
        with torch.no_grad():
            for p in (weight, bias):
                if p is not None:
                    fan = len(p) if (p is bias and bias_fan == "keras") else fan_in
                    bound = math.sqrt(6.0 / fan)
                    p.copy_(torch.rand(p.shape, generator=generator) * 2 * bound - bound)
            if bias is not None and bias_init == "zeros":
                bias.zero_()


def init_model_(model: nn.Module, cfg: LaPermConfig, seed: int) -> nn.Module:
    """Initialize every Linear/Conv layer per ``cfg.init`` (Sec. 5.4-5.5; official ``random_prune`` and
    ``agnosticize``), with its own generator so the init depends on the seed only:

    * he-uniform: kernels and biases He-uniform.
    * random-sparse: He-uniform, then each kernel zeroed with probability p (``init_sparsity`` or the layer's
      ``layer_sparsity``); the first layer keeps at least 80 %. The zeros are permuted like any value.
    * weight-agnostic: every kernel is ``v * mask`` with ``v = shared_value`` and zeros with probability p.

    With ``in_degree="fixed"`` every unit (row) gets exactly ``round(p * fan_in)`` zeros instead of a binomial
    number (ours: with shared values the in-degree is all a unit has, and binomial counts decide the classes).
    """
    generator = torch.Generator().manual_seed(seed)
    layers = [m for m in model.modules() if isinstance(m, WEIGHTED)]
    per_layer = parse_layer_sparsity(cfg.layer_sparsity)
    if per_layer and len(per_layer) != len(layers):
        raise ConfigError("layer_sparsity", cfg.layer_sparsity, f"{len(layers)} values, one per weight layer")
    for i, layer in enumerate(layers):
        he_uniform_(layer, generator, cfg.bias_fan, cfg.bias_init)
        if cfg.init == "he-uniform":
            continue
        p = per_layer[i] if per_layer else cfg.init_sparsity
        if cfg.init == "random-sparse" and i == 0 and not per_layer:
            p = min(p, 0.2)  # official random_prune: the input layer keeps max(q, 0.8)
        for weight in [transform.tensor(layer, t) for t in transform.tensor_names(layer)]:
            keep = keep_mask(weight.shape, p, cfg.in_degree, generator)
            with torch.no_grad():
                if cfg.init == "weight-agnostic":
                    weight.copy_(keep.to(weight.dtype) * cfg.shared_value)
                else:
                    weight.mul_(keep)
    return model


def keep_mask(shape: torch.Size, zero_fraction: float, in_degree: str, generator: torch.Generator) -> torch.Tensor:
    """Boolean mask of the kept kernel entries: each zeroed with probability ``zero_fraction`` ("binomial"), or
    in every row (unit) exactly ``round(zero_fraction * fan_in)`` zeros at random places ("fixed")."""
    noise = torch.rand(shape, generator=generator)
    if in_degree == "binomial":
        return noise >= zero_fraction
    view = rows(noise)
    zeros = round(zero_fraction * view.shape[1])
    return (view.argsort(dim=1).argsort(dim=1) >= zeros).view(shape)


# ---------------------------------------------------------------------------------------------- probes
@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(1000), y.split(1000)))
    return correct / max(1, len(y))


@torch.no_grad()
def shuffle_rows_(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Randomly permute the values inside every row (locations destroyed, values kept); the F-L2 control."""
    view = rows(tensor)
    noise = torch.rand(view.shape, generator=generator).to(view.device)
    tensor.copy_(view.gather(1, noise.argsort(dim=1)).view_as(tensor))
    return tensor


class Probe:
    """Rank-substitution test (Sec. 3): every ``every`` steps evaluate the current weights, their synced version
    (values of theta_0 in the ranks of theta_t) and the current weights with each row shuffled, on a fixed set of
    test images; also the ratio ||sync(theta_t) - theta_t|| / ||theta_t - theta_0||."""

    def __init__(self, model: nn.Module, opt: LaPerm, x: torch.Tensor, y: torch.Tensor, every: int, seed: int):
        self.model, self.opt, self.x, self.y, self.every = model, opt, x, y, every
        self.generator = torch.Generator().manual_seed(seed + 7)
        self.initial = [p.detach().clone() for p in opt.permutable]
        self.points: list[dict] = []

    def _with_values(self, values: list[torch.Tensor]) -> float:
        saved = [p.detach().clone() for p in self.opt.permutable]
        with torch.no_grad():
            for p, v in zip(self.opt.permutable, values):
                p.copy_(v)
        acc = _accuracy(self.model, self.x, self.y)
        with torch.no_grad():
            for p, v in zip(self.opt.permutable, saved):
                p.copy_(v)
        return acc

    def __call__(self, step: int) -> None:
        if step % self.every:
            return
        training = self.model.training
        current = [p.detach().clone() for p in self.opt.permutable]
        synced = [sync_(c.clone(), s) for c, s in zip(current, self.opt.sorted_init)]
        shuffled = [shuffle_rows_(c.clone(), self.generator) for c in current]
        moved = math.sqrt(sum(float((c - i).pow(2).sum()) for c, i in zip(current, self.initial)))
        gap = math.sqrt(sum(float((s - c).pow(2).sum()) for s, c in zip(synced, current)))
        point = {"step": step, "current": _accuracy(self.model, self.x, self.y), "synced": self._with_values(synced),
                 "shuffled": self._with_values(shuffled), "distance_ratio": gap / moved if moved else 0.0}
        if step == 0:
            point["init_permuted"] = self._with_values([shuffle_rows_(i.clone(), self.generator) for i in self.initial])
        self.points.append(point)
        self.model.train(training)


# ---------------------------------------------------------------------------------------------- the run
def make_inner(params, cfg, decayed: set[int] | None = None) -> torch.optim.Optimizer:
    """Adam (the paper's inner optimizer) or SGD with momentum, on every trainable parameter. With ``decayed`` (ids
    of tensors), weight decay reaches only those (``l2_scope="hidden-kernels"``)."""
    trainable = [p for p in params if p.requires_grad]
    params = trainable
    if decayed is not None:
        groups: list[dict[str, Any]] = [{"params": [p for p in trainable if id(p) in decayed]},
                                        {"params": [p for p in trainable if id(p) not in decayed], "weight_decay": 0.0}]
        params = [g for g in groups if g["params"]]
    if cfg.method.inner == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.train.momentum, weight_decay=cfg.weight_decay)


def build_initialized(cfg, input_shape, num_classes: int) -> nn.Module:
    """The model of ``cfg`` at its LaPerm initialization (biases unless ``biases="none"`` and the model has
    none); deterministic in the config."""
    m = cfg.model
    bias = m.bias or cfg.method.biases != "none"
    model = init_model_(models.build(m.arch, input_shape, num_classes, m.width, bias, m.affine_bn), cfg.method, cfg.train.seed)
    if cfg.method.inputs in ("unit", "raw"):
        model = nn.Sequential(UnitPixels(cfg.data.dataset, 255.0 if cfg.method.inputs == "raw" else 1.0), model)
    if cfg.method.logit_scale != 1.0:
        model = nn.Sequential(model, LogitScale(cfg.method.logit_scale))
    return model


class LogitScale(nn.Module):
    """Multiply the logits by a constant: a softmax temperature for training. For a ReLU net without biases
    (F1, F2) it is the same as scaling the shared value of the output layer, and it leaves every prediction
    unchanged; it only lets the loss see the network's mistakes when the logits are tiny."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class UnitPixels(nn.Module):
    """Undo the data pipeline's standardization, so the net sees pixels in [0, 1] as the paper's Keras notebooks
    do (``x / 255``). With a shared positive weight and no biases (F1, F2) this matters: standardized MNIST has
    a negative background that drives every hidden unit of F2 below zero. ``scale=255``: pixels in [0, 255],
    what the Conv2/4/13 notebooks train on (their ``normalize`` returns its input unchanged)."""

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, dataset: str, scale: float = 1.0):
        super().__init__()
        mean, std = STATS[dataset]
        self.scale = scale  # not a buffer: the state dict of a unit-pixel model stays as it was
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x * self.std + self.mean
        return out * self.scale if self.scale != 1.0 else out

    def extra_repr(self) -> str:
        return f"scale={self.scale}" if self.scale != 1.0 else ""


def make_laperm(model: nn.Module, cfg, steps_per_epoch: int) -> LaPerm:
    m = cfg.method
    schedule = parse_sync_schedule(m.sync_schedule)
    period: int | Callable[[int], int] = m.sync_period
    if schedule:
        period = lambda epoch: sync_period_at(epoch, m.sync_period, schedule)
    named = permutable_named(model, skip_bias=m.biases != "permute", skip_bn=m.skip_bn)
    permutable = [t for _, t in named]
    transform.tag(model, "laperm", [n for n, _ in named], frozen_weights={"config": True},  # initial values: build_initialized(cfg)
                  multiset_fingerprint=multiset_fingerprint(permutable))
    decayed = {id(k) for k in hidden_kernels(model)} if m.l2_scope == "hidden-kernels" else None
    return LaPerm(make_inner(model.parameters(), cfg, decayed), permutable, period, steps_per_epoch, m.hold_zeros)


def hidden_kernels(model: nn.Module) -> list[torch.Tensor]:
    """Weights of every Linear / Conv layer except the output layer (where the notebooks put their L2)."""
    return [transform.tensor(m, t) for m in model.modules() if isinstance(m, WEIGHTED) for t in transform.tensor_names(m)][:-1]


def connectivity_change(before: list[torch.Tensor], after: list[torch.Tensor]) -> float:
    """Mean over kernel entries of [W_T != 0] XOR [W_0 != 0] (how much LaPerm rewired a sparse net)."""
    changed = sum(int(((b != 0) ^ (a != 0)).sum()) for b, a in zip(before, after) if b.dim() > 1)
    total = sum(b.numel() for b in before if b.dim() > 1)
    return changed / max(1, total)


def zero_fraction(tensors: list[torch.Tensor]) -> float:
    """Fraction of zeros over the kernel (>= 2-D) entries."""
    kernels = [t for t in tensors if t.dim() > 1]
    return sum(int((t == 0).sum()) for t in kernels) / max(1, sum(t.numel() for t in kernels))


def run(cfg, splits, device: torch.device, trainer: Trainer):
    """Build the model with LaPerm's init, train it with the LaPerm-wrapped inner optimizer, sync at the end
    (so the returned model is a row-wise permutation of its initial weights; k = 0 returns the plain inner
    optimizer's weights). Per epoch the synced weights (k = 0: the plain ones) are evaluated on the test set
    (the paper's protocol keeps the best of these)."""
    checkpoint = trainer.checkpoint
    model = build_initialized(cfg, splits.input_shape, splits.num_classes).to(device)
    steps_per_epoch = cfg.train.epoch_steps(len(splits.train))
    opt = make_laperm(model, cfg, steps_per_epoch)
    initial = [p.detach().clone() for p in opt.permutable]
    probe = None
    if cfg.method.probe_every:
        n = min(cfg.method.probe_images, len(splits.test))
        probe = Probe(model, opt, splits.test.x[:n].to(device), splits.test.y[:n].to(device), cfg.method.probe_every, cfg.train.seed)
        probe(0)
    resumed = checkpoint.resumed_method_state if checkpoint is not None else None
    if probe is not None and resumed is not None:  # LaPerm's own state (sorted init, step count) is the optimizer's
        probe.points = resumed["probe_points"]
        probe.generator.set_state(resumed["probe_generator"])
    if checkpoint is not None and probe is not None:
        checkpoint.method_state = lambda: {"probe_points": probe.points, "probe_generator": probe.generator.get_state()}

    syncing = bool(cfg.method.sync_period or cfg.method.sync_schedule)

    def on_epoch(epoch: int, row: dict) -> None:
        with opt.synced() if syncing else contextlib.nullcontext():
            row["test_accuracy"] = trainer.evaluate(model, splits.test, device, precision=cfg.train.precision)["accuracy"]

    history = trainer.fit(model, opt, cfg, splits, device, on_step=probe, on_epoch=on_epoch, checkpoint=checkpoint)
    metrics: dict = {"history": history, "model_bias": cfg.model.bias or cfg.method.biases != "none"}
    if syncing:
        opt.sync()
    else:
        transform.tag(model, "dense", [])  # k = 0: the plain inner optimizer's weights, no permutation of the initial ones
        with opt.synced():
            metrics["synced_test_accuracy"] = trainer.evaluate(model, splits.test, device, precision=cfg.train.precision)["accuracy"]
    metrics.update(
        syncs=opt.syncs,
        multisets_kept=opt.multisets_kept(),
        connectivity_change=connectivity_change(initial, [p.detach() for p in opt.permutable]),
        init_zero_fraction=zero_fraction(initial),
        best_test_accuracy=max((r["test_accuracy"] for r in history), default=None),
        probes=probe.points if probe else [],
    )
    return model, metrics



# ---------------------------------------------------------------------------------------------- compact form
def pack(model: nn.Module, **_) -> tuple[dict, dict, list[str]]:
    """For :mod:`randweights.compact`: every entry's rank within its row, ``ceil(log2 fan_in)`` bits each. The
    row's values are its initial ones, so the initial model (drawn again, rebuilt from the run config, or the
    model one passes) and the ranks give the weights back. Call after the last sync (``LaPerm.sync``); before
    it, a ConfigError says so."""
    tag = transform.require_tag(model)
    state = model.state_dict()
    arrays, sorted_all = {}, []
    for key in tag["layers"]:
        tensor = state[key].detach().cpu()
        view = rows(tensor)
        order = row_order(view) if takes_fast_path(tensor) else view.argsort(dim=1, stable=True)  # the same order
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(view.shape[1]).expand_as(order).contiguous())
        arrays[f"rank/{key}"] = pack_uint(rank, index_bits(view.shape[1]))
        sorted_all.append(view.gather(1, order))
    found = transform.fingerprint([v + 0.0 for v in sorted_all])
    if tag.get("multiset_fingerprint", found) != found:
        raise ConfigError("model", type(model).__name__, "a LaPerm model synced after its last optimizer step: its "
                          "weights are no longer row-wise permutations of the initial ones; call opt.sync() "
                          "(LaPerm.sync) after the last step, then save")
    return {"multiset_fingerprint": found}, arrays, list(tag["layers"])


def unpack(model: nn.Module, header: dict, arrays: dict) -> None:
    """Inverse of :func:`pack` on a plain model holding the initial weights (or drawn again from the seed)."""
    weights = header["frozen_weights"]
    source = model
    if "init" in weights:
        source = copy.deepcopy(model)
        generator = transform.replay_generator(weights)
        for _, layer in transform.select(source, WEIGHTED, include=header["settings"]["modules"]):
            he_uniform_(layer, generator)
    state = source.state_dict()
    initial = [sorted_rows(state[key].detach().cpu()) for key in header["layers"]]
    if "own" not in weights:  # drawn again (from the seed, or the run's config): name the layer that differs
        note = "" if "init" in weights else "; or the model passed is not the run's network at its LaPerm initialization"
        transform.check_drawn(header, {key: v + 0.0 for key, v in zip(header["layers"], initial)}, note)
    if transform.fingerprint([v + 0.0 for v in initial]) != header["settings"]["multiset_fingerprint"]:
        raise ConfigError("model", type(model).__name__, "the model at its LaPerm initialization (the initial multisets differ)")
    for key, sorted_init in zip(header["layers"], initial):
        rank = unpack_uint(arrays[f"rank/{key}"], index_bits(sorted_init.shape[1]), sorted_init.shape)
        transform.set_tensor(model, key, sorted_init.gather(1, rank).view_as(state[key]))

def drawn(model: nn.Module) -> dict[str, torch.Tensor]:
    """Each permuted tensor's rows, sorted: its initial values, which the compact file draws again (a
    permutation within rows leaves them unchanged; ``+ 0.0`` makes -0.0 and 0.0 one value)."""
    state = model.state_dict()
    return {key: sorted_rows(state[key].detach().cpu()) + 0.0 for key in transform.require_tag(model)["layers"]}


METHOD = register(Method("laperm", LaPermConfig, "LaPerm", Codec(pack, unpack, build=build_initialized, drawn=drawn), run=run))
