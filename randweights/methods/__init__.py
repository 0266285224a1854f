"""The methods, by the name the CLI and the run store use (one registry: :mod:`randweights.methods.registry`).

Each method is one module that ends with ``METHOD = register(Method(...))``: its name, its settings class, its
label, its compact codec and how it trains. To add a method: write its module and add it to the tuple below
(the order of tables, legends and the CLI's list).
"""

from __future__ import annotations

from ..errors import ConfigError
from . import dense, edge_popup, laperm, pruning, registry, slot_machines, supermask_bernoulli
from .registry import Codec, Method, Trainer

ORDER = (dense, edge_popup, supermask_bernoulli, slot_machines, laperm, pruning)
METHODS: dict[str, Method] = {module.METHOD.name: module.METHOD for module in ORDER}
NAMES: tuple[str, ...] = tuple(METHODS)
if set(NAMES) != set(registry.METHODS):
    raise TypeError(f"registered but not in methods.ORDER: {sorted(set(registry.METHODS) - set(NAMES))}")

__all__ = ["METHODS", "NAMES", "Codec", "Method", "Trainer", "get", "label"]


def get(name: str) -> Method:
    """The registered method called ``name`` (built in, or registered since by one's own code); an unknown name
    is a ConfigError naming ``method``."""
    if name not in registry.METHODS:
        raise ConfigError("method", name, "one of " + ", ".join(dict.fromkeys([*NAMES, *registry.METHODS])))
    return registry.METHODS[name]


def label(name: str) -> str:
    """How figures and tables name the method (``"Edge-Popup"``); an unregistered name as it is."""
    return registry.METHODS[name].label if name in registry.METHODS else name
