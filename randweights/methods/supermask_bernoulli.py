"""Zhou et al. (2019) supermask, the baseline of Edge-Popup's Fig. 6.

Each weight keeps probability ``p = sigmoid(s)``; every forward samples ``M ~ Bernoulli(p)`` and the gradient
passes straight through the sample to ``p`` (``dL/ds = dL/dW_eff * W * p(1-p)``). The kept fraction is an
outcome, steered by the initial score ``logit(keep_fraction)``. Evaluation samples a mask too (as the
hidden-networks baseline does) unless ``eval_mask="threshold"`` (keep where p > 0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..config import MethodConfig
from ..errors import check_choice, check_range
from .edge_popup import INITS, freeze_all, init_weight_, maskable_layers

EVAL_MASKS = ("sample", "threshold")


@dataclass(frozen=True)
class BernoulliConfig(MethodConfig):
    name = "supermask-bernoulli"
    default_weight_decay = 0.0  # no weight decay on Bernoulli scores (hidden-networks baseline)
    keep_fraction: float = field(default=0.5, metadata={"help": "initial expected fraction kept (scores start at logit(keep_fraction))"})  # initial expected kept fraction: scores start at logit(keep_fraction)
    init: str = field(default="signed-constant", metadata={"help": "the frozen random weights' distribution"})
    eval_mask: str = field(default="sample", metadata={"help": "the mask at test time: a Bernoulli sample or the p > 0.5 threshold"})

    def __post_init__(self):
        check_range("keep_fraction", self.keep_fraction, low=0, high=1, low_open=True, high_open=True)
        check_choice("init", self.init, INITS)
        check_choice("eval_mask", self.eval_mask, EVAL_MASKS)

    def default_lr(self, arch: str) -> float:
        return 200.0  # the hidden-networks baseline config (SGD lr 200, cosine, momentum 0.9)


class BernoulliMask(nn.Module):
    """Parametrization ``W -> W * Bernoulli(sigmoid(S))`` with a straight-through gradient to sigmoid(S)."""

    def __init__(self, weight: torch.Tensor, keep_fraction: float, eval_mask: str = "sample"):
        super().__init__()
        start = math.log(keep_fraction / (1 - keep_fraction))
        self.scores = nn.Parameter(torch.full_like(weight, start))
        self.eval_mask = eval_mask

    def probabilities(self) -> torch.Tensor:
        return torch.sigmoid(self.scores)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        p = self.probabilities()
        if not self.training and self.eval_mask == "threshold":
            return weight * (p > 0.5).to(weight.dtype)
        sample = torch.bernoulli(p.detach())
        return weight * (p + (sample - p).detach())


def apply(model: nn.Module, keep_fraction: float = 0.5, init: str = "signed-constant", eval_mask: str = "sample") -> nn.Module:
    from . import check_untransformed

    keep_fraction = BernoulliConfig(keep_fraction=keep_fraction, init=init, eval_mask=eval_mask).keep_fraction  # checks
    check_untransformed(model)
    freeze_all(model)
    for layer in maskable_layers(model):
        init_weight_(layer.weight, init, keep_fraction)
        parametrize.register_parametrization(layer, "weight", BernoulliMask(layer.weight, keep_fraction, eval_mask), unsafe=True)
        layer.parametrizations.weight.original.requires_grad_(False)
    return model


def prepare(model: nn.Module, cfg) -> list[nn.Parameter]:
    m = cfg.method
    apply(model, m.keep_fraction, m.init, m.eval_mask)
    return [mod.scores for mod in model.modules() if isinstance(mod, BernoulliMask)]


def summarize(model: nn.Module) -> dict:
    """Expected kept fraction per layer (mean of sigmoid(S)); the realized fraction of any one sample is close."""
    maskers = [m for m in model.modules() if isinstance(m, BernoulliMask)]
    expected = [float(m.probabilities().detach().sum()) for m in maskers]
    total = sum(m.scores.numel() for m in maskers)
    return {
        "kept_fraction": sum(expected) / total,
        "kept_fraction_per_layer": [e / m.scores.numel() for e, m in zip(expected, maskers)],
    }
