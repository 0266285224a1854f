"""Every method's training step against the dense step of the same network, in one table (``make bench``).

For LeNet-300-100 (MNIST-shaped input), Edge-Popup's Conv-4 (CIFAR-shaped) and the small ViT of the Random
transformers chapter (``vit-p4-d2``, MNIST-shaped: 49 patch tokens and a class token, 64 features), batch 128, fp32 and bf16 (autocast,
as ``--precision bf16`` trains): the median time of one step (forward, loss, backward, the optimizer each method
trains with, the loss and accuracy tallied on the device as ``train.fit`` does) of each method, over the dense step
at the same precision. The steps alternate in rounds so drifting machine load hits all of them alike.

* ``edge-popup``: k = 0.5; ``edge-popup, sort`` selects by a full sort on every forward, the rule of the official
  code (hidden-networks' ``GetSubnet``), in our step otherwise; ``edge-popup, mask given``: the mask of the first
  step held fixed, no selection at all: the floor of any exact top-k selection in this step (the masked product,
  the straight-through backward, the parametrization), so what a faster selection could still save.
* ``slot K=8``: greedy selection, fused SGD (what slot runs train with); ``slot K=8, index given``: the selected
  candidates of the first step held fixed, no selection (its floor, as above).
* ``laperm k=20``: Adam wrapped in LaPerm with a sync every 20 steps, against plain Adam (the dense rows of the
  LaPerm line are Adam's, not SGD's): the sync's share of training.
* ``host reads``: tensor reads on the host per step (:class:`randweights.train.HostReads`), with the top-k
  selection a GPU runs (``SELECT_ON_DEVICE``); ``(cpu)``: with this CPU's default selection.

Targets (LeNet-300-100, fp32): Edge-Popup at most 1.3x dense, Slot Machines at most 3x, LaPerm's sync at most 3 %.
Run: ``python benchmarks/steps.py [--quick] [--profile]``; writes benchmarks/out/steps.json. ``--profile`` then
prints, for each method with a target and its floor, the ten operators of the LeNet-300-100 fp32 step with the most
self CPU time (``torch.profiler``) and the step's minor page faults (first touches of memory the allocator took
from the system), the evidence behind a missed target.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import median_ms

from randweights import models, train
from randweights.config import make_config
from randweights.methods import edge_popup as ep
from randweights.methods import get
from randweights.methods import laperm as lp
from randweights.methods import slot_machines as sm

NETS = {"lenet-300-100": (1, 28, 28), "conv4": (3, 32, 32), "vit-p4-d2": (1, 28, 28)}
METHODS = ("dense", "edge-popup", "edge-popup, sort", "edge-popup, mask given", "supermask-bernoulli", "slot K=8",
           "slot K=8, index given", "adam", "laperm k=20")
TARGETS = {"edge-popup": 1.3, "slot K=8": 3.0, "laperm k=20": 1.03}
BATCH = 128


class SortSelection(ep.TopKMask):
    """Edge-Popup with the official code's selection: a full sort of |S| on every forward."""

    def mask(self) -> torch.Tensor:
        with torch.no_grad():
            return ep.sort_mask(self.scores.abs(), self.count)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _SortMasked.apply(self.scores, weight, self.mask())


class _SortMasked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, weight, mask):
        ctx.save_for_backward(scores, weight)
        return weight * mask

    @staticmethod
    def backward(ctx, grad):
        scores, weight = ctx.saved_tensors
        return grad * weight * scores.sign(), None, None


class GivenMask(ep.TopKMask):
    """Edge-Popup with no selection: the mask of the first forward, held fixed (the same backward)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if getattr(self, "given", None) is None:
            self.given = self.mask().to(weight.dtype)
        return _SortMasked.apply(self.scores, weight, self.given)


class GivenIndex(sm.SlotSelect):
    """Slot Machines with no selection: the candidates chosen at the first forward, held fixed."""

    def forward(self, _stub: torch.Tensor) -> torch.Tensor:
        if getattr(self, "given", None) is None:
            self.given = self.index()
        return sm._SelectCandidate.apply(self.scores, self.codes, self.given, self.scale)


def build(method: str, arch: str):
    """Model and optimizer of ``method`` on ``arch``, as its runs train."""
    torch.manual_seed(0)
    model = models.build(arch, NETS[arch], 10, bias=method in ("adam", "laperm k=20"))
    if method.startswith("edge-popup"):
        params = ep.scores(ep.apply(model, 0.5))
        for masker in [m for m in model.modules() if isinstance(m, ep.TopKMask)]:
            if method.endswith("sort"):
                masker.__class__ = SortSelection
            elif method.endswith("mask given"):
                masker.__class__ = GivenMask
        return model, train.make_optimizer(params, make_config("edge-popup", arch=arch))
    if method == "supermask-bernoulli":
        cfg = make_config("supermask-bernoulli", arch=arch)
        return model, train.make_optimizer(get("supermask-bernoulli").prepare(model, cfg), cfg)
    if method.startswith("slot"):
        cfg = make_config("slot", num_slots=8, arch=arch)
        optimizer = sm.make_optimizer(sm.prepare(model, cfg), cfg, train.Trainer())
        if method.endswith("index given"):
            for slot in [m for m in model.modules() if isinstance(m, sm.SlotSelect)]:
                slot.__class__ = GivenIndex
        return model, optimizer
    if method == "adam":
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)
    if method.startswith("laperm"):
        return model, lp.LaPerm(torch.optim.Adam(model.parameters(), lr=1e-3), lp.permutable_tensors(model), 20)
    return model, train.make_optimizer(model.parameters(), make_config("dense", arch=arch))


def step_fn(method: str, arch: str, precision: str):
    model, optimizer = build(method, arch)
    fmt = train.memory_format(model, precision)  # only the input changes layout, as in train.fit
    x = train.to_device(torch.randn(BATCH, *NETS[arch]), torch.device("cpu"), fmt)
    y = torch.randint(0, 10, (BATCH,))
    device = torch.device("cpu")
    tally = train.Tally(device)

    def step():
        with train.autocast(precision, device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        tally.add(loss.detach(), logits.detach(), y)

    return step


def host_reads(method: str, on_device: bool, steps: int = 20) -> float:
    """Host reads per step on LeNet-300-100 (after a warm-up step)."""
    saved = ep.SELECT_ON_DEVICE
    ep.SELECT_ON_DEVICE = on_device
    try:
        step = step_fn(method, "lenet-300-100", "fp32")
        step()
        with train.HostReads() as reads:
            for _ in range(steps):
                step()
    finally:
        ep.SELECT_ON_DEVICE = saved
    return reads.count / steps


def profile(method: str, steps: int = 60) -> None:
    """The ten operators with the most self CPU time in ``steps`` LeNet-300-100 fp32 steps of ``method``, and the
    minor page faults per step."""
    step = step_fn(method, "lenet-300-100", "fp32")
    for _ in range(10):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps
    print(f"\n{method}: the operators with the most self CPU time per step (LeNet-300-100, fp32, under the profiler), "
          f"{faults:.0f} minor page faults per step")
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    for e in events:
        print(f"  {e.key[:48]:48s} {e.self_cpu_time_total / steps:9.1f} us/step {100 * e.self_cpu_time_total / total:5.1f} %  {e.count / steps:5.1f} calls/step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--profile", action="store_true", help="then print the top operators of each target method's step and its floor")
    args = parser.parse_args()
    out: dict = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
                 "rows": []}
    rows: dict[str, dict] = {m: {"method": m} for m in METHODS}
    for arch in NETS:
        for precision in ("fp32", "bf16"):
            rounds, inner = ((5, 10) if arch == "lenet-300-100" else (3, 1)) if args.quick else ((15, 20) if arch == "lenet-300-100" else (5, 2))
            ms = median_ms({m: step_fn(m, arch, precision) for m in METHODS}, rounds, inner)
            for m in METHODS:
                base = ms["adam"] if m.startswith("laperm") else ms["dense"]
                rows[m][f"{arch} {precision} ms"] = round(ms[m], 3)
                rows[m][f"{arch} {precision}"] = round(ms[m] / base, 3)
            print(f"timed {arch} {precision}", flush=True)
    for m in METHODS:
        rows[m]["host reads (gpu path)"] = host_reads(m, True)
        rows[m]["host reads (cpu)"] = host_reads(m, False)
    out["rows"] = list(rows.values())
    out["targets"] = {m: {"target": t, "lenet-300-100 fp32": rows[m]["lenet-300-100 fp32"], "met": rows[m]["lenet-300-100 fp32"] <= t}
                      for m, t in TARGETS.items()}
    columns = [f"{a} {p}" for a in NETS for p in ("fp32", "bf16")] + ["host reads (gpu path)", "host reads (cpu)"]
    print(f"\nstep time over the dense step of the same network and precision (laperm: over plain Adam), batch {BATCH}, "
          f"{out['threads']} threads, torch {out['torch']}")
    print(f"{'method':20s}" + "".join(f"{c:>22s}" for c in columns) + f"{'target':>9s}")
    for m in METHODS:
        target = f"{TARGETS[m]:.2f}x" if m in TARGETS else ""
        cells = "".join(f"{rows[m][c]:>21.2f}{'x' if 'reads' not in c else ' '}" for c in columns)
        print(f"{m:20s}{cells}{target:>9s}")
    print("targets met (LeNet-300-100, fp32):", {m: t["met"] for m, t in out["targets"].items()})
    path = Path(__file__).resolve().parent / "out" / "steps.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"saved {path}")
    if args.profile:
        for m in ("dense", "edge-popup", "edge-popup, mask given", "slot K=8", "slot K=8, index given", "adam", "laperm k=20"):
            profile(m)


if __name__ == "__main__":
    main()
