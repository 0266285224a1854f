"""The training service: one loop for every method (seeds, device, optimizer, schedules, precision, progress,
evaluation) and checkpoints. It knows nothing of the run store: :mod:`randweights.runs` composes the two."""

from __future__ import annotations

import hashlib
import io
import math
import os
import random
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

with warnings.catch_warnings():  # tqdm.auto warns when ipywidgets is missing; it then falls back to text bars
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from . import data as data_lib
from . import env, fsutil, methods, models
from .config import RunConfig, check_device
from .errors import ConfigError
from .fsutil import write_atomic


# ---------------------------------------------------------------------------------------------- environment
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(device: str | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA when present, else CPU. A device this machine lacks is a ConfigError."""
    check_device(device)
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def progress(iterable: Iterable, **kwargs):
    """A ``tqdm.auto`` bar, off when ``RANDWEIGHTS_PROGRESS=0`` (batch runs) and when output is not a terminal."""
    mode = env.progress_mode()
    disable = None if mode is None else not mode
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)


# ---------------------------------------------------------------------------------------------- checkpoints
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # 1: a bare torch.save; 2: a header line with the SHA-256 of the torch.save payload after it
_MAGIC = b"randweights-checkpoint "
_STATE_KEYS = ("format", "config", "phase", "epoch", "step", "model", "optimizer", "data_order", "rng", "history", "method")


class CheckpointDamaged(ValueError):
    """A checkpoint file that cannot be trusted (damaged, truncated, of another format, not a file)."""


def checkpoint_bytes(state: dict) -> bytes:
    """A checkpoint file's bytes: ``randweights-checkpoint 2 sha256:<hex>\n`` and the ``torch.save`` payload."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    return _MAGIC + f"{CHECKPOINT_FORMAT} sha256:{hashlib.sha256(payload).hexdigest()}\n".encode() + payload


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The state in a checkpoint file, after checking its SHA-256 and its fields; anything else is
    :class:`CheckpointDamaged` saying what is wrong (one line)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointDamaged("a folder, not a checkpoint file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointDamaged(f"cannot be read ({err.strerror or err})") from None
    head, newline, payload = data.partition(b"\n")
    if not head.startswith(_MAGIC) or not newline:
        raise CheckpointDamaged("not a randweights checkpoint with a digest (garbage, or written before checkpoints had one)")
    fields = head[len(_MAGIC):].decode("ascii", "replace").split()
    if len(fields) != 2 or fields[0] != str(CHECKPOINT_FORMAT):
        raise CheckpointDamaged(f"checkpoint format {fields[0] if fields else '?'!s}, not {CHECKPOINT_FORMAT}")
    if fields[1] != "sha256:" + hashlib.sha256(payload).hexdigest():
        raise CheckpointDamaged("its SHA-256 does not match its content (damaged or truncated)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds on a payload it cannot read
        raise CheckpointDamaged(f"its content does not load ({type(err).__name__})") from None
    if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS) or state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointDamaged("it lacks the fields of a checkpoint")
    return state


def rng_states() -> dict:
    """Every random state a run draws from: torch (CPU and CUDA), numpy, Python (weights_only-loadable types)."""
    numpy_state = np.random.get_state(legacy=True)
    if isinstance(numpy_state, dict):  # only if someone replaced numpy's global MT19937 with another bit generator
        raise TypeError("numpy's global random state is not MT19937's; a checkpoint cannot hold it")
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": random.getstate(),
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


class Checkpointer:
    """A run's training state at the end of every epoch, in one file (``<run folder>/checkpoint.pt``) replaced
    atomically: the phase (``"train"``, an IMP round, Slot Machines' finetuning ...) and epoch reached, model and
    optimizer state (LaPerm's included), the data-order generator, every global RNG, the history so far and the
    method's own state (``method_state``: a callable the method sets, returning a dict of tensors / plain data).

    A run built with a Checkpointer whose file exists resumes: the method reads :attr:`resumed_method_state`
    and skips finished phases, then :func:`fit` restores the rest and continues from the next epoch, so the
    result is bit for bit that of an uninterrupted run on a CPU. ``path=None``: saves nothing.

    The file carries the SHA-256 of its content (:func:`checkpoint_bytes`). One that is damaged, truncated, not
    a file, of another format or of other settings (``config``) is moved aside to ``checkpoint.pt.corrupt-<time>``
    with one warning line naming it, and the run starts from the beginning."""

    def __init__(self, path: str | os.PathLike | None, config: dict | None = None, keep: bool | None = None):
        self.path = Path(path) if path is not None else None
        self.config = config
        self.keep = env.keep_checkpoints() if keep is None else keep
        self.method_state: Callable[[], dict] | None = None
        self.resumed: dict | None = self._read()
        self.saves = 0
        self.selected: dict | None = None  # the best-validation epoch so far (select_epoch="validation"), restored

    def _read(self) -> dict | None:
        if self.path is None or not (self.path.exists() or self.path.is_symlink()):
            return None
        try:
            state = read_checkpoint(self.path)
            if self.config is not None and state["config"] != self.config:
                raise CheckpointDamaged("a checkpoint of other settings (another run's)")
        except CheckpointDamaged as err:
            self.discard(str(err))
            return None
        return state

    def discard(self, problem: str) -> None:
        """Move the checkpoint aside (one warning line naming it and ``problem``): the run starts over."""
        if self.path is not None:
            fsutil.move_aside(self.path, problem, "training this run from the start")
        self.resumed = None

    @property
    def resumed_phase(self) -> str | None:
        return self.resumed["phase"] if self.resumed is not None else None

    @property
    def resumed_method_state(self) -> dict | None:
        return self.resumed["method"] if self.resumed is not None else None

    def restore(self, phase: str, model: nn.Module, optimizer, generator: torch.Generator) -> tuple[int, list, int]:
        """Load the checkpoint of ``phase`` into the objects; return ``(epochs done, history, steps done)``
        (``(0, [], 0)`` when there is nothing to resume)."""
        if self.resumed is None:
            return 0, [], 0
        state, self.resumed = self.resumed, None
        if state["phase"] != phase:
            raise RuntimeError(f"{self.path}: checkpoint of phase {state['phase']!r}, resumed as {phase!r}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["data_order"])
        set_rng_states(state["rng"])
        self.selected = state.get("selected")
        return state["epoch"], list(state["history"]), state["step"]

    def save(self, phase: str, epoch: int, model: nn.Module, optimizer, generator: torch.Generator,
             history: list[dict], step: int, selected: dict | None = None) -> None:
        if self.path is None:
            return
        state = {
            "format": CHECKPOINT_FORMAT, "config": self.config, "phase": phase, "epoch": epoch, "step": step,
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "data_order": generator.get_state(),
            "rng": rng_states(), "history": history, "method": self.method_state() if self.method_state else None,
            "selected": selected,
        }
        write_atomic(self.path, checkpoint_bytes(state))
        self.saves += 1

    def finish(self) -> None:
        """The record is written: remove the checkpoint unless asked to keep it."""
        if self.path is not None and not self.keep:
            self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------- pieces
def make_optimizer(params, cfg: RunConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.train.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.train.momentum, weight_decay=cfg.weight_decay)


EXPONENTIAL_DECAY = 0.95  # per epoch
SGDR_RESTARTS = (25, 75)  # Slot Machines (Sec. 4): SGD with warm restarts at epochs 25 and 75
# The Keras CIFAR-10 ResNet example's step decay (LaPerm's ResNet50 notebook, `lr_scheduler`): the factor of the
# last (0-based) epoch bound that the epoch exceeds, 1 before the first. Fixed epochs, as in the notebook.
RESNET_STEPS = ((80, 1e-1), (120, 1e-2), (160, 1e-3), (180, 0.5e-3))
STEP_DROP, STEP_EVERY = 0.6, 10  # LaPerm's Conv2/4/13 notebooks: lr * 0.6 ** (epoch // 10)


def lr_at(epoch: int, epochs: int, base_lr: float, schedule: str) -> float:
    """Learning rate of ``epoch`` (0-based): cosine ``0.5 * (1 + cos(pi * e / E)) * lr``, exponential
    ``lr * 0.95 ** e`` (LaPerm's MNIST notebooks), constant, ``sgdr``: the cosine restarted at epochs 25 and
    75 (each cycle decays to 0 at the next restart, the last one at ``epochs``), ``resnet-step``: ``lr`` times
    0.1 for e > 80, 0.01 for e > 120, 0.001 for e > 160, 0.0005 for e > 180 (:data:`RESNET_STEPS`; LaPerm's
    ResNet50 notebook, called with the 0-based epoch as there), or ``step-0.6``: ``lr * 0.6 ** (e // 10)``
    (LaPerm's Conv2/4/13 notebooks)."""
    if schedule == "sgdr":
        bounds = [0, *(r for r in SGDR_RESTARTS if r < epochs), max(1, epochs)]
        start, end = next((a, b) for a, b in zip(bounds, bounds[1:]) if epoch < b or b == bounds[-1])
        return 0.5 * (1 + math.cos(math.pi * (epoch - start) / (end - start))) * base_lr
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs))) * base_lr
    if schedule == "exponential":
        return base_lr * EXPONENTIAL_DECAY**epoch
    if schedule == "resnet-step":
        factors = [factor for bound, factor in RESNET_STEPS if epoch > bound]
        return base_lr * factors[-1] if factors else base_lr
    if schedule == "step-0.6":
        return base_lr * STEP_DROP ** (epoch // STEP_EVERY)
    return base_lr


# ---------------------------------------------------------------------------------------------- precision
def autocast(precision: str, device: torch.device):
    """The forward pass's context: ``torch.autocast(device_type, bfloat16)`` for ``"bf16"`` (matmuls and convs in
    bf16, AMX on CPUs that have it), a no-op for ``"fp32"``. Parameters, gradients, optimizer state and every
    method tensor (scores, masks, candidates, permutations) stay fp32: autocast casts copies for the matmuls only."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def memory_format(model: nn.Module, precision: str) -> torch.memory_format:
    """Channels-last for conv nets under bf16 (oneDNN's bf16 convolutions want NHWC; measured in
    benchmarks/precision.py), contiguous otherwise."""
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return torch.channels_last if has_conv and precision == "bf16" else torch.contiguous_format


def to_device(x: torch.Tensor, device: torch.device, fmt: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """A batch on ``device``, in ``fmt`` where it is an image batch (4-D)."""
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=fmt) if x.dim() == 4 else x


class HostReads(TorchDispatchMode):
    """Counts the tensor reads on the host while active (``with HostReads() as reads: ...; reads.count``): every
    ``.item()``, ``int()``, ``float()`` or ``bool()`` of a tensor dispatches ``aten._local_scalar_dense``, and on a GPU
    each waits until the queue has drained. Not counted (``exempt``): torch.optim reading its own step counters,
    0-d tensors it keeps on the host on every device unless ``capturable`` or ``fused``, which wait for nothing."""

    def __init__(self):
        super().__init__()
        self.count = 0
        self.exempt = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            if args[0].dim() == 0 and _called_from_optim():
                self.exempt += 1
            else:
                self.count += 1
        return func(*args, **(kwargs or {}))


_TORCH_DIR = os.path.dirname(torch.__file__)
_OPTIM_DIR = os.path.dirname(torch.optim.__file__)


def _called_from_optim() -> bool:
    """Whether the innermost caller outside torch's dispatch machinery is torch.optim."""
    frame: types.FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_TORCH_DIR) and not frame.f_code.co_filename.startswith(_OPTIM_DIR):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_filename.startswith(_OPTIM_DIR)


class Tally:
    """Loss and correct predictions summed on the device and read once (:meth:`read`), so that a training step
    never waits for its GPU queue to drain. The loss is summed in float64 in the order a host loop adds
    ``loss.item() * len(y)``: the same numbers bit for bit."""

    def __init__(self, device: torch.device):
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, mean: bool = True) -> None:
        """One batch: ``loss`` its mean (``mean``) or summed cross-entropy, ``logits`` its predictions."""
        self.loss += loss.double() * len(y) if mean else loss.double()
        self.correct += (logits.argmax(1) == y).sum()
        self.seen += len(y)

    def read(self) -> tuple[float, float]:
        """Mean loss and accuracy (the one host read)."""
        n = max(1, self.seen)
        return float(self.loss) / n, int(self.correct) / n


@torch.no_grad()
def evaluate(model: nn.Module, split: data_lib.Split, device: torch.device, batch_size: int = 1000,
             precision: str = "fp32") -> dict:
    """Accuracy and mean cross-entropy over a split, in eval mode (the forward pass at ``precision``)."""
    model.eval()
    tally = Tally(device)
    fmt = memory_format(model, precision)
    for x, y in data_lib.batches(split, batch_size):
        x, y = to_device(x, device, fmt), y.to(device)
        with autocast(precision, device):
            logits = model(x)
        logits = logits.float()
        tally.add(F.cross_entropy(logits, y, reduction="sum"), logits, y, mean=False)
    loss, accuracy = tally.read()  # the batches cover the split: seen == len(split)
    return {"accuracy": accuracy, "loss": loss}


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: RunConfig,
    splits: data_lib.Splits,
    device: torch.device,
    epochs: int | None = None,
    on_step: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    checkpoint: Checkpointer | None = None,
    phase: str = "train",
    schedule_epochs: int | None = None,
    select: bool = True,
) -> list[dict]:
    """Train for ``epochs`` (default: the config's) with the configured schedule. Returns per-epoch history
    (mean train loss and accuracy, learning rate). ``on_step(global_step)`` runs after every optimizer step.
    With a ``checkpoint``, ``phase`` resumes from its file and is saved after every epoch (after ``on_epoch``).
    ``schedule_epochs``: the length the lr schedule is planned for (default ``epochs``; longer: stop early in it).
    With ``select_epoch="validation"`` (and ``select``) every epoch is evaluated on the validation images
    (``validation_accuracy`` in its history row) and the model ends holding the state of the first epoch with the
    best validation accuracy (the papers' early stopping; ``selected: true`` marks its row)."""
    epochs = cfg.train.epochs if epochs is None else epochs
    generator = torch.Generator().manual_seed(cfg.train.seed + 1)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    augment = data_lib.augmentation(cfg.data)
    history: list[dict] = []
    step = 0
    precision = cfg.train.precision
    fmt = memory_format(model, precision)
    first_epoch = 0
    selecting = select and cfg.train.select_epoch == "validation" and splits.validation is not None
    best: dict | None = None  # {"epoch", "accuracy", "state"} of the best validation epoch so far
    if checkpoint is not None:
        first_epoch, history, step = checkpoint.restore(phase, model, optimizer, generator)
        best = checkpoint.selected if selecting else None
    for epoch in progress(range(first_epoch, epochs), desc=cfg.method.name, leave=False):
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr_at(epoch, schedule_epochs or epochs, base, cfg.train.schedule)
        model.train()
        tally = Tally(device)
        for x, y in training_batches(cfg, splits, generator, augment):
            x, y = to_device(x, device, fmt), y.to(device, non_blocking=True)
            with autocast(precision, device):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step(step)
            tally.add(loss.detach(), logits.detach(), y)
        loss_mean, accuracy = tally.read()
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_mean, "train_accuracy": accuracy}
        if on_epoch is not None:
            on_epoch(epoch + 1, row)
        if selecting and splits.validation is not None:
            best = _select(model, splits.validation, device, precision, epoch + 1, row, best)
        history.append(row)
        if checkpoint is not None:
            checkpoint.save(phase, epoch + 1, model, optimizer, generator, history, step, best)
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = base
    if best is not None:
        model.load_state_dict(best["state"])
        for row in history:
            row["selected"] = row["epoch"] == best["epoch"]
    return history


def _select(model: nn.Module, validation: data_lib.Split, device: torch.device, precision: str, epoch: int, row: dict,
            best: dict | None) -> dict:
    """Evaluate the epoch on the validation images (into ``row``); the new best (a copy of the model's state) if
    it beats ``best`` strictly, else ``best``."""
    accuracy = evaluate(model, validation, device, precision=precision)["accuracy"]
    row["validation_accuracy"] = accuracy
    if best is not None and accuracy <= best["accuracy"]:
        return best
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return {"epoch": epoch, "accuracy": accuracy, "state": state}


def steps_per_epoch(cfg: RunConfig, train_images: int) -> int:
    """Optimizer steps in one epoch: ``steps_per_epoch`` when set, else one pass over the training images."""
    return cfg.train.epoch_steps(train_images)


def training_batches(cfg: RunConfig, splits: data_lib.Splits, generator: torch.Generator, augment):
    """One epoch of training batches: a shuffled pass, or ``steps_per_epoch`` batches drawn with replacement."""
    if cfg.train.sampling == "replacement":
        steps = steps_per_epoch(cfg, len(splits.train))
        return data_lib.sampled_batches(splits.train, cfg.train.batch_size, steps, generator, augment)
    return data_lib.batches(splits.train, cfg.train.batch_size, generator, augment)


def build_model(cfg: RunConfig, splits: data_lib.Splits) -> nn.Module:
    return models.build_for(cfg.model, splits.input_shape, splits.num_classes)


class Trainer:
    """The training loop as an object handed to a method with a flow of its own (``Method.run``): it calls
    these instead of importing this module. ``checkpoint``: the run's :class:`Checkpointer`, or None."""

    def __init__(self, checkpoint: Checkpointer | None = None):
        self.checkpoint = checkpoint

    def build_model(self, cfg: RunConfig, splits: data_lib.Splits) -> nn.Module:
        return build_model(cfg, splits)

    def make_optimizer(self, params, cfg: RunConfig) -> torch.optim.Optimizer:
        return make_optimizer(params, cfg)

    def fit(self, model: nn.Module, optimizer: torch.optim.Optimizer, cfg: RunConfig, splits: data_lib.Splits,
            device: torch.device, **options) -> list[dict]:
        """:func:`fit` (``options``: epochs, on_step, on_epoch, checkpoint, phase, schedule_epochs, select)."""
        return fit(model, optimizer, cfg, splits, device, **options)

    def evaluate(self, model: nn.Module, split: data_lib.Split, device: torch.device, batch_size: int = 1000,
                 precision: str = "fp32") -> dict:
        return evaluate(model, split, device, batch_size, precision)


def standard_run(cfg: RunConfig, splits: data_lib.Splits, device: torch.device, trainer: Trainer):
    """Build the model, let the method prepare it, train what it returns (all through ``trainer``, as the methods
    with a flow of their own do). For methods with ``prepare``."""
    method = methods.get(cfg.method.name)
    if method.prepare is None:
        raise TypeError(f"method {method.name!r} has a flow of its own (run), not prepare: train.run calls it")
    model = trainer.build_model(cfg, splits)
    params = method.prepare(model, cfg)
    model.to(device)
    history = trainer.fit(model, trainer.make_optimizer(params, cfg), cfg, splits, device, checkpoint=trainer.checkpoint)
    metrics = {"history": history}
    if method.summarize is not None:
        metrics.update(method.summarize(model))
    return model, metrics


def method_flow(cfg: RunConfig):
    """What trains ``cfg``: the method's own ``run``, or the shared loop after its ``prepare``."""
    method = methods.get(cfg.method.name)
    return method.run if method.run is not None else standard_run


def model_from_state(cfg: RunConfig, state: dict) -> nn.Module:
    """A run's model (as the method prepared it) holding a stored state dict (``model.pt``). For methods that
    train through ``prepare``; the others are rebuilt from their compact files."""
    method = methods.get(cfg.method.name)
    if method.prepare is None:
        raise ConfigError("run", cfg.run_id, f"a run with a compact file ({method.label} networks are rebuilt from those)")
    model = models.build_for(cfg.model, data_lib.SHAPES[cfg.data.dataset], data_lib.NUM_CLASSES[cfg.data.dataset])
    method.prepare(model, cfg)
    model.load_state_dict(state)
    return model


def run(cfg: RunConfig, device: str | None = None, checkpoint: Checkpointer | None = None) -> tuple[nn.Module, dict]:
    """Train one configuration and return ``(model, record)``: from scratch, or from ``checkpoint``'s file when
    it has one (saving it after every epoch). Does not touch the run store."""
    dev = pick_device(device)
    seed_everything(cfg.train.seed)
    splits = data_lib.to_device(data_lib.load(cfg.data), dev)  # CUDA: whole splits on the GPU, once
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # conv nets: autotuned kernels (fixed shapes per run)
    start = time.perf_counter()
    model, metrics = method_flow(cfg)(cfg, splits, dev, Trainer(checkpoint))
    train_seconds = time.perf_counter() - start
    # what randweights.compact needs to rebuild this run's network without data
    model.randweights_run = {"config": cfg.to_dict(), "input_shape": list(splits.input_shape), "num_classes": splits.num_classes}
    test = evaluate(model, splits.test, dev, precision=cfg.train.precision)
    record = {
        "run_id": cfg.run_id,
        **cfg.flat(),
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_seconds": train_seconds,
        "train_images": len(splits.train),
        "weight_count": models.count_weights(model),
        "device": str(dev),
        "torch": torch.__version__,
        **metrics,
    }
    if cfg.train.select_epoch == "validation":  # the epoch whose network the run keeps and reports (last phase's)
        last = metrics.get("finetune_history") or metrics.get("history") or []
        record["selected_epoch"] = next((r["epoch"] for r in last if r.get("selected")), None)
    if splits.validation is not None:
        val = evaluate(model, splits.validation, dev, precision=cfg.train.precision)
        record.update(validation_accuracy=val["accuracy"], validation_loss=val["loss"])
    record["config"] = cfg.to_dict()
    return model, record
