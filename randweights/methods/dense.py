"""Dense baseline: train every weight of the same network (the "learned dense weights" lines of the papers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..config import MethodConfig
from ..errors import check_choice
from . import transform
from .edge_popup import INITS, MASKABLE, init_weight_
from .registry import PLAIN, Method, register


@dataclass(frozen=True)
class DenseConfig(MethodConfig):
    name = "dense"
    init: str = field(default="kaiming-normal", metadata={"help": "weight initialization"})

    def __post_init__(self):
        check_choice("init", self.init, INITS)

    def default_lr(self, arch: str) -> float:
        """Edge-Popup's SGD baselines: 0.1 for the MNIST MLP, 0.01 for the conv nets (no BatchNorm)."""
        return 0.1 if arch.startswith("lenet") or arch.startswith("resnet") else 0.01


def prepare(model: nn.Module, cfg) -> list[nn.Parameter]:
    for _, layer, tensor in transform.select_tensors(model, MASKABLE):
        init_weight_(transform.tensor(layer, tensor), cfg.method.init)
        bias = getattr(layer, transform.bias_name(tensor) or "", None)
        if bias is not None:
            nn.init.zeros_(bias)
    return [p for p in model.parameters() if p.requires_grad]


METHOD = register(Method("dense", DenseConfig, "dense", PLAIN, prepare=prepare))
