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

Each method module says how to pack and unpack its own state (``pack(model)`` / ``unpack(model, header,
arrays)``); this module does the file. :func:`save` checks, before writing, that loading the file gives the
model's tensors bit for bit.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import ConfigError

FORMAT = "randweights-compact"
VERSION = 1
SUFFIX = ".rwc"
METHODS = ("edge-popup", "supermask-bernoulli", "slot", "laperm", "imp", "dense")
_MODULES = {"edge-popup": "edge_popup", "supermask-bernoulli": "supermask_bernoulli", "slot": "slot_machines",
            "laperm": "laperm", "imp": "pruning", "dense": None}


# ---------------------------------------------------------------------------------------------- bits
def index_bits(count: int) -> int:
    """Bits that index ``count`` things: ``ceil(log2 count)`` (0 for a single one)."""
    return max(0, math.ceil(math.log2(count))) if count > 1 else 0


def pack_bits(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """A boolean array as bits, 8 a byte (``np.packbits``, flat, big-endian bit order)."""
    return np.packbits(np.asarray(torch.as_tensor(mask).cpu(), dtype=bool).reshape(-1))


def unpack_bits(data: np.ndarray, shape) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: a boolean tensor of ``shape``."""
    n = int(np.prod(shape))
    return torch.from_numpy(np.unpackbits(data, count=n).astype(bool).reshape(tuple(shape)))


def pack_uint(values: torch.Tensor | np.ndarray, bits: int) -> np.ndarray:
    """Non-negative integers ``< 2**bits`` as a stream of ``bits`` bits each (least significant first)."""
    flat = np.asarray(torch.as_tensor(values).cpu(), dtype=np.int64).reshape(-1)
    if bits == 0:
        return np.zeros(0, dtype=np.uint8)
    if flat.size and (flat.min() < 0 or flat.max() >= 2**bits):
        raise ValueError(f"pack_uint: values outside [0, 2**{bits})")
    planes = (flat[:, None] >> np.arange(bits, dtype=np.int64)) & 1
    return np.packbits(planes.astype(bool).reshape(-1))


def unpack_uint(data: np.ndarray, bits: int, shape) -> torch.Tensor:
    """Inverse of :func:`pack_uint`: an int64 tensor of ``shape``."""
    n = int(np.prod(shape))
    if bits == 0:
        return torch.zeros(tuple(shape), dtype=torch.int64)
    planes = np.unpackbits(data, count=n * bits).reshape(n, bits).astype(np.int64)
    values = (planes << np.arange(bits, dtype=np.int64)).sum(1)
    return torch.from_numpy(values.reshape(tuple(shape)))


# ---------------------------------------------------------------------------------------------- helpers
def method_of(model: nn.Module) -> str:
    """The method that transformed ``model`` (its tag), ``"dense"`` for an untransformed model."""
    from .methods.layers import tag_of

    tag = tag_of(model)
    return tag["method"] if tag else "dense"


def _module(method: str):
    import importlib

    name = _MODULES[method]
    return importlib.import_module(f"randweights.methods.{name}") if name else None


def plain_copy(model: nn.Module) -> nn.Module:
    """The model as it computes in evaluation mode, without parametrizations or pruning hooks (a copy)."""
    module = _module(method_of(model))
    if module is not None and hasattr(module, "plain_copy"):
        return module.plain_copy(model)
    from .methods.layers import plain_copy as generic

    return generic(model)


def state_bytes(model: nn.Module) -> int:
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
    from .methods.layers import tag_of

    method = method_of(model)
    module = _module(method)
    tag = dict(tag_of(model) or {"method": "dense", "layers": []})
    if module is not None:
        settings, arrays, covered = module.pack(model, eval_seed=eval_seed)
        tag = dict(tag_of(model))  # pack may add to it (the Bernoulli evaluation seed)
    else:
        settings, arrays, covered = {}, {}, []
    weights = dict(tag.get("weights") or {})
    if "state" in weights:
        arrays["generator_state"] = np.asarray(torch.as_tensor(weights.pop("state")).cpu(), dtype=np.uint8)
        weights["state"] = "generator_state"
    plain = plain_copy(model)
    rest = [k for k in plain.state_dict() if k not in set(covered)]
    for key, value in plain.state_dict().items():
        if key in rest:
            arrays[f"rest/{key}"] = value.detach().cpu().numpy()
    header = {
        "format": FORMAT,
        "version": VERSION,
        "method": method,
        "layers": tag.get("layers", []),
        "settings": {k: v for k, v in tag.items() if k not in ("method", "layers", "weights")} | settings,
        "weights": weights,
        "covered": list(covered),
        "rest": rest,
        "torch": torch.__version__,
        "weight_count": _count_weights(plain),
    }
    return header, arrays


def _count_weights(model: nn.Module) -> int:
    from . import models

    return models.count_weights(model)


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
    from .runs import write_atomic

    path = Path(path)
    write_atomic(path, data)
    return summary(path, model)


def summary(path: str | os.PathLike, model: nn.Module | None = None) -> dict:
    """File size, weights, bits per weight (file bits over weights, seed included) and, given the model, the
    size of its dense fp32 state dict."""
    header = read_header(path)
    size = Path(path).stat().st_size
    out = {"compact_bytes": size, "weights": header["weight_count"],
           "bits_per_weight": 8 * size / max(1, header["weight_count"]), "method": header["method"]}
    if model is not None:
        out["dense_bytes"] = state_bytes(model)
    return out


def _archive(header: dict, arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("header.json", json.dumps(header, sort_keys=True))
        for name, array in arrays.items():
            blob = io.BytesIO()
            np.save(blob, np.asarray(array, order="C"), allow_pickle=False)  # (ascontiguousarray makes 0-d arrays 1-d)
            zf.writestr(f"{name}.npy", blob.getvalue())
    return buffer.getvalue()


def _check_round_trip(model: nn.Module, header: dict, arrays: dict) -> None:
    expected = plain_copy(model).state_dict()
    module = _module(header["method"])
    scratch = module.scratch_copy(model) if module is not None and hasattr(module, "scratch_copy") else plain_copy(model)
    rebuilt = fill(scratch, header, arrays)
    got = rebuilt.state_dict()
    bad = [k for k in expected if k not in got or got[k].shape != expected[k].shape or not torch.equal(got[k], expected[k])]
    if bad:
        raise RuntimeError(f"compact.save: the packed form does not reproduce {', '.join(bad[:5])} (nothing written)")


# ---------------------------------------------------------------------------------------------- load
def read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """Header and arrays of a compact file."""
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("header.json"))
        if header.get("format") != FORMAT:
            raise ConfigError("path", str(path), f"a {FORMAT} file (written by randweights.compact.save)")
        arrays = {n[:-4]: np.load(io.BytesIO(zf.read(n)), allow_pickle=False) for n in zf.namelist() if n.endswith(".npy")}
    return header, arrays


def read_header(path: str | os.PathLike) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("header.json"))


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
    from . import models
    from .config import from_dict

    cfg = from_dict(header["config"])
    shape, classes = header["input_shape"], header["num_classes"]
    if cfg.method.name == "laperm":  # its own builder (biases, input and logit wrappers), also for k = 0
        from .methods import laperm

        return laperm.build_initialized(cfg, shape, classes)
    m = cfg.model
    return models.build(m.arch, shape, classes, m.width, m.bias, m.affine_bn)


def fill(model: nn.Module, header: dict, arrays: dict[str, np.ndarray]) -> nn.Module:
    """Write the stored network into the plain ``model`` (in place)."""
    weights = dict(header.get("weights") or {})
    if isinstance(weights.get("state"), str):
        weights["state"] = arrays[weights["state"]]
    header = {**header, "weights": weights}
    module = _module(header["method"])
    if module is not None:
        module.unpack(model, header, arrays)
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


# ---------------------------------------------------------------------------------------------- the run store
RUN_FILE = "compact.rwc"


def save_for_run(model: nn.Module, folder: str | os.PathLike) -> dict:
    """Write a stored run's compact file (``<run folder>/compact.rwc``) and return the record's fields: its name,
    bytes, bits per weight and the dense fp32 state dict's bytes. A model that cannot be stored compactly gets
    ``compact_file: None`` and the reason (the run itself is kept)."""
    if not isinstance(model, nn.Module):  # a stand-in trainer (tests) returned no network
        return {}
    try:
        size = save(model.cpu(), Path(folder) / RUN_FILE)  # the bit-for-bit promise is on the CPU
    except (RuntimeError, ValueError, KeyError, ConfigError) as err:
        return {"compact_file": None, "compact_error": f"{type(err).__name__}: {err}"}
    return {"compact_file": RUN_FILE, "compact_bytes": size["compact_bytes"], "compact_bits_per_weight": size["bits_per_weight"],
            "dense_bytes": size["dense_bytes"]}


METHOD_LABELS = {"dense": "dense", "edge-popup": "Edge-Popup", "supermask-bernoulli": "Bernoulli supermask",
                 "slot": "Slot Machines", "laperm": "LaPerm", "imp": "IMP"}


def run_sizes(run_ids, root=None) -> list[dict]:
    """Per stored run (by id, from its record): method, architecture, compact and dense bytes, bits per weight.
    Runs stored before compact files existed (or without one) are left out."""
    from .runs import results_root

    out = []
    for run_id in dict.fromkeys(run_ids):
        path = results_root(root) / str(run_id) / "record.json"
        if not path.is_file():
            continue
        r = json.loads(path.read_text())
        if r.get("compact_file"):
            out.append({"run_id": run_id, "method": r["method"], "arch": r["arch"], "weights": r["weights"],
                        "compact_bytes": r["compact_bytes"], "dense_bytes": r["dense_bytes"],
                        "bits_per_weight": r["compact_bits_per_weight"]})
    return out


def size_table(run_ids, root=None):
    """One row per method and architecture: the median compact file against the dense fp32 state dict."""
    import pandas as pd

    rows = pd.DataFrame(run_sizes(run_ids, root))
    if rows.empty:
        return pd.DataFrame(columns=["method", "arch", "runs", "compact kB", "dense fp32 kB", "smaller by", "bits per weight"])
    table = rows.groupby(["method", "arch"], sort=False).agg(
        runs=("run_id", "size"), compact=("compact_bytes", "median"), dense=("dense_bytes", "median"),
        bits=("bits_per_weight", "median")).reset_index()
    table["method"] = table["method"].map(lambda m: METHOD_LABELS.get(m, m))
    return pd.DataFrame({"method": table["method"], "arch": table["arch"], "runs": table["runs"],
                         "compact kB": (table["compact"] / 1000).round(1), "dense fp32 kB": (table["dense"] / 1000).round(1),
                         "smaller by": (table["dense"] / table["compact"]).round(1), "bits per weight": table["bits"].round(2)})


def size_sentence(table) -> str:
    """One sentence for a chapter: each method's compact file against its dense fp32 state dict."""
    if table.empty:
        return "No run of this page has a compact file yet (they were stored before compact files existed)."
    parts = [f"{r['method']} on {r['arch']}: {r['compact kB']:g} kB against {r['dense fp32 kB']:g} kB "
             f"({r['smaller by']:g}x smaller, {r['bits per weight']:g} bits per weight)" for _, r in table.iterrows()]
    return "Stored compactly (seed + what the method found), the median file is: " + "; ".join(parts) + "."
