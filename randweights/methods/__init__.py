"""The methods, by the name the CLI and the run store use.

A method is a module with a frozen ``*Config`` dataclass (subclass of :class:`randweights.config.MethodConfig`)
and either

* ``prepare(model, cfg) -> trainable parameters`` (plus an optional ``summarize(model) -> dict``): the shared
  training loop in :mod:`randweights.train` does the rest; or
* ``run(cfg, splits, device) -> (model, metrics)``: for methods with their own flow (pruning rounds,
  finetuning, an optimizer wrapper).

A method that transforms a model also tags it (:mod:`randweights.methods.layers`) and provides
``pack(model) -> (settings, arrays, covered keys)`` and ``unpack(plain_model, header, arrays)``, the compact
form :mod:`randweights.compact` writes and reads.

To add one, write the module and add a line to ``_MODULES``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigError

_MODULES = {
    "dense": "dense",
    "edge-popup": "edge_popup",
    "supermask-bernoulli": "supermask_bernoulli",
    "imp": "pruning",
    "slot": "slot_machines",
    "laperm": "laperm",
}
METHODS = tuple(_MODULES)


def method_module(name: str) -> ModuleType:
    if name not in _MODULES:
        raise ConfigError("method", name, "one of " + ", ".join(METHODS))
    return importlib.import_module(f"{__name__}.{_MODULES[name]}")


def method_config_class(name: str):
    from ..config import MethodConfig

    module = method_module(name)
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, MethodConfig) and value.name == name:
            return value
    raise LookupError(f"method module {module.__name__} defines no config named {name!r}")


def check_untransformed(model) -> None:
    """A method's ``apply`` needs a model no method has transformed yet: a second mask stacked on the first would
    train something else silently. ``export(model)`` (or a fresh model) is the way to start again."""
    from torch.nn.utils import parametrize

    done = [name or type(model).__name__ for name, module in model.named_modules() if parametrize.is_parametrized(module)]
    if done:
        raise ConfigError("model", f"{type(model).__name__} already transformed (layer {done[0]!r})", "a model no method has transformed yet: build a new one, or export() this one first")
