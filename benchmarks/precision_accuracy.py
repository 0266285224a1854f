"""Accuracy of bf16 against fp32: the same short runs of every method, three seeds each, in one process.

Dense SGD, Edge-Popup (k = 0.5), Slot Machines (K = 8) and LaPerm (k = 20) on Conv-2 / CIFAR-10 and on
LeNet-300-100 / MNIST, each at ``precision="fp32"`` and ``"bf16"``, seeds 0-2 (runs go through the run store, so
an interrupted study resumes). Reports per method the mean and standard deviation over seeds of the test accuracy
at each precision, the mean paired difference (bf16 - fp32, same seed) with its standard deviation, and the
ratio of training times (bf16 / fp32; runs alternate fp32 and bf16 seed by seed so machine load hits both).
Not part of ``make bench`` (it trains): ``python benchmarks/precision_accuracy.py [--results DIR] [--threads N]``;
writes benchmarks/out/precision_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from randweights import runs
from randweights.config import make_config

SCALES = {  # short runs at the quick presets' width and net (fewer images and epochs, to fit 3 seeds x 2 precisions)
    "conv2/cifar10": {"arch": "conv2", "dataset": "cifar10", "subset": 5000, "epochs": 4, "width": 0.5},
    "lenet/mnist": {"arch": "lenet-300-100", "dataset": "mnist", "subset": 10000, "epochs": 3},
}
METHODS = {"dense": {}, "edge-popup": {"keep_fraction": 0.5}, "slot": {"num_slots": 8}, "laperm": {"sync_period": 20}}
SEEDS = (0, 1, 2)


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=None, help="run store (default $RANDWEIGHTS_RESULTS or results/)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--scales", default=",".join(SCALES))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {}
    for scale in args.scales.split(","):
        for method, settings in METHODS.items():
            acc: dict[str, list[float]] = {"fp32": [], "bf16": []}
            secs: dict[str, list[float]] = {"fp32": [], "bf16": []}
            for seed in SEEDS:
                for precision in ("fp32", "bf16"):
                    cfg = make_config(method, seed=seed, precision=precision, **SCALES[scale], **settings)
                    record = runs.get_or_run(cfg, root=args.results, device="cpu")
                    acc[precision].append(100 * record["test_accuracy"])
                    secs[precision].append(record["train_seconds"])
            diffs = [b - f for f, b in zip(acc["fp32"], acc["bf16"])]
            row = {
                **{f"{p}_mean": statistics.mean(v) for p, v in acc.items()},
                **{f"{p}_sd": sd(v) for p, v in acc.items()},
                "diff_mean": statistics.mean(diffs), "diff_sd": sd(diffs),
                "time_ratio_bf16_over_fp32": sum(secs["bf16"]) / sum(secs["fp32"]),
                "accuracies": acc, "train_seconds": secs,
            }
            out[f"{scale} {method}"] = row
            print(f"{scale:14s} {method:11s} fp32 {row['fp32_mean']:6.2f} +- {row['fp32_sd']:4.2f}  "
                  f"bf16 {row['bf16_mean']:6.2f} +- {row['bf16_sd']:4.2f}  "
                  f"bf16 - fp32 {row['diff_mean']:+5.2f} +- {row['diff_sd']:4.2f}  "
                  f"time bf16/fp32 {row['time_ratio_bf16_over_fp32']:4.2f}", flush=True)
    path = Path(__file__).resolve().parent / "out" / "precision_accuracy.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"saved {path}")


if __name__ == "__main__":
    main()
