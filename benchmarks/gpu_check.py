"""A prepared check for a short loan of one GPU (an H200 or H100, about 8 minutes): three steps, each bounded in time.

1. The CUDA dry run of every ``full`` recipe (``randweights plan --preset full --dry-run --device cuda``, with
   ``--real-data`` where the data folder exists): ``dry_run.json`` and ``dry_run.log``.
2. Calibration: timed optimizer steps (:func:`randweights.plan.time_steps`: up to 200 after 5 untimed warm-up
   steps, fewer when the step's budget runs short) of each distinct ``full`` recipe on random images of the right
   shape, and from them, with every run's step count (:func:`randweights.plan.planned_steps`: epochs x steps per
   epoch, IMP rounds, finetuning), the GPU-hours of the ``full`` preset per chapter, per method and in all:
   ``timing.json`` and ``timing.md``.
3. The LaPerm and Slot Machines MNIST runs at ``full`` (LaPerm's MNIST runs less the paper nets; Slot Machines'
   LeNet-300-100 family), headline runs first (Slot Machines LeNet K = 8 and its learned baseline, LaPerm F1 and
   F2), each started only while the time step 2 predicts for it still fits; stored in ``results/`` and exported
   with ``randweights bundle export --models`` to ``bundle-<preset>-mnist.tar.gz``; ``figures.json`` says which
   runs were trained, skipped (and why) or are missing.

``summary.txt`` (also printed) ends it. ``--tiny`` runs the same steps on the CPU in about two minutes: the dry
run of the two ``smoke`` recipes of one chapter, 3 timed steps of three recipes, the ``smoke`` runs in step 3.
Run it as ``bash benchmarks/gpu_check.sh OUT [DATA]`` (see book/scale.md, "Checking on a GPU").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from randweights import config as config_lib
from randweights import plan, runs, store
from randweights.chapters import CHAPTERS
from randweights.chapters import laperm as laperm_chapter
from randweights.chapters import slot_machines as slot_chapter

ROOT = Path(__file__).resolve().parents[1]
FIGURE_CHAPTERS = ("slot_machines", "laperm")
# The estimate this check is compared with: its numbers as they were when the check was written (update both here
# and in book/scale.md when a measured table replaces it).
REFERENCE = {"what": "the estimate before this check", "total_gpu_hours": 34.0, "device": "H200",
             "shares": {"edge-popup": 0.60}}


@dataclass(frozen=True)
class Settings:
    device: str
    dry_preset: str  # step 1
    dry_only: tuple[str, ...]
    dry_timeout: float
    timing_steps: int  # step 2
    warmup: int
    timing_recipes: int | None  # None: every recipe of the full plan
    timing_seconds: float
    figure_preset: str  # step 3
    total_seconds: float  # the whole check; step 3 gets what steps 1 and 2 leave, less the export's reserve
    export_seconds: float = 40.0
    grace_seconds: float = 20.0  # step 3's training is killed this long after its budget (a run predicted to fit did not)


FULL = Settings("cuda", "full", (), dry_timeout=100, timing_steps=200, warmup=5, timing_recipes=None,
                timing_seconds=150, figure_preset="full", total_seconds=440)
TINY = Settings("cpu", "smoke", ("empirical_size",), dry_timeout=120, timing_steps=3, warmup=1, timing_recipes=3,
                timing_seconds=60, figure_preset="smoke", total_seconds=150)


def log(out: Path, line: str) -> None:
    print(line, flush=True)
    with open(out / "gpu_check.log", "a") as f:
        f.write(line + "\n")


def child_env(data_dir: Path | None) -> dict:
    """The environment of the check's child processes: this checkout's randweights, no progress bars, training on."""
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               "RANDWEIGHTS_PROGRESS": "0", "RANDWEIGHTS_TRAIN": "1"}
    if data_dir is not None:
        environ["RANDWEIGHTS_DATA"] = str(data_dir)
    return environ


def run_bounded(cmd: list[str], timeout: float, env: dict, stdout: Path, stderr: Path) -> tuple[int | None, float]:
    """Run ``cmd`` writing its output to files; ``(exit status or None when it ran past timeout, seconds)``."""
    start = time.perf_counter()
    with open(stdout, "w") as out, open(stderr, "w") as err:
        try:
            code: int | None = subprocess.run(cmd, stdout=out, stderr=err, env=env, cwd=ROOT, timeout=max(1.0, timeout)).returncode
        except subprocess.TimeoutExpired:
            code = None
    return code, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------- step 1
def dry_run(out: Path, s: Settings, data_dir: Path | None) -> dict:
    cmd = [sys.executable, "-m", "randweights", "plan", "--preset", s.dry_preset, "--dry-run", "--device", s.device, "--json"]
    for chapter in s.dry_only:
        cmd += ["--only", chapter]
    if data_dir is not None and data_dir.is_dir():
        cmd.append("--real-data")
    code, seconds = run_bounded(cmd, s.dry_timeout, child_env(data_dir), out / "dry_run.json", out / "dry_run.log")
    try:
        rows = json.loads((out / "dry_run.json").read_text())
        failed = [f"{r['method']} {r['arch']} {r['dataset']} {r['run_id']}: {r['error']}" for r in rows if not r["ok"]]
        counts = len(rows), sum(r["ok"] for r in rows)
    except ValueError:  # killed before its JSON: the log has a line per recipe stepped
        lines = [line for line in (out / "dry_run.log").read_text().splitlines() if " runs) " in line]
        failed = [line.strip() for line in lines if "  FAILED " in line]
        counts = len(lines), len(lines) - len(failed)
    return {"command": " ".join(cmd[2:]), "exit": code, "timed_out": code is None, "seconds": round(seconds, 1),
            "recipes": counts[0], "ok": counts[1], "failed": failed}


# ---------------------------------------------------------------------------------------------- step 3's runs
def figure_runs(preset_name: str) -> tuple[list[plan.Entry], list[str]]:
    """Step 3's runs at ``preset_name``: Slot Machines' LeNet-300-100 family and LaPerm's MNIST runs other than
    the paper nets, as plan entries; and the run ids of the headline runs (Slot Machines LeNet K = 8 greedy and its
    learned baseline, LaPerm F1 and F2 (our recipe), first seed), which go first."""
    slot, lap = slot_chapter.preset(preset_name), laperm_chapter.preset(preset_name)
    lenet = slot.families[0]
    agnostic = laperm_chapter.agnostic_configs(lap)
    f1 = next(c for c in agnostic if c.model.arch == "f1")
    f2 = next(c for c in agnostic if c.model.arch == "f2" and c.flat()["logit_scale"] != 1.0)
    headline = [lenet.slot(8, seed=slot.seeds[0]).run_id, lenet.dense(seed=slot.seeds[0]).run_id, f1.run_id, f2.run_id]
    chosen = []
    for entry in plan.plan(preset_name, CHAPTERS, FIGURE_CHAPTERS):
        cfg = entry.config
        if ("slot_machines" in entry.chapters and cfg.model.arch == lenet.arch) or (
                "laperm" in entry.chapters and cfg.data.dataset == "mnist" and cfg.model.arch not in lap.paper_nets):
            chosen.append(entry)
    ids = {e.run_id for e in chosen}
    if any(h not in ids for h in headline):
        raise RuntimeError(f"a headline run is not among the {preset_name} runs of {FIGURE_CHAPTERS}")
    return chosen, headline


# Settings that do not change what one optimizer step costs (how long, how many rounds, which seed, which numbers
# the weights start from or are scaled by); the rest, numbers included (batch size, width, K, LaPerm's sync period
# and probes), tell two recipes' step costs apart.
STEP_COST_FREE = {"seed", "epochs", "subset", "validation", "finetune_epochs", "rounds", "rewind_step",
                  "steps_per_epoch", "pixel_shuffle_seed", "lr", "weight_decay", "momentum"}


def cost_key(cfg) -> str:
    """What one optimizer step of ``cfg`` costs depends on, as a string: every setting but :data:`STEP_COST_FREE`,
    floats other than ``width`` as zero / non-zero (a learning rate or a keep fraction changes no kernel)."""
    items = []
    for name, value in sorted(cfg.flat().items()):
        if name in STEP_COST_FREE:
            continue
        if isinstance(value, float) and name != "width":
            value = value != 0
        items.append([name, value])
    return json.dumps(items)


def recipe_name(cfg) -> str:
    """A recipe's key (:func:`randweights.plan.recipe_key`: the code paths it takes) as a string."""
    return json.dumps(plan.recipe_key(cfg))


# ---------------------------------------------------------------------------------------------- step 2
def calibrate(out: Path, s: Settings) -> dict:
    """Time each distinct step cost (:func:`cost_key`) of the full plan, step 3's first and then by their share of
    the plan's steps, within ``s.timing_seconds``; project the full preset's GPU-hours."""
    entries = plan.plan("full", CHAPTERS)
    groups: dict[str, list[plan.Entry]] = {}
    for e in entries:
        groups.setdefault(cost_key(e.config), []).append(e)
    steps = {e.run_id: plan.planned_steps(e.config) for e in entries}
    first = {cost_key(e.config) for e in figure_runs("full")[0]}
    order = sorted(groups, key=lambda k: (k not in first, -sum(steps[e.run_id] for e in groups[k])))
    order = [k for k in order if any(steps[e.run_id] for e in groups[k])]  # nothing to time where nothing trains
    if s.timing_recipes is not None:
        order = order[: s.timing_recipes]
    rows, start = [], time.perf_counter()
    for i, key in enumerate(order):
        members = groups[key]
        cfg = members[0].config
        row = {"cost_key": key, "recipe": recipe_name(cfg), "run_id": cfg.run_id, "method": cfg.method.name,
               "arch": cfg.model.arch, "dataset": cfg.data.dataset, "batch_size": cfg.train.batch_size,
               "precision": cfg.train.precision, "runs": len(members), "planned_steps": sum(steps[e.run_id] for e in members)}
        left = s.timing_seconds - (time.perf_counter() - start)
        if left <= 0:
            rows.append({**row, "error": "not timed: step 2's budget was spent"})
            continue
        try:
            t = plan.time_steps(cfg, s.device, steps=s.timing_steps, warmup=s.warmup, max_seconds=left / (len(order) - i))
            row.update(steps=t.steps, seconds=round(t.seconds, 4), setup_seconds=round(t.setup_seconds, 3),
                       seconds_per_step=t.seconds_per_step)
        except Exception as err:  # noqa: BLE001 - an out-of-memory or a failing recipe: say so, time the others
            row["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
            if s.device.startswith("cuda"):
                torch.cuda.empty_cache()
        rows.append(row)
        per_step = row.get("seconds_per_step")
        log(out, f"[timing] {row['method']:18s} {row['arch']:16s} {row['dataset']:8s} batch {row['batch_size']:4d} "
                 + (f"{per_step * 1000:9.3f} ms/step ({row['steps']} steps)" if per_step else row.get("error", "no steps")))
    timing = {"device": device_name(s.device), "torch": torch.__version__, "steps_asked": s.timing_steps,
              "warmup": s.warmup, "seconds": round(time.perf_counter() - start, 1), "recipes": rows,
              **project(entries, rows, steps), "reference": REFERENCE}
    (out / "timing.json").write_text(json.dumps(timing, indent=1))
    (out / "timing.md").write_text(markdown(timing))
    return timing


def project(entries: list[plan.Entry], rows: list[dict], steps: dict[str, int]) -> dict:
    """GPU-hours of ``entries`` per chapter (a run counted under the first chapter that uses it), per method and
    in all: planned steps x seconds per step of the run's step cost (:func:`cost_key`). A run whose step cost was
    not timed takes the mean of the timed ones of its recipe (:func:`recipe_name`, the same code path: counted in
    ``runs_from_recipe``), and is left out of the hours (counted in ``runs`` only) when none of those was timed."""
    exact = {r["cost_key"]: r["seconds_per_step"] for r in rows if r.get("seconds_per_step")}
    by_recipe: dict[str, list[float]] = {}
    for r in rows:
        if r.get("seconds_per_step"):
            by_recipe.setdefault(r["recipe"], []).append(r["seconds_per_step"])

    def add(table: dict, name: str, run_steps: int, seconds: float | None, fallback: bool) -> None:
        row = table.setdefault(name, {"runs": 0, "runs_projected": 0, "runs_from_recipe": 0, "steps": 0, "gpu_hours": 0.0})
        row["runs"] += 1
        if seconds is not None or run_steps == 0:
            row["runs_projected"] += 1
            row["runs_from_recipe"] += fallback
            row["steps"] += run_steps
            row["gpu_hours"] += run_steps * (seconds or 0.0) / 3600

    chapters: dict = {}
    methods: dict = {}
    total: dict = {}
    for e in entries:
        seconds, fallback = exact.get(cost_key(e.config)), False
        if seconds is None and by_recipe.get(recipe_name(e.config)):
            similar = by_recipe[recipe_name(e.config)]
            seconds, fallback = sum(similar) / len(similar), True
        for table, name in ((chapters, e.chapters[0]), (methods, e.config.method.name), (total, "all")):
            add(table, name, steps[e.run_id], seconds, fallback)
    for table in (chapters, methods, total):
        for row in table.values():
            row["gpu_hours"] = round(row["gpu_hours"], 3)
    return {"chapters": chapters, "methods": methods, "total": total["all"]}


def markdown(timing: dict) -> str:
    total = timing["total"]
    lines = [f"# `full` preset: projected GPU-hours on {timing['device']}", "",
             f"Seconds per optimizer step measured on {timing['device']} (torch {timing['torch']}): up to "
             f"{timing['steps_asked']} steps per recipe after {timing['warmup']} warm-up steps, random images of the "
             "dataset's shape held on the device; times each run's planned steps (epochs x steps per epoch, every "
             "IMP round, finetuning). One run at a time on one GPU; evaluations between epochs are not counted.", "",
             "| chapter | runs | runs projected | steps (millions) | GPU-hours | share |", "|---|---:|---:|---:|---:|---:|"]
    hours = total["gpu_hours"] or 1.0
    for name, row in timing["chapters"].items():
        lines.append(f"| {name} | {row['runs']} | {row['runs_projected']} | {row['steps'] / 1e6:.2f} | "
                     f"{row['gpu_hours']:.2f} | {row['gpu_hours'] / hours:.0%} |")
    lines.append(f"| **all** | {total['runs']} | {total['runs_projected']} | {total['steps'] / 1e6:.2f} | "
                 f"**{total['gpu_hours']:.2f}** | 100% |")
    lines += ["", "| method | runs | runs projected | GPU-hours | share |", "|---|---:|---:|---:|---:|"]
    for name, row in timing["methods"].items():
        lines.append(f"| {name} | {row['runs']} | {row['runs_projected']} | {row['gpu_hours']:.2f} | {row['gpu_hours'] / hours:.0%} |")
    ref = timing["reference"]
    shares = ", ".join(f"{m} {share:.0%}" for m, share in ref["shares"].items())
    lines += ["", f"Compared with {ref['what']}: about {ref['total_gpu_hours']:g} {ref['device']}-hours for the whole "
              f"preset ({shares}).", ""]
    untimed = [r for r in timing["recipes"] if "error" in r]
    if untimed:
        lines.append(f"{len(untimed)} of {len(timing['recipes'])} step costs were not timed (failed, or step 2's budget "
                     f"ran out: timing.json says which). {total['runs_from_recipe']} runs of those take the mean of "
                     f"their recipe's timed step costs; {total['runs'] - total['runs_projected']} runs, whose recipe "
                     "has none timed, are left out of the hours.")
    return "\n".join(lines) + "\n"


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return device


# ---------------------------------------------------------------------------------------------- step 3 (a child process)
def train_figures(out: Path, preset_name: str, device: str, budget: float, timing_steps: int, warmup: int) -> None:
    """Train step 3's runs into ``out/results`` while each one's predicted time fits ``budget`` seconds, headline
    runs first and then the cheapest first; ``out/figures.json`` is rewritten after each run."""
    start = time.perf_counter()
    root = out / "results"
    chosen, headline = figure_runs(preset_name)
    try:
        known = {r["cost_key"]: r["seconds_per_step"] for r in json.loads((out / "timing.json").read_text())["recipes"]
                 if r.get("seconds_per_step")}
    except (OSError, ValueError, KeyError):
        known = {}
    report: dict = {"preset": preset_name, "device": device_name(device), "budget_seconds": budget, "runs": []}

    overhead = [5.0]  # seconds a run takes beyond its steps (data, evaluations, saving): learnt from each run

    def per_step(entry: plan.Entry) -> float | None:
        key = cost_key(entry.config)
        if key not in known:  # not timed in step 2 (the smoke recipes of --tiny): a few steps now
            try:
                known[key] = plan.time_steps(entry.config, device, steps=timing_steps, warmup=warmup, max_seconds=10).seconds_per_step
            except Exception:  # noqa: BLE001 - the run itself will say what fails
                known[key] = None
        return known[key]

    rank = {run_id: i for i, run_id in enumerate(headline)}
    chosen.sort(key=lambda e: (rank.get(e.run_id, len(rank)), plan.planned_steps(e.config)))  # then the shortest
    for entry in chosen:
        cfg, steps = entry.config, plan.planned_steps(entry.config)
        row = {"run_id": entry.run_id, "method": cfg.method.name, "arch": cfg.model.arch, "figures": entry.figures,
               "headline": entry.run_id in rank, "planned_steps": steps}
        if store.load(cfg, root) is not None and (not entry.keep_model or (store.run_dir(cfg, root) / "model.pt").is_file()):
            row["status"] = "stored"
        elif budget - (time.perf_counter() - start) < overhead[0]:
            row["status"] = "skipped: the budget is spent"
        else:
            seconds = per_step(entry) if steps else 0.0
            guess = None if seconds is None else 1.25 * steps * seconds + overhead[0]
            left = budget - (time.perf_counter() - start)
            row["predicted_seconds"] = None if guess is None else round(guess, 1)
            if guess is None:
                row["status"] = "skipped: not timed"
            elif guess > left:
                row["status"] = f"skipped: predicted {guess:.0f} s, {max(left, 0):.0f} s left"
            else:
                began = time.perf_counter()
                try:
                    record = runs.get_or_run(cfg, root=root, device=device, keep_model=entry.keep_model)
                    row.update(status="trained", test_accuracy=record.get("test_accuracy"))
                except Exception as err:  # noqa: BLE001 - say so and go on with the next run
                    row["status"] = f"failed: {type(err).__name__}: {str(err).strip()[:200]}"
                row["seconds"] = round(time.perf_counter() - began, 1)
                if row["status"] == "trained":
                    overhead[0] = max(2.0, row["seconds"] - steps * seconds)  # the latest run's
        report["runs"].append(row)
        report["seconds"] = round(time.perf_counter() - start, 1)
        (out / "figures.json").write_text(json.dumps(report, indent=1))
        print(f"[figures] {row['method']:12s} {row['arch']:16s} {row['run_id']} {row['status']}"
              + (f" ({row['seconds']} s, predicted {row['predicted_seconds']} s)" if "seconds" in row else ""), flush=True)


def figures(out: Path, s: Settings, data_dir: Path | None, budget: float) -> dict:
    """Step 3: train (a child process, killed ``s.grace_seconds`` after ``budget``) and export the bundle."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "_figures", str(out), "--preset", s.figure_preset,
           "--device", s.device, "--budget", str(max(budget, 0.0)), "--timing-steps", str(s.timing_steps),
           "--warmup", str(s.warmup)]
    code, seconds = run_bounded(cmd, budget + s.grace_seconds, child_env(data_dir), out / "figures.log", out / "figures.err")
    bundle = out / f"bundle-{s.figure_preset}-mnist.tar.gz"
    only = [arg for chapter in FIGURE_CHAPTERS for arg in ("--only", chapter)]
    export = [sys.executable, "-m", "randweights", "bundle", "export", "--preset", s.figure_preset, *only, "--models",
              "--results", str(out / "results"), str(bundle)]
    exported = None
    if (out / "results").is_dir():
        exported, _ = run_bounded(export, s.export_seconds, child_env(data_dir), out / "bundle.log", out / "bundle.err")
    chosen, _ = figure_runs(s.figure_preset)
    try:
        report = json.loads((out / "figures.json").read_text())
    except (OSError, ValueError):
        report = {"runs": []}
    stored = {row["run_id"] for row in report["runs"] if row.get("status") in ("trained", "stored")}
    report.update(training_exit=code, training_timed_out=code is None, training_seconds=round(seconds, 1),
                  bundle=bundle.name if exported == 0 else None, export_exit=exported,
                  missing=[e.run_id for e in chosen if e.run_id not in stored],
                  headline_stored=[row["run_id"] for row in report["runs"] if row.get("headline") and row["run_id"] in stored])
    (out / "figures.json").write_text(json.dumps(report, indent=1))
    return report


# ---------------------------------------------------------------------------------------------- main
def summary(s: Settings, tiny: bool, dry: dict, timing: dict | None, figs: dict, seconds: float) -> str:
    lines = [f"gpu_check ({'tiny' if tiny else 'full'}) on {device_name(s.device)}: {seconds:.0f} s",
             f"1. dry run ({dry['command']}): {dry['ok']} of {dry['recipes']} recipes ok"
             + (", TIMED OUT" if dry["timed_out"] else "") + f", {dry['seconds']} s"]
    lines += [f"   FAILED {line}" for line in dry["failed"]]
    if timing is not None:
        total = timing["total"]
        timed = sum("error" not in r for r in timing["recipes"])
        lines.append(f"2. timing: {timed} of {len(timing['recipes'])} recipes timed in {timing['seconds']} s; full preset: "
                     f"{total['gpu_hours']:.1f} GPU-hours for {total['runs_projected']} of {total['runs']} runs "
                     f"(reference: about {REFERENCE['total_gpu_hours']:g}); per chapter: "
                     + ", ".join(f"{n} {r['gpu_hours']:.1f}" for n, r in timing["chapters"].items()))
    trained = [r for r in figs.get("runs", []) if r.get("status") == "trained"]
    lines.append(f"3. {s.figure_preset} MNIST runs of {', '.join(FIGURE_CHAPTERS)}: {len(trained)} trained, "
                 f"{len(figs.get('missing', []))} missing, headline stored: {len(figs.get('headline_stored', []))} of 4; "
                 f"bundle: {figs.get('bundle') or 'NOT WRITTEN'}" + (" (training step timed out)" if figs.get("training_timed_out") else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    child = sub.add_parser("_figures", help="step 3's training (run by the check itself)")
    child.add_argument("out")
    child.add_argument("--preset", required=True)
    child.add_argument("--device", required=True)
    child.add_argument("--budget", type=float, required=True)
    child.add_argument("--timing-steps", type=int, required=True)
    child.add_argument("--warmup", type=int, required=True)
    check = sub.add_parser("check", help="the three steps")
    check.add_argument("out", help="output folder (made if missing)")
    check.add_argument("--data", default=None, help="the data folder (default $RANDWEIGHTS_DATA)")
    check.add_argument("--tiny", action="store_true", help="the CPU test setting: smoke presets, 3 timed steps, ~2 minutes")
    check.add_argument("--device", default=None, help="default cuda (cpu with --tiny)")
    check.add_argument("--total-seconds", type=float, default=None, help="the whole check (default 440; --tiny 150)")
    check.add_argument("--timing-seconds", type=float, default=None, help="step 2's budget (default 150; --tiny 60)")
    args = parser.parse_args(argv)
    if args.command == "_figures":
        train_figures(Path(args.out), args.preset, args.device, args.budget, args.timing_steps, args.warmup)
        return 0
    if args.command != "check":
        parser.error("a command: check")
    s = TINY if args.tiny else FULL
    changes = {name: value for name, value in (("device", args.device), ("total_seconds", args.total_seconds),
                                               ("timing_seconds", args.timing_seconds)) if value is not None}
    s = replace(s, **changes)
    config_lib.check_device(s.device)
    out = Path(args.out).resolve()  # the child processes run in the repository root
    out.mkdir(parents=True, exist_ok=True)
    data = args.data or os.environ.get("RANDWEIGHTS_DATA")
    data_dir = Path(data).resolve() if data else None
    if data_dir is not None:
        os.environ["RANDWEIGHTS_DATA"] = str(data_dir)
    start = time.perf_counter()
    (out / "settings.json").write_text(json.dumps({**asdict(s), "data": str(data_dir), "torch": torch.__version__,
                                                   "device_name": device_name(s.device)}, indent=1))
    log(out, f"[gpu_check] 1. dry run ({s.dry_preset}) on {s.device}, at most {s.dry_timeout:.0f} s")
    dry = dry_run(out, s, data_dir)
    log(out, f"[gpu_check] 2. timing, at most {s.timing_seconds:.0f} s")
    timing = calibrate(out, s)
    budget = s.total_seconds - (time.perf_counter() - start) - s.export_seconds
    log(out, f"[gpu_check] 3. {s.figure_preset} MNIST runs, {budget:.0f} s")
    figs = figures(out, s, data_dir, budget)
    text = summary(s, args.tiny, dry, timing, figs, time.perf_counter() - start)
    (out / "summary.txt").write_text(text + "\n")
    log(out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
