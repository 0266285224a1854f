"""Edge-Popup (Ramanujan et al., 2020): learn which frozen random weights to keep.

Every Linear / Conv2d weight W is drawn once and frozen. A score tensor S of the same shape is trained; the
layer uses ``W * M`` where M keeps the ``round(keep_fraction * n)`` weights with the largest ``|S|`` (Sec. 3,
Alg. 1). The mask's gradient is passed straight through (Eq. 2), so ``dL/dS = sign(S) * dL/dW_eff * W`` and a
pruned edge can "pop up" again once its score overtakes the threshold.

The mask is attached with ``torch.nn.utils.parametrize``, so :func:`apply` works on any model, torchvision's
included. ``keep_fraction`` is the fraction of weights KEPT, everywhere.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..bits import pack_bits, unpack_bits
from ..config import MethodConfig
from ..errors import ConfigError, check_choice, check_range
from . import transform
from .registry import Codec, Method, register

INITS = (
    "signed-constant",  # U_k in the paper: +-sqrt(2/fan_in), the paper's best
    "kaiming-normal",  # N_k: N(0, 2/fan_in)
    "scaled-signed-constant",  # +-sqrt(2/(keep_fraction*fan_in)): the fan counts only kept inputs
    "scaled-kaiming-normal",  # N(0, 2/(keep_fraction*fan_in))
    "unsigned-constant",  # +sqrt(2/fan_in) everywhere (ablation, expected to fail)
    "kaiming-uniform",  # U(+-sqrt(6/fan_in))
    "xavier-normal",  # N(0, 2/(fan_in+fan_out))
    "glorot-uniform",  # U(+-sqrt(6/(fan_in+fan_out))): Slot Machines' candidate pool; its learned baselines draw from it
)
SHARED_BLOCKS = "blocks"  # the encoder blocks of randweights.models.PatchViT: what shared_blocks shares
MASKABLE = transform.MATRICES  # Linear, Conv, Embedding weights and attention input projections
# The fan of the scaled inits: "kept" = k * fan_in (the paper's stated intent: only kept inputs count) or
# "code" = (1 - k) * fan_in (the released code, utils/builder.py, which produced the published figures;
# hidden-networks#9). The two agree at k = 0.5.
SCALED_FANS = ("kept", "code")


@dataclass(frozen=True)
class EdgePopupConfig(MethodConfig):
    name = "edge-popup"
    keep_fraction: float = field(default=0.5, metadata={"help": "fraction of each layer's weights KEPT by the top-k supermask"})
    init: str = field(default="signed-constant", metadata={"help": "the frozen random weights' distribution"})
    scaled_fan: str = field(default="kept", metadata={"help": "scaled inits: fan_in * k (kept, the paper) or fan_in * (1 - k) (code, the released configs)"})
    shared_blocks: bool = field(default=False, metadata={"help": "transformers: every encoder block masks the same frozen random weights (those of the first block), each with its own scores: one shared random layer (Shen et al. 2021)"})

    def __post_init__(self):
        check_range("keep_fraction", self.keep_fraction, low=0, high=1, low_open=True)
        check_choice("init", self.init, INITS)
        check_choice("scaled_fan", self.scaled_fan, SCALED_FANS)
        if self.init.startswith("scaled-") and self.scaled_fan == "code" and self.keep_fraction >= 1:
            check_range("keep_fraction", self.keep_fraction, low=0, high=1, low_open=True, high_open=True)

    def default_lr(self, arch: str) -> float:
        return 0.1

    def check_model(self, model) -> None:
        if self.shared_blocks and not model.arch.startswith("vit-"):
            raise ConfigError("shared_blocks", True, f"False for {model.arch} (only a transformer, vit-*, has encoder blocks to share)")


# ---------------------------------------------------------------------------------------------- selection
def kept_count(numel: int, keep_fraction: float) -> int:
    """How many weights a layer of ``numel`` keeps: round(k*n), at least one."""
    return min(numel, max(1, round(keep_fraction * numel)))


def topk_mask(scores: torch.Tensor, count: int, hint: ThresholdHint | None = None) -> torch.Tensor:
    """Boolean mask of exactly ``count`` largest entries of ``scores``.

    O(n): the threshold is the count-th largest value, found by selection (``kthvalue``), never by a full sort
    (the official code sorts every layer on every forward). With a :class:`ThresholdHint` (last step's
    threshold) only the scores near it are ranked, several times cheaper on large layers; the mask is the same.
    Ties at the threshold are broken by index: the lowest-index tied entries are kept, so the count is exact
    even when many scores are equal. Reads two counts on the host; :func:`topk_mask_on_device` reads none.
    """
    flat = scores.reshape(-1)
    if count >= flat.numel():
        return torch.ones_like(scores, dtype=torch.bool)
    return _mask_at(flat, count, *find_threshold(flat, count, hint)).view_as(scores)


def _mask_at(flat: torch.Tensor, count: int, threshold: torch.Tensor, at_or_above: int | None) -> torch.Tensor:
    """``flat >= threshold`` with the surplus of ties at the threshold dropped, highest index first, so that
    exactly ``count`` entries are kept (``at_or_above``: how many are >= threshold, None: count them)."""
    mask = flat >= threshold
    surplus = (int(torch.count_nonzero(mask)) if at_or_above is None else at_or_above) - count
    if surplus > 0:
        ties = (flat == threshold).nonzero().squeeze(1)
        mask[ties[ties.numel() - surplus :]] = False
    return mask


def find_threshold(flat: torch.Tensor, count: int, hint: ThresholdHint | None = None) -> tuple[torch.Tensor, int | None]:
    """The count-th largest entry of ``flat`` (``count < flat.numel()``), and how many entries are at or above it
    where that is known without another pass (None otherwise). Updates ``hint``."""
    threshold = hint.select(flat, count) if hint is not None else None
    at_or_above = None
    if threshold is None:
        threshold = flat.kthvalue(flat.numel() - count + 1).values
    elif hint is not None:
        at_or_above = hint.at_or_above
    if hint is not None:
        hint.value = float(threshold)
    return threshold, at_or_above


def topk_mask_on_device(scores: torch.Tensor, count: int) -> torch.Tensor:
    """:func:`topk_mask` without reading anything on the host (no device synchronization on a GPU): the
    threshold by ``kthvalue`` (a radix select on a GPU), the ties kept by index through a running count. The
    same mask as :func:`topk_mask`, bit for bit."""
    flat = scores.reshape(-1)
    if count >= flat.numel():
        return torch.ones_like(scores, dtype=torch.bool)
    threshold = flat.kthvalue(flat.numel() - count + 1).values
    above = flat > threshold
    ties = flat == threshold
    missing = count - above.sum()  # how many tied entries to keep, on the device
    return (above | (ties & (ties.cumsum(0) <= missing))).view_as(scores)


def _bits(value: float) -> int:
    """The IEEE bit pattern of ``value`` as a float32, as an int."""
    return int(struct.unpack("<i", struct.pack("<f", value))[0])


def _above_bits(bits: torch.Tensor, value: float) -> torch.Tensor:
    """-1 where the float32 bit patterns ``bits`` of non-negative floats lie above ``value`` (the same order as the
    floats), 0 elsewhere, as int32: a subtraction and a shift. A comparison into booleans costs several such integer
    passes on some CPUs (about 5x on an AMD EPYC); these ints sum and mark without one."""
    return torch.sub(_bits(value), bits).bitwise_right_shift_(31)


def _select_where(flat: torch.Tensor, marked: torch.Tensor) -> torch.Tensor:
    """``flat[marked != 0]`` for a sparse marker (booleans, or ints narrowed to bytes): finds the non-empty
    8-entry blocks first (as 64-bit words), then the entries in them, about 1.5x cheaper on a CPU than a direct
    ``masked_select``."""
    if flat.numel() % 8 or marked.storage_offset() % 8:
        return flat.masked_select(marked != 0)
    marked = marked.view(torch.int8) if marked.dtype == torch.bool else marked.to(torch.int8)
    blocks = marked.view(torch.int64).nonzero().squeeze(1)
    return flat.view(-1, 8)[blocks].masked_select(marked.view(-1, 8)[blocks] != 0)


# Where the top-k threshold is found: True on the device, reading nothing on the host (a GPU's queue never drains
# for it); False by the carried-threshold search (:class:`ThresholdHint`), several times cheaper on a CPU, where its
# two host reads per layer and step wait for nothing; None (default): on the device for CUDA tensors. Same masks.
SELECT_ON_DEVICE: bool | None = None


class ThresholdHint:
    """Last step's threshold of one layer. Scores move little per step, so the new count-th largest value is
    usually within a narrow relative ``band`` of the old one: count what lies above the band, rank only what lies
    inside it. The band widens when it misses and narrows slowly when it hits."""

    MIN_SIZE = 8192  # smaller layers: plain kthvalue is as fast

    def __init__(self, band: float = 0.02):
        self.value: float | None = None
        self.band = band
        self.at_or_above = 0  # after a successful select: how many scores are >= the threshold it returned

    def select(self, flat: torch.Tensor, count: int):
        if self.value is None or self.value <= 0 or flat.numel() < self.MIN_SIZE:
            return None
        lo, hi = self.value * (1 - self.band), self.value * (1 + self.band)
        if flat.dtype == torch.float32 and flat.is_contiguous():  # on the bit patterns, no boolean tensors
            bits = flat.view(torch.int32)
            above_band = _above_bits(bits, hi)
            above = -int(above_band.sum(dtype=torch.int32))
            in_band = _above_bits(bits, lo).sub_(above_band) if above < count else None  # -1 in (lo, hi]
        else:
            above_band = flat > hi
            above = int(torch.count_nonzero(above_band))
            in_band = (flat > lo) ^ above_band if above < count else None
        need = count - above
        if in_band is not None:
            near = _select_where(flat, in_band)
            if need <= near.numel():
                self.band = max(0.002, self.band * 0.95)
                threshold = near.kthvalue(near.numel() - need + 1).values
                self.at_or_above = above + int(torch.count_nonzero(near >= threshold))  # ties included
                return threshold
        self.band = min(1.0, self.band * 2)
        return None


def sort_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Reference selection by a full sort (what the official code does on every forward); for tests and
    benchmarks only."""
    flat = scores.reshape(-1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[flat.sort(descending=True, stable=True).indices[:count]] = True
    return mask.view_as(scores)


def kept_weights(weight: torch.Tensor, magnitudes: torch.Tensor, count: int, hint: ThresholdHint | None = None,
                 on_device: bool = False) -> torch.Tensor:
    """``weight * topk_mask(magnitudes, count)`` (no gradient). For float32 on the host path the product is made
    on the bit patterns: where a magnitude is below the threshold the weight keeps only its sign bit, which is
    ``w * 0.0`` exactly (``-0.0`` for a negative w), and elsewhere all its bits (``w * 1.0``): four integer passes
    instead of a compare and a mixed-type product."""
    flat = magnitudes.reshape(-1)
    if on_device:
        return weight * topk_mask_on_device(magnitudes, count)
    if count >= flat.numel() or weight.dtype != torch.float32 or flat.dtype != torch.float32 or not weight.is_contiguous():
        return weight * topk_mask(magnitudes, count, hint)
    threshold, at_or_above = find_threshold(flat, count, hint)
    if at_or_above is None or at_or_above != count:  # ties at the threshold, or not counted: the boolean mask
        return weight * _mask_at(flat, count, threshold, at_or_above).view_as(weight)
    below = flat.view(torch.int32) - threshold.view(torch.int32)  # < 0 exactly where magnitude < threshold
    below.bitwise_right_shift_(31).bitwise_and_(0x7FFFFFFF).bitwise_not_()  # all bits, or the sign bit only
    return below.bitwise_and_(weight.reshape(-1).view(torch.int32)).view(torch.float32).view_as(weight)


class _MaskedWeight(torch.autograd.Function):
    """``W_eff = W * M`` for the top-k mask M of |S| (computed here). Backward passes the mask straight through
    (Eq. 2 of the paper), so ``dL/dS = dL/dW_eff * W * sign(S)`` for every score, kept or not; W gets no
    gradient."""

    @staticmethod
    def forward(ctx, scores, weight, count, hint, on_device):
        ctx.save_for_backward(scores, weight)
        return kept_weights(weight, scores.abs(), count, hint, on_device)

    @staticmethod
    def backward(ctx, grad):
        scores, weight = ctx.saved_tensors
        return torch.mul(grad, weight).mul_(scores.sign()), None, None, None, None


class TopKMask(nn.Module):
    """Parametrization ``W -> W * topk(|S|)`` with trainable scores S (the only learned tensor). Selects on the
    device (no host read, :func:`topk_mask_on_device`) where :data:`SELECT_ON_DEVICE` says so."""

    def __init__(self, weight: torch.Tensor, keep_fraction: float, generator: torch.Generator | None = None):
        super().__init__()
        fan_in = nn.init._calculate_fan_in_and_fan_out(weight)[0]
        bound = 1.0 / math.sqrt(fan_in)  # PyTorch's default layer init, as the official code uses for scores
        device = weight.device if generator is None else generator.device
        scores = torch.empty(weight.shape, dtype=weight.dtype, device=device).uniform_(-bound, bound, generator=generator)
        self.scores = nn.Parameter(scores.to(weight.device))
        self.keep_fraction = keep_fraction
        self.count = kept_count(weight.numel(), keep_fraction)
        self._hint = ThresholdHint()
        self._cache: tuple[int, torch.Tensor] | None = None

    def selects_on_device(self) -> bool:
        return self.scores.is_cuda if SELECT_ON_DEVICE is None else SELECT_ON_DEVICE

    def mask(self) -> torch.Tensor:
        """The current binary mask (no gradient)."""
        with torch.no_grad():
            if self.selects_on_device():
                return topk_mask_on_device(self.scores.abs(), self.count)
            return topk_mask(self.scores.abs(), self.count, self._hint)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training and not torch.is_grad_enabled():  # scores are frozen: reuse the mask
            version = self.scores._version
            if self._cache is None or self._cache[0] != version:
                self._cache = (version, self.mask().to(weight.dtype))
            return weight * self._cache[1]
        return _MaskedWeight.apply(self.scores, weight, self.count, self._hint, self.selects_on_device())


# ---------------------------------------------------------------------------------------------- init
def fans(weight: torch.Tensor) -> tuple[int, int]:
    return nn.init._calculate_fan_in_and_fan_out(weight)


def init_weight_(weight: torch.Tensor, init: str, keep_fraction: float = 1.0, generator: torch.Generator | None = None,
                 scaled_fan: str = "kept") -> torch.Tensor:
    """Fill ``weight`` in place with one of :data:`INITS` (Sec. 4.1 and Fig. 7 of the paper; ReLU gain), drawing
    from ``generator`` (None: the global one). The scaled inits use ``k * fan_in`` (``scaled_fan="kept"``) or the
    released code's ``(1 - k) * fan_in``."""
    check_choice("init", init, INITS)
    check_choice("scaled_fan", scaled_fan, SCALED_FANS)
    fan_in_count, fan_out = fans(weight)
    fan_in: float = fan_in_count
    if init.startswith("scaled-"):
        fan_in = (keep_fraction if scaled_fan == "kept" else 1.0 - keep_fraction) * fan_in
    std = math.sqrt(2.0 / fan_in)
    if generator is not None and generator.device != weight.device:  # draw on the generator's device, then copy
        with torch.no_grad():
            weight.copy_(init_weight_(torch.empty(weight.shape, dtype=weight.dtype, device=generator.device), init, keep_fraction, generator, scaled_fan))
        return weight
    with torch.no_grad():
        if init.endswith("signed-constant") and init != "unsigned-constant":
            coin = torch.rand(weight.shape, generator=generator, dtype=weight.dtype, device=weight.device)
            weight.copy_(torch.where(coin < 0.5, -std, std))
        elif init == "unsigned-constant":
            weight.fill_(std)
        elif init.endswith("kaiming-normal"):
            weight.normal_(0.0, std, generator=generator)
        elif init == "kaiming-uniform":
            weight.uniform_(-math.sqrt(3.0) * std, math.sqrt(3.0) * std, generator=generator)
        elif init == "glorot-uniform":
            bound = math.sqrt(6.0 / (fan_in_count + fan_out))
            weight.uniform_(-bound, bound, generator=generator)
        else:  # xavier-normal
            weight.normal_(0.0, math.sqrt(2.0 / (fan_in_count + fan_out)), generator=generator)
    return weight


def maskable_layers(model: nn.Module):
    return [m for m in model.modules() if isinstance(m, MASKABLE)]


def freeze_all(model: nn.Module) -> None:
    """Nothing but scores is learned: weights, biases and BatchNorm affine parameters are frozen."""
    for p in model.parameters():
        p.requires_grad_(False)


def apply(
    model: nn.Module,
    keep_fraction: float = 0.5,
    init: str | None = "signed-constant",
    include: transform.Selector = None,
    exclude: transform.Selector = None,
    generator: torch.Generator | None = None,
    scaled_fan: str = "kept",
    learn: transform.Selector = None,
    share: str | None = None,
) -> nn.Module:
    """Freeze all parameters and attach a top-k mask with trainable scores to every selected weight matrix: a
    Linear/Conv/Embedding weight or an attention's ``in_proj_weight`` (``include`` / ``exclude``: module or layer
    names, globs or a predicate; default all; see :mod:`randweights.methods.transform`). Each selected weight is
    re-drawn with ``init``, or kept as it is with ``init=None`` (a supermask inside pretrained or one's own
    weights; ``scaled_fan`` as in :func:`init_weight_`). Weights and scores are drawn from ``generator`` (None:
    the global generator). ``learn``: parameters (names or globs) that stay trainable next to the scores
    (:func:`randweights.methods.transform.learned`). ``share``: the name of a module whose children are alike
    blocks (``"blocks"`` in :class:`randweights.models.PatchViT`, ``"encoder.layers"`` in torchvision's ViT):
    every block then masks the first block's drawn weights with scores of its own (one shared random layer; the
    draws, scores included, are those of ``share=None``). Returns the same model (modified in place)."""
    keep_fraction = EdgePopupConfig(keep_fraction=keep_fraction, init=init or INITS[0]).keep_fraction  # the config's checks
    transform.check_untransformed(model)
    if share is not None:
        if init is None:
            raise ConfigError("share", share, "None when init=None (a model's own weights are not drawn, so not shared)")
        transform.check_blocks(model, share)
    chosen = transform.select_tensors(model, MASKABLE, include, exclude)
    transform.require_layers(model, chosen, MASKABLE)
    learned = transform.freeze(model, learn)
    replay = transform.generator_record(generator)
    weights = {"init": init, **({"scaled_fan": scaled_fan} if init.startswith("scaled-") else {}), **replay} if init is not None else {"fingerprint": transform.fingerprint([transform.tensor(m, p) for _, m, p in chosen])}
    if share is not None:
        weights["share"] = share
    with transform.drawing(generator) as g:
        for _, layer, p in chosen:
            if init is not None:
                init_weight_(transform.tensor(layer, p), init, keep_fraction, g, scaled_fan)
            parametrize.register_parametrization(layer, p, TopKMask(transform.tensor(layer, p), keep_fraction, g), unsafe=True)
            transform.original(layer, p).requires_grad_(False)
        if share is not None:
            transform.share_blocks_(model, chosen, share)
    transform.tag(model, "edge-popup", [n for n, _, _ in chosen], keep_fraction=keep_fraction, frozen_weights=weights, **learned)
    return model


def scores(model: nn.Module) -> list[nn.Parameter]:
    """The trainable scores of every masked layer, in model order: what the optimizer gets."""
    return [m.scores for m in model.modules() if isinstance(m, TopKMask)]


def kept_fractions(model: nn.Module) -> list[float]:
    """Realized kept fraction of every masked layer, in model order."""
    return [float(m.mask().float().mean()) for m in model.modules() if isinstance(m, TopKMask)]


def export(model: nn.Module) -> nn.Module:
    """A plain copy of ``model`` whose weights are the masked ones (``W * M``), with no scores or
    parametrizations: loads anywhere, pickles, and runs at dense speed (masks save compute only with sparse
    kernels). ``model`` itself is left untouched. ``state_dict()`` of the parametrized model is the way to save
    it for further training; :mod:`randweights.compact` stores it in a few bits per weight."""
    return transform.plain_copy(model)


def prepare(model: nn.Module, cfg) -> list[nn.Parameter]:
    apply(model, cfg.method.keep_fraction, cfg.method.init, scaled_fan=cfg.method.scaled_fan, learn=transform.learn_of(model, cfg),
          share=SHARED_BLOCKS if cfg.method.shared_blocks else None)
    return scores(model) + transform.learned(model)


def summarize(model: nn.Module) -> dict:
    """Realized kept fractions: per layer, and of all masked weights together."""
    maskers = [m for m in model.modules() if isinstance(m, TopKMask)]
    kept = [int(m.mask().sum()) for m in maskers]
    total = sum(m.scores.numel() for m in maskers)
    return {"kept_fraction": sum(kept) / total, "kept_fraction_per_layer": [k / m.scores.numel() for k, m in zip(kept, maskers)]}


# ---------------------------------------------------------------------------------------------- compact form
def pack(model: nn.Module, **_) -> tuple[dict, dict, list[str]]:
    """For :mod:`randweights.compact`: each masked layer's top-k mask as bits."""
    tag = transform.require_tag(model)
    arrays = {f"mask/{n}": pack_bits(transform.masker(model, n, TopKMask).mask()) for n in tag["layers"]}
    return {}, arrays, [transform.tensor_key(model, n) for n in tag["layers"]]


def unpack(model: nn.Module, header: dict, arrays: dict) -> None:
    """Inverse of :func:`pack` on a plain model: ``weight = W * M`` with W drawn again (or the model's own)."""
    settings = header["settings"]

    def redo(scratch: nn.Module, generator: torch.Generator) -> None:
        apply(scratch, settings["keep_fraction"], header["frozen_weights"]["init"], include=header["layers"], generator=generator,
              scaled_fan=header["frozen_weights"].get("scaled_fan", "kept"), share=header["frozen_weights"].get("share"))

    for name, weight in transform.frozen_weights(model, header, redo).items():
        mask = unpack_bits(arrays[f"mask/{name}"], weight.shape).to(weight.dtype)
        transform.set_tensor(model, transform.tensor_key(model, name), weight * mask)


def scratch_copy(model: nn.Module) -> nn.Module:
    """A plain copy holding the frozen weights (what :func:`unpack` starts from)."""
    return transform.plain_copy(model, original=True)


METHOD = register(Method("edge-popup", EdgePopupConfig, "Edge-Popup", Codec(pack, unpack, scratch_copy=scratch_copy, drawn=transform.originals),
                         prepare=prepare, summarize=summarize))
