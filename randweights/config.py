"""Typed hyperparameters and the run key.

A run is fully described by a :class:`RunConfig`: what data, which model, which method (with its own typed
settings) and how to train. Following OpenLTH, a run is stored under a hash of the settings that differ from
their defaults, so adding a new field with a default keeps every stored run valid.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .errors import ConfigError, check_choice, check_range

DATASETS = ("mnist", "fashion-mnist", "cifar10")
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "constant", "exponential")


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist"
    subset: int | None = None  # class-balanced number of training images; None = all
    validation: int = 0  # images held out of the training split (class-balanced, fixed split seed)
    augment: bool = False  # random crop + flip (CIFAR only)

    def __post_init__(self):
        check_choice("dataset", self.dataset, DATASETS)
        if self.subset is not None:
            check_range("subset", self.subset, low=10)
        check_range("validation", self.validation, low=0)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "lenet-300-100"
    width: float = 1.0  # multiplies every hidden width / channel count
    bias: bool = False  # the supermask papers use none
    affine_bn: bool = False  # BatchNorm (where the arch has it) learns no scale or shift

    def __post_init__(self):
        from .models import ARCHS  # late import: models import nothing from here

        check_choice("arch", self.arch, ARCHS)
        check_range("width", self.width, low=0, low_open=True)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    precision: str = "fp32"  # "bf16": forward passes autocast to bfloat16 (train and evaluation); method tensors fp32
    lr: float | None = None  # None: the method's default
    momentum: float = 0.9
    weight_decay: float | None = None  # None: the method's default
    schedule: str = "cosine"  # per-epoch cosine decay to 0, no warmup (the Edge-Popup recipe)
    seed: int = 0

    def __post_init__(self):
        check_range("epochs", self.epochs, low=0)
        check_range("batch_size", self.batch_size, low=1)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("precision", self.precision, ("fp32", "bf16"))
        if self.lr is not None:
            check_range("lr", self.lr, low=0, low_open=True)
        check_range("momentum", self.momentum, low=0, high=1, high_open=True)
        if self.weight_decay is not None:
            check_range("weight_decay", self.weight_decay, low=0)
        check_choice("schedule", self.schedule, SCHEDULES)


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's settings. Subclasses set ``name`` and may override the default lr / weight decay."""

    name: ClassVar[str] = ""
    default_weight_decay: ClassVar[float] = 1e-4

    def default_lr(self, arch: str) -> float:
        return 0.1


@dataclass(frozen=True)
class RunConfig:
    method: MethodConfig
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

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
        """All settings, nested by section, with the method's name."""
        out = {name: dataclasses.asdict(section) for name, section in self.sections().items()}
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
                f.name: getattr(section, f.name)
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
    from .methods import method_config_class

    method_cls = method_config_class(method)
    base = RunConfig(method=method_cls())
    return base.replace(**settings) if settings else base


def from_dict(d: dict[str, Any]) -> RunConfig:
    """Inverse of :meth:`RunConfig.to_dict`."""
    from .methods import method_config_class

    method = dict(d["method"])
    cls = method_config_class(method.pop("name"))
    return RunConfig(
        method=cls(**method),
        data=DataConfig(**d.get("data", {})),
        model=ModelConfig(**d.get("model", {})),
        train=TrainConfig(**d.get("train", {})),
    )
