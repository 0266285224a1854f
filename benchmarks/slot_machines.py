"""Slot Machines vs dense training, measured side by side in one process.

For LeNet-300-100 and the paper's Conv-4 (batch 128; MNIST- / CIFAR-shaped random input): one training step
(forward, backward, SGD-momentum update with the optimizer each method trains with: the shared
:func:`randweights.train.make_optimizer` for dense weights, :func:`randweights.methods.slot_machines.make_optimizer`
(fused SGD) for scores) of a slot machine with K = 8 greedy selection vs the same network with trained dense
weights, and the bytes of training state (parameters, buffers, gradients, optimizer state). Dense and slot steps
alternate in rounds and the median per-step time of each is reported, so both see the same machine load.
Targets at K = 8: step at most 3x dense on LeNet-300-100 and 1.5x on Conv-4; state at most (K + 1)x.

Run: ``python benchmarks/slot_machines.py [--threads 1] [--rounds 5] [--conv-arch conv4]``; prints a table
and writes ``benchmarks/out/slot_machines.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from randweights import models
from randweights.config import make_config
from randweights.methods import slot_machines as sm
from randweights.train import Trainer, make_optimizer

OUT = Path(__file__).resolve().parent / "out"


def setup(arch: str, shape: tuple[int, ...], method: str, slots: int, selection: str = "greedy"):
    """Model, optimizer and a closure doing one training step on a fixed random batch."""
    torch.manual_seed(0)
    model = models.build(arch, shape, 10)
    if method == "slot":
        cfg = make_config("slot", num_slots=slots, selection=selection, arch=arch)
        optimizer = sm.make_optimizer(sm.prepare(model, cfg), cfg, Trainer())  # what slot runs train with
    else:
        cfg = make_config("dense", arch=arch)
        optimizer = make_optimizer(model.parameters(), cfg)  # what dense runs train with
    model.train()

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)  # as train.fit does
        loss.backward()
        optimizer.step()

    return model, optimizer, step


def time_steps(step, x, y, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    if x.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def compare(arch: str, shape, batch: int, slots: int, rounds: int, steps: int, device: torch.device) -> dict:
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    runs = {}
    for method in ("dense", "slot"):
        model, optimizer, step = setup(arch, shape, method, slots)
        model.to(device)
        for _ in range(2):  # warm-up; also creates gradients and momentum buffers
            step(x, y)
        runs[method] = (model, optimizer, step)
    times: dict[str, list[float]] = {"dense": [], "slot": []}
    for _ in range(rounds):
        for method, (_, _, step) in runs.items():
            times[method].append(time_steps(step, x, y, steps))
    dense_ms = statistics.median(times["dense"]) * 1e3
    slot_ms = statistics.median(times["slot"]) * 1e3
    dense_bytes = sm.training_memory_bytes(*runs["dense"][:2])
    slot_bytes = sm.training_memory_bytes(*runs["slot"][:2])
    return {
        "arch": arch,
        "batch": batch,
        "K": slots,
        "dense_step_ms": dense_ms,
        "slot_step_ms": slot_ms,
        "step_ratio": slot_ms / dense_ms,
        "dense_state_bytes": dense_bytes,
        "slot_state_bytes": slot_bytes,
        "state_ratio": slot_bytes / dense_bytes,
        "state_target": slots + 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--conv-arch", default="slot-conv4", help="slot-conv4 (the paper's Conv-4) or conv4 (Edge-Popup's)")
    parser.add_argument("--conv-batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [
        compare("lenet-300-100", (1, 28, 28), 128, args.slots, args.rounds, 10, device) | {"target": 3.0},
        compare(args.conv_arch, (3, 32, 32), args.conv_batch, args.slots, args.rounds, 2, device) | {"target": 1.5},
    ]
    print(f"{'arch':<16}{'dense ms':>10}{'slot ms':>10}{'step x':>8}{'target':>8}{'state x':>9}{'target':>8}")
    for r in rows:
        print(f"{r['arch']:<16}{r['dense_step_ms']:>10.2f}{r['slot_step_ms']:>10.2f}{r['step_ratio']:>8.2f}"
              f"{r['target']:>8.1f}{r['state_ratio']:>9.2f}{r['state_target']:>8d}")
    meta = {"device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "slot_machines.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {OUT / 'slot_machines.json'}")


if __name__ == "__main__":
    main()
