"""What every method shares when it transforms someone's model: which layers it touches, where its random
numbers come from, and the tag it leaves on the model so that :mod:`randweights.compact` can store the result.

* ``include`` / ``exclude`` pick layers by module name (``fnmatch`` glob or exact name, or a list of those) or
  by a predicate ``(name, module) -> bool``; ``exclude`` wins.
* A method draws its random weights from a ``torch.Generator``. Without one it draws from a copy of the global
  generator and moves the global one on by as much, so results equal drawing from the global generator; the
  starting state is kept, so the draw can be replayed.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import hashlib
import platform
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError, DrawDiffers

Selector = str | Sequence[str] | Callable[[str, nn.Module], bool] | None
TAG = "randweights_method"  # attribute on a transformed model: what compact.save needs to know
ModuleT = TypeVar("ModuleT", bound=nn.Module)


def matches(name: str, module: nn.Module, selector: Selector) -> bool:
    """Whether ``(name, module)`` is picked by ``selector`` (glob or exact name, list of them, or predicate)."""
    if selector is None:
        return False
    if callable(selector):
        return bool(selector(name, module))
    patterns = [selector] if isinstance(selector, str) else list(selector)
    if not all(isinstance(p, str) for p in patterns):
        raise ConfigError("include/exclude", selector, "a module name or glob, a list of them, or a predicate (name, module)")
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def select(model: nn.Module, types: tuple[type[nn.Module], ...], include: Selector = None, exclude: Selector = None) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module of ``types`` in model order, restricted to ``include`` (None: all)
    and without ``exclude``. A selector that names no module of these types is an error, not a silent no-op."""
    candidates = [(n, m) for n, m in model.named_modules() if isinstance(m, types)]
    for label, selector in (("include", include), ("exclude", exclude)):
        if selector is not None and not callable(selector) and not any(matches(n, m, selector) for n, m in candidates):
            allowed = ", ".join(n for n, _ in candidates[:8]) + (", ..." if len(candidates) > 8 else "")
            raise ConfigError(label, selector, f"names or globs of {'/'.join(t.__name__ for t in types)} modules ({allowed})")
    return [(n, m) for n, m in candidates if (include is None or matches(n, m, include)) and not matches(n, m, exclude)]


@contextlib.contextmanager
def drawing(generator: torch.Generator | None) -> Iterator[torch.Generator]:
    """The generator to draw from: ``generator`` itself, or a copy of the global CPU generator whose state is
    written back afterwards (the same numbers as drawing from the global generator)."""
    if generator is not None:
        yield generator
        return
    copy = torch.Generator()
    copy.set_state(torch.get_rng_state())
    yield copy
    torch.set_rng_state(copy.get_state())


def generator_record(generator: torch.Generator | None) -> dict:
    """How to replay draws from ``generator`` as it is now: ``{"seed": s}`` when it is exactly a fresh
    ``manual_seed(s)`` generator (the usual case: a few bytes), else ``{"state": uint8 tensor}`` (5 kB)."""
    g = generator
    if g is None:
        g = torch.Generator()
        g.set_state(torch.get_rng_state())
    seed = g.initial_seed()
    if torch.equal(torch.Generator().manual_seed(seed).get_state(), g.get_state()):
        return {"seed": int(seed)}
    return {"state": g.get_state().clone()}


def replay_generator(record: dict) -> torch.Generator:
    """A generator in the state :func:`generator_record` described."""
    g = torch.Generator()
    if "seed" in record:
        return g.manual_seed(int(record["seed"]))
    g.set_state(torch.as_tensor(record["state"], dtype=torch.uint8))
    return g


def fingerprint(tensors: Sequence[torch.Tensor]) -> str:
    """SHA-256 (16 hex digits) of the exact bits of ``tensors``: names a model's own weights (``init=None``)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def tag(model: nn.Module, method: str, layers: list[str], **settings) -> None:
    """Record on ``model`` which method transformed it, which layers, and the settings needed to redo it."""
    setattr(model, TAG, {"method": method, "layers": list(layers), **settings})


def tag_of(model: nn.Module) -> dict | None:
    return getattr(model, TAG, None)


def require_tag(model: nn.Module) -> dict:
    """The tag of a model a method transformed; a ConfigError naming ``model`` for any other model."""
    found = tag_of(model)
    if found is None:
        raise ConfigError("model", type(model).__name__, "a model transformed by a method's apply (it has no method tag)")
    return found


# ---------------------------------------------------------------------------------------------- typed access
# torch types ``module.name`` as ``Tensor | Module`` (Module.__getattr__); these say which one it is, and check.
def tensor(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """``module.<name>`` (a parameter, buffer or parametrized tensor) as a tensor; a TypeError otherwise."""
    value = getattr(module, name)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{type(module).__name__}.{name}: got {type(value).__name__}, allowed: a tensor")
    return value


def parametrization(layer: nn.Module, kind: type[ModuleT], name: str = "weight") -> ModuleT:
    """The (first) parametrization of ``layer.<name>``, which must be a ``kind``."""
    found = getattr(layer, "parametrizations", None)
    plist = found[name] if isinstance(found, nn.ModuleDict) and name in found else None
    first = plist[0] if isinstance(plist, parametrize.ParametrizationList) else None
    if not isinstance(first, kind):
        raise TypeError(f"{type(layer).__name__}.{name}: not parametrized by a {kind.__name__}")
    return first


def original(layer: nn.Module, name: str = "weight") -> torch.Tensor:
    """The tensor under the parametrization of ``layer.<name>``."""
    found = getattr(layer, "parametrizations", None)
    if not isinstance(found, nn.ModuleDict) or name not in found:
        raise TypeError(f"{type(layer).__name__}.{name}: not parametrized")
    return tensor(found[name], "original")


def check_model(model: object, parameter: str = "model") -> None:
    """A TypeError naming ``parameter`` unless ``model`` is a ``torch.nn.Module``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{parameter}: got {type(model).__name__} {model!r:.60}, allowed: a torch.nn.Module")


def require_layers(model: nn.Module, chosen: list, types: tuple[type, ...]) -> None:
    """A ConfigError naming ``model`` when a method found no layer to transform (``apply(nn.ReLU())``): it would
    train nothing, silently."""
    if not chosen:
        raise ConfigError("model", type(model).__name__, f"a model with at least one selected {'/'.join(t.__name__ for t in types)} layer")


def check_untransformed(model: nn.Module) -> None:
    """A method's ``apply`` needs a model no method has transformed yet: a second mask stacked on the first would
    train something else silently. ``export(model)`` (or a fresh model) is the way to start again. A model that
    is not a ``torch.nn.Module`` is a TypeError naming ``model``."""
    check_model(model)
    done = [name or type(model).__name__ for name, module in model.named_modules() if parametrize.is_parametrized(module)]
    if done:
        raise ConfigError("model", f"{type(model).__name__} already transformed (layer {done[0]!r})",
                          "a model no method has transformed yet: build a new one, or export() this one first")


def plain_copy(model: nn.Module, original: bool = False) -> nn.Module:
    """A copy of ``model`` in which every parametrized tensor is an ordinary frozen Parameter holding the value
    the model uses in evaluation mode (with ``original``: the tensor under the parametrization); ``model`` is
    left untouched (``remove_parametrizations`` on a deep copy would delete the property from the class the
    copy shares with its source)."""
    plain = copy.deepcopy(model)
    modes = {name: m.training for name, m in plain.named_modules()}
    plain.eval()
    with torch.no_grad():
        for module in plain.modules():
            if parametrize.is_parametrized(module):
                bake_(module, {n: _original(module, n) for n in _parametrized_names(module)} if original else None)
    for name, m in plain.named_modules():
        m.training = modes.get(name, m.training)
    return plain


@torch.no_grad()
def bake_(module: nn.Module, values: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """Replace every parametrized tensor of ``module`` by a frozen Parameter (its current value, or
    ``values[name]``) and give the module back its original class. Unlike ``remove_parametrizations`` this never
    touches the class object, which deep copies share."""
    names = _parametrized_names(module)
    given = {n: (values or {}).get(n) for n in names}
    current = {n: (v if v is not None else tensor(module, n)).detach().clone() for n, v in given.items()}
    del module._modules["parametrizations"]
    module.__class__ = module.__class__.__bases__[0]
    for n, v in current.items():
        module.register_parameter(n, nn.Parameter(v, requires_grad=False))
    return module


def _parametrized_names(module: nn.Module) -> list[str]:
    found = getattr(module, "parametrizations", None)
    return list(found.keys()) if isinstance(found, nn.ModuleDict) else []


_original = original  # plain_copy's argument ``original`` hides the function


def weight_key(name: str, tensor: str = "weight") -> str:
    """State-dict key of ``tensor`` of the module called ``name`` (``""`` is the model itself)."""
    return f"{name}.{tensor}" if name else tensor


@torch.no_grad()
def set_tensor(model: nn.Module, key: str, value: torch.Tensor) -> None:
    """Write ``value`` into the parameter or buffer ``key`` of a plain model (a new Parameter where the shape
    differs, e.g. a slot machine's 0-size stub)."""
    prefix, _, attr = key.rpartition(".")
    module = model.get_submodule(prefix)
    current = tensor(module, attr)
    if current.shape == value.shape:
        current.copy_(value)
    else:
        module.register_parameter(attr, nn.Parameter(value.to(current.dtype), requires_grad=current.requires_grad))


def frozen_weights(model: nn.Module, header: dict, redo: Callable[[nn.Module, torch.Generator], None]) -> dict[str, torch.Tensor]:
    """The frozen weights (the tensors under the parametrization) of ``header["layers"]``, by layer name: drawn
    again by ``redo(copy_of_model, generator)`` from the stored generator seed/state, or, for ``init=None``, the
    plain ``model``'s own weights after checking their fingerprint."""
    weights = header["frozen_weights"]
    names = header["layers"]
    if "fingerprint" in weights:
        own = [tensor(model.get_submodule(n)) for n in names]
        if fingerprint(own) != weights["fingerprint"]:
            raise ConfigError("model", type(model).__name__,
                              "the model holding the weights the method was applied to (init=None; fingerprint differs)")
        return {n: w.detach().clone() for n, w in zip(names, own)}
    scratch = copy.deepcopy(model)
    redo(scratch, replay_generator(weights))
    drawn = originals(scratch, names)
    check_drawn(header, drawn)
    return {n: w.detach().clone() for n, w in drawn.items()}


def originals(model: nn.Module, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    """The frozen weights under the parametrization of each layer ``names`` (default: the tagged layers)."""
    names = require_tag(model)["layers"] if names is None else names
    return {n: original(model.get_submodule(n)) for n in names}


def runtime() -> dict[str, str]:
    """The torch version and platform that draw random numbers here (a compact file records its writer's)."""
    return {"torch": torch.__version__, "platform": f"{platform.system()} {platform.machine()}"}


def _described(where: dict) -> str:
    return f"torch {where.get('torch', '(not recorded)')} on {where.get('platform', '(platform not recorded)')}"


def check_drawn(header: dict, tensors: dict[str, torch.Tensor], note: str = "") -> None:
    """Each tensor drawn again from a compact file's seed (by layer) has the :func:`fingerprint` the file stored
    under ``drawn`` when it was written; else a :class:`~randweights.errors.DrawDiffers` naming the layer and the
    writer's torch and platform (and ``note``). Files written before fingerprints were stored (no ``drawn``) are
    not checked."""
    expected = header.get("drawn") or {}
    for name, tensor in tensors.items():
        if name in expected and fingerprint([tensor]) != expected[name]:
            raise DrawDiffers(name, _described(header), _described(runtime()), note=note)
