"""Compact subnetworks: one small file for a network found by any method, a random seed plus a few bits a weight.

The file (``.rwc``) is a deflated zip archive (packed bits hardly compress; headers and generator states do):
``header.json`` and numpy arrays (``.npy``). The header names the method,
its settings (keep fraction, K, ...), the layers it transformed, where the frozen random weights come from and,
for runs of the store, the run's config, input shape and class count. The arrays hold what the method found:

==========================  =========================================================================
method                      stored per transformed layer
==========================  =========================================================================
Edge-Popup                  the top-k mask, 1 bit a weight (``np.packbits``)
Bernoulli supermask         the mask it evaluates with (drawn from a stored seed), 1 bit a weight
Slot Machines               the chosen candidate, ``ceil(log2 K)`` bits a weight
LaPerm                      each weight's rank in its row, ``ceil(log2 fan_in)`` bits a weight
IMP                         the mask (1 bit a weight) and the kept values (fp32)
dense / anything else       every value (fp32)
==========================  =========================================================================

The frozen random weights themselves are not stored: the file holds the seed (or the 5 kB state) of the
generator they were drawn from, and loading draws them again. A method applied with ``init=None`` (one's own
or pretrained weights) stores a fingerprint of those weights instead, and loading needs the model that holds
them. Every other tensor of the model (BatchNorm statistics, free biases) is stored as it is.

Each method declares how to pack and unpack its own state (its :class:`~randweights.methods.registry.Codec`
in the methods registry); this module does the file. :func:`save` checks, before writing, that loading the file gives the
model's tensors bit for bit.

The header also holds the shape of each tensor the method stored in its own form (``shapes``): loading into a
model whose tensor has another shape is a :class:`~randweights.errors.ConfigError` naming the layer (files
written before shapes were stored load as before).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import methods, models
from .config import from_dict
from .errors import ConfigError
from .fsutil import write_atomic
from .methods import Codec, transform

FORMAT = "randweights-compact"
VERSION = 2  # 1: the frozen weights' source under "weights" (read as "frozen_weights")
SUFFIX = ".rwc"


class RoundTripError(RuntimeError):
    """The packed form of a model does not give its tensors back bit for bit (nothing was written)."""


# ---------------------------------------------------------------------------------------------- helpers
def method_of(model: nn.Module) -> str:
    """The method that transformed ``model`` (its tag), ``"dense"`` for an untransformed model."""
    tag = transform.tag_of(model)
    return tag["method"] if tag else "dense"


def regenerates_weights(model: nn.Module) -> bool:
    """Whether ``model``'s compact file draws its frozen weights again from a seed or generator state (Edge-Popup,
    Bernoulli, Slot Machines, LaPerm), rather than storing them (dense, IMP) or checking one's own (``init=None``)."""
    weights = (transform.tag_of(model) or {}).get("frozen_weights")
    return bool(weights) and "fingerprint" not in weights


def _codec(method: str) -> Codec:
    return methods.get(method).codec


def plain_copy(model: nn.Module) -> nn.Module:
    """The model as it computes in evaluation mode, without parametrizations or pruning hooks (a copy)."""
    codec = _codec(method_of(model))
    return codec.plain_copy(model) if codec.plain_copy is not None else transform.plain_copy(model)


def dense_file_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save`` of the plain model's state dict in fp32: the dense file a compact one replaces."""
    plain = plain_copy(model)
    state = {k: (v.float() if v.is_floating_point() else v).detach().cpu() for k, v in plain.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return len(buffer.getvalue())


def _run_info(model: nn.Module, config, input_shape, num_classes) -> dict:
    run = dict(getattr(model, "randweights_run", None) or {})
    if config is not None:
        run["config"] = config if isinstance(config, dict) else config.to_dict()
    if input_shape is not None:
        run["input_shape"] = list(input_shape)
    if num_classes is not None:
        run["num_classes"] = int(num_classes)
    return run


# ---------------------------------------------------------------------------------------------- save
def pack(model: nn.Module, eval_seed: int = 0) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and arrays of ``model``'s compact form (nothing written)."""
    method = method_of(model)
    settings, arrays, covered = _codec(method).pack(model, eval_seed=eval_seed)
    tag = dict(transform.tag_of(model) or {"method": "dense", "layers": []})  # after pack: it may add to the tag
    weights = dict(tag.get("frozen_weights") or {})
    if "state" in weights:
        arrays["generator_state"] = np.asarray(torch.as_tensor(weights.pop("state")).cpu(), dtype=np.uint8)
        weights["state"] = "generator_state"
    plain = plain_copy(model)
    shapes = {k: list(v.shape) for k, v in plain.state_dict().items() if k in set(covered)}
    rest = [k for k in plain.state_dict() if k not in set(covered)]
    for key, value in plain.state_dict().items():
        if key in rest:
            arrays[f"rest/{key}"] = value.detach().cpu().numpy()
    header = {
        "format": FORMAT,
        "version": VERSION,
        "method": method,
        "layers": tag.get("layers", []),
        "settings": {k: v for k, v in tag.items() if k not in ("method", "layers", "frozen_weights")} | settings,
        "frozen_weights": weights,
        "covered": list(covered),
        "shapes": shapes,
        "rest": rest,
        "torch": torch.__version__,
        "weight_count": models.count_weights(plain),
    }
    return header, arrays


def save(model: nn.Module, path: str | os.PathLike, config=None, input_shape=None, num_classes=None,
         eval_seed: int = 0, check: bool = True) -> dict:
    """Write ``model`` (transformed by any method, or plain) compactly to ``path``; return its size summary.

    ``config`` (a RunConfig or its dict), ``input_shape`` and ``num_classes`` let :func:`load` rebuild a
    built-in architecture without a model; runs of the store carry them already. A Bernoulli supermask that
    samples its evaluation mask gets it fixed first (:func:`~randweights.methods.supermask_bernoulli.fix_eval_mask`
    with ``eval_seed``), so the model and its file agree from then on. With ``check`` the file is loaded back
    (in memory) before it is written and must give the model's tensors bit for bit."""
    header, arrays = pack(model, eval_seed)
    header.update(_run_info(model, config, input_shape, num_classes))
    data = _archive(header, arrays)
    if check:
        _check_round_trip(model, header, arrays)
    path = Path(path)
    write_atomic(path, data)
    return summary(path, model)


def summary(path: str | os.PathLike, model: nn.Module | None = None) -> dict:
    """File size, weights, bits per weight (file bits over weights, seed included) and, given the model, the
    size of its dense fp32 state dict."""
    header = read_header(path)
    size = Path(path).stat().st_size
    out = {"compact_bytes": size, "weight_count": header["weight_count"],
           "bits_per_weight": 8 * size / max(1, header["weight_count"]), "method": header["method"]}
    if model is not None:
        out["dense_bytes"] = dense_file_bytes(model)
    return out


def _archive(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    def member(name: str) -> zipfile.ZipInfo:  # a fixed time: one network, one file, byte for byte (its SHA-256)
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
        return info

    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member("header.json"), json.dumps(header, sort_keys=True))
        for name, array in arrays.items():
            blob = io.BytesIO()
            np.save(blob, np.asarray(array, order="C"), allow_pickle=False)  # (ascontiguousarray makes 0-d arrays 1-d)
            zf.writestr(member(f"{name}.npy"), blob.getvalue())
    return buffer.getvalue()


def _check_round_trip(model: nn.Module, header: dict, arrays: dict) -> None:
    expected = plain_copy(model).state_dict()
    codec = _codec(header["method"])
    scratch = codec.scratch_copy(model) if codec.scratch_copy is not None else plain_copy(model)
    rebuilt = fill(scratch, header, arrays)
    got = rebuilt.state_dict()
    bad = [k for k in expected if k not in got or got[k].shape != expected[k].shape or not torch.equal(got[k], expected[k])]
    if bad:
        raise RoundTripError(f"compact.save: the packed form does not reproduce {', '.join(bad[:5])} (nothing written)")


# ---------------------------------------------------------------------------------------------- load
def read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Header and arrays of a compact file."""
    with zipfile.ZipFile(path) as zf:
        header = _upgrade(json.loads(zf.read("header.json")))
        if header.get("format") != FORMAT:
            raise ConfigError("path", str(path), f"a {FORMAT} file (written by randweights.compact.save)")
        arrays = {n[:-4]: np.load(io.BytesIO(zf.read(n)), allow_pickle=False) for n in zf.namelist() if n.endswith(".npy")}
    return header, arrays


def read_header(path: str | os.PathLike) -> dict:
    with zipfile.ZipFile(path) as zf:
        return _upgrade(json.loads(zf.read("header.json")))


def _upgrade(header: dict) -> dict:
    """A header of an older version in today's names (version 1 called ``frozen_weights`` ``weights``)."""
    if header.get("version") == 1 and "weights" in header:
        header = {**header, "frozen_weights": header["weights"]}
        del header["weights"]
    return header


def load(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """The network stored in ``path`` as a plain torch model in evaluation mode.

    Without ``model`` it is rebuilt from the stored config (built-in architectures). With ``model`` (a plain,
    untransformed model of the same architecture; for methods applied with ``init=None``, the model holding the
    weights they were applied to) that model is filled in place and returned."""
    header, arrays = read(path)
    if model is None:
        model = build(header)
    return fill(model, header, arrays).eval()


def build(header: dict) -> nn.Module:
    """The plain model of a stored run (from its config), at its initialization."""
    if "config" not in header or "input_shape" not in header:
        raise ConfigError("model", None, "a model of the stored architecture: this file holds no run config")
    cfg = from_dict(header["config"])
    shape, classes = header["input_shape"], header["num_classes"]
    codec = methods.get(cfg.method.name).codec  # the run's method, also where the file says "dense" (LaPerm, k = 0)
    return codec.build(cfg, shape, classes) if codec.build is not None else models.build_for(cfg.model, shape, classes)


def fill(model: nn.Module, header: dict, arrays: dict[str, np.ndarray]) -> nn.Module:
    """Write the stored network into the plain ``model`` (in place)."""
    weights = dict(header.get("frozen_weights") or {})
    if isinstance(weights.get("state"), str):
        weights["state"] = arrays[weights["state"]]
    header = {**header, "frozen_weights": weights}
    _check_shapes(model, header)
    _codec(header["method"]).unpack(model, header, arrays)
    state = model.state_dict()
    missing = [k for k in state if k not in header["rest"] and k not in header["covered"]]
    unknown = [k for k in header["rest"] if k not in state]
    if missing or unknown:
        raise ConfigError("model", type(model).__name__, f"the stored architecture (missing {missing[:3]}, unexpected {unknown[:3]})")
    with torch.no_grad():
        for key in header["rest"]:
            value = torch.from_numpy(np.array(arrays[f"rest/{key}"]))
            target = state[key]
            if target.shape != value.shape:
                raise ConfigError("model", type(model).__name__, f"the stored architecture ({key}: {tuple(value.shape)})")
            target.copy_(value)
    return model


def _check_shapes(model: nn.Module, header: dict) -> None:
    """Each tensor the file stores in its method's form has the shape it had when saved (``shapes``; absent in
    older files). A 0-size tensor is a stub the codec replaces (a slot machine's), not checked."""
    shapes = header.get("shapes")
    if not isinstance(shapes, dict):
        return
    state = model.state_dict()
    for key, shape in shapes.items():
        if key not in state:
            raise ConfigError("model", type(model).__name__, f"the stored architecture: it has no layer {key} (shape {tuple(shape)})")
        got = tuple(state[key].shape)
        if state[key].numel() > 0 and got != tuple(shape):
            raise ConfigError("model", type(model).__name__, f"the stored architecture: layer {key} is {tuple(shape)} in the file, {got} in the model")
