"""One training loop for every method: seeds, device, optimizer, cosine schedule, progress, evaluation."""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

with warnings.catch_warnings():  # tqdm.auto warns when ipywidgets is missing; it then falls back to text bars
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from . import data as data_lib
from . import models
from .config import RunConfig, check_device
from .methods import method_module


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
    setting = os.environ.get("RANDWEIGHTS_PROGRESS", "auto")
    disable = {"0": True, "1": False}.get(setting, None)
    return tqdm(iterable, disable=disable, dynamic_ncols=True, **kwargs)


# ---------------------------------------------------------------------------------------------- pieces
def make_optimizer(params, cfg: RunConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.train.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.train.momentum, weight_decay=cfg.weight_decay)


EXPONENTIAL_DECAY = 0.95  # per epoch


def lr_at(epoch: int, epochs: int, base_lr: float, schedule: str) -> float:
    """Learning rate of ``epoch`` (0-based): cosine ``0.5 * (1 + cos(pi * e / E)) * lr``, exponential
    ``lr * 0.95 ** e`` (LaPerm's MNIST notebooks) or constant."""
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * epoch / max(1, epochs))) * base_lr
    if schedule == "exponential":
        return base_lr * EXPONENTIAL_DECAY**epoch
    return base_lr


@torch.no_grad()
def evaluate(model: nn.Module, split: data_lib.Split, device: torch.device, batch_size: int = 1000) -> dict:
    """Accuracy and mean cross-entropy over a split, in eval mode."""
    model.eval()
    correct, loss_sum = 0, 0.0
    for x, y in data_lib.batches(split, batch_size):
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    n = max(1, len(split))
    return {"accuracy": correct / n, "loss": loss_sum / n}


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: RunConfig,
    splits: data_lib.Splits,
    device: torch.device,
    epochs: int | None = None,
    on_step: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Train for ``epochs`` (default: the config's) with the configured schedule. Returns per-epoch history
    (mean train loss and accuracy, learning rate). ``on_step(global_step)`` runs after every optimizer step."""
    epochs = cfg.train.epochs if epochs is None else epochs
    generator = torch.Generator().manual_seed(cfg.train.seed + 1)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    augment = cfg.data.augment and cfg.data.dataset == "cifar10"
    history, step = [], 0
    for epoch in progress(range(epochs), desc=cfg.method.name, leave=False):
        for group, base in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr_at(epoch, epochs, base, cfg.train.schedule)
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for x, y in data_lib.batches(splits.train, cfg.train.batch_size, generator, augment):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step(step)
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / max(1, seen), "train_accuracy": correct / max(1, seen)}
        if on_epoch is not None:
            on_epoch(epoch + 1, row)
        history.append(row)
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = base
    return history


def build_model(cfg: RunConfig, splits: data_lib.Splits) -> nn.Module:
    m = cfg.model
    return models.build(m.arch, splits.input_shape, splits.num_classes, m.width, m.bias, m.affine_bn)


def standard_run(cfg: RunConfig, splits: data_lib.Splits, device: torch.device):
    """Build the model, let the method prepare it, train what it returns. For methods with ``prepare``."""
    method = method_module(cfg.method.name)
    model = build_model(cfg, splits)
    params = method.prepare(model, cfg)
    model.to(device)
    history = fit(model, make_optimizer(params, cfg), cfg, splits, device)
    metrics = {"history": history}
    if hasattr(method, "summarize"):
        metrics.update(method.summarize(model))
    return model, metrics


def run(cfg: RunConfig, device: str | None = None) -> tuple[nn.Module, dict]:
    """Train one configuration from scratch and return ``(model, record)``. Does not touch the run store."""
    dev = pick_device(device)
    seed_everything(cfg.train.seed)
    splits = data_lib.load(cfg.data)
    method = method_module(cfg.method.name)
    start = time.perf_counter()
    runner = getattr(method, "run", standard_run)
    model, metrics = runner(cfg, splits, dev)
    train_seconds = time.perf_counter() - start
    # what randweights.compact needs to rebuild this run's network without data (issue 12)
    model.randweights_run = {"config": cfg.to_dict(), "input_shape": list(splits.input_shape), "num_classes": splits.num_classes}
    test = evaluate(model, splits.test, dev)
    record = {
        "run_id": cfg.run_id,
        **cfg.flat(),
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_seconds": train_seconds,
        "train_images": len(splits.train),
        "weights": models.count_weights(model),
        "device": str(dev),
        "torch": torch.__version__,
        **metrics,
    }
    if splits.validation is not None:
        val = evaluate(model, splits.validation, dev)
        record.update(validation_accuracy=val["accuracy"], validation_loss=val["loss"])
    record["config"] = cfg.to_dict()
    return model, record
