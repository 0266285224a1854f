"""The one registry of methods: each method module declares itself once, with :func:`register`.

A :class:`Method` names the method (the name of the CLI and the run store), its typed settings, its label in
figures and tables, how its network is stored compactly (a :class:`Codec`), and how it trains: either
``prepare(model, cfg) -> trainable parameters`` (the shared training loop does the rest) or, for a method with a
flow of its own (pruning rounds, finetuning, an optimizer wrapper), ``run(cfg, splits, device, trainer) ->
(model, metrics)``, where ``trainer`` (a :class:`Trainer`) gives it the training loop without its importing it.
Everything else (compact files, plots, the CLI, the book) reads this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ..config import MethodConfig, RunConfig

Pack = Callable[..., tuple[dict, dict, list[str]]]  # (model, eval_seed=...) -> (settings, arrays, covered state keys)
Unpack = Callable[[nn.Module, dict, dict], None]  # (plain model, header, arrays): write the stored network in place


@dataclass(frozen=True)
class Codec:
    """How :mod:`randweights.compact` stores a method's network.

    ``pack`` / ``unpack`` are required. ``plain_copy(model)``: the model as it computes in evaluation mode, as a
    plain torch model (default: every parametrized tensor baked in). ``scratch_copy(model)``: the plain model
    ``unpack`` starts from when a file is checked before it is written (default: ``plain_copy``). ``build(cfg,
    input_shape, num_classes)``: the plain model of a stored run before ``unpack`` (default: the architecture of
    ``cfg.model``). ``drawn(model)``: for a method whose file draws tensors again from a stored seed, those
    tensors of the transformed ``model`` by layer (the frozen weights, a slot machine's candidates, LaPerm's
    sorted initial rows); the file stores their fingerprints and ``unpack`` checks what it drew against them
    (:func:`randweights.methods.transform.check_drawn`)."""

    pack: Pack
    unpack: Unpack
    plain_copy: Callable[[nn.Module], nn.Module] | None = None
    scratch_copy: Callable[[nn.Module], nn.Module] | None = None
    build: Callable[[RunConfig, tuple, int], nn.Module] | None = None
    drawn: Callable[[nn.Module], dict[str, torch.Tensor]] | None = None


def _pack_nothing(model: nn.Module, **_) -> tuple[dict, dict, list[str]]:
    return {}, {}, []


def _unpack_nothing(model: nn.Module, header: dict, arrays: dict) -> None:
    return None


PLAIN = Codec(_pack_nothing, _unpack_nothing)  # every tensor stored as it is (a dense network)


class Trainer(Protocol):
    """What a method with its own flow gets from the training service (:class:`randweights.train.Trainer`)."""

    checkpoint: Any  # a randweights.train.Checkpointer, or None

    def build_model(self, cfg: RunConfig, splits: Any) -> nn.Module: ...

    def make_optimizer(self, params: Any, cfg: RunConfig) -> torch.optim.Optimizer: ...

    def fit(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg: RunConfig, splits: Any, device: torch.device,
            **options: Any) -> list[dict]: ...

    def evaluate(self, model: nn.Module, split: Any, device: torch.device, batch_size: int = 1000,
                 precision: str = "fp32") -> dict: ...


@dataclass(frozen=True)
class Method:
    """One method, declared once. Exactly one of ``prepare`` and ``run``."""

    name: str
    config: type[MethodConfig]
    label: str
    codec: Codec
    prepare: Callable[[nn.Module, RunConfig], list[nn.Parameter]] | None = None
    run: Callable[..., tuple[nn.Module, dict]] | None = None
    summarize: Callable[[nn.Module], dict] | None = None


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the registry (its module calls this once, at import). An incomplete declaration is an
    error here, never a silent gap later."""
    problems = []
    if not isinstance(method.codec, Codec):
        problems.append("a Codec (compact.pack/unpack; PLAIN for a network stored as it is)")
    if (method.prepare is None) == (method.run is None):
        problems.append("exactly one of prepare and run")
    if method.config.name != method.name:
        problems.append(f"a config class named {method.name!r} (got {method.config.name!r})")
    if method.name in METHODS and METHODS[method.name] is not method:
        problems.append("a name no other method has")
    if problems:
        raise TypeError(f"method {method.name!r} needs " + "; ".join(problems))
    METHODS[method.name] = method
    return method
