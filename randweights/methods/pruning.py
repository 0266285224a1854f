"""Iterative magnitude pruning with late rewinding (Pellegrini & Biroli 2021, "Sifting out the features by
pruning", Sec. 2; the IMP of Frankle et al. as run in their code).

One IMP round, as a pure function :func:`imp_step` from (model, masks) to new masks:

* every prunable layer (each Linear / Conv2d except the output layer, which is never pruned) ranks the
  magnitudes of its weights AND biases together; entries already pruned rank below every surviving one;
* after round n a layer keeps ``ceil((1 - prune_fraction)**n * (|W| + |b|))`` entries: ``prune_fraction`` is
  the fraction of the REMAINING entries REMOVED per round (the paper's 30 %), so the cumulative remaining
  fraction is ``u_n = (1 - prune_fraction)**n``; masks only shrink;
* the magnitudes are those of the final weights of the previous round.

Between rounds every parameter (weights, biases, BatchNorm scale and shift, the output layer) is rewound
bitwise to its value at ``rewind_step`` of round 0 (late rewinding), the BatchNorm running statistics are
reset and the optimizer is rebuilt (stateless SGD in the paper). IMP stops early when, in some prunable layer,
the fraction of units with at least one surviving incoming connection is <= ``stop_unit_fraction`` (the
paper's ``stop_ratio`` = 0.2; stored under that name, so run ids are unchanged).

Masks are attached with :func:`torch.nn.utils.prune.custom_from_mask`: the layer keeps ``weight_orig`` (the
trained tensor, stale at pruned entries) and the buffer ``weight_mask``; the forward uses their product, so a
pruned entry gets exactly zero gradient and never revives.

Controls (the paper's Sec. 2.4 and its appendix): ``strategy="random"`` prunes uniformly at random among the surviving
entries at the same schedule; ``pruning_schedule="one-shot"`` prunes the dense trained net straight to
``(1 - prune_fraction)**rounds`` in one step; ``pixel_shuffle_seed`` applies one fixed permutation of the pixel
positions to every image; ``label_grouping`` replaces the labels by a meaningful or a random 2-way grouping.
"""

from __future__ import annotations

import base64
import math
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from .. import models
from ..bits import pack_bits, unpack_bits
from ..config import MethodConfig
from ..errors import ConfigError, check_choice, check_range
from . import transform
from .registry import Codec, Method, Trainer, register

STRATEGIES = ("magnitude", "random")
PRUNING_SCHEDULES = ("iterative", "one-shot")
LABEL_GROUPINGS = ("none", "meaningful", "random")
INITS = ("xavier-normal", "default")
PRUNABLE = (nn.Linear, nn.Conv2d, nn.MultiheadAttention, nn.Embedding)  # an attention: its in_proj_weight (+ bias)

# Two-way groupings of the 10 classes: the classes in group 1 (all others are group 0).
MEANINGFUL_GROUPS = {
    "cifar10": (0, 1, 8, 9),  # vehicles (airplane, automobile, ship, truck) vs animals
    "mnist": (0, 2, 4, 6, 8),  # even vs odd digits
    "fashion-mnist": (0, 2, 3, 4, 6),  # upper-body garments vs trousers, shoes and bags
}
RANDOM_GROUPS = {  # same group sizes, chosen to split each meaningful group evenly
    "cifar10": (0, 2, 3, 8),
    "mnist": (0, 1, 4, 5, 8),
    "fashion-mnist": (0, 1, 3, 5, 8),
}


@dataclass(frozen=True)
class IMPConfig(MethodConfig):
    """``rounds``: pruning rounds after the dense round 0. ``prune_fraction``: fraction of the remaining weights
    REMOVED per round (kept fraction after round n is ``(1 - prune_fraction)**n``). ``rewind_step``: the step of
    round 0 whose parameters every later round starts from (0 = the initialization)."""

    name = "imp"
    default_weight_decay = 0.0  # the paper: plain SGD, no weight decay

    rounds: int = field(default=5, metadata={"flag": "rounds", "help": "pruning rounds after the dense round 0"})
    prune_fraction: float = field(default=0.3, metadata={"flag": "prune_fraction", "help": "fraction of the remaining weights REMOVED per round"})
    rewind_step: int = field(default=50, metadata={"flag": "rewind_step", "help": "step of round 0 that every later round restarts from (0: the initialization)"})
    strategy: str = field(default="magnitude", metadata={"help": "which weights are removed"})
    pruning_schedule: str = field(default="iterative", metadata={"help": "prune a little per round (iterative) or all at once (one-shot)"})
    stop_unit_fraction: float = field(default=0.2, metadata={"stored_as": "stop_ratio", "help": "stop pruning once some pruned layer has at most this fraction of its units still connected (the paper's stop_ratio)"})
    init: str = field(default="xavier-normal", metadata={"help": "weight initialization"})  # N(0, 2/(fan_in+fan_out)), zero biases (the paper's Network.py)
    pixel_shuffle_seed: int | None = field(default=None, metadata={"help": "permute the input pixels with this seed (none: no shuffle)"})
    label_grouping: str = field(default="none", metadata={"help": "merge the labels into groups"})
    validate_every: int | None = field(default=None, metadata={"help": "steps between checks of the validation images (and one at step 0) for each round's best validation accuracy (the paper's validate_step, 100); none: after every epoch"})

    def __post_init__(self):
        _check_int("rounds", self.rounds, low=0)
        check_range("prune_fraction", self.prune_fraction, low=0, high=1, low_open=True, high_open=True)
        _check_int("rewind_step", self.rewind_step, low=0)
        check_choice("strategy", self.strategy, STRATEGIES)
        check_choice("pruning_schedule", self.pruning_schedule, PRUNING_SCHEDULES)
        check_range("stop_unit_fraction", self.stop_unit_fraction, low=0, high=1, high_open=True)
        check_choice("init", self.init, INITS)
        if self.pixel_shuffle_seed is not None:
            _check_int("pixel_shuffle_seed", self.pixel_shuffle_seed, low=0)
        check_choice("label_grouping", self.label_grouping, LABEL_GROUPINGS)
        if self.validate_every is not None:
            _check_int("validate_every", self.validate_every, low=1)

    def default_lr(self, arch: str) -> float:
        return 0.1  # the paper's constant SGD learning rate


def _check_int(parameter: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(parameter, value, f"an integer >= {low}")
    check_range(parameter, int(value), low=low)


# ---------------------------------------------------------------------------------------------- schedule
def remaining_fraction(round_index: int, prune_fraction: float) -> float:
    """u_n = (1 - p)**n, the fraction of prunable entries kept after ``round_index`` prunings."""
    return (1.0 - prune_fraction) ** round_index


def kept_count(numel: int, round_index: int, prune_fraction: float) -> int:
    """ceil(u_n * numel): entries a layer of ``numel`` weights+biases keeps after round n (at least 1)."""
    target = remaining_fraction(round_index, prune_fraction) * numel
    return max(1, min(numel, math.ceil(target - 1e-9 * max(1.0, target))))


# ---------------------------------------------------------------------------------------------- masks
Masks = list[tuple[torch.Tensor, torch.Tensor | None]]


def prunable_layers(model: nn.Module) -> list[nn.Module]:
    """The layers IMP prunes, in module order: those with masks attached (:func:`attach_masks`), or, before
    that, every Linear / Conv2d / Embedding / MultiheadAttention except the output layer (:func:`output_layer`),
    which is never pruned."""
    masked: list[nn.Module] = [m for m in model.modules() if isinstance(m, PRUNABLE) and _masked_names(m)]
    return masked if masked else [m for _, m in select_prunable(model)]


def _masked_names(layer: nn.Module) -> list[str]:
    """The tensors of ``layer`` that carry a pruning mask: each maskable weight matrix and its bias."""
    names = [n for t in transform.tensor_names(layer) for n in (t, transform.bias_name(t)) if n is not None]
    return [n for n in dict.fromkeys(names) if hasattr(layer, n + "_mask")]


def _prunable_tensors(model: nn.Module) -> list[tuple[nn.Module, str, str | None]]:
    """``(layer, weight name, bias name or None)`` of every masked weight matrix, in model order: a Linear /
    Conv2d / Embedding has one (``weight``, ``bias``), an attention its ``in_proj_weight`` and ``in_proj_bias``."""
    out: list[tuple[nn.Module, str, str | None]] = []
    for layer in prunable_layers(model):
        for t in transform.tensor_names(layer):
            b = transform.bias_name(t)
            out.append((layer, t, b if b is not None and hasattr(layer, b + "_mask") else None))
    return out


def select_prunable(model: nn.Module, include: transform.Selector = None, exclude: transform.Selector = None,
                    output: str | nn.Module | None = None) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every Linear / Conv2d picked by ``include`` / ``exclude`` (names, globs or a
    predicate), without the output layer."""
    head = output_layer(model, output)
    return [(n, m) for n, m in transform.select(model, PRUNABLE, include, exclude) if m is not head]


def output_layer(model: nn.Module, output: str | nn.Module | None = None) -> nn.Module:
    """The layer IMP never prunes: ``output`` (a module name or the module), else the one named when the masks
    were attached, else the last Linear / Conv2d registered (a model that registers its head first must name
    it)."""
    if output is None:
        output = (transform.tag_of(model) or {}).get("output_layer")
    if isinstance(output, nn.Module):
        return output
    if isinstance(output, str):
        try:
            layer = model.get_submodule(output)
        except AttributeError:
            layer = None
        if not isinstance(layer, PRUNABLE):
            names = [n for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
            raise ConfigError("output_layer", output, "the name of a Linear / Conv2d module: " + ", ".join(names[-8:]))
        return layer
    return [m for m in model.modules() if isinstance(m, PRUNABLE)][-1]


_output_of = output_layer  # attach_masks' parameter has the function's name


def init_paper_(model: nn.Module) -> None:
    """Weights ~ N(0, 2/(fan_in + fan_out)) (Glorot normal), biases 0, BN scale 1 and shift 0."""
    for m in model.modules():
        if isinstance(m, PRUNABLE):
            for t in transform.tensor_names(m):
                nn.init.xavier_normal_(transform.tensor(m, t))
                b = getattr(m, transform.bias_name(t) or "", None)
                if b is not None:
                    nn.init.zeros_(b)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()


def attach_masks(model: nn.Module, include: transform.Selector = None, exclude: transform.Selector = None,
                 output_layer: str | nn.Module | None = None) -> nn.Module:
    """Give every prunable layer (``include`` / ``exclude`` by name, glob or predicate; never the output layer,
    the last Linear / Conv2d unless ``output_layer`` names another) all-ones masks for its weight and bias via
    ``torch.nn.utils.prune``. Tags the model for :mod:`randweights.compact`."""
    chosen = select_prunable(model, include, exclude, output_layer)
    head = _output_of(model, output_layer)
    for _, layer in chosen:
        for name in [n for t in transform.tensor_names(layer) for n in (t, transform.bias_name(t)) if n is not None]:
            tensor = getattr(layer, name, None)
            if tensor is not None and not hasattr(layer, name + "_mask"):
                prune.custom_from_mask(layer, name, torch.ones_like(tensor, dtype=torch.bool))
    for attention in model.modules():
        if isinstance(attention, nn.MultiheadAttention) and _masked_names(attention.out_proj) \
                and _refresh_out_proj not in attention._forward_pre_hooks.values():
            attention.register_forward_pre_hook(_refresh_out_proj)
    head_name = next(n for n, m in model.named_modules() if m is head)
    transform.tag(model, "imp", [n for n, _ in chosen], output_layer=head_name)
    return model


def _refresh_out_proj(attention: nn.Module, inputs) -> None:
    """Forward pre-hook of an attention whose ``out_proj`` is pruned: ``nn.MultiheadAttention`` reads
    ``out_proj.weight`` without calling ``out_proj``, so the pruning hook of ``out_proj`` never runs there; this
    one recomputes ``weight = weight_orig * weight_mask`` (and the bias) before every forward."""
    out_proj = attention.get_submodule("out_proj")
    for name in _masked_names(out_proj):
        setattr(out_proj, name, getattr(out_proj, name + "_orig") * getattr(out_proj, name + "_mask"))


def apply(model: nn.Module, init: str | None = "xavier-normal", include: transform.Selector = None, exclude: transform.Selector = None,
          output_layer: str | nn.Module | None = None) -> nn.Module:
    """Prepare any model for IMP: ``init="xavier-normal"`` re-initializes it as the paper does
    (:func:`init_paper_`), ``init=None`` keeps its weights (pruning a pretrained network); then
    :func:`attach_masks`. Prune with :func:`imp_step` / :func:`set_masks`, rewind with :func:`rewind`."""
    transform.check_model(model)
    if init is not None:
        check_choice("init", init, ("xavier-normal",))
        init_paper_(model)
    return attach_masks(model, include, exclude, output_layer)


def _orig(layer: nn.Module, name: str) -> torch.Tensor:
    """The trained tensor ``name`` of ``layer`` (``<name>_orig`` once pruning attached a mask)."""
    return transform.tensor(layer, name + "_orig" if hasattr(layer, name + "_mask") else name)


def get_masks(model: nn.Module) -> Masks:
    """Boolean (weight mask, bias mask or None) of every prunable layer, detached copies."""
    out: Masks = []
    for layer, weight, bias in _prunable_tensors(model):
        w = transform.tensor(layer, weight + "_mask").detach().bool().clone()
        b = transform.tensor(layer, bias + "_mask").detach().bool().clone() if bias is not None else None
        out.append((w, b))
    return out


@torch.no_grad()
def set_masks(model: nn.Module, masks: Masks) -> None:
    for (layer, weight, bias), (w, b) in zip(_prunable_tensors(model), masks, strict=True):
        transform.tensor(layer, weight + "_mask").copy_(w)
        if b is not None and bias is not None:
            transform.tensor(layer, bias + "_mask").copy_(b)


def _keep_top(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask of exactly ``count`` largest scores; ties at the threshold broken by index (lowest kept)."""
    order = torch.sort(scores, descending=True, stable=True).indices[:count]
    keep = torch.zeros_like(scores, dtype=torch.bool)
    keep[order] = True
    return keep


@torch.no_grad()
def imp_step(
    model: nn.Module,
    masks: Masks,
    round_index: int,
    prune_fraction: float = 0.3,
    strategy: str = "magnitude",
    generator: torch.Generator | None = None,
) -> Masks:
    """The masks after pruning round ``round_index`` >= 1 (pure: neither the model nor ``masks`` change).

    Per layer, the surviving weights and biases are ranked together by |value| in the model's current
    (trained) tensors, or by a uniform random score for ``strategy="random"``; the top
    ``kept_count(|W|+|b|, round_index, prune_fraction)`` stay. Pruned entries score -1, below every survivor.
    """
    check_choice("strategy", strategy, STRATEGIES)
    transform.check_model(model)
    _check_int("round_index", round_index, 1)
    if isinstance(prune_fraction, bool) or not isinstance(prune_fraction, (int, float, np.floating, np.integer)):
        raise ConfigError("prune_fraction", prune_fraction, "a number in (0, 1)")
    check_range("prune_fraction", float(prune_fraction), low=0, high=1, low_open=True, high_open=True)
    if float(prune_fraction) != float(prune_fraction):  # NaN passes every comparison
        raise ConfigError("prune_fraction", prune_fraction, "a number in (0, 1)")
    new: Masks = []
    for (layer, weight, bias), (mw, mb) in zip(_prunable_tensors(model), masks, strict=True):
        w = _orig(layer, weight).detach().reshape(-1).float().cpu()
        alive = mw.reshape(-1).cpu()
        if mb is not None and bias is not None:
            w = torch.cat([w, _orig(layer, bias).detach().float().cpu()])
            alive = torch.cat([alive, mb.cpu()])
        if strategy == "magnitude":
            score = w.abs()
        else:
            score = torch.rand(w.shape, generator=generator)
        score = torch.where(alive.bool(), score, torch.full_like(score, -1.0))
        keep = _keep_top(score, min(kept_count(len(score), round_index, prune_fraction), int(alive.sum())))
        nw = keep[: mw.numel()].view_as(mw).to(mw.device)
        nb = keep[mw.numel() :].view_as(mb).to(mb.device) if mb is not None else None
        new.append((nw, nb))
    return new


def alive_unit_fraction(weight_mask: torch.Tensor) -> float:
    """Fraction of a layer's output units with at least one surviving incoming connection (biases excluded)."""
    rows = weight_mask.reshape(weight_mask.shape[0], -1).any(1)
    return int(rows.sum()) / rows.numel()


def should_stop(masks: Masks, stop_unit_fraction: float) -> bool:
    """The paper's stop rule: some prunable layer has <= ``stop_unit_fraction`` of its units still connected."""
    return min(alive_unit_fraction(w) for w, _ in masks) <= stop_unit_fraction


def remaining(masks: Masks) -> tuple[float, list[float]]:
    """Overall and per-layer kept fraction of the prunable weights + biases."""
    kept, total, per_layer = 0, 0, []
    for w, b in masks:
        k = int(w.sum()) + (int(b.sum()) if b is not None else 0)
        n = w.numel() + (b.numel() if b is not None else 0)
        kept, total = kept + k, total + n
        per_layer.append(k / n)
    return kept / total, per_layer


# ---------------------------------------------------------------------------------------------- rewinding
def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter (masks are buffers and are not included)."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@torch.no_grad()
def rewind(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    """Copy every parameter back from ``saved`` (bitwise) and reset the BatchNorm running statistics."""
    params = dict(model.named_parameters())
    if set(params) != set(saved):
        raise ValueError("rewind: the snapshot does not hold the same parameters as the model")
    for name, p in params.items():
        p.copy_(saved[name])
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    models.rearm_first_batch(model)  # bn_first_batch: the next batch seeds them, as at the first round


# ---------------------------------------------------------------------------------------------- storage
def encode_mask(mask: torch.Tensor | np.ndarray) -> str:
    """A boolean array as text: np.packbits, zlib, base64 (a 3072x1024 mask at u=10 % takes ~60 kB)."""
    bits = np.packbits(np.asarray(mask, dtype=bool).reshape(-1))
    return base64.b64encode(zlib.compress(bits.tobytes(), 6)).decode("ascii")


def decode_mask(text: str, shape) -> np.ndarray:
    n = int(np.prod(shape))
    bits = np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=np.uint8)
    return np.unpackbits(bits, count=n).astype(bool).reshape(shape)


def first_layer_masks(record: dict) -> list[np.ndarray]:
    """The first prunable layer's weight mask of every trained round, as (units, *input_shape) booleans."""
    shape = record["first_layer_mask_shape"]
    return [decode_mask(t, shape) for t in record["first_layer_masks"]]


# ---------------------------------------------------------------------------------------------- controls
def pixel_permutation(seed: int, height: int, width: int) -> np.ndarray:
    """The fixed permutation pi of the H*W pixel positions: shuffled image ``x'[..., p] = x[..., pi[p]]``
    (the same for every channel and every image)."""
    return np.random.default_rng(seed).permutation(height * width)


def unshuffle_masks(masks: np.ndarray, seed: int) -> np.ndarray:
    """Map (units, C, H, W) masks learned on pixel-shuffled images back to the original pixel positions."""
    u, c, h, w = masks.shape
    perm = pixel_permutation(seed, h, w)
    out = np.empty_like(masks.reshape(u, c, h * w))
    out[..., perm] = masks.reshape(u, c, h * w)
    return out.reshape(masks.shape)


def group_labels(y: torch.Tensor, dataset: str, grouping: str) -> torch.Tensor:
    """2-way labels: 1 for the classes of the meaningful (or random) group of ``dataset``, else 0."""
    check_choice("label_grouping", grouping, ("meaningful", "random"))
    table = MEANINGFUL_GROUPS if grouping == "meaningful" else RANDOM_GROUPS
    group = torch.tensor(table[dataset], device=y.device)
    return torch.isin(y, group).long()


def apply_controls(cfg, splits) -> None:
    """Apply the pixel shuffle and label grouping of ``cfg.method`` to ``splits`` IN PLACE (the training service evaluates
    the returned model on the same object, so its test numbers use the same inputs and labels)."""
    method = cfg.method
    parts = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    for name, split in parts.items():
        if split is None:
            continue
        if method.pixel_shuffle_seed is not None:
            _, h, w = splits.input_shape
            split = split.with_pixels_permuted(torch.from_numpy(pixel_permutation(method.pixel_shuffle_seed, h, w)))
        if method.label_grouping != "none":
            split = split.with_labels(group_labels(split.y, cfg.data.dataset, method.label_grouping))
        setattr(splits, name, split)
    if method.label_grouping != "none":
        splits.num_classes = 2


# ---------------------------------------------------------------------------------------------- the flow
def build(cfg, splits) -> nn.Module:
    """The model of ``cfg`` with the paper's init and all-ones masks attached."""
    model = models.build_for(cfg.model, splits.input_shape, splits.num_classes)
    if cfg.method.init == "xavier-normal":
        init_paper_(model)
    if cfg.method.pixel_shuffle_seed is not None:
        permute_first_layer_(model, cfg.method.pixel_shuffle_seed, splits.input_shape)
    return attach_masks(model)


@torch.no_grad()
def permute_first_layer_(model: nn.Module, seed: int, input_shape) -> None:
    """Pixel-shuffle control: permute the input columns of a first Linear layer with the same pi as the images,
    so the shuffled run computes the same function as the unshuffled run of the same seed (up to the order of
    floating-point sums). FCN + IMP is permutation-equivariant, so its masks mapped back through pi^-1 should
    then match the unshuffled masks. A first Conv2d layer is left alone (a CNN is not equivariant)."""
    first = [m for m in model.modules() if isinstance(m, PRUNABLE)][0]
    c, h, w = input_shape
    if not isinstance(first, nn.Linear) or first.in_features != c * h * w:
        return
    perm = torch.from_numpy(pixel_permutation(seed, h, w))
    weight = first.weight.reshape(-1, c, h * w)
    first.weight.copy_(weight[..., perm].reshape(first.weight.shape))


def steps_per_round(cfg, splits) -> int:
    return cfg.train.epochs * cfg.train.epoch_steps(len(splits.train))


def run(cfg, splits, device, trainer: Trainer):
    """Round 0 trains the dense net (saving the parameters at ``rewind_step``); each later round prunes
    (:func:`imp_step`), rewinds and retrains. Returns the last round's model and the per-round metrics,
    including every round's first-layer mask (:func:`first_layer_masks` decodes them). With the trainer's
    ``checkpoint`` every epoch of every round is saved with the IMP state (round reached, finished rounds, masks,
    the rewind snapshot, the pruning generator) and a killed run resumes."""
    checkpoint = trainer.checkpoint

    method = cfg.method
    apply_controls(cfg, splits)
    total_steps = steps_per_round(cfg, splits)
    if method.rewind_step > total_steps:
        raise ConfigError("rewind_step", method.rewind_step, f"at most {total_steps} (the steps of one round here)")
    model = build(cfg, splits).to(device)
    generator = torch.Generator().manual_seed(cfg.train.seed + 12345)
    saved: dict = {}
    if method.rewind_step == 0:
        saved.update(snapshot(model))

    def on_step(step: int) -> None:
        if not saved and step == method.rewind_step:
            saved.update(snapshot(model))

    plan = list(range(method.rounds + 1)) if method.pruning_schedule == "iterative" else [0, method.rounds]
    if method.rounds == 0:
        plan = [0]
    state: dict[str, Any] = {"position": 0, "rounds": [], "mask_texts": []}
    resumed = checkpoint.resumed_method_state if checkpoint is not None else None
    if resumed is not None:
        state.update(position=resumed["position"], rounds=resumed["rounds"], mask_texts=resumed["mask_texts"])
        saved.update(resumed["saved"])
        generator.set_state(resumed["generator"])
    if checkpoint is not None:
        checkpoint.method_state = lambda: {**state, "saved": saved, "generator": generator.get_state()}
    rounds, mask_texts, stopped = state["rounds"], state["mask_texts"], False
    for i in range(state["position"], len(plan)):
        round_index = plan[i]
        if i > 0 and resumed is None:
            new = imp_step(model, get_masks(model), round_index, method.prune_fraction, method.strategy, generator)
            if should_stop(new, method.stop_unit_fraction):
                stopped = True
                break
            set_masks(model, new)
            rewind(model, saved)
        resumed = None  # only the checkpoint's own round skips pruning: the checkpoint holds its masks
        state["position"] = i
        rounds.append(_train_round(model, cfg, splits, device, round_index, on_step if i == 0 else None, trainer))
        mask_texts.append(encode_mask(get_masks(model)[0][0].cpu().numpy()))
    first_w = get_masks(model)[0][0]
    metrics = {
        "rounds_trained": len(rounds),
        "stopped_early": stopped,
        "steps_per_round": total_steps,
        "round_metrics": rounds,
        "history": [row for r in rounds for row in r.pop("history")],
        "final_remaining_fraction": rounds[-1]["remaining_fraction"],
        "first_layer_mask_shape": [first_w.shape[0], *splits.input_shape] if first_w.dim() == 2 else list(first_w.shape),
        "first_layer_masks": mask_texts,
    }
    return model, metrics


def _train_round(model, cfg, splits, device, round_index: int, on_step, trainer: Trainer) -> dict:
    """Train one round. The validation images are checked after every epoch, or with ``validate_every`` at step 0
    and every ``validate_every`` steps (each epoch's row lists the checks made in it: ``validation_steps`` and
    ``validation_accuracies``, the first epoch's starting at step 0); the round's best validation accuracy is the
    best check."""
    start = time.perf_counter()
    every = cfg.method.validate_every
    checks: list[tuple[int, float]] = []  # (step, accuracy) since the last epoch's end

    def validate() -> float:
        accuracy = trainer.evaluate(model, splits.validation, device, precision=cfg.train.precision)["accuracy"]
        model.train()
        return accuracy

    def step_hook(step: int) -> None:
        if on_step is not None:
            on_step(step)
        if every is not None and splits.validation is not None and step % every == 0:
            checks.append((step, validate()))

    def on_epoch(epoch: int, row: dict) -> None:
        if splits.validation is None:
            return
        if every is None:
            row["validation_accuracy"] = validate()
            return
        done = [c for c in checks if c[0] > 0 or epoch == 1]  # step 0 belongs to the first epoch (not a resumed one)
        checks.clear()
        row["validation_steps"] = [s for s, _ in done]
        row["validation_accuracies"] = [a for _, a in done]
        if done:
            row["validation_accuracy"] = done[-1][1]

    if every is not None and splits.validation is not None:
        checks.append((0, validate()))  # before the first step, as the official code's step 0
    optimizer = trainer.make_optimizer(model.parameters(), cfg)  # fresh each round: no stale momentum
    history = trainer.fit(model, optimizer, cfg, splits, device, on_step=step_hook, on_epoch=on_epoch,
                        checkpoint=trainer.checkpoint, phase=f"round-{round_index}")
    for row in history:
        row["round"] = round_index
    if every is None:
        validation = [row["validation_accuracy"] for row in history if "validation_accuracy" in row]
    else:
        validation = [a for row in history for a in row.get("validation_accuracies", [])]
    test = trainer.evaluate(model, splits.test, device, precision=cfg.train.precision)
    masks = get_masks(model)
    total, per_layer = remaining(masks)
    return {
        "round": round_index,
        "remaining_fraction": total,
        "remaining_per_layer": per_layer,
        "alive_units_per_layer": [alive_unit_fraction(w) for w, _ in masks],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "best_validation_accuracy": max(validation) if validation else None,
        "train_loss": history[-1]["train_loss"] if history else None,
        "seconds": time.perf_counter() - start,
        "history": history,
    }


# ---------------------------------------------------------------------------------------------- compact form
def plain_copy(model: nn.Module) -> nn.Module:
    """A copy with the masks multiplied in (``weight = weight_orig * weight_mask``) and no pruning hooks."""
    import copy

    with torch.no_grad():  # after a forward with gradients the hooks' products are graph nodes, which deepcopy refuses
        for layer in model.modules():
            for name in _masked_names(layer):
                setattr(layer, name, getattr(layer, name + "_orig") * getattr(layer, name + "_mask"))
    plain = copy.deepcopy(model)
    for layer in plain.modules():
        for name in _masked_names(layer):
            prune.remove(layer, name)
    return plain


def pack(model: nn.Module, **_) -> tuple[dict, dict, list[str]]:
    """For :mod:`randweights.compact`: every pruned tensor's mask as bits and its kept values as fp32."""
    tag = transform.require_tag(model)
    arrays, covered = {}, []
    for name in tag["layers"]:
        layer = model.get_submodule(name)
        for tensor in _masked_names(layer):
            if hasattr(layer, tensor + "_mask"):
                key = transform.weight_key(name, tensor)
                mask = getattr(layer, tensor + "_mask").detach().bool().cpu()
                arrays[f"mask/{key}"] = pack_bits(mask)
                arrays[f"kept/{key}"] = getattr(layer, tensor + "_orig").detach().cpu()[mask].float().numpy()
                covered.append(key)
    return {}, arrays, covered


def unpack(model: nn.Module, header: dict, arrays: dict) -> None:
    """Inverse of :func:`pack` on a plain model: zeros where pruned, the kept values elsewhere."""
    state = model.state_dict()
    for key in header["covered"]:
        mask = unpack_bits(arrays[f"mask/{key}"], state[key].shape)
        value = torch.zeros(state[key].shape, dtype=state[key].dtype)
        value[mask] = torch.from_numpy(arrays[f"kept/{key}"]).to(value.dtype)
        transform.set_tensor(model, key, value)


METHOD = register(Method("imp", IMPConfig, "IMP", Codec(pack, unpack, plain_copy=plain_copy), run=run))
