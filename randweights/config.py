"""Typed hyperparameters and the run key.

A run is fully described by a :class:`RunConfig`: what data, which model, which method (with its own typed
settings) and how to train. Following OpenLTH, a run is stored under a hash of the settings that differ from
their defaults, so adding a new field with a default keeps every stored run valid.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import numbers
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .errors import ConfigError, check_choice, check_range

DATASETS = ("mnist", "fashion-mnist", "cifar10", "imagenet32", "imagenet32-10", "imagenet32-mod10")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "constant", "exponential", "sgdr", "resnet-step", "step-0.6")
SAMPLINGS = ("epoch", "replacement")
NORMALIZATIONS = ("standardize", "unit", "mean-image")
SELECT_EPOCHS = ("last", "validation")
VALIDATION_SOURCES = ("train", "test")
SEED_LIMIT = 2**32  # seeds (every field whose name ends in "seed") lie in [0, 2**32)


# ---------------------------------------------------------------------------------------------- validation
class Settings:
    """Base of every settings dataclass. Before a class's own ``__post_init__`` checks (ranges, choices), every
    field is checked against its annotated type and normalized, so new fields are covered without code:

    * ``bool``: True/False only (numpy bools accepted); ``int``: integers only (no bools, no 1.5, no 500.0, no
      "3"), numpy integers become ``int``; ``float``: any finite real number (no NaN, no infinities, no bools,
      no strings), stored as ``float`` so ``1`` and ``1.0`` give one run_id; ``str``: strings only;
      ``X | None``: None or an X. Fields named ``*seed`` lie in [0, 2**32).

    The error is a :class:`ConfigError` naming the field, the same for the CLI, the Python API and notebooks."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is not None and not getattr(own, "_normalizes", False):

            def __post_init__(self, _own=own):
                normalize_fields(self)
                _own(self)

            __post_init__._normalizes = True
            cls.__post_init__ = __post_init__

    def __post_init__(self):
        normalize_fields(self)


@functools.cache
def _field_kinds(cls: type) -> dict[str, tuple[type, bool]]:
    """``{field: (type, None allowed)}`` from the class's annotations."""
    kinds = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
        allowed = [a for a in args if a is not type(None)] or [hint]
        kinds[name] = (allowed[0], type(None) in args)
    return kinds


def normalize_fields(settings: Any) -> None:
    """Check and normalize every field of a (frozen) settings dataclass in place; see :class:`Settings`."""
    cls: type = type(settings)
    kinds = _field_kinds(cls)
    for f in fields(settings):
        kind, optional = kinds[f.name]
        value = getattr(settings, f.name)
        normal = normalize_value(f.name, value, kind, optional)
        if normal is not value:
            object.__setattr__(settings, f.name, normal)


_WHAT = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}


def normalize_value(name: str, value: Any, kind: type, optional: bool = False) -> Any:
    """``value`` as a plain ``kind`` (see :class:`Settings`), or a ConfigError naming ``name``."""
    if kind not in _WHAT:
        return value
    if value is None:
        if optional:
            return None
        raise ConfigError(name, value, _WHAT[kind])
    what = _WHAT[kind] + (" or None" if optional else "")
    is_bool = isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b"
    if kind is bool:
        if not is_bool:
            raise ConfigError(name, value, what)
        return bool(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(name, value, what)
        return str(value)
    if is_bool or isinstance(value, (str, bytes)):
        raise ConfigError(name, value, what)
    if kind is int:
        if not isinstance(value, numbers.Integral):
            raise ConfigError(name, value, what)
        value = int(value)
        if name.endswith("seed"):
            if not 0 <= value < SEED_LIMIT:
                raise ConfigError(name, value, "an integer in [0, 2**32)")
        return value
    if not isinstance(value, numbers.Real):
        raise ConfigError(name, value, what)
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(name, value, what)
    return number


def check_device(device: str | None) -> None:
    """``None``/``"auto"``, ``"cpu"``, or a CUDA / MPS device that this machine has; else a ConfigError."""
    if device is None or device == "auto":
        return
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    allowed = "auto, cpu" + (f", cuda, cuda:0..cuda:{gpus - 1}" if gpus else "")
    if not isinstance(device, str):
        raise ConfigError("device", device, allowed)
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError("device", device, allowed) from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda" and torch.cuda.is_available() and (dev.index is None or dev.index < torch.cuda.device_count()):
        return
    if dev.type == "mps" and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return
    reason = "" if dev.type not in ("cuda", "mps") else f" (no {dev.type} device {device!r} on this machine)"
    raise ConfigError("device", device, allowed + reason)


# The architectures by name: randweights.models registers its builders here when it is imported (the package
# imports it), so ModelConfig can check a name without this module importing the models.
ARCHS: dict[str, Any] = {}


def register_arch(name: str, builder: Any) -> None:
    """Make ``name`` a valid ``ModelConfig.arch``, built by ``builder`` (see :mod:`randweights.models`)."""
    if name in ARCHS and ARCHS[name] is not builder:
        raise ValueError(f"architecture {name!r} registered twice")
    ARCHS[name] = builder


PRECISIONS = ("fp32", "bf16")  # bf16: forward pass autocast to bfloat16 (CPU AMX, CUDA); method tensors stay fp32


@dataclass(frozen=True)
class DataConfig(Settings):
    dataset: str = field(default="mnist", metadata={"help": "the dataset"})
    subset: int | None = field(default=None, metadata={"help": "class-balanced number of training images; none: all"})
    validation: int = field(default=0, metadata={"help": "validation images: held out of the training images (class-balanced, fixed split), or with validation_from=test the first ones of the test split"})
    validation_from: str = field(default="train", metadata={"help": "where the validation images come from: train (held out, not trained on) or test (the first `validation` test images, nothing held out: the FCN paper's code)"})
    augment: bool = field(default=False, metadata={"help": "random crop and horizontal flip (CIFAR-10 only)"})
    crop: bool = field(default=True, metadata={"help": "with augment: the random crop (4-pixel padding); false: horizontal flips only"})
    random_affine: bool = field(default=False, metadata={"help": "random rotation +-10 deg, zoom +-10 %, shift +-10 % (LaPerm's Conv7 notebook)"})
    normalize: str = field(default="standardize", metadata={"help": "input pixels: standardize (per-channel mean and std), unit (in [0, 1], as ToTensor), mean-image (minus the training images' mean image)"})

    def __post_init__(self):
        check_choice("dataset", self.dataset, DATASETS)
        if self.subset is not None:
            check_range("subset", self.subset, low=10)
        check_range("validation", self.validation, low=0)  # the upper limit depends on the dataset: data.load
        check_choice("normalize", self.normalize, NORMALIZATIONS)
        check_choice("validation_from", self.validation_from, VALIDATION_SOURCES)


@dataclass(frozen=True)
class ModelConfig(Settings):
    arch: str = field(default="lenet-300-100", metadata={"help": "the network architecture"})
    width: float = field(default=1.0, metadata={"help": "multiplier of every hidden width and channel count"})
    bias: bool = field(default=False, metadata={"help": "give Linear and Conv2d layers a bias (the supermask papers use none)"})
    affine_bn: bool = field(default=False, metadata={"help": "let BatchNorm learn a scale and shift"})
    bn_momentum: float = field(default=0.1, metadata={"help": "BatchNorm running-statistics momentum, PyTorch's convention (a TensorFlow decay d is 1 - d: the FCN paper's 0.99 is 0.01)"})
    bn_first_batch: bool = field(default=False, metadata={"help": "BatchNorm running statistics start from the first training batch's moments (after every reset: each IMP round), not mean 0 / variance 1 (the FCN paper's code)"})
    learn_extras: bool = field(default=False, metadata={"help": "supermask methods (Edge-Popup, Bernoulli, Slot Machines) also learn the parameters outside the weight matrices and their biases: a transformer's positional embedding and class token, norm scale and shift (default: random and frozen, as every weight)"})

    def __post_init__(self):
        check_choice("arch", self.arch, ARCHS)
        check_range("width", self.width, low=0, low_open=True)
        check_range("bn_momentum", self.bn_momentum, low=0, high=1, low_open=True)


@dataclass(frozen=True)
class TrainConfig(Settings):
    epochs: int = field(default=10, metadata={"help": "passes over the training images"})
    batch_size: int = field(default=128, metadata={"help": "images per step"})
    optimizer: str = field(default="sgd", metadata={"help": "the optimizer of the trained parameters"})
    lr: float | None = field(default=None, metadata={"help": "learning rate; none: the method's default"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float | None = field(default=None, metadata={"help": "L2 weight decay; none: the method's default"})
    schedule: str = field(default="cosine", metadata={"help": "learning-rate schedule (cosine: per-epoch decay to 0, no warmup, the Edge-Popup recipe; exponential: 0.95 per epoch; sgdr: cosine restarted at epochs 25 and 75; resnet-step: x0.1 after epoch 80, 0.01 after 120, 0.001 after 160, 0.0005 after 180, the Keras CIFAR ResNet; step-0.6: x0.6 every 10 epochs)"})
    seed: int = field(default=0, metadata={"help": "random seed of the initialization, the data order and the method"})
    precision: str = field(default="fp32", metadata={"help": "bf16: autocast the forward pass to bfloat16 (train and evaluation), conv nets channels-last; method tensors stay fp32"})
    sampling: str = field(default="epoch", metadata={"help": "each epoch one shuffled pass (epoch), or every batch drawn at random (replacement)"})
    steps_per_epoch: int | None = field(default=None, metadata={"help": "steps per epoch with sampling=replacement; none: ceil(training images / batch size)"})
    select_epoch: str = field(default="last", metadata={"help": "the network a run keeps and reports: the last epoch's, or the epoch's with the best validation accuracy (needs validation > 0)"})

    def __post_init__(self):
        check_range("epochs", self.epochs, low=0)
        check_range("batch_size", self.batch_size, low=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.lr is not None:
            check_range("lr", self.lr, low=0, low_open=True)
        check_range("momentum", self.momentum, low=0, high=1, high_open=True)
        if self.weight_decay is not None:
            check_range("weight_decay", self.weight_decay, low=0)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("sampling", self.sampling, SAMPLINGS)
        check_choice("select_epoch", self.select_epoch, SELECT_EPOCHS)
        if self.steps_per_epoch is not None:
            check_range("steps_per_epoch", self.steps_per_epoch, low=1)
            if self.sampling != "replacement":
                raise ConfigError("steps_per_epoch", self.steps_per_epoch, "None unless sampling='replacement'")

    def epoch_steps(self, train_images: int) -> int:
        """Optimizer steps in one epoch: ``steps_per_epoch`` when set, else one pass over ``train_images``."""
        return self.steps_per_epoch or math.ceil(train_images / self.batch_size)


@dataclass(frozen=True)
class MethodConfig(Settings):
    """Base of every method's settings. Subclasses set ``name`` and may override the default lr / weight decay.
    A subclass with a name is registered here by that name (:func:`method_config_class`); the methods package
    imports every method, so importing ``randweights`` registers them all."""

    name: ClassVar[str] = ""
    default_weight_decay: ClassVar[float] = 1e-4

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name", "")
        if name:
            if name in METHOD_CONFIGS and METHOD_CONFIGS[name].__qualname__ != cls.__qualname__:
                raise ValueError(f"two method configs named {name!r}: {METHOD_CONFIGS[name].__qualname__}, {cls.__qualname__}")
            METHOD_CONFIGS[name] = cls

    def default_lr(self, arch: str) -> float:
        return 0.1

    def check_model(self, model: ModelConfig) -> None:
        """A ConfigError where a setting of the method does not fit ``model`` (checked by RunConfig)."""


METHOD_CONFIGS: dict[str, type[MethodConfig]] = {}  # name -> config class, filled as the method modules load


def method_config_class(name: str) -> type[MethodConfig]:
    """The config class of the method called ``name``; an unknown name is a ConfigError naming ``method``."""
    if name not in METHOD_CONFIGS:
        raise ConfigError("method", name, "one of " + ", ".join(METHOD_CONFIGS))
    return METHOD_CONFIGS[name]


def stored_name(f: dataclasses.Field) -> str:
    """The name a setting is stored and hashed under: its field name, or ``metadata["stored_as"]`` for a field
    renamed after runs were stored under its old name (so their run ids stay the same)."""
    return f.metadata.get("stored_as", f.name)


@dataclass(frozen=True)
class RunConfig:
    method: MethodConfig
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        for name, cls in (("method", MethodConfig), ("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
            if not isinstance(getattr(self, name), cls) or (name == "method" and not self.method.name):
                raise ConfigError(name, getattr(self, name), f"a {cls.__name__}" + (" of a method (make_config)" if name == "method" else ""))
        self.method.check_model(self.model)
        if self.train.select_epoch == "validation" and not self.data.validation:
            raise ConfigError("select_epoch", "validation", "last unless validation > 0 (no images to choose the epoch on)")

    @property
    def lr(self) -> float:
        return self.method.default_lr(self.model.arch) if self.train.lr is None else self.train.lr

    @property
    def weight_decay(self) -> float:
        wd = self.train.weight_decay
        return self.method.default_weight_decay if wd is None else wd

    def sections(self) -> dict[str, Any]:
        return {"method": self.method, "data": self.data, "model": self.model, "train": self.train}

    def to_dict(self) -> dict[str, Any]:
        """All settings, nested by section (under their stored names), with the method's name."""
        out = {name: {stored_name(f): getattr(section, f.name) for f in fields(section)} for name, section in self.sections().items()}
        out["method"] = {"name": self.method.name, **out["method"]}
        return out

    def flat(self) -> dict[str, Any]:
        """All settings in one flat dict (names are unique across sections), as the CLI prints them."""
        out: dict[str, Any] = {"method": self.method.name}
        for section in (self.method, self.data, self.model, self.train):
            out.update(dataclasses.asdict(section))
        return out

    def non_default(self) -> dict[str, Any]:
        """The settings that differ from their defaults, nested by section; this is what the key hashes."""
        out: dict[str, Any] = {"method": {"name": self.method.name}}
        for name, section in self.sections().items():
            changed = {
                stored_name(f): getattr(section, f.name)
                for f in fields(section)
                if getattr(section, f.name) != _default_of(f)
            }
            out.setdefault(name, {}).update(changed)
        return {k: v for k, v in out.items() if v}

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.non_default(), sort_keys=True, separators=(",", ":"))
        return f"{self.method.name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def replace(self, **changes) -> RunConfig:
        """Copy with flat field changes routed to the section that owns each name (``keep_fraction=0.3``)."""
        sections = dict(self.sections())
        for key, value in changes.items():
            owner = _owner(sections, key)
            sections[owner] = dataclasses.replace(sections[owner], **{key: value})
        return RunConfig(**sections)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _owner(sections: dict[str, Any], key: str) -> str:
    for name, section in sections.items():
        if key in {f.name for f in fields(section)}:
            return name
    allowed = sorted({f.name for s in sections.values() for f in fields(s)})
    raise ConfigError("setting", key, "one of " + ", ".join(allowed))


def make_config(method: str, **settings) -> RunConfig:
    """Build a RunConfig from a method name and flat settings, e.g. ``make_config("edge-popup", keep_fraction=0.3,
    arch="conv4", dataset="cifar10", epochs=5)``."""
    method_cls = method_config_class(method)
    base = RunConfig(method=method_cls())
    return base.replace(**settings) if settings else base


def _section(cls: type, stored: dict[str, Any]) -> Any:
    """``cls`` from its stored dict (stored names mapped back to field names)."""
    names = {stored_name(f): f.name for f in fields(cls)}
    return cls(**{names.get(k, k): v for k, v in stored.items()})


def from_dict(d: dict[str, Any]) -> RunConfig:
    """Inverse of :meth:`RunConfig.to_dict`."""
    method = dict(d["method"])
    cls = method_config_class(method.pop("name"))
    return RunConfig(
        method=_section(cls, method),
        data=_section(DataConfig, d.get("data", {})),
        model=_section(ModelConfig, d.get("model", {})),
        train=_section(TrainConfig, d.get("train", {})),
    )
