"""Zhou et al. (2019) supermask, the baseline of Edge-Popup's Fig. 6.

Each weight keeps probability ``p = sigmoid(s)``; every forward samples ``M ~ Bernoulli(p)`` and the gradient
passes straight through the sample to ``p`` (``dL/ds = dL/dW_eff * W * p(1-p)``). The kept fraction is an
outcome, steered by the initial score ``logit(keep_fraction)``.

What evaluation (``model.eval()``) uses, ``eval_mask``:

* ``"sample"`` (the default, as the hidden-networks baseline does): a **new** Bernoulli sample at every forward
  call, so two evaluations of the same inputs differ, and so does the model from its compact file until the
  sample is fixed. :func:`fix_eval_mask` (``model, seed``) draws one evaluation sample and keeps it: from then on
  evaluation is repeatable and equals the compact file bit for bit. :func:`randweights.compact.save` fixes it
  (from its ``eval_seed``) when it is not fixed yet, so compare a model with its file only after saving it or
  after :func:`fix_eval_mask`.
* ``"threshold"``: keep where ``p > 0.5``. Deterministic from the scores alone, so evaluation is repeatable
  and the model equals its compact file bit for bit with no seed at all (the choice for a deterministic model).

Training always samples anew (the estimator needs it). :func:`scores` lists the trainable scores, as
:func:`randweights.methods.edge_popup.scores` does for Edge-Popup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..bits import pack_bits, unpack_bits
from ..config import MethodConfig
from ..errors import check_choice, check_range
from . import transform
from .edge_popup import INITS, MASKABLE, init_weight_
from .registry import Codec, Method, register

EVAL_MASKS = ("sample", "threshold")


@dataclass(frozen=True)
class BernoulliConfig(MethodConfig):
    name = "supermask-bernoulli"
    default_weight_decay = 0.0  # no weight decay on Bernoulli scores (hidden-networks baseline)
    keep_fraction: float = field(default=0.5, metadata={"help": "initial expected fraction kept (scores start at logit(keep_fraction))"})  # initial expected kept fraction: scores start at logit(keep_fraction)
    init: str = field(default="signed-constant", metadata={"help": "the frozen random weights' distribution"})
    eval_mask: str = field(default="sample", metadata={"help": "the mask at test time: a new Bernoulli sample per call (fixed from a seed when the run is stored) or the deterministic p > 0.5 threshold"})

    def __post_init__(self):
        check_range("keep_fraction", self.keep_fraction, low=0, high=1, low_open=True, high_open=True)
        check_choice("init", self.init, INITS)
        check_choice("eval_mask", self.eval_mask, EVAL_MASKS)

    def default_lr(self, arch: str) -> float:
        return 200.0  # the hidden-networks baseline config (SGD lr 200, cosine, momentum 0.9)


class BernoulliMask(nn.Module):
    """Parametrization ``W -> W * Bernoulli(sigmoid(S))`` with a straight-through gradient to sigmoid(S).
    Samples come from ``generator`` (None: the global generator)."""

    def __init__(self, weight: torch.Tensor, keep_fraction: float, eval_mask: str = "sample", generator: torch.Generator | None = None):
        super().__init__()
        start = math.log(keep_fraction / (1 - keep_fraction))
        self.scores = nn.Parameter(torch.full_like(weight, start))
        self.eval_mask = eval_mask
        self.generator = generator
        self.fixed: torch.Tensor | None = None  # the evaluation sample, once fixed (fix_eval_mask)

    def probabilities(self) -> torch.Tensor:
        return torch.sigmoid(self.scores)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One draw of the mask (0/1 floats), no gradient."""
        p = self.probabilities().detach()
        g = generator if generator is not None else self.generator
        if g is not None and g.device != p.device:
            return torch.bernoulli(p.to(g.device), generator=g).to(p.device)
        return torch.bernoulli(p, generator=g)

    def eval_weight_mask(self) -> torch.Tensor:
        """The mask evaluation uses: the threshold mask, the fixed sample, or a fresh sample."""
        if self.eval_mask == "threshold":
            return (self.probabilities() > 0.5).to(self.scores.dtype)
        return self.fixed if self.fixed is not None else self.sample()

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training and (self.eval_mask == "threshold" or self.fixed is not None):
            return weight * self.eval_weight_mask().to(weight.dtype)
        p = self.probabilities()
        sample = self.sample()
        return weight * (p + (sample - p).detach())


def apply(
    model: nn.Module,
    keep_fraction: float = 0.5,
    init: str | None = "signed-constant",
    eval_mask: str = "sample",
    include: transform.Selector = None,
    exclude: transform.Selector = None,
    generator: torch.Generator | None = None,
    learn: transform.Selector = None,
) -> nn.Module:
    """Freeze all parameters and attach a Bernoulli supermask to every selected weight matrix (``include`` /
    ``exclude`` / ``learn`` as in :func:`randweights.methods.edge_popup.apply`). ``init=None`` keeps the existing
    weights. Weights and every mask sample are drawn from ``generator`` (None: the global generator)."""
    keep_fraction = BernoulliConfig(keep_fraction=keep_fraction, init=init or INITS[0], eval_mask=eval_mask).keep_fraction  # checks
    transform.check_untransformed(model)
    chosen = transform.select_tensors(model, MASKABLE, include, exclude)
    transform.require_layers(model, chosen, MASKABLE)
    learned = transform.freeze(model, learn)
    replay = transform.generator_record(generator)
    weights = {"init": init, **replay} if init is not None else {"fingerprint": transform.fingerprint([transform.tensor(m, p) for _, m, p in chosen])}
    with transform.drawing(generator) as g:
        for _, layer, p in chosen:
            if init is not None:
                init_weight_(transform.tensor(layer, p), init, keep_fraction, g)
    for _, layer, p in chosen:
        mask = BernoulliMask(transform.tensor(layer, p), keep_fraction, eval_mask, generator)
        parametrize.register_parametrization(layer, p, mask, unsafe=True)
        transform.original(layer, p).requires_grad_(False)
    transform.tag(model, "supermask-bernoulli", [n for n, _, _ in chosen], keep_fraction=keep_fraction, eval_mask=eval_mask,
                  frozen_weights=weights, **learned)
    return model


def masks(model: nn.Module) -> list[BernoulliMask]:
    """Every Bernoulli mask of ``model``, in model order."""
    return [m for m in model.modules() if isinstance(m, BernoulliMask)]


def scores(model: nn.Module) -> list[nn.Parameter]:
    """The trainable scores (``p = sigmoid(score)``) of every masked layer, in model order: what the optimizer
    gets (as :func:`randweights.methods.edge_popup.scores`)."""
    return [m.scores for m in masks(model)]


@torch.no_grad()
def fix_eval_mask(model: nn.Module, seed: int) -> list[torch.Tensor]:
    """Draw one evaluation sample per layer, in model order, from ``torch.Generator().manual_seed(seed)`` and use
    it for every evaluation from now on (training still samples anew). Returns the masks. A no-op for
    ``eval_mask="threshold"`` (deterministic already), which returns its threshold masks."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for m in masks(model):
        if m.eval_mask == "sample":
            m.fixed = m.sample(g)
        out.append(m.eval_weight_mask())
    tag = transform.tag_of(model)
    if tag is not None:
        tag["eval_seed"] = seed
    return out


def prepare(model: nn.Module, cfg) -> list[nn.Parameter]:
    m = cfg.method
    apply(model, m.keep_fraction, m.init, m.eval_mask, learn=transform.learn_of(model, cfg))
    return scores(model) + transform.learned(model)


def summarize(model: nn.Module) -> dict:
    """Expected kept fraction per layer (mean of sigmoid(S)); the realized fraction of any one sample is close."""
    maskers = [m for m in model.modules() if isinstance(m, BernoulliMask)]
    expected = [float(m.probabilities().detach().sum()) for m in maskers]
    total = sum(m.scores.numel() for m in maskers)
    return {
        "kept_fraction": sum(expected) / total,
        "kept_fraction_per_layer": [e / m.scores.numel() for e, m in zip(expected, maskers)],
    }


# ---------------------------------------------------------------------------------------------- compact form
def pack(model: nn.Module, eval_seed: int = 0, **_) -> tuple[dict, dict, list[str]]:
    """For :mod:`randweights.compact`: the mask each layer evaluates with, as bits (a sampling supermask gets
    its evaluation sample fixed from ``eval_seed`` first, unless it was fixed already)."""
    tag = transform.require_tag(model)
    layer_masks = [transform.masker(model, n, BernoulliMask) for n in tag["layers"]]
    if any(m.eval_mask == "sample" and m.fixed is None for m in layer_masks):
        fix_eval_mask(model, eval_seed)
    arrays = {f"mask/{n}": pack_bits(m.eval_weight_mask() > 0) for n, m in zip(tag["layers"], layer_masks)}
    return {}, arrays, [transform.tensor_key(model, n) for n in tag["layers"]]


def unpack(model: nn.Module, header: dict, arrays: dict) -> None:
    """Inverse of :func:`pack` on a plain model: ``weight = W * M``."""
    settings = header["settings"]

    def redo(scratch: nn.Module, generator: torch.Generator) -> None:
        apply(scratch, settings["keep_fraction"], header["frozen_weights"]["init"], settings["eval_mask"], include=header["layers"], generator=generator)

    for name, weight in transform.frozen_weights(model, header, redo).items():
        mask = unpack_bits(arrays[f"mask/{name}"], weight.shape).to(weight.dtype)
        transform.set_tensor(model, transform.tensor_key(model, name), weight * mask)


def scratch_copy(model: nn.Module) -> nn.Module:
    return transform.plain_copy(model, original=True)


METHOD = register(Method("supermask-bernoulli", BernoulliConfig, "Bernoulli supermask",
                         Codec(pack, unpack, scratch_copy=scratch_copy, drawn=transform.originals), prepare=prepare, summarize=summarize))
