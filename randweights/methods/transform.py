"""What every method shares when it transforms someone's model: which layers it touches, where its random
numbers come from, and the tag it leaves on the model so that :mod:`randweights.compact` can store the result.

* ``include`` / ``exclude`` pick layers by module name (``fnmatch`` glob or exact name, or a list of those) or
  by a predicate ``(name, module) -> bool``; ``exclude`` wins.
* A *maskable tensor* is one weight matrix of a module, ``(module, parameter name)`` (:func:`tensor_names`):
  ``weight`` of a Linear / Conv / Embedding, the packed ``in_proj_weight`` (3E x E) of a
  ``nn.MultiheadAttention`` (or its ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight`` when the key and
  value sizes differ from the embedding size). Its output projection ``out_proj`` is a Linear module of its own
  (``"...attn.out_proj"``). A method's tag lists the tensors it transformed by *layer name*
  (:func:`tensor_id`): the module's name when the module has one maskable tensor (every Linear / Conv keeps the
  name it always had, so compact files and their keys are unchanged; an attention module's name stands for its
  ``in_proj_weight``), else ``"<module>.<parameter>"``. ``include`` / ``exclude`` match either name.
* Fans are those of ``nn.init._calculate_fan_in_and_fan_out``: ``in_proj_weight`` (3E, E) has fan_in E (each
  of q, k, v is an E x E map of E inputs); an Embedding weight (num_embeddings, dim) has fan_in ``dim`` (one
  row is one token's vector; a frozen random embedding is ``dim``-wide like a layer with ``dim`` inputs, so the
  inits keep their scale ``sqrt(2 / dim)``).
* What stays learned (:func:`freeze`): the supermask methods (Edge-Popup, the Bernoulli supermask, Slot
  Machines) learn nothing but their scores, in the papers' spirit: weight matrices, biases, norm affine
  parameters, a transformer's positional embedding and class token are random and frozen (the papers' nets
  have non-affine or no normalization; our ViTs' LayerNorms have no affine parameters unless ``affine_bn``).
  The other reading, a random frozen network whose free-standing parameters (positional embedding, class
  token, norm scale and shift) are learned next to the masks, is the ``learn`` argument of their ``apply``:
  parameter names or globs (``["class_token", "pos_embedding", "*norm*"]``) that stay trainable;
  :func:`learned` lists them for the optimizer. A run sets it with ``ModelConfig.learn_extras``: every
  parameter outside the weight matrices and their biases (:func:`extras`) is learned. LaPerm and IMP train every parameter anyway (they permute or
  prune only the selected matrices and, with them, their biases).
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


def _check_names(label: str, selector: Selector, names: list[str], matched: bool, types: tuple[type[nn.Module], ...]) -> None:
    if selector is not None and not callable(selector) and not matched:
        allowed = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise ConfigError(label, selector, f"names or globs of {'/'.join(t.__name__ for t in types)} modules ({allowed})")


def select(model: nn.Module, types: tuple[type[nn.Module], ...], include: Selector = None, exclude: Selector = None) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every module of ``types`` in model order, restricted to ``include`` (None: all)
    and without ``exclude``. A selector that names no module of these types is an error, not a silent no-op."""
    candidates = [(n, m) for n, m in model.named_modules() if isinstance(m, types)]
    for label, selector in (("include", include), ("exclude", exclude)):
        _check_names(label, selector, [n for n, _ in candidates], any(matches(n, m, selector) for n, m in candidates), types)
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


# ---------------------------------------------------------------------------------------------- maskable tensors
MATRICES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MultiheadAttention, nn.Embedding)
_BIASES = {"weight": "bias", "in_proj_weight": "in_proj_bias"}  # the bias that goes with a weight matrix


def tensor_names(module: nn.Module) -> tuple[str, ...]:
    """The maskable tensors of ``module`` (see the module docstring)."""
    if isinstance(module, nn.MultiheadAttention):
        return ("in_proj_weight",) if module._qkv_same_embed_dim else ("q_proj_weight", "k_proj_weight", "v_proj_weight")
    return ("weight",)


def bias_name(parameter: str) -> str | None:
    """The bias belonging to the weight matrix ``parameter`` (``weight`` -> ``bias``, ``in_proj_weight`` ->
    ``in_proj_bias``); None for the separate q/k/v projections, which share one ``in_proj_bias``."""
    return _BIASES.get(parameter)


def tensor_id(name: str, module: nn.Module, parameter: str) -> str:
    """The layer name of a maskable tensor: the module's name if it has one maskable tensor, else
    ``"<module>.<parameter>"``."""
    return name if len(tensor_names(module)) == 1 else weight_key(name, parameter)


def select_tensors(model: nn.Module, types: tuple[type[nn.Module], ...], include: Selector = None,
                   exclude: Selector = None) -> list[tuple[str, nn.Module, str]]:
    """``(layer name, module, parameter name)`` of every maskable tensor of the modules of ``types``, in model
    order, restricted to ``include`` (None: all) and without ``exclude``; a glob or name matches the module's
    name or the layer name. A selector that names none is a ConfigError, not a silent no-op."""
    entries = [(tensor_id(n, m, p), n, m, p) for n, m in model.named_modules() if isinstance(m, types) for p in tensor_names(m)]

    def picked(entry: tuple[str, str, nn.Module, str], selector: Selector) -> bool:
        layer, name, module, _ = entry
        return matches(name, module, selector) or (layer != name and not callable(selector) and matches(layer, module, selector))

    names = list(dict.fromkeys(n for _, n, _, _ in entries))
    for label, selector in (("include", include), ("exclude", exclude)):
        _check_names(label, selector, names, any(picked(e, selector) for e in entries), types)
    return [(e[0], e[2], e[3]) for e in entries if (include is None or picked(e, include)) and not picked(e, exclude)]


def check_blocks(model: nn.Module, blocks: object) -> None:
    """A ConfigError naming ``share`` unless ``blocks`` names a module of ``model`` with two or more children."""
    try:
        container = model.get_submodule(blocks) if isinstance(blocks, str) else None
    except AttributeError:
        container = None
    if container is None or len(list(container.children())) < 2:
        raise ConfigError("share", blocks, f"the name of a module of {type(model).__name__} holding two or more alike blocks")


def share_blocks_(model: nn.Module, chosen: list[tuple[str, nn.Module, str]], blocks: str) -> list[str]:
    """Give every block of the container ``blocks`` (a module whose children are alike: a transformer's encoder
    blocks) the frozen weights of its first: each chosen tensor under ``blocks.<child>.`` takes the values of the
    same tensor under the first child (one shared random layer, each block its own mask or
    scores). Call it after the weights are drawn and before anything reads them. Returns the layers that now
    copy another; a ConfigError where ``blocks`` is not such a container or its blocks differ."""
    check_blocks(model, blocks)
    first_block = next(model.get_submodule(blocks).named_children())[0]
    by_name = {layer: (module, parameter) for layer, module, parameter in chosen}
    first, copied = f"{blocks}.{first_block}.", []
    for layer, (module, parameter) in by_name.items():
        if not layer.startswith(f"{blocks}.") or layer.startswith(first):
            continue
        source = first + layer[len(blocks) + 1 :].partition(".")[2]
        if source not in by_name:
            raise ConfigError("share", blocks, f"blocks whose weights are all chosen alike ({layer} has no {source})")
        target, value = _frozen(module, parameter), _frozen(*by_name[source])
        if target.shape != value.shape:
            raise ConfigError("share", blocks, f"alike blocks ({layer} is {tuple(target.shape)}, {source} {tuple(value.shape)})")
        with torch.no_grad():
            target.copy_(value)
        copied.append(layer)
    return copied


def _frozen(module: nn.Module, parameter: str) -> torch.Tensor:
    """The tensor a method keeps frozen: the one under the parametrization, or the plain parameter."""
    return original(module, parameter) if parametrize.is_parametrized(module, parameter) else tensor(module, parameter)


def locate(model: nn.Module, layer: str) -> tuple[str, nn.Module, str]:
    """``(module name, module, parameter name)`` of the maskable tensor called ``layer`` (:func:`tensor_id`)."""
    try:
        module = model.get_submodule(layer)
        if len(tensor_names(module)) == 1:
            return layer, module, tensor_names(module)[0]
    except AttributeError:
        pass
    prefix, _, parameter = layer.rpartition(".")
    return prefix, model.get_submodule(prefix), parameter


def tensor_key(model: nn.Module, layer: str) -> str:
    """State-dict key of the maskable tensor called ``layer`` (``"fc.weight"``, ``"attn.in_proj_weight"``)."""
    name, _, parameter = locate(model, layer)
    return weight_key(name, parameter)


def masker(model: nn.Module, layer: str, kind: type[ModuleT]) -> ModuleT:
    """The parametrization (a ``kind``) of the maskable tensor called ``layer``."""
    _, module, parameter = locate(model, layer)
    return parametrization(module, kind, parameter)


def freeze(model: nn.Module, learn: Selector = None) -> dict:
    """Freeze every parameter of ``model`` except those whose name (state-dict key) ``learn`` picks (names,
    globs or a predicate ``(name, parameter)``); a name or glob that picks none is a ConfigError. Returns what a
    method's tag records: ``{"learn": [names]}``, or nothing when ``learn`` is None."""
    named = list(model.named_parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    if learn is None:
        return {}
    chosen = [(n, p) for n, p in named if _picks(n, p, learn)]
    if not callable(learn) and not chosen:
        allowed = ", ".join(n for n, _ in named[:8]) + (", ..." if len(named) > 8 else "")
        raise ConfigError("learn", learn, f"names or globs of the model's parameters ({allowed})")
    for _, p in chosen:
        p.requires_grad_(True)
    return {"learn": [n for n, _ in chosen]}


def extras(model: nn.Module) -> list[str]:
    """Names of the parameters outside the maskable weight matrices and their biases (a transformer's positional
    embedding and class token, norm scale and shift): what ``learn_extras`` (``ModelConfig``) lets a supermask
    method learn next to its scores; empty for a network without any."""
    owned = {id(getattr(m, n)) for m in model.modules() if isinstance(m, MATRICES)
             for t in tensor_names(m) for n in (t, bias_name(t)) if n is not None and getattr(m, n, None) is not None}
    return [n for n, p in model.named_parameters() if id(p) not in owned]


def learn_of(model: nn.Module, cfg) -> list[str] | None:
    """The ``learn`` argument of a method's ``apply`` for the run ``cfg``: :func:`extras` with
    ``cfg.model.learn_extras``, else None (every parameter frozen)."""
    return (extras(model) or None) if cfg.model.learn_extras else None


def _picks(name: str, parameter: nn.Parameter, selector: Selector) -> bool:
    if callable(selector):
        return bool(selector(name, parameter))  # type: ignore[arg-type]
    patterns = [selector] if isinstance(selector, str) else list(selector or [])
    if not all(isinstance(p, str) for p in patterns):
        raise ConfigError("learn", selector, "a parameter name or glob, a list of them, or a predicate (name, parameter)")
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def learned(model: nn.Module) -> list[nn.Parameter]:
    """The parameters a method's ``apply(..., learn=...)`` left trainable next to its scores (names in the tag's
    ``learn``), in model order: what the optimizer gets besides the scores."""
    names = set((tag_of(model) or {}).get("learn") or [])
    return [p for n, p in model.named_parameters() if n in names]


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
        own = [tensor(*locate(model, n)[1:]) for n in names]
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
    return {n: original(*locate(model, n)[1:]) for n in names}


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
