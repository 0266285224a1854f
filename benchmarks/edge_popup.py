"""Edge-Popup speed, measured side by side in one run and reported as ratios.

1. Train step (forward, backward, SGD step) of Edge-Popup vs dense training of the same network:
   LeNet-300-100 at batch 128, Conv-4 at batch 128. Targets: Edge-Popup at most 1.3x dense on LeNet-300-100.
2. Mask selection (exact top-k of |scores|) vs a full sort per forward pass, at 0.1M, 1M and 4M scores.
   Target: at least 5x faster than the sort at 1M.

Measurements alternate between the contenders in rounds and report medians, so drifting machine load hits both.
Run: ``python benchmarks/edge_popup.py [--quick]``; writes benchmarks/out/edge_popup.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import median_ms

from randweights import models
from randweights.methods import edge_popup as ep


def step_fn(arch: str, method: str, batch: int):
    torch.manual_seed(0)
    shape = (1, 28, 28) if arch == "lenet-300-100" else (3, 32, 32)
    model = models.build(arch, shape, 10)
    params = ep.scores(ep.apply(model, 0.5)) if method == "edge-popup" else list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def selection_fns(n: int, keep_fraction: float = 0.5):
    torch.manual_seed(0)
    scores = torch.randn(n).abs()
    count = ep.kept_count(n, keep_fraction)
    hint = ep.ThresholdHint()
    ep.topk_mask(scores, count, hint)
    drifted = (scores + 1e-3 * torch.randn(n)).abs()  # the next training step's scores

    return {
        "full sort": lambda: ep.sort_mask(drifted, count),
        "torch.topk": lambda: drifted.topk(count, sorted=False),
        "ours, first step (kthvalue)": lambda: ep.topk_mask(drifted, count),
        "ours, later steps (hint)": lambda: ep.topk_mask(drifted, count, hint),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()
    rounds = 5 if args.quick else 15
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "steps": {}, "selection": {}}

    for arch, inner in (("lenet-300-100", 20), ("conv4", 2)):
        ms = median_ms({m: step_fn(arch, m, 128) for m in ("dense", "edge-popup")}, rounds if arch != "conv4" else 5, inner)
        ratio = ms["edge-popup"] / ms["dense"]
        out["steps"][arch] = {**{f"{k}_ms": round(v, 3) for k, v in ms.items()}, "ratio": round(ratio, 3)}
        print(f"train step {arch:14s} dense {ms['dense']:8.2f} ms  edge-popup {ms['edge-popup']:8.2f} ms  ratio {ratio:5.2f}x")

    for n in (100_000, 1_000_000, 4_000_000):
        ms = median_ms(selection_fns(n), rounds, 1 if n > 1_000_000 else 3)
        sort = ms["full sort"]
        out["selection"][str(n)] = {name: {"ms": round(v, 3), "speedup_vs_sort": round(sort / v, 2)} for name, v in ms.items()}
        cells = "  ".join(f"{name} {v:7.2f} ms ({sort / v:4.1f}x)" for name, v in ms.items())
        print(f"selection n={n:>9,d}: {cells}")

    lenet = out["steps"]["lenet-300-100"]["ratio"]
    sel = out["selection"]["1000000"]["ours, later steps (hint)"]["speedup_vs_sort"]
    out["targets"] = {"lenet_step_ratio<=1.3": lenet <= 1.3, "selection_1M_speedup>=5": sel >= 5}
    print("targets:", out["targets"])
    path = Path(__file__).resolve().parent / "out" / "edge_popup.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
