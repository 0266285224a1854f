"""Plans: every run a preset makes, per chapter and per figure, computed without training.

Each chapter module (:mod:`randweights.chapters`) declares itself once as a :class:`Chapter`: its presets and
its :class:`Figure` objects, each with the function giving that figure's run configurations per preset. The
notebook trains a figure's runs only through that declaration (:meth:`Chapter.frame` / :meth:`Chapter.records`),
and ``randweights plan``, ``sweep``, ``bundle export``, the dry run and the stored-run coverage all derive their
runs from the same figures, so a figure whose runs are not in the plan cannot be drawn.

This module sits below the chapters: the entry points (``randweights.cli_scale``, ``randweights.reproduce``)
pass the chapter list (:data:`randweights.chapters.CHAPTERS`) down to :func:`plan` and friends.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch

from . import data, models, runs, store, train, verdicts
from .config import RunConfig, check_device
from .errors import ConfigError, DatasetNotFound


@dataclass(frozen=True)
class Figure:
    """One figure (or table) of a chapter and the runs it reads. ``configs(preset_name)``: its run
    configurations at a preset. ``needs_model``: the figure also reads the trained network
    (:func:`randweights.runs.load_network`: rebuilt from the run's compact file, else its ``model.pt``; a run
    trained for it keeps ``model.pt`` too); ``reads_compact``: it reads the run's compact file itself."""

    name: str
    configs: Callable[[str], list[RunConfig]]
    needs_model: bool = False
    reads_compact: bool = False

    def records(self, preset_name: str, device: str | None = None, root=None) -> list[dict]:
        """The records of this figure's runs at ``preset_name``, trained where missing (and allowed). Runs whose
        network the figure reads are trained one by one, keeping it (a stored run counts with its compact file or
        ``model.pt``; with training off, one without either is :class:`~randweights.runs.RunMissing`, named); the
        others through
        :func:`randweights.runs.get_or_run_all` (with training off: the stored ones only)."""
        configs = self.configs(preset_name)
        if self.needs_model:
            return [runs.get_or_run(cfg, root=root, device=device, keep_model=True) for cfg in configs]
        return runs.get_or_run_all(configs, root=root, device=device, desc=self.name)


@dataclass(frozen=True)
class RecipeRow:
    """One line of a chapter's recipe table: a setting as the paper states it, as the released code runs it, and
    what ``full`` runs. The ``full`` value is read from the full plan itself (``setting``: a flat
    :class:`~randweights.config.RunConfig` name, or ``lr`` / ``weight_decay`` with the method's defaults filled
    in, over the full runs that ``runs`` selects), so the table cannot disagree with what ``full`` trains."""

    what: str  # the setting in words, and which runs it concerns: "schedule (learned baselines)"
    paper: str  # the paper's words ("not stated" where it is silent)
    code: str  # the released code
    setting: str  # the RunConfig name that holds it
    runs: Callable[[RunConfig], bool] = lambda cfg: True  # which full runs the row is about
    note: str = ""  # which reading full follows and why (what produced the published figure)

    def values(self, configs: Sequence[RunConfig]) -> list:
        """The distinct values of ``setting`` over the selected configs, in first-seen order; no selected run is a
        ValueError (a row about nothing)."""
        seen: list = []
        for cfg in configs:
            if self.runs(cfg):
                value = getattr(cfg, self.setting) if self.setting in ("lr", "weight_decay") else cfg.flat()[self.setting]
                if value not in seen:
                    seen.append(value)
        if not seen:
            raise ValueError(f"recipe row {self.what!r}: no full run selected")
        return seen


@dataclass(frozen=True)
class Headline:
    """One of a paper's headline numbers and the runs of ours that reproduce it: the runs of ``figure`` that ``runs``
    selects, at whatever preset is asked (the same selection at ``quick`` and ``full``). ``best_of``: a setting the
    paper reports the best value over (Edge-Popup's k): the mean over seeds is taken per value and the best shown."""

    what: str  # "LeNet-300-100 on MNIST, K = 8, greedy selection"
    paper: float | None  # the paper's number in % (None: the paper reports none)
    figure: str  # the chapter figure whose runs hold it
    runs: Callable[[RunConfig], bool]
    source: str = ""  # where the paper's number is from
    metric: str = "test_accuracy"
    best_of: str | None = None

    def ours(self, chapter: Chapter, preset_name: str, root=None) -> dict:
        """``{"value": mean in % or None, "sd", "stored", "planned", "at"}`` over the stored runs of ``preset_name``
        (never trains). ``at``: the best ``best_of`` value ("" without one)."""
        configs = [c for c in chapter.figure(self.figure).configs(preset_name) if self.runs(c)]
        found = [(c, store.verified(c, root)) for c in configs]
        found = [(c, r) for c, r in found if r is not None]
        out = {"value": None, "sd": None, "stored": len(found), "planned": len(configs), "at": ""}
        if not found:
            return out
        groups: dict = {}
        for cfg, record in found:
            key = cfg.flat()[self.best_of] if self.best_of else None
            groups.setdefault(key, []).append(100 * float(record[self.metric]))
        key, values = max(groups.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))
        mean = sum(values) / len(values)
        sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else None
        out.update(value=mean, sd=sd, stored=len(values) if self.best_of else len(found), at=f"{self.best_of} = {key:g}" if self.best_of else "")
        if self.best_of:
            out["planned"] = sum(1 for c in configs if c.flat()[self.best_of] == key)
        return out


@dataclass(frozen=True)
class Claim:
    """One of a paper's claims that a chapter tests, for its "What this chapter reproduces" table: ``what`` (the
    claim in words), ``paper`` (the paper's number or words, with its figure), the chapter figures whose runs test
    it, and ``test``: given ``frame(figure) -> DataFrame`` (that figure's runs at one preset), our
    :class:`~randweights.verdicts.Finding` (the number shown and reproduced / partly / not at this preset, by
    :data:`randweights.verdicts.CRITERION`)."""

    what: str
    paper: str
    figures: tuple[str, ...]
    test: Callable[[Callable[[str], object]], verdicts.Finding]


@dataclass(frozen=True)
class Chapter:
    """One chapter of the book: ``name`` (its module, notebook and page name), ``title``, ``notebook`` (path
    relative to the repository), the presets it declares, its figures in the order the page draws them, and its
    ``order`` in the book."""

    name: str
    title: str
    notebook: str
    presets: tuple[str, ...]
    figures: tuple[Figure, ...]
    order: int = 0  # its place in the book (the table of contents lists chapters in this order)
    recipe: tuple[RecipeRow, ...] = ()  # the recipe table: where paper, released code and `full` differ
    headlines: tuple[Headline, ...] = ()  # the paper's headline numbers and the runs that reproduce them
    claims: tuple[Claim, ...] = ()  # the paper's claims this chapter tests (its "What this chapter reproduces")

    def figure(self, name: str) -> Figure:
        for figure in self.figures:
            if figure.name == name:
                return figure
        raise ConfigError("figure", name, f"one of {', '.join(f.name for f in self.figures)} (chapter {self.name})")

    def check_preset(self, preset_name: str) -> None:
        if preset_name not in self.presets:
            raise ConfigError("--preset", preset_name, f"one of {', '.join(self.presets)} (chapter {self.name})")

    def check_parameters(self, preset: object, device: object = None) -> None:
        """The chapter notebook's parameters (its cell tagged ``parameters``), checked in its first code cell so a
        bad value is one line naming it before any run starts: ``preset`` one this chapter declares, ``device``
        auto, cpu or a device this machine has."""
        if not isinstance(preset, str) or preset not in self.presets:
            raise ConfigError("preset", preset, f"one of {', '.join(self.presets)} (chapter {self.name})")
        check_device(device)  # type: ignore[arg-type]  # checks the type too

    def records(self, figure: str, preset_name: str, device: str | None = None, root=None) -> list[dict]:
        """The records of figure ``figure`` at ``preset_name`` (see :meth:`Figure.records`)."""
        self.check_preset(preset_name)
        return self.figure(figure).records(preset_name, device, root)

    def frame(self, figure: str, preset_name: str, device: str | None = None, root=None):
        """:meth:`records` as a DataFrame, one row per run (:func:`randweights.runs.frame`)."""
        return runs.frame(self.records(figure, preset_name, device, root))

    def stored_frame(self, figure: str, preset_name: str, root=None):
        """The runs of ``figure`` at ``preset_name`` that are stored (an imported bundle's, say), as a DataFrame;
        never trains. Empty (no columns) when none is: the comparison tables then say "not run"."""
        self.check_preset(preset_name)
        found = [store.verified(cfg, root) for cfg in self.figure(figure).configs(preset_name)]
        return runs.frame([r for r in found if r is not None])

    def headline_table(self, presets: Sequence[str] = ("full",), root=None):
        """The paper's headline numbers beside ours at each of ``presets`` (stored runs only, never trains): per
        headline the paper's value, ours (mean over the stored seeds, in %, "not run" when none is stored), the seeds
        stored of those planned, and where the best value lies for a best-of headline."""
        import pandas as pd

        rows = []
        presets = list(dict.fromkeys(presets))  # ("full", "full") when the page itself is at full
        for h in self.headlines:
            row: dict = {"result": h.what, "paper": f"{h.paper:.2f}" if h.paper is not None else "not reported"}
            for preset_name in presets:
                if preset_name not in self.presets:
                    continue
                ours = h.ours(self, preset_name, root)
                shown = ("not in this preset" if not ours["planned"] else "not run") if ours["value"] is None else f"{ours['value']:.2f}" + (f" ± {ours['sd']:.2f}" if ours["sd"] is not None else "")
                row[f"ours, {preset_name}"] = shown + (f" ({ours['at']})" if ours["at"] else "")
                row[f"runs, {preset_name}"] = f"{ours['stored']} of {ours['planned']}"
            rows.append(row)
        return pd.DataFrame(rows)

    def finding(self, claim: Claim, preset_name: str, device: str | None = None, root=None,
                train_missing: bool = False) -> verdicts.Finding:
        """Our finding on ``claim`` at ``preset_name``: from that preset's runs of the claim's figures, trained where
        missing when ``train_missing`` (the page's own preset), else stored runs only; "not run" (with how many are stored)
        when any of them is missing, "not in this preset" when the preset plans none."""
        planned = sum(len(self.figure(f).configs(preset_name)) for f in claim.figures)
        if not planned:
            return verdicts.Finding("not in this preset", verdicts.NOT_RUN)
        if train_missing:
            return claim.test(lambda figure: self.frame(figure, preset_name, device, root))
        frames = {f: self.stored_frame(f, preset_name, root) for f in claim.figures}
        stored = sum(len(frame) for frame in frames.values())
        if stored < planned:
            return verdicts.Finding(f"{stored} of {planned} runs stored", verdicts.NOT_RUN)
        return claim.test(frames.__getitem__)

    def claims_table(self, preset_name: str | None = None, device: str | None = None, root=None,
                     stored: Sequence[str] = ("quick", "full")):
        """The "What this chapter reproduces" table: per claim the paper's number and ours with its verdict at
        ``preset_name`` (the page's preset: trained where missing) and at each of ``stored`` (stored runs only).
        One column per preset, each cell "verdict: ours"."""
        import pandas as pd

        columns: dict[str, bool] = {}
        if preset_name is not None:
            self.check_preset(preset_name)
            columns[preset_name] = True
        for name in stored:
            if name in self.presets and name not in columns:
                columns[name] = False
        rows = []
        for claim in self.claims:
            row = {"the paper's claim": claim.what, "paper": claim.paper}
            for name, trains in columns.items():
                found = self.finding(claim, name, device, root, train_missing=trains)
                row[name] = found.status if found.ours in ("", found.status) else f"{found.status}: {found.ours}"
            rows.append(row)
        return pd.DataFrame(rows, columns=["the paper's claim", "paper", *columns])

    def recipe_table(self, preset_name: str = "full"):
        """The recipe table as a DataFrame: setting, paper, released code, ``full`` (``name=value``, read from the
        plan of ``preset_name``) and a note."""
        import pandas as pd

        configs = [item.config for item in self.planned(preset_name)]
        rows = []
        for row in self.recipe:
            shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in row.values(configs))
            rows.append({"setting": row.what, "paper": row.paper, "released code": row.code,
                         preset_name: f"{row.setting} = {shown}", "note": row.note})
        return pd.DataFrame(rows, columns=["setting", "paper", "released code", preset_name, "note"])

    def planned(self, preset_name: str) -> list[Planned]:
        """Every run of every figure at ``preset_name``, in figure order (a run may appear under several)."""
        self.check_preset(preset_name)
        return [Planned(f.name, cfg, f.needs_model, f.reads_compact) for f in self.figures for cfg in f.configs(preset_name)]


@dataclass(frozen=True)
class Planned:
    """One run of a figure. ``keep_model``: the chapter also reads the trained network (compact file or ``model.pt``);
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
            "lr": c.lr,  # the learning rate and weight decay the run uses (the method's defaults filled in)
            "weight_decay": c.weight_decay,
            "config": c.to_dict(),  # every setting, by section: the whole recipe, enough to rebuild the run
        }


def select(chapters: Sequence[Chapter], only: Iterable[str] | None = None) -> list[Chapter]:
    """The chapters named in ``only`` (all of ``chapters``, in their order, when empty); an unknown name is a
    ConfigError on ``--only``."""
    names = [c.name for c in chapters]
    only = list(only or ())
    unknown = [name for name in only if name not in names]
    if unknown:
        raise ConfigError("--only", ",".join(unknown), "one of " + ", ".join(names))
    return [c for c in chapters if not only or c.name in only]


def presets(chapters: Sequence[Chapter]) -> tuple[str, ...]:
    """The presets every one of ``chapters`` declares, in the first chapter's order."""
    if not chapters:
        return ()
    return tuple(p for p in chapters[0].presets if all(p in c.presets for c in chapters[1:]))


def check_preset(preset_name: str, chapters: Sequence[Chapter]) -> None:
    """``preset_name`` must be declared by every chapter of ``chapters`` (a ConfigError on ``--preset``
    naming the allowed ones, and the chapters that declare it if some do)."""
    allowed = presets(chapters)
    if preset_name in allowed:
        return
    having = [c.name for c in chapters if preset_name in c.presets]
    hint = f" (--preset {preset_name} is declared by {', '.join(having)}: choose it with --only)" if having else ""
    raise ConfigError("--preset", preset_name, "one of " + ", ".join(allowed) + hint)


def plan(preset_name: str, chapters: Sequence[Chapter], only: Iterable[str] | None = None) -> list[Entry]:
    """Every distinct run of ``preset_name`` over ``chapters`` (those named in ``only``, default all), first
    use first; a run that several figures (or chapters) use appears once, listing all of them."""
    chosen = select(chapters, only)
    check_preset(preset_name, chosen)
    entries: dict[str, Entry] = {}
    for chapter in chosen:
        for item in chapter.planned(preset_name):
            entry = entries.setdefault(item.config.run_id, Entry(item.config))
            label = f"{chapter.name}: {item.figure}"
            if chapter.name not in entry.chapters:
                entry.chapters.append(chapter.name)
            if label not in entry.figures:
                entry.figures.append(label)
            entry.keep_model = entry.keep_model or item.keep_model
            entry.reads_compact = entry.reads_compact or item.reads_compact
    return list(entries.values())


def configs(preset_name: str, chapters: Sequence[Chapter], only: Iterable[str] | None = None) -> list[RunConfig]:
    return [e.config for e in plan(preset_name, chapters, only)]


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
    IMP at most two rounds (a prune, a rewind and a retrain) rewinding after step 1 (and validating after every step
    where it validates by steps), slot finetuning one epoch,
    LaPerm syncing (and probing) after every step. Everything that picks a code path is kept."""
    changes: dict = {"epochs": min(cfg.train.epochs, 1), "batch_size": DRY_IMAGES, "subset": None,
                     "validation": DRY_IMAGES if cfg.data.validation else 0}
    if cfg.train.steps_per_epoch is not None:  # sampled epochs (ImageNet32 recipes): one step, not a thousand
        changes["steps_per_epoch"] = 1
    method = cfg.method
    if hasattr(method, "rounds"):
        changes.update(rounds=min(method.rounds, 2), rewind_step=min(method.rewind_step, 1))
    if getattr(method, "validate_every", None):  # IMP's validation cadence: a check after every step
        changes["validate_every"] = 1
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
    shape, classes = data.SHAPES[cfg.data.dataset], data.NUM_CLASSES[cfg.data.dataset]
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> data.Split:
        return data.Split(torch.randn(n, *shape, generator=g), torch.arange(n) % classes)

    validation = split(cfg.data.validation) if cfg.data.validation else None
    return data.Splits(split(DRY_IMAGES), validation, split(DRY_TEST_IMAGES), classes, shape)


def real_splits(cfg: RunConfig):
    """The dataset's real splits (its files, loaders and normalization, the validation split held out as the run
    would), cut to the first few images of each: what a dry run steps on with ``real_data``."""
    splits = data.load(dataclasses.replace(cfg.data, subset=None))
    validation = None if splits.validation is None else splits.validation.head(DRY_IMAGES)
    return data.Splits(splits.train.head(DRY_IMAGES), validation, splits.test.head(DRY_TEST_IMAGES),
                       splits.num_classes, splits.input_shape)


def dry_step(cfg: RunConfig, device: str = "cpu", real_data: bool = False) -> dict:
    """Run the method's real flow (``run`` or the shared loop after ``prepare``) on :func:`dry_config` with
    synthetic data (or, with ``real_data``, the first images of the real dataset where its files are present:
    :func:`real_splits`), then evaluate as :func:`randweights.train.run` does. Raises whatever the run raises."""
    small = dry_config(cfg)
    dev = torch.device(device)
    train.seed_everything(small.train.seed)
    source = "synthetic"
    splits = synthetic_splits(small)
    if real_data:
        try:
            splits, source = real_splits(small), "real"
        except DatasetNotFound:  # not on this machine: the recipe is still stepped, on synthetic images
            source = "synthetic (data not present)"
    model, metrics = train.method_flow(small)(small, splits, dev, train.Trainer())
    test = train.evaluate(model, splits.test, dev)
    if not math.isfinite(test["loss"]):
        raise FloatingPointError(f"test loss {test['loss']} after one step")
    facts = {"test_loss": test["loss"], "epochs": len(metrics.get("history", [])), "data": source}
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
        source = f"  [{self.facts['data']} data]" if self.facts.get("data", "synthetic") != "synthetic" else ""
        return (f"{c.method.name:20s} {c.model.arch:16s} {c.data.dataset:8s} {c.run_id:24s} ({self.runs:3d} runs) "
                f"{self.seconds:6.2f} s  {status}{source}")


def dry_run(entries: list[Entry], device: str = "cpu", log=None, real_data: bool = False) -> list[DryResult]:
    """One :func:`dry_step` per distinct recipe (:func:`recipe_key`) of ``entries`` on ``device`` (checked
    first), with synthetic or (``real_data``) real images; a failure is recorded (type and message) and the
    others go on."""
    check_device(device)
    groups: dict[tuple, list[RunConfig]] = {}
    for e in entries:
        groups.setdefault(recipe_key(e.config), []).append(e.config)
    results = []
    for members in groups.values():
        start = time.perf_counter()
        try:
            facts = dry_step(members[0], device, real_data)
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


# ---------------------------------------------------------------------------------------------- step counts and timing
def planned_steps(cfg: RunConfig, train_images: int | None = None) -> int:
    """Optimizer steps a run of ``cfg`` takes in all: every training phase's epochs (IMP: each round, all of them
    even where ``stop_unit_fraction`` may end it early, so an upper bound; Slot Machines: the score epochs and the
    finetuning epochs) times the steps of one epoch over ``train_images`` (default :func:`randweights.data.train_count`)."""
    images = data.train_count(cfg.data) if train_images is None else train_images
    method = cfg.method
    phases = 1
    if hasattr(method, "rounds") and method.rounds > 0:
        phases = method.rounds + 1 if method.pruning_schedule == "iterative" else 2
    epochs = phases * cfg.train.epochs + getattr(method, "finetune_epochs", 0)
    return epochs * cfg.train.epoch_steps(images)


class _Timed(Exception):
    """Raised from the step hook once the timed steps are done: it ends the method's flow there."""


class _StepClock(train.Trainer):
    """A trainer whose ``fit`` times the optimizer steps of every phase after ``warmup`` of them (synchronizing
    the device at both ends) and stops the flow after ``steps`` timed ones or ``max_seconds``."""

    def __init__(self, device: torch.device, warmup: int, steps: int, max_seconds: float | None):
        super().__init__(None)
        self.device, self.warmup, self.steps, self.max_seconds = device, warmup, steps, max_seconds
        self.done, self.timed, self.seconds, self.start = 0, 0, 0.0, 0.0

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def fit(self, model, optimizer, cfg, splits, device, on_step=None, **options):
        def step(global_step: int) -> None:
            if on_step is not None:
                on_step(global_step)
            self.done += 1
            if self.done == self.warmup:
                self.start = self._now()
            elif self.done > self.warmup:
                self.timed, self.seconds = self.done - self.warmup, self._now() - self.start
                if self.timed >= self.steps or (self.max_seconds is not None and self.seconds >= self.max_seconds):
                    raise _Timed

        return super().fit(model, optimizer, cfg, splits, device, on_step=step, **options)


@dataclass
class StepTiming:
    """What :func:`time_steps` measured: ``steps`` timed optimizer steps in ``seconds`` (after ``warmup``
    untimed ones), and ``setup_seconds`` from the start to the first timed step (model, data, warm-up)."""

    config: RunConfig
    steps: int
    seconds: float
    warmup: int
    setup_seconds: float

    @property
    def seconds_per_step(self) -> float | None:
        return self.seconds / self.steps if self.steps else None


def timing_splits(cfg: RunConfig, images: int, device: torch.device, seed: int = 0) -> data.Splits:
    """Random images of the dataset's shape on ``device``: ``images`` training images, a few validation ones,
    and as many test images as the real test split has (at most 10,000: the probes some methods run read them)."""
    shape, classes = data.SHAPES[cfg.data.dataset], data.NUM_CLASSES[cfg.data.dataset]
    g = torch.Generator(device=device).manual_seed(seed)

    def split(n: int) -> data.Split:
        return data.Split(torch.randn(n, *shape, generator=g, device=device), torch.arange(n, device=device) % classes)

    validation = split(DRY_IMAGES) if cfg.data.validation else None
    return data.Splits(split(images), validation, split(min(data.SIZES[cfg.data.dataset][1], 10000)), classes, shape)


def time_steps(cfg: RunConfig, device: str = "cpu", steps: int = 200, warmup: int = 5,
               max_seconds: float | None = None) -> StepTiming:
    """Seconds per optimizer step of ``cfg``'s recipe on ``device``: the method's real flow (its model, batch
    size, precision, optimizer and per-step work: LaPerm's syncs and probes, Slot Machines' selections) on random
    images of the dataset's shape held on the device (as :func:`randweights.train.run` holds the real ones),
    ``warmup`` steps untimed (cuDNN autotuning, first allocations), then ``steps`` timed ones, or fewer when
    ``max_seconds`` is reached first. A recipe that trains fewer steps in all (``epochs = 0``) times what it has.
    Nothing is stored. Raises whatever the run raises."""
    check_device(device)
    for name, value, low in (("steps", steps, 1), ("warmup", warmup, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(name, value, f"an integer >= {low}")
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise ConfigError("max_seconds", max_seconds, "a number of seconds > 0, or None")
    dev = torch.device(device)
    begin = time.perf_counter()
    images = (warmup + steps) * cfg.train.batch_size  # one epoch holds every step (unless steps_per_epoch is set)
    cfg = cfg.replace(subset=None)
    train.seed_everything(cfg.train.seed)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as train.run: autotuned kernels (the warm-up steps pay for it)
    splits = timing_splits(cfg, images, dev)
    clock = _StepClock(dev, warmup, steps, max_seconds)
    try:
        train.method_flow(cfg)(cfg, splits, dev, clock)
    except _Timed:
        pass
    finally:
        del splits
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    setup = (clock.start - begin) if clock.done >= warmup else time.perf_counter() - begin
    return StepTiming(cfg, clock.timed, clock.seconds, warmup, setup)


# ---------------------------------------------------------------------------------------------- cost
@dataclass(frozen=True)
class CostModel:
    """What a GPU is assumed to spend on one optimizer step: ``fixed_seconds`` whatever the network (kernel
    launches and Python: a small network's step is bound by them) plus the step's arithmetic, three times the
    forward pass's floating-point operations per image times the batch, at ``flops_per_second``. Assumptions, not
    measurements: ``benchmarks/gpu_check.sh`` times every recipe's step on the GPU at hand and gives the measured
    hours."""

    fixed_seconds: float = 0.002
    flops_per_second: float = 100e12
    device: str = "one H100/H200-class GPU, one run at a time"
    # IMP stops once a pruned layer has few units left connected (``stop_unit_fraction``): counted up to the round
    # that leaves this fraction of the weights, by which every stop rule of the plans has ended the run
    imp_remaining: float = 1e-5

    def step_seconds(self, cfg: RunConfig) -> float:
        return self.fixed_seconds + 3 * forward_flops(cfg) * cfg.train.batch_size / self.flops_per_second

    def steps(self, cfg: RunConfig) -> int:
        """The optimizer steps counted for ``cfg``: :func:`planned_steps`, an iterative IMP run's rounds capped at
        the one leaving ``imp_remaining`` of its weights."""
        method = cfg.method
        planned = planned_steps(cfg)
        if getattr(method, "pruning_schedule", None) != "iterative" or not getattr(method, "rounds", 0):
            return planned
        counted = min(method.rounds, math.ceil(math.log(self.imp_remaining) / math.log(1 - method.prune_fraction)))
        return planned * (counted + 1) // (method.rounds + 1)


def forward_flops(cfg: RunConfig) -> int:
    """Floating-point operations of one image's forward pass through ``cfg``'s network (counted by torch's
    ``FlopCounterMode`` on meta tensors: nothing is computed or allocated)."""
    m = cfg.model
    return _forward_flops(m.arch, m.width, m.bias, cfg.data.dataset)


@functools.cache
def _forward_flops(arch: str, width: float, bias: bool, dataset: str) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    shape = data.SHAPES[dataset]
    with torch.device("meta"):
        net = models.build(arch, shape, data.NUM_CLASSES[dataset], width, bias)
        x = torch.zeros(1, *shape)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net.eval()(x)
    return int(counter.get_total_flops())


def cost_table(entries: list[Entry], model: CostModel = CostModel()) -> list[dict]:
    """Per chapter (a run counted under the first chapter that uses it) and in all: runs, optimizer steps
    (:meth:`CostModel.steps`) and GPU-hours under ``model``."""
    rows: dict[str, dict] = {}
    for e in entries:
        steps = model.steps(e.config)
        for name in (e.chapters[0], "all"):
            row = rows.setdefault(name, {"chapter": name, "runs": 0, "steps": 0, "gpu_hours": 0.0})
            row["runs"] += 1
            row["steps"] += steps
            row["gpu_hours"] += steps * model.step_seconds(e.config) / 3600
    return [rows[n] for n in rows if n != "all"] + ([rows["all"]] if rows else [])
