"""Small seeded regression nets and tasks (method-free): the 1-D and 2-D settings of the empirical-size chapter
(Chen, Gamst & Walker 2016; the settings are our reconstruction, listed in the book's Reconstruction notes).

Everything is deterministic given its seed: the data comes from a NumPy generator, the weights from a torch
generator, and training is full-batch (no sampling), so a run is a pure function of its settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import check_choice, check_range
from .regions import single_thread

BIAS_INITS = ("zero", "normal")  # normal: N(0, 2/fan_in), the biases of figure C1


def target_1d(x: np.ndarray) -> np.ndarray:
    """The 1-D target of figures C2 to C5: ``sin(3 pi x) + 0.5 sin(7 pi x)`` on [-1, 1]."""
    return np.sin(3 * np.pi * x) + 0.5 * np.sin(7 * np.pi * x)


def target_1d_curvature(x: np.ndarray) -> np.ndarray:
    """``|f''(x)|`` of :func:`target_1d` (where knots are useful to a spline)."""
    return np.abs(-9 * np.pi**2 * np.sin(3 * np.pi * x) - 0.5 * 49 * np.pi**2 * np.sin(7 * np.pi * x))


def dataset_1d(n: int, noise: float = 0.0, seed: int = 0, domain=(-1.0, 1.0)) -> tuple[np.ndarray, np.ndarray]:
    """``n`` inputs uniform on ``domain`` (sorted) and targets ``target_1d(x) + N(0, noise^2)``."""
    check_range("n", n, low=2)
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(*domain, size=n))
    return x, target_1d(x) + noise * rng.standard_normal(n)


def two_spirals(n: int, noise: float = 0.03, seed: int = 0, turns: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals in [-1, 1]^2, ``n`` points each, labels +1 / -1 (a 2-D regression target)."""
    rng = np.random.default_rng(seed)
    r = np.sqrt(rng.uniform(0.02, 1.0, size=n)) * 0.9
    angle = r * turns * 2 * math.pi / 0.9
    arm = np.stack([r * np.cos(angle), r * np.sin(angle)], 1)
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * n, 2))
    y = np.concatenate([np.ones(n), -np.ones(n)])
    return x, y


def regression_mlp(widths: Sequence[int], bias_init: str = "normal", weight_scale: float = 1.0, seed: int = 0) -> nn.Sequential:
    """``widths[0] -> ... -> widths[-1]`` ReLU MLP (linear top layer) with He-normal weights
    ``N(0, weight_scale^2 * 2 / fan_in)`` and biases ``zero`` or ``normal`` (``N(0, 2 / fan_in)``)."""
    check_choice("bias_init", bias_init, BIAS_INITS)
    check_range("weight_scale", weight_scale, low=0, low_open=True)
    if len(widths) < 2:
        check_range("len(widths)", len(widths), low=2)
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layer = nn.Linear(fan_in, fan_out)
        std = math.sqrt(2.0 / fan_in)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(fan_out, fan_in, generator=gen) * std * weight_scale)
            bias = torch.randn(fan_out, generator=gen) * std if bias_init == "normal" else torch.zeros(fan_out)
            layer.bias.copy_(bias)
        layers.append(layer)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train_regression(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    steps: int,
    lr: float,
    checkpoints: Sequence[int],
    on_checkpoint: Callable[[int, nn.Module], dict] | None = None,
) -> list[dict]:
    """Full-batch Adam on the mean squared error for ``steps`` steps. At every step in ``checkpoints`` (0 = the
    initial net) a row ``{"step", "train_mse", **on_checkpoint(step, model)}`` is recorded."""
    check_range("steps", steps, low=0)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape(len(x), -1)
    yt = torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(len(y), -1)
    marks = sorted({int(c) for c in checkpoints if 0 <= c <= steps})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rows = []

    def record(step: int) -> None:
        with torch.no_grad():
            mse = float(((model(xt) - yt) ** 2).mean())
        rows.append({"step": step, "train_mse": mse, **(on_checkpoint(step, model) if on_checkpoint else {})})

    with single_thread():
        if marks and marks[0] == 0:
            record(0)
        for step in range(1, steps + 1):
            loss = ((model(xt) - yt) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step in marks:
                record(step)
    return rows
