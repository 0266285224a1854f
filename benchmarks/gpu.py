"""GPU route: how long a `full` epoch takes, and as many `full` Edge-Popup Conv-4 runs of Fig. 3 as fit.

1. One epoch at the `full` recipe (whole training split, the full presets' batch sizes, CIFAR augmentation) of
   LeNet-300-100 (MNIST), Conv-4 and ResNet-18 (CIFAR-10), each trained dense, by Edge-Popup (k = 0.5) and as a
   slot machine (K = 8), through the same code a notebook runs (data on the GPU, cuDNN autotuning). The time is
   that of a one-epoch run: it includes building the model and the first batches' autotuning.
2. Then the `full` Edge-Popup Conv-4 runs of Fig. 3 (100 epochs each), one after another, while the time the
   measured epoch predicts still fits the budget; their records land in the run store (``--results``), where the
   chapter finds them.

Skipped (exit 0) without CUDA. Run: ``python benchmarks/gpu.py [--budget-minutes 9] [--results results]``; writes
benchmarks/out/gpu.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from randweights import make_config, runs, train
from randweights.chapters import edge_popup as ep

NETWORKS = {  # arch -> (dataset, batch size and augmentation of the full presets)
    "lenet-300-100": {"dataset": "mnist", "batch_size": 128},
    "conv4": {"dataset": "cifar10", "batch_size": 128, "augment": True},
    "resnet18": {"dataset": "cifar10", "batch_size": 256, "augment": True},
}
METHODS = {"dense": {}, "edge-popup": {"keep_fraction": 0.5},
           "slot": {"num_slots": 8, "candidate_init": "code", "score_init": "code"}}


def epoch_config(arch: str, method: str, **overrides):
    return make_config(method, arch=arch, epochs=1, **{**NETWORKS[arch], **METHODS[method], **overrides})


def time_epochs(device: str, archs=tuple(NETWORKS), methods=tuple(METHODS), **overrides) -> list[dict]:
    """Seconds of one training epoch per (network, method): a one-epoch run, nothing stored."""
    rows = []
    for arch in archs:
        for method in methods:
            _, record = train.run(epoch_config(arch, method, **overrides), device)
            rows.append({"arch": arch, "method": method, "epoch_seconds": record["train_seconds"],
                         "train_images": record["train_images"], "test_accuracy": record["test_accuracy"]})
    return rows


def fig3_conv4_configs():
    """The `full` Edge-Popup Conv-4 runs of Fig. 3, in the order the chapter lists them."""
    return [c for c in ep.keep_fraction_configs(ep.preset("full")) if c.model.arch == "conv4" and c.method.name == "edge-popup"]


def fill_budget(configs, seconds_per_epoch: float, budget_seconds: float, root, device: str) -> list[dict]:
    """Train (or load) ``configs`` in order while the predicted time of the next one still fits: the larger of
    the time spent and the time predicted so far, plus ``epochs * seconds_per_epoch``, within the budget."""
    start, predicted, records = time.perf_counter(), 0.0, []
    for cfg in configs:
        estimate = cfg.train.epochs * seconds_per_epoch
        if max(time.perf_counter() - start, predicted) + estimate > budget_seconds:
            break
        records.append(runs.get_or_run(cfg, root=root, device=device))
        predicted += estimate
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=9.0, help="wall time for everything (default 9)")
    parser.add_argument("--results", default=None, help="run store of the Fig. 3 runs (default $RANDWEIGHTS_RESULTS)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "gpu.json"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: skipped, no CUDA device")
        return 0
    start = time.perf_counter()
    epochs = time_epochs("cuda")
    for row in epochs:
        print(f"{row['arch']:>14} {row['method']:>10}: {row['epoch_seconds']:7.2f} s per epoch")
    conv4 = next(r["epoch_seconds"] for r in epochs if (r["arch"], r["method"]) == ("conv4", "edge-popup"))
    left = args.budget_minutes * 60 - (time.perf_counter() - start)
    records = fill_budget(fig3_conv4_configs(), conv4, left, args.results, "cuda")
    for r in records:
        print(f"Fig. 3 Conv-4 k = {r['keep_fraction']:.1f} {r['init']}: {100 * r['test_accuracy']:.2f}% "
              f"({r['train_seconds'] / 60:.1f} min, {r['run_id']})")
    out = {"device": torch.cuda.get_device_name(), "epochs": epochs,
           "fig3_conv4_runs": [{k: r[k] for k in ("run_id", "keep_fraction", "init", "seed", "test_accuracy", "train_seconds")}
                               for r in records]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
