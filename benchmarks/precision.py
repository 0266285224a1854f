"""fp32 vs bf16, contiguous vs channels-last: one train step of every method, side by side in one run.

For LeNet-300-100 (MNIST-shaped input), Conv-2 and Conv-4 (CIFAR-shaped input) at batch 128 and full width, one
training step (forward, backward, optimizer step) exactly as :func:`randweights.train.fit` does it (the method's
own optimizer; bf16 = ``torch.autocast(..., bfloat16)`` around the forward pass, loss in fp32; channels-last =
image batches in NHWC, parameters as they are) of dense SGD, Edge-Popup (k = 0.5), Slot Machines (K = 8) and
LaPerm (Adam, k = 20, the sync included). The variants of one net and method alternate in rounds (medians), so
drifting machine load hits them all; ratios are against fp32 contiguous of the same method. LeNet has no conv
layer, so its channels-last rows are left out.

Run: ``python benchmarks/precision.py [--quick] [--threads N]``; writes benchmarks/out/precision.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import median_ms

from randweights import data, train
from randweights.config import make_config
from randweights.methods import laperm as lp
from randweights.methods import method_module
from randweights.methods import slot_machines as sm

NETS = {"lenet-300-100": (1, 28, 28), "conv2": (3, 32, 32), "conv4": (3, 32, 32)}
METHODS = {"dense": {}, "edge-popup": {"keep_fraction": 0.5}, "slot": {"num_slots": 8}, "laperm": {"sync_period": 20}}
VARIANTS = {"fp32": ("fp32", False), "fp32 channels-last": ("fp32", True), "bf16": ("bf16", False),
            "bf16 channels-last": ("bf16", True)}


def step_fn(arch: str, method: str, precision: str, channels_last: bool, batch: int = 128, width: float = 1.0,
            **settings):
    """One training step of ``method`` on ``arch`` at ``precision`` on a fixed random batch, as ``train.fit``."""
    torch.manual_seed(0)
    shape = NETS[arch]
    cfg = make_config(method, arch=arch, precision=precision, width=width, **{**METHODS.get(method, {}), **settings})
    if method == "laperm":
        model = lp.build_initialized(cfg, shape, 10)
        optimizer = lp.make_laperm(model, cfg, steps_per_epoch=100)
    else:
        model = train.build_model(cfg, data.Splits(None, None, None, 10, shape))
        params = method_module(method).prepare(model, cfg)
        make = sm.make_optimizer if method == "slot" else train.make_optimizer
        optimizer = make(params, cfg)
    model.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x, y = train.to_device(torch.randn(batch, *shape), torch.device("cpu"), fmt), torch.randint(0, 10, (batch,))

    def step():
        with train.autocast(precision, "cpu"):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--nets", default=",".join(NETS), help="comma-separated subset of " + ", ".join(NETS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": torch.backends.cpu.get_cpu_capability(),
           "steps": {}}
    print(f"train step at batch 128, ms (ratio to fp32 contiguous of the same method); threads {out['threads']}")
    header = "".join(f"{v:>26s}" for v in VARIANTS)
    print(f"{'net':14s} {'method':11s}{header}")
    for arch in args.nets.split(","):
        conv = arch != "lenet-300-100"
        rounds, inner = (3 if args.quick else 5, 1) if conv else (5 if args.quick else 15, 10)
        for method in METHODS:
            fns = {name: step_fn(arch, method, p, cl) for name, (p, cl) in VARIANTS.items() if conv or not cl}
            ms = median_ms(fns, rounds, inner)
            base = ms["fp32"]
            out["steps"].setdefault(arch, {})[method] = {name: {"ms": round(v, 3), "speedup": round(base / v, 2)}
                                                         for name, v in ms.items()}
            cells = "".join(f"{f'{ms[v]:9.1f} ({base / ms[v]:4.2f}x)':>26s}" if v in ms else f"{'-':>26s}"
                            for v in VARIANTS)
            print(f"{arch:14s} {method:11s}{cells}", flush=True)
    print("method / dense at the same precision and layout:")
    for arch, by_method in out["steps"].items():
        for variant in VARIANTS:
            if variant not in by_method["dense"]:
                continue
            dense = by_method["dense"][variant]["ms"]
            cells = "  ".join(f"{m} {by_method[m][variant]['ms'] / dense:4.2f}x" for m in METHODS if m != "dense")
            print(f"  {arch:14s} {variant:19s} {cells}")
    path = Path(__file__).resolve().parent / "out" / "precision.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
