"""Plans: every run a preset makes, per chapter and per figure, computed without training.

Each chapter's experiments module has ``plan(preset_name) -> list[Planned]``, built from the same ``*_configs``
functions its figures train through, so a figure and its runs cannot drift apart. ``randweights plan``, ``sweep``,
the dry run and bundles all read this one list.

To add a chapter: give ``randweights/experiments/<chapter>.py`` a ``plan`` function and add one line to
:data:`CHAPTERS`.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field

from .config import RunConfig
from .errors import ConfigError

# chapter -> module with ``plan(preset_name)``; one line per chapter, in book order
CHAPTERS: dict[str, str] = {
    "edge_popup": "randweights.experiments.edge_popup",
    "slot_machines": "randweights.experiments.slot_machines",
    "laperm": "randweights.experiments.laperm",
    "fcn_to_cnn": "randweights.experiments.fcn_to_cnn",
    "empirical_size": "randweights.experiments.empirical_size",
    "synthesis": "randweights.experiments.synthesis",
}
PRESETS = ("smoke", "quick", "full")


@dataclass(frozen=True)
class Planned:
    """One run of a figure. ``keep_model``: the chapter also reads the trained model (``model.pt``);
    ``reads_compact``: it reads the network back from the run's compact file."""

    figure: str
    config: RunConfig
    keep_model: bool = False
    reads_compact: bool = False


@dataclass
class Entry:
    """One distinct run of a plan, with every chapter and figure that uses it."""

    config: RunConfig
    chapters: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    keep_model: bool = False
    reads_compact: bool = False

    @property
    def run_id(self) -> str:
        return self.config.run_id

    def row(self) -> dict:
        c = self.config
        return {
            "run_id": c.run_id,
            "method": c.method.name,
            "arch": c.model.arch,
            "dataset": c.data.dataset,
            "epochs": c.train.epochs,
            "chapters": list(self.chapters),
            "figures": list(self.figures),
            "keep_model": self.keep_model,
        }


def available_chapters() -> list[str]:
    """The chapters of :data:`CHAPTERS` whose module is installed (a chapter may be listed before it lands)."""
    return [name for name, module in CHAPTERS.items() if importlib.util.find_spec(module) is not None]


def check_chapters(only: Iterable[str] | None) -> list[str]:
    """The chapters asked for (all, in book order, when ``only`` is empty); an unknown name is a ConfigError."""
    names = available_chapters()
    if not only:
        return names
    unknown = [name for name in only if name not in names]
    if unknown:
        raise ConfigError("--only", ",".join(unknown), "one of " + ", ".join(names))
    return [name for name in names if name in only]


def chapter_plan(chapter: str, preset_name: str) -> list[Planned]:
    """``plan(preset_name)`` of one chapter's experiments module."""
    check_chapters([chapter])
    if preset_name not in PRESETS:
        raise ConfigError("--preset", preset_name, "one of " + ", ".join(PRESETS))
    module = importlib.import_module(CHAPTERS[chapter])
    if not hasattr(module, "plan"):
        raise NotImplementedError(f"{module.__name__} has no plan(preset_name) -> list[Planned] (see randweights/plan.py)")
    return list(module.plan(preset_name))


def plan(preset_name: str, only: Iterable[str] | None = None) -> list[Entry]:
    """Every distinct run of ``preset_name`` over the chapters ``only`` (default all), first use first; a run
    that several figures (or chapters) use appears once, listing all of them."""
    entries: dict[str, Entry] = {}
    for chapter in check_chapters(only):
        for item in chapter_plan(chapter, preset_name):
            entry = entries.setdefault(item.config.run_id, Entry(item.config))
            label = f"{chapter}: {item.figure}"
            if chapter not in entry.chapters:
                entry.chapters.append(chapter)
            if label not in entry.figures:
                entry.figures.append(label)
            entry.keep_model = entry.keep_model or item.keep_model
            entry.reads_compact = entry.reads_compact or item.reads_compact
    return list(entries.values())


def configs(preset_name: str, only: Iterable[str] | None = None) -> list[RunConfig]:
    return [e.config for e in plan(preset_name, only)]


def summary_lines(entries: list[Entry]) -> list[str]:
    """One line per entry (``run_id  method  arch  dataset  epochs  figures``) and a count per chapter."""
    lines = [f"{'run_id':24s} {'method':20s} {'arch':16s} {'dataset':14s} {'epochs':>6s}  figures"]
    for e in entries:
        r = e.row()
        lines.append(f"{r['run_id']:24s} {r['method']:20s} {r['arch']:16s} {r['dataset']:14s} {r['epochs']:6d}  {'; '.join(r['figures'])}")
    per_chapter: dict[str, int] = {}
    for e in entries:
        for chapter in e.chapters:
            per_chapter[chapter] = per_chapter.get(chapter, 0) + 1
    counts = ", ".join(f"{c} {n}" for c, n in per_chapter.items())
    lines.append(f"{len(entries)} distinct runs ({counts})")
    return lines


# ---------------------------------------------------------------------------------------------- dry run
DRY_IMAGES = 4  # training images of a dry run: one batch, so one optimizer step per epoch
DRY_TEST_IMAGES = 8


def dry_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` cut to one optimizer step per training phase on a few images: at most one epoch, one batch,
    IMP at most two rounds (a prune, a rewind and a retrain) rewinding after step 1, slot finetuning one epoch,
    LaPerm syncing (and probing) after every step. Everything that picks a code path is kept."""
    changes: dict = {"epochs": min(cfg.train.epochs, 1), "batch_size": DRY_IMAGES, "subset": None,
                     "validation": DRY_IMAGES if cfg.data.validation else 0}
    method = cfg.method
    if hasattr(method, "rounds"):
        changes.update(rounds=min(method.rounds, 2), rewind_step=min(method.rewind_step, 1))
    if hasattr(method, "finetune_epochs"):
        changes["finetune_epochs"] = min(method.finetune_epochs, 1)
    if hasattr(method, "sync_period") and method.sync_period:
        changes["sync_period"] = 1
    if hasattr(method, "probe_every") and method.probe_every:
        changes.update(probe_every=1, probe_images=min(method.probe_images, DRY_TEST_IMAGES))
    return cfg.replace(**changes)


def recipe_key(cfg: RunConfig) -> tuple:
    """What makes two runs take different code paths: method, architecture, dataset and every non-numeric
    setting; a number only as zero / non-zero (``keep_fraction`` 0.1 and 0.9 run the same code)."""
    key = []
    for name, value in sorted(dry_config(cfg).flat().items()):
        if name in ("seed", "subset", "validation", "epochs", "batch_size"):
            value = bool(value) if name in ("validation", "epochs") else None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = value != 0
        key.append((name, value))
    return tuple(key)


def synthetic_splits(cfg: RunConfig, seed: int = 0):
    """Random images of the dataset's shape and labels of its classes: enough for a step, no files read."""
    import torch

    from . import data

    shape, classes = data.SHAPES[cfg.data.dataset], data.NUM_CLASSES[cfg.data.dataset]
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> data.Split:
        return data.Split(torch.randn(n, *shape, generator=g), torch.arange(n) % classes)

    validation = split(cfg.data.validation) if cfg.data.validation else None
    return data.Splits(split(DRY_IMAGES), validation, split(DRY_TEST_IMAGES), classes, shape)


def dry_step(cfg: RunConfig, device: str = "cpu") -> dict:
    """Run the method's real flow (``run`` or the shared loop after ``prepare``) on :func:`dry_config` with
    synthetic data, then evaluate as :func:`randweights.train.run` does. Raises whatever the run raises."""
    import torch

    from . import train
    from .methods import method_module

    small = dry_config(cfg)
    dev = torch.device(device)
    train.seed_everything(small.train.seed)
    splits = synthetic_splits(small)
    runner = getattr(method_module(small.method.name), "run", train.standard_run)
    model, metrics = runner(small, splits, dev)
    test = train.evaluate(model, splits.test, dev)
    if not math.isfinite(test["loss"]):
        raise FloatingPointError(f"test loss {test['loss']} after one step")
    facts = {"test_loss": test["loss"], "epochs": len(metrics.get("history", []))}
    for name in ("rounds_trained", "syncs"):
        if name in metrics:
            facts[name] = metrics[name]
    if "finetune_history" in metrics:
        facts["finetune_epochs"] = len(metrics["finetune_history"])
    return facts


@dataclass
class DryResult:
    config: RunConfig
    runs: int  # planned runs this recipe stands for
    ok: bool
    seconds: float
    error: str = ""
    facts: dict = field(default_factory=dict)  # what the step did: epochs, rounds_trained, syncs, finetune_epochs

    def line(self) -> str:
        c = self.config
        status = "ok" if self.ok else f"FAILED {self.error}"
        return f"{c.method.name:20s} {c.model.arch:16s} {c.data.dataset:8s} {c.run_id:24s} ({self.runs:3d} runs) {self.seconds:6.2f} s  {status}"


def dry_run(entries: list[Entry], device: str = "cpu", log=None) -> list[DryResult]:
    """One :func:`dry_step` per distinct recipe (:func:`recipe_key`) of ``entries``; a failure is recorded
    (type and message) and the others go on."""
    groups: dict[tuple, list[RunConfig]] = {}
    for e in entries:
        groups.setdefault(recipe_key(e.config), []).append(e.config)
    results = []
    for members in groups.values():
        start = time.perf_counter()
        try:
            facts = dry_step(members[0], device)
            result = DryResult(members[0], len(members), True, time.perf_counter() - start, facts=facts)
        except Exception as err:  # noqa: BLE001 - report it and step the next recipe
            last = traceback.extract_tb(err.__traceback__)[-1]
            where = f" ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
            message = str(err).strip().splitlines()[0] if str(err).strip() else ""
            result = DryResult(members[0], len(members), False, time.perf_counter() - start, f"{type(err).__name__}: {message}{where}")
        results.append(result)
        if log is not None:
            log(result.line())
    return results
