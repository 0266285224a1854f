"""Several small runs at once on one CPU: one process with all cores against N processes of cores/N threads each,
on the `quick` preset's recipes (Edge-Popup LeNet-300-100, Conv-2 and Conv-4, fp32), measured side by side in one
run. `make book` trains each chapter's missing runs with `--workers 2` from this.

Run: ``python benchmarks/workers.py [--steps 30]``; prints steps per second each way and their ratio.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from randweights import plan
from randweights.chapters import CHAPTERS

ARCHS = ("lenet-300-100", "conv2", "conv4")


def recipe(arch: str):
    for entry in plan.plan("quick", CHAPTERS):
        cfg = entry.config
        if cfg.method.name == "edge-popup" and cfg.model.arch == arch:
            return cfg
    raise LookupError(arch)


def one(arch: str, steps: int) -> float:
    """Seconds per step of ``arch``'s recipe in this process."""
    return plan.time_steps(recipe(arch), steps=steps, warmup=3).seconds_per_step


def in_processes(arch: str, steps: int, workers: int, threads: int) -> list[float]:
    """Seconds per step in each of ``workers`` processes started together, ``threads`` torch threads each."""
    code = (f"import torch; torch.set_num_threads({threads}); import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
            f"import workers; print(workers.one({arch!r}, {steps}))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    return [float(p.communicate()[0].split()[-1]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    threads = max(1, cores // args.workers)
    print(f"{cores} cores; 1 process x {cores} threads against {args.workers} processes x {threads} threads")
    for arch in ARCHS:
        single = in_processes(arch, args.steps, 1, cores)[0]
        many = in_processes(arch, args.steps, args.workers, threads)
        rate_one, rate_many = 1 / single, sum(1 / s for s in many)
        print(f"{arch:14s} {rate_one:7.1f} steps/s alone, {rate_many:7.1f} in {args.workers} processes: "
              f"{rate_many / rate_one:.2f}x", flush=True)


if __name__ == "__main__":
    main()
