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
generator they were drawn from, and loading draws them again. PyTorch does not promise the same random numbers
across releases and platforms, so the file also holds a fingerprint of each layer's draw (``drawn``: the frozen
weights, a slot machine's candidates, LaPerm's sorted initial rows) and the writer's torch version and platform;
loading checks every fingerprint and a draw that differs is a :class:`~randweights.errors.DrawDiffers` naming
the file, the layer and both torches, never a silently different network (files of versions 1 and 2 have no
fingerprints and load unchecked). A method applied with ``init=None`` (one's own or pretrained weights) stores a
fingerprint of those weights instead, and loading needs the model that holds them. Every other tensor of the
model (BatchNorm statistics, free biases) is stored as it is.

:func:`export` writes the network as a plain state dict, safetensors or ONNX file that needs no randweights to
load (the book's page "Share a subnetwork" has the three routes and the file layout byte for byte).

Each method declares how to pack and unpack its own state (its :class:`~randweights.methods.registry.Codec`
in the methods registry); this module does the file. :func:`save` checks, before writing, that loading the file gives the
model's tensors bit for bit.

The header also holds the shape of each tensor the method stored in its own form (``shapes``): loading into a
model whose tensor has another shape is a :class:`~randweights.errors.ConfigError` naming the layer (files
written before shapes were stored load as before).
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import methods, models
from .config import from_dict
from .errors import ConfigError, DrawDiffers
from .fsutil import write_atomic
from .methods import Codec, transform

FORMAT = "randweights-compact"
VERSION = 3  # 1: the frozen weights' source under "weights" (read as "frozen_weights"); 2: no "drawn", "platform"
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


def _drawn_from_seed(weights: dict) -> bool:
    """Whether the file draws the frozen weights again from a stored seed, generator state or run config (not
    one's own weights, which the model passed to :func:`load` holds)."""
    return any(k in weights for k in ("seed", "state", "config"))


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
    codec = _codec(method)
    drawn = codec.drawn(model) if codec.drawn is not None and _drawn_from_seed(weights) else {}
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
        "drawn": {name: transform.fingerprint([tensor]) for name, tensor in drawn.items()},
        **transform.runtime(),  # "torch" and "platform": who drew the weights the fingerprints name
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
    try:
        rebuilt = fill(scratch, header, arrays)
    except DrawDiffers as err:  # the model's frozen weights are not those its seed draws
        raise RoundTripError(f"compact.save: {err} (nothing written)") from None
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
    try:
        return fill(model, header, arrays).eval()
    except DrawDiffers as err:
        raise err.in_file(path) from None


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


# ---------------------------------------------------------------------------------------------- export
FORMATS = {"state_dict": (".pt", ".pth"), "safetensors": (".safetensors",), "onnx": (".onnx",)}
ONNX_RTOL, ONNX_ATOL = 1e-4, 1e-5  # onnxruntime's kernels sum in another order than torch's: close, not equal


class ExportFailed(RuntimeError):
    """The network could not be written as a file that computes what the model computes (the exporter failed, or
    the file read back gives other tensors or outputs); nothing was written."""


def format_of(path: str | os.PathLike, format: str | None = None) -> str:
    """The export format: ``format`` if given, else the one ``path``'s suffix names (``FORMATS``). A suffix
    that names another format than ``format`` is a ConfigError (a ``.onnx`` file holding a state dict)."""
    suffix = Path(path).suffix.lower()
    named = next((name for name, suffixes in FORMATS.items() if suffix in suffixes), None)
    if format is not None:
        if format not in FORMATS:
            raise ConfigError("format", format, "one of " + ", ".join(FORMATS))
        if named is not None and named != format:
            raise ConfigError("path", str(path), f"a name ending in {' or '.join(FORMATS[format])} for format {format} "
                                                 f"(or no such suffix); its suffix {suffix} names {named}")
        return format
    if named is None:
        raise ConfigError("path", str(path), "a name ending in " + ", ".join(s for v in FORMATS.values() for s in v)
                          + " (the format it names), or a format given")
    return named


def _module(format: str, name: str):
    """Import the optional package ``name`` a format needs, or a ConfigError saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError("format", format, f"a format whose packages are installed: {format} needs {name.split('.')[0]} "
                                            "(pip install 'randweights[export]')") from None


def _inputs(input_shape, device) -> torch.Tensor:
    return torch.randn((2, *input_shape), generator=torch.Generator().manual_seed(0)).to(device)


@torch.no_grad()
def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in evaluation mode; every module's mode is put back afterwards."""
    modes = {name: m.training for name, m in model.named_modules()}
    try:
        return model.eval()(x)
    finally:
        for name, m in model.named_modules():
            m.training = modes.get(name, m.training)


def export(model: nn.Module, path: str | os.PathLike, format: str | None = None, input_shape=None,
           eval_seed: int = 0) -> dict:
    """Write the subnetwork ``model`` (transformed by any method, or plain) as a plain network any PyTorch or ONNX
    runtime loads without randweights; return ``{"path", "format", "bytes", "check", "max_abs_diff"}``.

    The network written is :func:`plain_copy`: masks and selections multiplied into ordinary ``weight`` tensors.
    ``format`` (default: from ``path``'s suffix, ``FORMATS``): ``"state_dict"`` (``torch.save`` of a plain
    dict of tensors; ``torch.load(path, weights_only=True)`` reads it), ``"safetensors"``, or ``"onnx"`` (the
    graph too; needs ``input_shape``, the shape of one input without the batch axis, which runs of the store
    carry; the batch axis stays free). A Bernoulli supermask that samples its evaluation mask gets it fixed first,
    as :func:`save` does (``eval_seed``).

    Before anything is written the file is read back: every tensor must equal the model's bit for bit and, given
    an input shape, its outputs on a random batch must equal the model's exactly (state dict, safetensors) or
    within ``rtol=1e-4, atol=1e-5`` under onnxruntime (ONNX; without onnxruntime only ``onnx.checker`` runs).
    ``check`` says what was compared. A mismatch is an :class:`ExportFailed` and nothing is written. The file is written
    atomically (whole or not at all); an existing file is replaced."""
    transform.check_model(model)
    fmt = format_of(path, format)
    run = getattr(model, "randweights_run", None) or {}
    input_shape = input_shape if input_shape is not None else run.get("input_shape")
    if input_shape is not None:
        try:
            input_shape = tuple(int(n) for n in input_shape)
        except (TypeError, ValueError):
            raise ConfigError("input_shape", input_shape, "the shape of one input without the batch axis, e.g. (1, 28, 28)") from None
    if fmt == "onnx" and input_shape is None:
        raise ConfigError("input_shape", None, "the shape of one input without the batch axis, e.g. (1, 28, 28): ONNX "
                                               "records the graph the network runs on such an input")
    _codec(method_of(model)).pack(model, eval_seed=eval_seed)  # as save: a sampling Bernoulli mask is fixed first
    plain = plain_copy(model).eval()
    for p in plain.parameters():
        p.requires_grad_(False)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in plain.state_dict().items()}
    device = next((t.device for t in plain.state_dict().values()), torch.device("cpu"))
    x = _inputs(input_shape, device) if input_shape is not None else None
    expected = _outputs(model, x) if x is not None else None
    result = {"path": str(path), "format": fmt, "check": "exact" if x is not None else "tensors (no input_shape: outputs not compared)",
              "max_abs_diff": 0.0 if x is not None else None}
    if fmt == "onnx":  # onnxruntime runs on the CPU: a model elsewhere (TF32 convolutions) is compared on the CPU
        reference = expected.cpu() if device.type == "cpu" else _outputs(copy.deepcopy(plain).cpu(), x.cpu())
        data, result["check"], result["max_abs_diff"] = _onnx(plain.cpu(), x.cpu(), reference)
    else:
        data, loaded = _tensor_file(fmt, state)
        bad = [k for k in state if k not in loaded or loaded[k].dtype != state[k].dtype or not torch.equal(loaded[k], state[k])]
        if bad or set(loaded) != set(state):
            raise ExportFailed(f"{path}: the {fmt} file does not give back {', '.join(bad[:5]) or 'the same tensor names'} (nothing written)")
        if x is not None:
            reloaded = copy.deepcopy(plain)
            reloaded.load_state_dict(loaded, strict=True)
            got = _outputs(reloaded, x)
            if not torch.equal(got, expected):
                diff = float((got.float() - expected.float()).abs().max())
                raise ExportFailed(f"{path}: the network read back from the {fmt} file computes other outputs "
                                     f"(max |difference| {diff:.3g}; nothing written)")
    write_atomic(Path(path), data)
    result["bytes"] = len(data)
    return result


def _tensor_file(fmt: str, state: dict[str, torch.Tensor]) -> tuple[bytes, dict[str, torch.Tensor]]:
    """The bytes of a state dict or safetensors file holding ``state``, and the tensors read back from them."""
    if fmt == "safetensors":
        st = _module(fmt, "safetensors.torch")
        data = st.save(state, metadata={"format": "pt", "written_by": "randweights.compact.export"})
        return data, st.load(data)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    return data, torch.load(io.BytesIO(data), weights_only=True)


def _onnx(plain: nn.Module, x: torch.Tensor, expected: torch.Tensor) -> tuple[bytes, str, float | None]:
    """The ONNX file of ``plain`` (traced on ``x``, batch axis free), how it was checked and the largest output
    difference onnxruntime found (None without onnxruntime)."""
    _module("onnx", "onnxscript")
    onnx = _module("onnx", "onnx")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "model.onnx"
        try:
            program = torch.onnx.export(plain, (x,), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},),
                                        verbose=False)
        except Exception:  # a graph the batch axis cannot stay free in (a reshape to a fixed size): fixed batch
            try:
                program = torch.onnx.export(plain, (x,), dynamo=True, verbose=False)
            except Exception as err:
                first = (str(err).strip().splitlines() or [""])[0]
                raise ExportFailed(f"torch.onnx.export failed on the plain network: {type(err).__name__}: {first} "
                                   "(nothing written)") from err
        program.save(str(target))
        if any(p != target for p in Path(tmp).iterdir()):
            raise ConfigError("model", type(plain).__name__, "a network under 2 GB for ONNX export (its weights went to an external file)")
        data = target.read_bytes()
    onnx.checker.check_model(onnx.load_from_string(data))
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        return data, "onnx.checker (onnxruntime not installed: outputs not compared)", None
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
    diff = float((got.double() - expected.double()).abs().max())
    if got.shape != expected.shape or not torch.allclose(got, expected.to(got.dtype), rtol=ONNX_RTOL, atol=ONNX_ATOL):
        raise ExportFailed(f"the ONNX graph computes other outputs under onnxruntime (max |difference| {diff:.3g}, "
                             f"allowed rtol {ONNX_RTOL}, atol {ONNX_ATOL}; nothing written)")
    return data, "onnxruntime", diff


def export_file(source: str | os.PathLike, path: str | os.PathLike, format: str | None = None) -> dict:
    """:func:`export` the network of the compact file ``source`` (a run's ``compact.rwc``, or one :func:`save`
    wrote with a config) to ``path``: loaded (its drawn weights checked), then exported and checked."""
    source = Path(source)
    fmt = format_of(path, format)  # bad output names before any work
    if not source.is_file():
        raise ConfigError("source", str(source), "an existing compact file (.rwc)")
    try:
        header = read_header(source)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        raise ConfigError("source", str(source), f"a {FORMAT} file (written by randweights.compact.save)") from None
    if header.get("format") != FORMAT:
        raise ConfigError("source", str(source), f"a {FORMAT} file (written by randweights.compact.save)")
    model = load(source)
    return export(model, path, fmt, input_shape=header.get("input_shape"))
