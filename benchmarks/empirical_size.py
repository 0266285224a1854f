"""Benchmark of the piece / region counters: exact pieces of a 784-256-256-10 net along a segment
between two inputs (target 50 ms) and a 1024 x 1024 region map of a 2-64-64-1 net (target 2 s).

Run: ``python benchmarks/empirical_size.py``. Prints one JSON record and writes it to
``benchmarks/out/empirical_size.json``. Timings are the median of several repeats, after one warm-up call; on a
shared machine they are inflated by the other load (the record stores the load average).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from randweights import regression
from randweights.analysis import regions

TARGETS_S = {"segment_784_256_256_10": 0.05, "region_map_1024_2_64_64_1": 2.0}


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> dict:
    mnist_net = regression.regression_mlp((784, 256, 256, 10), "normal", seed=0)
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 784, generator=gen)
    seg_s, pieces = timed(lambda: regions.segment_pieces(mnist_net, a, b), repeats=9)
    net_2d = regression.regression_mlp((2, 64, 64, 1), "normal", seed=0)
    map_s, rmap = timed(lambda: regions.region_map(net_2d, [0, 0], [1, 0], [0, 1], (-2, 2, -2, 2), 1024), repeats=3)
    record = {
        "segment_784_256_256_10": {"seconds": seg_s, "target_s": TARGETS_S["segment_784_256_256_10"],
                                   "activation_pieces": pieces.activation_pieces, "function_pieces": pieces.function_pieces},
        "region_map_1024_2_64_64_1": {"seconds": map_s, "target_s": TARGETS_S["region_map_1024_2_64_64_1"], "regions": rmap.count,
                                      "window": [-2, 2, -2, 2]},
        "load_average_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }
    for key in TARGETS_S:
        record[key]["meets_target"] = record[key]["seconds"] <= record[key]["target_s"]
    out = Path(__file__).resolve().parent / "out" / "empirical_size.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
