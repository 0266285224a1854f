"""Dense baseline: train every weight of the same network (the "learned dense weights" lines of the papers)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..config import MethodConfig
from ..errors import check_choice
from .edge_popup import INITS, init_weight_, maskable_layers
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
    for layer in maskable_layers(model):
        init_weight_(layer.weight, cfg.method.init)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return [p for p in model.parameters() if p.requires_grad]


METHOD = register(Method("dense", DenseConfig, "dense", PLAIN, prepare=prepare))
