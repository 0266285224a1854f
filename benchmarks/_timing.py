"""Timing shared by the benchmarks: alternate the candidates in rounds so that drifting machine load hits all."""

from __future__ import annotations

import statistics
import time


def median_ms(fns: dict, rounds: int, inner: int) -> dict[str, float]:
    """Alternate the callables ``rounds`` times, ``inner`` calls each; median ms per call."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            times[name].append((time.perf_counter() - start) * 1e3 / inner)
    return {name: statistics.median(v) for name, v in times.items()}
