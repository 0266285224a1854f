"""The `quick` preset's precision, chosen by measurement: every distinct recipe of the `quick` plan that trains in
bf16, timed in bf16 and in fp32 (its real step: model, batch, optimizer, per-step work; `plan.time_steps`), the two
alternating in rounds (medians) so a drifting machine load hits both; and what each costs over the whole preset
(runs x planned steps x seconds per step).

Run: ``python benchmarks/quick_precision.py [--rounds 3] [--steps 20]``; prints the table and whether this CPU has
AMX, and writes benchmarks/out/quick_precision.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from randweights import plan
from randweights.chapters import CHAPTERS


def cpu_kind() -> str:
    """``torch``'s CPU capability and whether the CPU has AMX (Linux ``/proc/cpuinfo`` flags)."""
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    amx = "amx_bf16" in flags
    return f"{torch.backends.cpu.get_cpu_capability()}, AMX {'yes' if amx else 'no'}"


def bf16_recipes() -> dict[tuple, list]:
    """The quick plan's bf16 configs grouped by recipe (``plan.recipe_key``)."""
    groups: dict[tuple, list] = {}
    for entry in plan.plan("quick", CHAPTERS):
        if entry.config.train.precision == "bf16":
            groups.setdefault(plan.recipe_key(entry.config), []).append(entry.config)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for configs in bf16_recipes().values():
        cfg = configs[0]
        variants = {"bf16": cfg, "fp32": cfg.replace(precision="fp32")}
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for name, variant in variants.items():
                seconds = plan.time_steps(variant, steps=args.steps, warmup=3).seconds_per_step
                if seconds is not None:  # None: a recipe with no step to time
                    times[name].append(seconds)
        if not all(times.values()):
            continue
        ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
        steps = sum(plan.planned_steps(c) for c in configs)
        row = {"method": cfg.method.name, "arch": cfg.model.arch, "width": cfg.model.width,
               "batch": cfg.train.batch_size, "runs": len(configs), "fp32 ms": ms["fp32"], "bf16 ms": ms["bf16"],
               "bf16 / fp32": ms["bf16"] / ms["fp32"], "preset min fp32": steps * ms["fp32"] / 60000,
               "preset min bf16": steps * ms["bf16"] / 60000}
        rows.append(row)
        print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    kind = cpu_kind()
    total = {p: sum(r[f"preset min {p}"] for r in rows) for p in ("fp32", "bf16")}
    print(f"CPU: {kind}; torch threads {torch.get_num_threads()}")
    print(f"quick preset, bf16 recipes: {total['fp32']:.1f} min in fp32, {total['bf16']:.1f} min in bf16")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "quick_precision.json").write_text(json.dumps({"cpu": kind, "rows": rows, "total_min": total}, indent=1))


if __name__ == "__main__":
    main()
