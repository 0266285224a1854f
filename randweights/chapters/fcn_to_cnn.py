"""FCN to CNN by pruning (Pellegrini & Biroli 2021): the runs behind the chapter's figures, the figures, and the
verdicts its sentences and its "What this chapter reproduces" table state (:data:`CLAIMS`).

In the comments below P1-P9 name the chapter's sections in page order (accuracy, galleries, displacement maps,
locality, in-degree, out-degree, node ablation, controls, one-shot); the page itself names them in words.

Every figure is drawn from IMP runs of :mod:`randweights.methods.pruning` on the paper's FCN (BatchNorm on each
block input, masked affine map, ReLU). The paper's runs use ImageNet32, as does our ``full`` preset; ``smoke``, ``quick`` and ``full-cifar10`` use
CIFAR-10 (same 32x32x3 geometry).
The analysis of the first-layer masks (locality ratio, displacement maps, ...) is cached next to each run
record as ``locality.json`` / ``ablation.json``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import data, plots, runs, store, train, verdicts
from ..analysis import locality as L
from ..config import RunConfig, make_config
from ..data import NUM_CLASSES
from ..errors import check_choice
from ..methods import pruning
from ..plan import Chapter, Claim, Figure, RecipeRow

ANALYSIS_VERSION = 1

# The official notebook output (github.com/phiandark/SiftingFeatures, src/IMP_PostProcess.ipynb, run "IMPn22",
# ImageNet32, 1000 classes): best IMP iteration, its remaining weights, best validation
# accuracy, and top-1 / top-5 of the final-step weights on 10k validation images (all in %).
PAPER = {"best_round": 13, "remaining_percent": 0.97, "best_validation_accuracy": 12.64, "final_top1": 11.63, "final_top5": 25.46}


@dataclass(frozen=True)
class Preset:
    dataset: str
    subset: int | None  # training images of the main run ("more data")
    less_subset: int  # training images of the less-data control
    validation: int  # images of the best-validation protocol (held out of training, or the first test images: validation_from)
    width: float  # multiplies the FCN's 1024 hidden units
    rounds: int  # pruning rounds: u = 0.7**rounds at the end
    epochs: int  # per round
    batch_size: int
    lr: float
    rewind_step: int
    cnn_arch: str
    cnn_width: float
    cnn_rounds: int
    shuffle_seed: int = 1
    gallery_units: int = 16
    ablation_points: int = 6
    sampling: str = "epoch"  # "replacement": every batch drawn at random, steps_per_epoch of them per epoch
    steps_per_epoch: int | None = None
    label_datasets: tuple[str, str] | None = None  # (meaningful, random) relabelled datasets instead of 2-way groups
    weight_decay: float = 0.0  # the paper: none; when set, a control run without it is added ("no weight decay")
    # The released code's recipe details (the defaults are our CPU presets' and keep their run ids):
    validation_from: str = "train"  # "test": the first `validation` test images (ImageNet32's validation batch)
    validate_every: int | None = None  # steps between validation checks (official: 100); None: every epoch
    normalize: str = "standardize"  # "mean-image": pixels / 255 minus the mean image (official)
    bn_momentum: float = 0.1  # PyTorch's; the official TF decay 0.99 is momentum 0.01
    bn_first_batch: bool = False  # official: each round's moving averages start from the first batch's moments
    one_shot_rounds: int | None = None  # the one-shot control prunes to 0.7**this in one step; None: `rounds`


PRESETS: dict[str, Preset] = {
    "smoke": Preset("cifar10", 300, 100, 100, 16 / 1024, 3, 1, 50, 0.5, 2, "conv2", 1 / 16, 1, gallery_units=9,
                    ablation_points=3, weight_decay=0.02),
    # 2-core CPU: narrow FCN (128 units), 10,000 images (the less-data control 30 % of them, the paper's ratio),
    # short rounds of 3 epochs; lr 0.5 (not 0.1) so that 13 short rounds move the weights about as far as the
    # paper's 1e5 steps at batch 1000 do relative to the init. Weight decay 0.02, which the paper does not use: a
    # round of ours is about 240 steps, too few for training to outgrow the random init, so magnitude pruning ranks
    # mostly the init's random magnitudes and the masks stay salt-and-pepper; the decay shrinks every weight the
    # data does not hold up. Measured, one IMP run each, locality ratio at u = 1 % (random = 1): no decay 0.93 on
    # 5,000 images x 6 epochs, 0.90 on 20,000 x 6, 0.86 on 40,000 x 3; decay 0.02 0.80 on 5,000 x 6 and 0.75 on
    # 10,000 x 3 (0.05 drops the accuracy to 15 %; 0.1 at lr 0.1 gives 0.88). The "no weight decay" control run
    # shows the same comparison in the chapter.
    "quick": Preset("cifar10", 10000, 3000, 1000, 0.125, 13, 3, 128, 0.5, 20, "conv2", 0.125, 7, weight_decay=0.02),
    # The paper's recipe for a GPU on the paper's data, as the released code (github.com/phiandark/SiftingFeatures,
    # src/IMP.py, src/Data.py, src/Network.py, inputs/*.ini) runs it: ImageNet32 (1000 classes), pixels / 255 minus
    # the mean image, f1024:f1024:f1024 with BatchNorm on every block input (moving averages with decay 0.99, i.e.
    # momentum 0.01, seeded by each round's first batch), SGD lr 0.1 (no momentum), batch 1000 drawn with
    # replacement, 1e5 steps per round (100 "epochs" of 1000 steps) for every run, the less-data control included
    # (int(0.3 * 1,281,167) images, the official data_ratio = 0.3: less data, not less training), validation every
    # 100 steps (and at step 0) on the first 10,000 images of the ImageNet32 validation batch (our test split;
    # nothing held out of training), rewinding to step 1000, 30 % per round until the stop rule (the official
    # max_iterations = 1000 never binds). The label controls are the paper's 10 meaningful super-classes and the
    # labels modulo 10. The one-shot control (ours) prunes to u = 0.7**13 ~ 1 %, the official run's best round.
    "full": Preset("imagenet32", None, 384_350, 10_000, 1.0, 1000, 100, 1000, 0.1, 1000, "conv2", 1.0, 1000,
                   gallery_units=64, ablation_points=6, sampling="replacement", steps_per_epoch=1000,
                   label_datasets=("imagenet32-10", "imagenet32-mod10"), validation_from="test", validate_every=100,
                   normalize="mean-image", bn_momentum=0.01, bn_first_batch=True, one_shot_rounds=13),
    # The same recipe on CIFAR-10, where ImageNet32 is not at hand: all 50,000 training images, the less-data
    # control 30 % of them, validation on the first 10,000 test images (all of them).
    "full-cifar10": Preset("cifar10", None, 15_000, 10_000, 1.0, 1000, 100, 1000, 0.1, 1000, "conv2", 1.0, 1000,
                           gallery_units=64, ablation_points=6, sampling="replacement", steps_per_epoch=1000,
                           validation_from="test", validate_every=100, normalize="mean-image", bn_momentum=0.01,
                           bn_first_batch=True, one_shot_rounds=13),
}

RUNS = ("IMP", "random pruning", "CNN (IMP)", "one-shot", "pixel shuffle", "less data", "meaningful labels", "random labels",
        "no weight decay")


def preset(name: str) -> Preset:
    check_choice("preset", name, PRESETS)
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------- runs
def base_settings(p: Preset) -> dict:
    """Flat settings of the main IMP run (the paper: plain SGD, constant lr, biases, learnable BN)."""
    return dict(
        arch="fcn", width=p.width, bias=True, affine_bn=True, dataset=p.dataset, subset=p.subset,
        validation=p.validation, epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, momentum=0.0,
        weight_decay=p.weight_decay or None, schedule="constant", rounds=p.rounds, rewind_step=p.rewind_step, sampling=p.sampling,
        steps_per_epoch=p.steps_per_epoch, validation_from=p.validation_from, validate_every=p.validate_every,
        normalize=p.normalize, bn_momentum=p.bn_momentum, bn_first_batch=p.bn_first_batch,
    )


def configs(p: Preset) -> dict[str, RunConfig]:
    """One IMP run per curve of the chapter, by label (see :data:`RUNS`)."""
    base = base_settings(p)
    changes = {
        "IMP": {},
        "random pruning": {"strategy": "random"},
        # the CNN is local by construction and trains without the FCN's weight decay (quick, with it: 15-20%
        # accuracy against 39-43% without)
        "CNN (IMP)": {"arch": p.cnn_arch, "width": p.cnn_width, "rounds": p.cnn_rounds, "weight_decay": None},
        "one-shot": {"pruning_schedule": "one-shot", "rounds": p.one_shot_rounds or p.rounds},
        "pixel shuffle": {"pixel_shuffle_seed": p.shuffle_seed},
        "less data": {"subset": p.less_subset},
        "meaningful labels": {"label_grouping": "meaningful"},
        "random labels": {"label_grouping": "random"},
    }
    if p.label_datasets is not None:
        changes["meaningful labels"], changes["random labels"] = ({"dataset": d} for d in p.label_datasets)
    if p.weight_decay > 0:  # the paper's recipe (no decay) at this preset's scale, as a control
        changes["no weight decay"] = {"weight_decay": None}  # the method's default: none
    return {label: make_config("imp", **{**base, **c}) for label, c in changes.items()}


def records_by_run(preset_name: str, device=None) -> dict[str, dict]:
    """The record of every run of the chapter by its label (:data:`RUNS`), trained where missing, through
    :data:`CHAPTER` (one figure per run); the main IMP run keeps its final model for node ablation. A run that is
    not stored while training is off is left out."""
    out = {}
    for figure in CHAPTER.figures:
        records = CHAPTER.records(figure.name, preset_name, device)
        if records:
            out[figure.name] = records[0]
    return out


def scale_text(p: Preset) -> str:
    """How this preset trains the FCN, for the chapter's introduction."""
    data = f"{p.subset:,} training images" if p.subset else "all the training images"
    steps = f"{p.steps_per_epoch * p.epochs:,} steps" if p.steps_per_epoch else f"{p.epochs} epochs"
    text = (f"a{' narrow' if p.width < 1 else ''} FCN ({round(1024 * p.width)} hidden units per layer), {data}, rounds "
            f"of {steps} at lr {p.lr:g}")
    if p.weight_decay:
        text += (f", and weight decay {p.weight_decay:g}, which the paper does not use (why: see the locality section "
                 "below; the CNN trains without it: it is local by construction)")
    return text


def reproduces_note(frame: pd.DataFrame, p: Preset, seeds: int) -> str:
    """What the "What this chapter reproduces" table rests on at this preset: the weight decay the paper does not
    use (with the locality it buys, measured) and the number of seeds per run."""
    text = (f"Each run at this preset is trained with {seeds} seed{'s' if seeds != 1 else ''}"
            + (", so no claim can be more than partly reproduced here." if seeds == 1 else "."))
    if p.weight_decay and "no weight decay" in set(frame["run"]):
        last = frame.sort_values("round").groupby("run").tail(1).set_index("run")["locality_ratio"]
        text += (f" The FCN trains with weight decay {p.weight_decay:g}, which the paper does not use: without it the "
                 f"same IMP run ends at a locality ratio of {last['no weight decay']:.2f}, against "
                 f"{last['IMP']:.2f} with it and {last['random pruning']:.2f} for random pruning (1 = random; the "
                 "locality section says why the decay is there).")
    return text


def weight_decay_text(frame: pd.DataFrame, p: Preset) -> str:
    """Measured effect of this preset's weight decay on the last round's locality ratio, for the text (P4)."""
    if "no weight decay" not in set(frame["run"]):
        return "This preset trains without weight decay, as the paper does."
    last = frame.sort_values("round").groupby("run").tail(1).set_index("run")
    ratio, acc = last["locality_ratio"], 100 * last["best_validation_accuracy"]
    if p.steps_per_epoch:
        rounds = f"{p.steps_per_epoch * p.epochs:,} steps"
    else:
        rounds = f"about {(p.subset // p.batch_size) * p.epochs:,} steps" if p.subset else f"{p.epochs} epochs"
    images = f"{p.subset:,} images" if p.subset else "all the images"
    return (f"The paper trains without weight decay, for 100,000 steps per round on 1.28 M images. Our rounds are "
            f"{rounds} on {images}, too few for training to outgrow the random initialization: magnitude "
            f"pruning then ranks mostly the init's random magnitudes. So this preset adds weight decay "
            f"{p.weight_decay:g}, which shrinks the weights the data does not hold up. The same IMP run without it "
            f"(the paper's recipe at this scale) ends at a locality ratio of {ratio['no weight decay']:.3f}, against "
            f"{ratio['IMP']:.3f} with it; its last round's best validation accuracy is {acc['no weight decay']:.1f}%, "
            f"against {acc['IMP']:.1f}% with it.")


def _run_of(label: str):
    """``preset name -> [the config of run "label"]`` (empty where the preset has no such run)."""

    def configs_at(name: str) -> list[RunConfig]:
        cfg = configs(preset(name)).get(label)
        return [cfg] if cfg is not None else []

    return configs_at


# One figure per run of the chapter (each of P1-P9 reads several of them; :func:`records_by_run` gathers them), in
# the order of RUNS; the main IMP run keeps its model (node ablation, P7). `randweights plan`, `sweep` and `bundle`
# read the same list.
@functools.cache
def _run_ids(labels: frozenset[str]) -> frozenset[str]:
    """The run ids of the runs called ``labels`` (:data:`RUNS`) at every preset."""
    return frozenset(cfg.run_id for p in PRESETS.values() for label, cfg in configs(p).items() if label in labels)


def _runs(*labels: str):
    """A :class:`RecipeRow` selector: the runs called ``labels``."""
    return lambda cfg: cfg.run_id in _run_ids(frozenset(labels))


def _runs_but(*labels: str):
    """A :class:`RecipeRow` selector: every run but those called ``labels``."""
    return lambda cfg: cfg.run_id not in _run_ids(frozenset(labels))


_LABEL_RUNS = ("meaningful labels", "random labels")
_IMP_RUNS = tuple(label for label in RUNS if label != "one-shot")
_ABSTRACT = "not in the abstract"  # the only part of the paper available to us
_CODE = "the released code's"

# Where the paper, the released code (github.com/phiandark/SiftingFeatures, commit 7e0b483: src/IMP.py, Data.py,
# Network.py, Utils.py, inputs/*.ini) and `full` could differ. Only the abstracts were available to us, so `full`
# follows the released code, which produced the published runs (its post-processing notebook holds run "IMPn22").
RECIPE = (
    RecipeRow("dataset", "visual tasks (abstract)", "ImageNet32 (downsampled ImageNet, 32x32), 1000 classes", "dataset",
              _runs_but(*_LABEL_RUNS), "the released code's; full-cifar10 runs the same recipe on CIFAR-10"),
    RecipeRow("labels (label controls)", "the role of the task (abstract)",
              "reclass = f,10,classes.dat (10 meaningful super-classes) and m,10 (labels modulo 10)", "dataset",
              _runs(*_LABEL_RUNS), "the released code's two inputs (10cl_meaning.ini, 10cl_modulo.ini)"),
    RecipeRow("training images (less-data control)", "the role of data (abstract)",
              "data_ratio = 0.3: the first int(0.3 x 1,281,167) = 384,350 images", "subset", _runs("less data"),
              "the same count, drawn class-balanced (fixed seed) where the released code takes the first images in "
              "file order; the other runs train on every training image"),
    RecipeRow("input pixels", _ABSTRACT, "(pixel - mean image) / 255, the mean image of the batch files; no std",
              "normalize", note="mean-image: pixels in [0, 1] minus the mean image of the run's training images (the "
              "less-data run: of its 30 %, where the released code keeps the full set's); no std, as the code"),
    RecipeRow("network", "a simple fully connected network (abstract)",
              "f1024:f1024:f1024:x, BatchNorm on every block input, N(0, 2/(fan_in+fan_out)) weights, zero biases",
              "init", _runs_but("CNN (IMP)"), "the released code's; the CNN of the accuracy figure is ours (the paper's CNN is not published)"),
    RecipeRow("optimizer", _ABSTRACT, "minimizer = SGD (plain gradient descent)", "optimizer", note=_CODE),
    RecipeRow("SGD momentum", _ABSTRACT, "none (GradientDescentOptimizer)", "momentum", note=_CODE),
    RecipeRow("weight decay", _ABSTRACT, "none", "weight_decay", note=_CODE),
    RecipeRow("learning rate", _ABSTRACT, "learning_rate = 0.1", "lr", note=_CODE),
    RecipeRow("learning-rate schedule", _ABSTRACT, "none: constant", "schedule", note=_CODE),
    RecipeRow("batch size", _ABSTRACT, "batch_size = 1000", "batch_size", note=_CODE),
    RecipeRow("batches", _ABSTRACT, "np.random.choice(n, 1000): drawn with replacement", "sampling", note=_CODE),
    RecipeRow("steps per round (epochs of steps_per_epoch)", _ABSTRACT, "steps = 100000", "epochs",
              note="100 epochs of 1000 steps = the released code's 100,000 steps, for every run (the less-data "
              "control too: less data, not less training)"),
    RecipeRow("steps per epoch", _ABSTRACT, "(no epochs: 100,000 steps)", "steps_per_epoch",
              note="an epoch here is a bookkeeping unit of 1000 sampled batches"),
    RecipeRow("pruned per round", "iterative magnitude pruning (abstract)",
              "prune_ratio = 0.3 of the remaining weights and biases, per layer, hidden layers only", "prune_fraction",
              note=_CODE),
    RecipeRow("rewinding", "winning lottery tickets (abstract)", "weights_step = 1000 (late rewinding)", "rewind_step",
              note=_CODE),
    RecipeRow("rounds", _ABSTRACT, "max_iterations = 1000 (the default: never reached), besides the stop rule",
              "rounds", _runs(*_IMP_RUNS),
              "the released code's: IMP prunes until the stop rule, not to a fixed count (our CPU presets cap it)"),
    RecipeRow("stop rule", _ABSTRACT, "stop_ratio = 0.2: stop once a pruned layer keeps <= 20 % of its units connected",
              "stop_unit_fraction", note=_CODE),
    RecipeRow("one-shot control (rounds' worth pruned at once)", "other pruning procedures (ICML abstract)",
              "none (IMP only)", "rounds", _runs("one-shot"),
              "ours: to u = 0.7**13 ~ 1 % in one step, the official run's best IMP round"),
    RecipeRow("validation images", _ABSTRACT, "val_size = 10000", "validation", note=_CODE),
    RecipeRow("validation images from", _ABSTRACT,
              "the first val_size images of val_data (ImageNet32's validation batch); none held out of training",
              "validation_from", note="test: our test split is ImageNet32's validation batch, so the best-validation "
              "accuracy is checked on test images, as the released code does (optimistic: see the accuracy section)"),
    RecipeRow("validation every", _ABSTRACT, "validate_step = 100, from step 0", "validate_every",
              note="the best validation accuracy per round is the best of 1001 checks, as in the released code"),
    RecipeRow("BatchNorm running-statistics momentum", _ABSTRACT,
              "batch_norm_beta = 0.99: a moving average with decay 0.99", "bn_momentum",
              note="PyTorch's momentum is 1 - decay: 0.01 (PyTorch's default 0.1 would average over ~10 steps, "
              "not ~100)"),
    RecipeRow("BatchNorm running statistics start", _ABSTRACT,
              "each round's moving averages start from step 0's batch moments", "bn_first_batch",
              note="True: the first batch of every round sets them (PyTorch's reset starts from mean 0, variance 1)"),
)

# ---------------------------------------------------------------------------------------------- claims
# The paper's claims this chapter tests, for its "What this chapter reproduces" table. Each test receives
# ``frame(figure)`` (the records of that run, one row a seed) and judges the claim with the statistic its figure
# shows, through :mod:`randweights.verdicts` (one seed a run at our CPU presets: "partly" at best).
PAPER_BEST_U = 0.97  # % of weights remaining at the official run's best IMP round (PAPER["remaining_percent"])


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records") if len(frame) else []


@functools.cache
def _preset_of(run_id: str) -> str:
    """The preset whose main IMP run is ``run_id`` (the node ablation reads its preset's settings)."""
    for name, p in PRESETS.items():
        if configs(p)["IMP"].run_id == run_id:
            return name
    raise ValueError(f"run {run_id}: not the IMP run of any preset of the FCN chapter")


def _last(record: dict) -> dict:
    return round_table(record)[-1]


def locality_finding(imp: list[float], random: list[float], no_decay: list[float] | None = None,
                     decay: float | None = None) -> verdicts.Finding:
    """Pruning leaves local first-layer fields: IMP's last-round locality ratio against random pruning's (per
    seed); ``no_decay``: the same IMP run without this preset's weight decay ``decay``, named beside it."""
    c = verdicts.compare("IMP", "random pruning", [below_random(v) for v in imp], [below_random(v) for v in random],
                         paper_first=True)
    ours = f"ratio {verdicts.mean_sd(imp)[0]:.2f} vs {verdicts.mean_sd(random)[0]:.2f}"
    if decay:
        ours += f" with decay {decay:g}, not the paper's" + (
            f" (without: {verdicts.mean_sd(no_decay)[0]:.2f})" if no_decay else "")
    return verdicts.Finding(ours, c.status, c.sentence())


def _claim_local(frame) -> verdicts.Finding:
    imp = _records(frame("IMP"))
    no_decay = [_last(r)["locality_ratio"] for r in _records(frame("no weight decay"))]
    return locality_finding([_last(r)["locality_ratio"] for r in imp],
                            [_last(r)["locality_ratio"] for r in _records(frame("random pruning"))],
                            no_decay or None, imp[0].get("weight_decay") if imp else None)


def accuracy_finding(imp: list[float], random: list[float]) -> verdicts.Finding:
    """IMP ahead of random pruning: the last round's best validation accuracy (fractions, per seed)."""
    c = verdicts.compare("IMP", "random pruning", [100 * v for v in imp], [100 * v for v in random], paper_first=True)
    return verdicts.Finding(f"{c.mean_first:.1f}% vs {c.mean_second:.1f}%", c.status, c.sentence())


def _claim_accuracy(frame) -> verdicts.Finding:
    return accuracy_finding([_last(r)["best_validation_accuracy"] for r in _records(frame("IMP"))],
                            [_last(r)["best_validation_accuracy"] for r in _records(frame("random pruning"))])


def peak_finding(tables: list[pd.DataFrame], paper_u: float = PAPER_BEST_U) -> verdicts.Finding:
    """Accuracy peaks after much pruning: per seed (one per-round table each: ``round``, ``remaining_fraction``,
    ``best_validation_accuracy``) the best round's accuracy against the dense round 0's. Reproduced only where,
    besides, the best round's u (mean over seeds, in %) is within a factor 3 of the paper's ``paper_u``."""
    best = [t.loc[t["best_validation_accuracy"].idxmax()] for t in tables]
    dense = [t.sort_values("round").iloc[0] for t in tables]
    c = verdicts.compare("the best round", "the dense round 0", [100 * b["best_validation_accuracy"] for b in best],
                         [100 * d["best_validation_accuracy"] for d in dense], paper_first=True)
    u = verdicts.mean_sd([100 * b["remaining_fraction"] for b in best])[0]
    near = paper_u / 3 <= u <= 3 * paper_u
    status = c.status if near or c.status != verdicts.REPRODUCED else verdicts.PARTLY
    where = "near" if near else ("above" if u > paper_u else "below")
    return verdicts.Finding(f"at u = {u:.1f}%, {c.diff:+.1f} points", status,
                            f"{c.sentence()}; its u is {where} the paper's {paper_u:g}% (a factor 3 either way counts as near)")


def _claim_peak(frame) -> verdicts.Finding:
    return peak_finding([pd.DataFrame(round_table(r)) for r in _records(frame("IMP"))])


def degree_finding(pairs: list[tuple[float, float]]) -> verdicts.Finding:
    """Better-connected units more local: :func:`degree_comparison` of (least, most) per seed."""
    c = degree_comparison(pairs)
    return verdicts.Finding(f"ratio {1 - c.mean_first / 100:.2f} vs {1 - c.mean_second / 100:.2f}", c.status, c.sentence())


def _claim_degree(frame) -> verdicts.Finding:
    return degree_finding([degree_locality(r) for r in _records(frame("IMP"))])


def ablation_finding(ablations: list[pd.DataFrame]) -> verdicts.Finding:
    """Removing the least connected first hurts less: :func:`ablation_comparison` (mean accuracy over the sweep)."""
    c = ablation_comparison(ablations)
    return verdicts.Finding(f"{c.mean_first:.1f}% vs {c.mean_second:.1f}% mean", c.status, c.sentence())


def _claim_ablation(frame) -> verdicts.Finding:
    return ablation_finding([ablation(r, _preset_of(r["run_id"])) for r in _records(frame("IMP"))])


def one_shot_finding(frames: list[pd.DataFrame]) -> verdicts.Finding:
    """IMP more local than one shot at the same u: :func:`one_shot_comparison` (one rounds frame a seed)."""
    c = one_shot_comparison(frames)
    return verdicts.Finding(f"ratio {1 - c.mean_first / 100:.2f} vs {1 - c.mean_second / 100:.2f}", c.status, c.sentence())


def _claim_one_shot(frame) -> verdicts.Finding:
    pairs = zip(_records(frame("IMP")), _records(frame("one-shot")))
    return one_shot_finding([rounds_frame({"IMP": imp, "one-shot": one}) for imp, one in pairs])


CLAIMS = (
    Claim("First-layer fields become local", "local masks", ("IMP", "random pruning", "no weight decay"), _claim_local),
    Claim("IMP beats random pruning", "IMP ahead", ("IMP", "random pruning"), _claim_accuracy),
    Claim("Accuracy peaks after heavy pruning", f"at u = {PAPER_BEST_U:g}%", ("IMP",), _claim_peak),
    Claim("Better-connected units more local", "yes", ("IMP",), _claim_degree),
    Claim("Least connected removed first hurts less", "yes", ("IMP",), _claim_ablation),
    Claim("IMP more local than one-shot", "yes (ICML)", ("IMP", "one-shot"), _claim_one_shot),
)

CHAPTER = Chapter(
    "fcn_to_cnn", "FCN to CNN by pruning: local features sifted out of a fully connected net", "notebooks/fcn_to_cnn.ipynb",
    tuple(PRESETS),
    tuple(Figure(label, _run_of(label), needs_model=label == "IMP") for label in RUNS),
    order=4,
    recipe=RECIPE,
    claims=CLAIMS,
)


# ---------------------------------------------------------------------------------------------- analysis
def masks_of(record: dict, unshuffle: bool = True) -> list[np.ndarray]:
    """First-layer masks of every trained round as (units, C, H, W); mapped back through pi^-1 for the
    pixel-shuffle control unless ``unshuffle`` is False."""
    masks = pruning.first_layer_masks(record)
    seed = record.get("pixel_shuffle_seed")
    if unshuffle and seed is not None:
        masks = [pruning.unshuffle_masks(m, seed) for m in masks]
    return masks


def _cached(record: dict, name: str, compute):
    """``compute()`` once per run and analysis version: stored as ``<results>/<run_id>/<name>`` by the store."""
    return store.cached_json(f"{record['run_id']}/{name}", {"version": ANALYSIS_VERSION}, compute, field="rows")


def round_table(record: dict) -> list[dict]:
    """Per trained round: accuracy, remaining fraction and the locality measures of the first-layer masks
    (for the pixel-shuffle run both in shuffled coordinates and mapped back)."""

    def compute():
        rows = []
        is_image = record["arch"] == "fcn"
        back = masks_of(record) if is_image else [None] * record["rounds_trained"]
        raw = masks_of(record, unshuffle=False) if is_image and record.get("pixel_shuffle_seed") is not None else back
        for metrics, m, m_raw in zip(record["round_metrics"], back, raw):
            row = {k: metrics[k] for k in ("round", "remaining_fraction", "test_accuracy", "best_validation_accuracy")}
            row["first_layer_fraction"] = metrics["remaining_per_layer"][0]
            if m is not None:
                s = L.summary(m)
                row.update(s)
                row["near_origin_excess"] = s["near_origin_mass"] / s["near_origin_mass_random"]
                row["locality_ratio_as_trained"] = L.locality_ratio(m_raw)
            rows.append(row)
        return rows

    return _cached(record, "locality.json", compute)


def rounds_frame(records: dict[str, dict]) -> pd.DataFrame:
    """All runs' per-round rows in one frame, labelled by run (and its ``run_id``)."""
    frames = [pd.DataFrame(round_table(r)).assign(run=label, run_id=r["run_id"]) for label, r in records.items()]
    return pd.concat(frames, ignore_index=True)


def pick_rounds(record: dict, targets=(0.3, 0.1)) -> list[int]:
    """Indices of the trained rounds closest (in log u) to each target, then the last round."""
    u = np.array([m["remaining_fraction"] for m in record["round_metrics"]])
    picks = [int(np.argmin(np.abs(np.log(u) - np.log(t)))) for t in targets] + [len(u) - 1]
    return list(dict.fromkeys(picks))


def ablation(record: dict, preset_name: str, device=None) -> pd.DataFrame:
    """P7: test accuracy of the final IMP model with the k most / least connected or random first-layer units
    zeroed (BatchNorm keeps its running statistics)."""
    p = preset(preset_name)
    cfg = configs(p)["IMP"]

    def compute():
        splits = data.load(cfg.data)
        pruning.apply_controls(cfg, splits)
        dev = train.pick_device(device)
        model = runs.load_network(cfg).to(dev)  # weight = weight_orig * mask, as the masked model computes it
        layer = pruning.prunable_layers(model)[0]
        masks = masks_of(record)[-1]
        counts = np.linspace(0, len(masks), p.ablation_points).round().astype(int).tolist()
        rows = []
        with torch.no_grad():
            for how in ("most", "least", "random"):
                accs = L.ablation_curve(model, layer, masks, counts, lambda m: train.evaluate(m, splits.test, dev)["accuracy"], how)
                rows += [{"order": how, "units_ablated": k, "test_accuracy": a} for k, a in zip(counts, accs)]
        return rows

    return pd.DataFrame(_cached(record, "ablation.json", compute))


def comparison_table(records: dict[str, dict], preset_name: str) -> pd.DataFrame:
    """The paper's best IMP iteration beside ours (ImageNet32, 1000 classes; ours: the preset's dataset)."""
    def column(record: dict | None) -> list:
        if record is None:
            return ["not run"] * 4
        df = pd.DataFrame(round_table(record))
        best = df.loc[df["best_validation_accuracy"].idxmax()]
        return [int(best["round"]), round(100 * best["remaining_fraction"], 2), round(100 * best["best_validation_accuracy"], 2),
                round(100 * best["test_accuracy"], 2)]

    def label(name: str) -> str:
        p = preset(name)
        return f"ours ({name}, {plots.readable(p.dataset)}, {NUM_CLASSES[p.dataset]:,} classes)"

    columns = {"paper (ImageNet32, 1000 classes)": [PAPER["best_round"], PAPER["remaining_percent"], PAPER["best_validation_accuracy"], PAPER["final_top1"]]}
    if preset_name != "full":  # the paper-scale run where one is stored (an imported bundle); never trained here
        columns[label("full")] = column(next(iter(store.verified(c) for c in CHAPTER.figure("IMP").configs("full")), None))
    columns[label(preset_name)] = column(records["IMP"])
    return pd.DataFrame(columns, index=pd.Index(["best IMP round", "remaining weights at best round (%)", "best validation accuracy (%)", "final-weights accuracy (%)"], name="measure"))


# ---------------------------------------------------------------------------------------------- figures
COLORS = {**dict(zip(RUNS, plots.sns.color_palette(plots.PALETTE, len(RUNS)))), "no weight decay": "0.35"}


def _u_axis(ax) -> None:
    """Remaining weights on a log axis running from 100 % down (the paper's orientation)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.invert_xaxis()
    plots.percent_axis(ax, "x")
    ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
    ax.set_xlabel("remaining weights u (log)")


def plot_accuracy(frame: pd.DataFrame, preset_name: str):
    """P1: best validation accuracy (the paper's headline) and final-weights test accuracy vs u."""
    fig, axes = plots.panels(2, width=4.4)
    for label in ("IMP", "random pruning", "CNN (IMP)"):
        g = frame[frame["run"] == label]
        axes[0].plot(g["remaining_fraction"], g["best_validation_accuracy"], marker="o", ms=3, color=COLORS[label], label=label if label != "IMP" else "FCN, IMP")
        axes[1].plot(g["remaining_fraction"], g["test_accuracy"], marker="o", ms=3, color=COLORS[label], label=label if label != "IMP" else "FCN, IMP")
    imp = frame[frame["run"] == "IMP"]
    best = imp.loc[imp["best_validation_accuracy"].idxmax()]
    axes[0].scatter([best["remaining_fraction"]], [best["best_validation_accuracy"]], marker="*", s=160, color=COLORS["IMP"], zorder=4, label="best IMP round")
    for ax, title in zip(axes, ("best validation accuracy over the round", "test accuracy, final weights")):
        _u_axis(ax)
        plots.percent_axis(ax)
        ax.set(title=title, ylabel="accuracy")
        ax.title.set_fontsize(9)
    return plots.finish(fig, preset_name, fontsize=8, ncol=4)


def mosaic(masks: np.ndarray, units: int) -> np.ndarray:
    """The ``units`` most-connected masks as RGB tiles (channel c -> colour c; grey for 1-channel masks) in a
    square grid separated by 1-pixel grey lines."""
    order = L.unit_order(masks, "most")[:units]
    tiles = masks[order].astype(float)
    if tiles.shape[1] == 1:
        tiles = np.repeat(tiles, 3, axis=1)
    tiles = tiles[:, :3].transpose(0, 2, 3, 1)  # (n, H, W, 3)
    side = int(np.ceil(np.sqrt(len(tiles))))
    h, w = tiles.shape[1:3]
    canvas = np.full((side * (h + 1) + 1, side * (w + 1) + 1, 3), 0.5)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, side)
        canvas[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = tile
    return canvas


def plot_gallery(record: dict, preset_name: str, units: int, unshuffle: bool = True, title: str = "",
                 compare: tuple[str, dict] | None = None):
    """P2: the most-connected first-layer masks at three sparsities (black: pruned; a colour: that channel kept).
    ``compare``: (label, record) of a second run drawn below at the same rounds (the first row is then labelled
    ``title``)."""
    import matplotlib.pyplot as plt

    picks = pick_rounds(record)
    rows = [(title, record)] + ([compare] if compare is not None else [])
    n = len(picks)
    width = min(3.6, plots.MAX_WIDTH_IN / n)
    height = 3.8 if compare is None else width + 0.6  # square tiles and a title per row
    fig, axes = plt.subplots(len(rows), n, figsize=(width * n, height * len(rows)), squeeze=False)
    for row_axes, (label, rec) in zip(axes, rows):
        masks = masks_of(rec, unshuffle)
        for ax, i in zip(row_axes, picks):
            i = min(i, len(masks) - 1)  # a run stopped early shows its last round
            u = rec["round_metrics"][i]["remaining_fraction"]
            ax.imshow(mosaic(masks[i], units), interpolation="nearest")
            ax.set(title=f"round {rec['round_metrics'][i]['round']}, u = {100 * u:.1f}%", xticks=[], yticks=[])
            ax.grid(False)
        if compare is not None:
            row_axes[0].set_ylabel(label, fontsize=9)
    if title and compare is None:
        fig.suptitle(title, fontsize=10)
    plots.caption_preset(fig, preset_name)
    fig.tight_layout()
    return fig


def gallery_figure(records: dict[str, dict], preset_name: str, units: int):
    """P2 for the chapter: the IMP run, and below it the run without weight decay where the preset has one."""
    if "no weight decay" not in records:
        return plot_gallery(records["IMP"], preset_name, units)
    wd = records["IMP"]["weight_decay"]
    return plot_gallery(records["IMP"], preset_name, units, title=f"IMP, weight decay {wd:g}",
                        compare=("IMP, no weight decay", records["no weight decay"]))


def _show_map(ax, m: np.ndarray, title: str, cmap="magma") -> None:
    h, w = (m.shape[0] + 1) // 2, (m.shape[1] + 1) // 2
    top = m.max() if m.max() > 0 else 1
    ax.imshow(m / top, cmap=cmap, extent=(-w + 0.5, w - 0.5, h - 0.5, -h + 0.5), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.grid(False)


def plot_displacement(record: dict, preset_name: str):
    """P3: same-channel S^sc and cross-channel S^dc displacement maps (each normalised by its max), and S^sc
    divided by its expectation for random masks with the same counts on the same support."""
    masks = masks_of(record)
    picks = pick_rounds(record)
    from matplotlib.colors import TwoSlopeNorm

    col_width = min(3.3, plots.MAX_WIDTH_IN / len(picks))
    fig, axes = plots.plt.subplots(3, len(picks), figsize=(col_width * len(picks), 3 * col_width * 0.95), squeeze=False)
    for col, i in enumerate(picks):
        m = masks[i]
        sc, dc = L.displacement_maps(m)
        expected = L.random_displacement_map(m)
        u = 100 * record["round_metrics"][i]["remaining_fraction"]
        _show_map(axes[0, col], sc, f"$S_{{sc}}$, u = {u:.1f}%")
        _show_map(axes[1, col], dc, f"$S_{{dc}}$, u = {u:.1f}%")
        ratio = np.divide(sc, expected, out=np.ones_like(expected), where=expected > 0.5)
        norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=max(2.0, float(ratio.max())))  # white = 1 = random
        h, w = (ratio.shape[0] + 1) // 2, (ratio.shape[1] + 1) // 2
        im = axes[2, col].imshow(ratio, cmap="coolwarm", norm=norm, extent=(-w + 0.5, w - 0.5, h - 0.5, -h + 0.5), interpolation="nearest")
        axes[2, col].set_title(f"S_sc / random, u = {u:.1f}%", fontsize=9)
        axes[2, col].grid(False)
        fig.colorbar(im, ax=axes[2, col], shrink=0.7)
    for ax in axes[:, 0]:
        ax.set_ylabel("d_y")
    for ax in axes[-1]:
        ax.set_xlabel("d_x")
    plots.caption_preset(fig, preset_name)
    fig.tight_layout()
    return fig


def plot_locality_rounds(frame: pd.DataFrame, preset_name: str):
    """P4: locality ratio, RMS radius and near-origin excess of the first layer vs u (our measures)."""
    fig, axes = plots.panels(3, width=3.9)
    measures = [("locality_ratio", "locality ratio (random = 1)"), ("rms_radius", "RMS radius (pixels)"), ("near_origin_excess", "pairs at |d| <= 2 / random")]
    styles = {"IMP": ("o", "-"), "random pruning": ("o", "-"), "one-shot": ("s", "none"), "no weight decay": ("^", ":")}
    for label, (marker, line) in styles.items():
        g = frame[frame["run"] == label]
        if g.empty:
            continue
        name_of_run = "IMP, no weight decay" if label == "no weight decay" else label
        for ax, (col, name) in zip(axes, measures):
            ax.plot(g["remaining_fraction"], g[col], marker=marker, ms=4, color=COLORS[label], label=name_of_run, linestyle=line)
            ax.set(ylabel=name)
    axes[0].axhline(1.0, **plots.DENSE_STYLE)
    axes[2].axhline(1.0, **plots.DENSE_STYLE)
    for ax in axes:
        _u_axis(ax)
        ax.yaxis.label.set_fontsize(8)
    return plots.finish(fig, preset_name, "measures are ours, not the paper's", fontsize=8, ncol=4)


def plot_degrees(record: dict, preset_name: str, n_bins: int = 4):
    """P5: in-degree histogram and degree-resolved locality at the last round (top), and the same-channel
    displacement map of each in-degree bin (bottom)."""
    m = masks_of(record)[-1]
    deg = L.in_degree(m)
    bins = L.degree_bins(deg, n_bins)
    ratios = L.locality_ratios(m, L.support(m))
    fig = plots.plt.figure(figsize=(plots.MAX_WIDTH_IN, 5.6))
    grid = fig.add_gridspec(2, 2 * len(bins), height_ratios=(1.2, 1))
    top = [fig.add_subplot(grid[0, : len(bins)]), fig.add_subplot(grid[0, len(bins):])]
    top[0].hist(deg, bins=np.arange(0, deg.max() + 3, 2 if deg.max() < 200 else max(2, deg.max() // 60)), color=COLORS["IMP"], log=True)
    top[0].set(xlabel="in-degree (connections per unit)", ylabel="units (log)", title="in-degree, last round")
    labels, values = [], []
    for lo, hi in bins:
        sel = (deg >= lo) & (deg < hi)
        labels.append(f"[{lo},{hi})")
        values.append(float(np.nanmean(ratios[sel])) if sel.any() else np.nan)
    top[1].bar(labels, values, color=COLORS["IMP"])
    top[1].axhline(1.0, **plots.DENSE_STYLE)
    top[1].set(xlabel="in-degree bin", ylabel="mean locality ratio", title="locality by degree (random = 1)")
    top[1].tick_params(axis="x", labelsize=7)
    for b, (lo, hi) in enumerate(bins):
        ax = fig.add_subplot(grid[1, 2 * b : 2 * b + 2])
        sc, _ = L.displacement_maps(m, np.flatnonzero((deg >= lo) & (deg < hi)))
        _show_map(ax, sc, f"$S_{{sc}}$, degree [{lo},{hi})")
        ax.set(xticks=[], yticks=[])
    for ax in top:
        ax.title.set_fontsize(9)
    fig.tight_layout()
    plots.caption_preset(fig, preset_name)
    return fig


def degree_locality(record: dict, n_bins: int = 4) -> tuple[float, float]:
    """The mean locality ratio of the first-layer units in the lowest and in the highest in-degree bin at the last
    round (the two outer bars of the degree figure; NaN where there are fewer than two occupied bins)."""
    m = masks_of(record)[-1]
    deg = L.in_degree(m)
    ratios = L.locality_ratios(m, L.support(m))
    means = [float(np.nanmean(ratios[(deg >= lo) & (deg < hi)])) for lo, hi in L.degree_bins(deg, n_bins)
             if ((deg >= lo) & (deg < hi)).any()]
    return (means[0], means[-1]) if len(means) >= 2 else (float("nan"), float("nan"))


LOCALITY_WORDS = ("how much closer together a unit's connections lie than at random (100% minus the locality ratio; "
                  "higher = more local)")


def below_random(ratio: float) -> float:
    """A locality ratio as the % by which connections lie closer together than at random (higher = more local)."""
    return 100 * (1 - float(ratio))


def degree_comparison(pairs: list[tuple[float, float]]) -> verdicts.Comparison:
    """Better-connected units more local (the paper): :func:`below_random` of the most connected units against the
    least connected, per seed (``pairs``: the locality ratios (least, most) per seed, as :func:`degree_locality`
    gives; the paper has the most connected the more local)."""
    return verdicts.compare("the most connected units", "the least connected", [below_random(most) for _, most in pairs],
                            [below_random(least) for least, _ in pairs], paper_first=True, paired=True)


def degree_summary(records: list[dict], n_bins: int = 4) -> str:
    """P5 in words: the spread of in-degrees at the last round (first seed) and the locality of the least and the
    most connected units, with the seed spread of their difference (:func:`degree_comparison`)."""
    m = masks_of(records[0])[-1]
    deg = L.in_degree(m)
    alive = deg[deg > 0]
    text = (f"At the last round {100 * (deg == 0).mean():.0f}% of the first-layer units have no connection left and "
            f"the others keep between {alive.min() if len(alive) else 0} and {alive.max() if len(alive) else 0} "
            f"(median {int(np.median(alive)) if len(alive) else 0}).")
    pairs = [degree_locality(r, n_bins) for r in records]
    if all(np.isfinite(pairs[0])):
        text += (f" The outer bars of the figure, as {LOCALITY_WORDS}: {degree_comparison(pairs).sentence()}.")
    return text


def _colorbar_axis(ax):
    """An axis for a colorbar right of ``ax``, as tall as its (square) image, so that it never reaches the title."""
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    return make_axes_locatable(ax).append_axes("right", size="5%", pad=0.08)


def plot_out_degree(record: dict, preset_name: str):
    """P6: pixel out-degree map (RGB and summed over channels) and the receptive-field centroids."""
    m = masks_of(record)[-1]
    out = L.out_degree_map(m).astype(float)
    fig, axes = plots.panels(3, width=3.6, height=3.0)
    rgb = out / out.max() if out.max() > 0 else out
    axes[0].imshow(rgb.transpose(1, 2, 0) if rgb.shape[0] == 3 else rgb[0], cmap=None if rgb.shape[0] == 3 else "gray", interpolation="nearest")
    axes[0].set(title="units per pixel\n(per channel, as RGB)", xticks=[], yticks=[])
    im = axes[1].imshow(out.sum(0), cmap="viridis", interpolation="nearest")
    axes[1].set(title="units per pixel\n(channels summed)", xticks=[], yticks=[])
    fig.colorbar(im, cax=_colorbar_axis(axes[1]), label="units")
    centers, radii = L.centroids_and_radii(m)
    ok = np.isfinite(radii)
    sc = axes[2].scatter(centers[ok, 1], centers[ok, 0], c=radii[ok], s=12, cmap="viridis_r")
    axes[2].set(xlim=(-0.5, m.shape[3] - 0.5), ylim=(m.shape[2] - 0.5, -0.5), title="unit centroids", aspect="equal")
    fig.colorbar(sc, cax=_colorbar_axis(axes[2]), label="RMS radius (pixels)")
    for ax in axes:
        ax.grid(False)
        ax.title.set_fontsize(9)
    plots.caption_preset(fig, preset_name)
    fig.tight_layout()
    return fig


def out_degree_summary(record: dict) -> str:
    """P6 in one sentence: how much of the image the last round still sees, and whether the units' centroids
    gather towards the centre (their mean distance from it against a uniform spread over the image)."""
    m = masks_of(record)[-1]
    out = L.out_degree_map(m).sum(0)
    centers, radii = L.centroids_and_radii(m)
    ok = np.isfinite(radii)
    h, w = m.shape[2], m.shape[3]
    yy, xx = np.mgrid[0:h, 0:w]
    middle = ((h - 1) / 2, (w - 1) / 2)
    uniform = float(np.hypot(yy - middle[0], xx - middle[1]).mean())
    ours = float(np.hypot(centers[ok, 0] - middle[0], centers[ok, 1] - middle[1]).mean()) if ok.any() else float("nan")
    verdict = "closer to the centre than" if ours < uniform else "no closer to the centre than"
    return (f"At the last round {100 * (out == 0).mean():.0f}% of the pixels feed no first-layer unit; the units' "
            f"centroids lie {ours:.1f} pixels from the image centre on average, {verdict} a uniform spread "
            f"({uniform:.1f} pixels).")


def plot_ablation(df: pd.DataFrame, preset_name: str):
    """P7: test accuracy (not error) vs number of first-layer units zeroed."""
    fig, axes = plots.panels(1, width=5.0)
    names = {"most": "most connected first", "least": "least connected first", "random": "random order"}
    for how, g in df.groupby("order", sort=False):
        axes[0].plot(g["units_ablated"], g["test_accuracy"], marker="o", ms=4, label=names[how])
    axes[0].set(xlabel="first-layer units ablated", ylabel="test accuracy", title="node ablation, last IMP round")
    plots.percent_axis(axes[0])
    plots.legend_outside(axes[0], "right", fontsize=8)
    plots.caption_preset(fig, preset_name)
    fig.tight_layout()
    return fig


def plot_controls(frame: pd.DataFrame, preset_name: str):
    """P8: locality ratio vs u for (a) more vs less data, (b) meaningful vs random label groupings, (c) the
    pixel-shuffle control in shuffled coordinates and mapped back."""
    fig, axes = plots.panels(3, width=4.0, sharey=True)
    groups = [
        ("(a) training data", [("IMP", "locality_ratio", "more data"), ("less data", "locality_ratio", "less data")]),
        ("(b) 2-way labels", [("meaningful labels", "locality_ratio", "meaningful grouping"), ("random labels", "locality_ratio", "random grouping")]),
        ("(c) pixel shuffle", [("IMP", "locality_ratio", "unshuffled"), ("pixel shuffle", "locality_ratio_as_trained", "shuffled, as trained"), ("pixel shuffle", "locality_ratio", "shuffled, mapped back")]),
    ]
    for ax, (title, lines) in zip(axes, groups):
        for run, col, name in lines:
            g = frame[frame["run"] == run]
            style = {"linestyle": "--"} if col == "locality_ratio_as_trained" else {}
            ax.plot(g["remaining_fraction"], g[col], marker="o", ms=3, label=name, **style)
        ax.axhline(1.0, **plots.DENSE_STYLE)
        _u_axis(ax)
        ax.set(title=title, xlabel="u (log)")
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
    axes[0].set_ylabel("locality ratio (random = 1)")
    fig.tight_layout()
    plots.caption_preset(fig, preset_name)
    return fig


def task_of(record: dict) -> str:
    """The task a run is trained on, in words: its number of classes, or the 2-way grouping of its classes."""
    grouping = record.get("label_grouping")
    if grouping and grouping != "none":
        return f"2 groups ({grouping})"
    return f"{NUM_CLASSES[record['dataset']]:,} classes"


def controls_table(frame: pd.DataFrame, records: dict[str, dict]) -> pd.DataFrame:
    """Last-round numbers of every FCN run, with the task each is trained on (the label controls are 2-way)."""
    last = frame.sort_values("round").groupby("run", sort=False).tail(1).set_index("run")
    cols = ["round", "remaining_fraction", "best_validation_accuracy", "test_accuracy", "locality_ratio", "near_origin_excess", "rms_radius"]
    out = last[[c for c in cols if c in last]].copy()
    out.insert(0, "task", [task_of(records[run]) for run in out.index])
    out = out.drop(index=[r for r in ("CNN (IMP)",) if r in out.index])
    same = [c for c in ("round", "remaining_fraction") if c in out and out[c].nunique() == 1]  # one schedule: said once
    return out.drop(columns=same)


def controls_text(frame: pd.DataFrame) -> str:
    """P8 in words: at the last round, more data against less and the meaningful grouping against the random one
    (the paper: both more local), and the pixel-shuffle run mapped back against the unshuffled one, as
    :func:`below_random` compared (one seed a run)."""
    last = frame.sort_values("round").groupby("run").tail(1).set_index("run")
    parts = []
    for first, second, name_first, name_second in (("IMP", "less data", "more data", "less data"),
                                                   ("meaningful labels", "random labels", "the meaningful grouping",
                                                    "the random grouping")):
        if first in last.index and second in last.index:
            c = verdicts.compare(name_first, name_second, [below_random(last.loc[first, "locality_ratio"])],
                                 [below_random(last.loc[second, "locality_ratio"])], paper_first=True)
            parts.append(c.sentence())
    text = f"At the last round, as {LOCALITY_WORDS}: " + "; ".join(parts) + "."
    if "pixel shuffle" in last.index:
        text += (f" The pixel-shuffle run is {below_random(last.loc['pixel shuffle', 'locality_ratio_as_trained']):.1f}% "
                 f"as trained and {below_random(last.loc['pixel shuffle', 'locality_ratio']):.1f}% mapped back, "
                 f"against {below_random(last.loc['IMP', 'locality_ratio']):.1f}% unshuffled.")
    return text


def _matching_imp_round(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The one-shot run's last round and IMP's round closest to it in log u."""
    one = frame[frame["run"] == "one-shot"].sort_values("round").iloc[-1]
    imp = frame[frame["run"] == "IMP"]
    return one, imp.iloc[(np.abs(np.log(imp["remaining_fraction"]) - np.log(one["remaining_fraction"]))).argmin()]


def one_shot_comparison(frames: list[pd.DataFrame]) -> verdicts.Comparison:
    """IMP more local than one-shot pruning at the same final u (the paper, ICML version): :func:`below_random` of
    IMP against one-shot, per seed (one rounds frame a seed)."""
    pairs = [_matching_imp_round(f) for f in frames]
    return verdicts.compare("iterative pruning (IMP)", "one shot", [below_random(imp["locality_ratio"]) for _, imp in pairs],
                            [below_random(one["locality_ratio"]) for one, _ in pairs], paper_first=True, paired=True)


def one_shot_summary(frame: pd.DataFrame, records: dict[str, dict]) -> str:
    """P9 in words: the locality ratio of one-shot pruning against IMP at the same final u, compared, and where the
    runs reverse the paper, how the one-shot run differs from IMP (read from its record)."""
    one, imp = _matching_imp_round(frame)
    comparison = one_shot_comparison([frame])
    text = (f"At u = {100 * one['remaining_fraction']:.1f}%, {LOCALITY_WORDS}: {comparison.sentence()}.")
    if comparison.direction == "reversed":
        r = records["one-shot"]
        decay = f"weight decay {r['weight_decay']:g}" if r.get("weight_decay") else "no weight decay"
        text += (f" The one-shot run removes {100 * (1 - one['remaining_fraction']):.1f}% of the weights at once from "
                 f"the dense network trained {r['epochs']} epochs at lr {r['lr']:g} with {decay}, then rewinds and "
                 f"retrains once; IMP reaches the same u through {int(imp['round'])} rounds of the same training. "
                 "These runs do not tell why the single cut comes out more local at this scale; its best validation "
                 f"accuracy is {100 * one['best_validation_accuracy']:.1f}%, against "
                 f"{100 * imp['best_validation_accuracy']:.1f}% for IMP.")
    return text


def plot_one_shot(frame: pd.DataFrame, preset_name: str):
    """P9: one-shot vs iterative pruning at the same final u."""
    one, imp_last = _matching_imp_round(frame)
    fig, axes = plots.panels(3, width=2.3)
    for ax, (col, name) in zip(axes, [("locality_ratio", "locality ratio"), ("near_origin_excess", "near pairs / random"), ("best_validation_accuracy", "best val. accuracy")]):
        ax.bar(["iterative (IMP)", "one-shot"], [imp_last[col], one[col]], color=[COLORS["IMP"], COLORS["one-shot"]])
        ax.set(title=name)
        ax.title.set_fontsize(9)
        ax.tick_params(axis="x", labelsize=7)
    axes[0].axhline(1.0, **plots.DENSE_STYLE)
    plots.percent_axis(axes[2])
    plots.caption_preset(fig, preset_name, f"u = {100 * one['remaining_fraction']:.1f}%")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- numbers for the text
def _imp_rounds(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["run"] == "IMP"].sort_values("round")


def accuracy_text(frame: pd.DataFrame) -> str:
    """P1 in words: IMP's best round against the dense round 0, where it lies against the paper's best round, and
    IMP against random pruning at the last round."""
    imp = _imp_rounds(frame)
    best = imp.loc[imp["best_validation_accuracy"].idxmax()]
    c = verdicts.compare("the best round", "the dense round 0", [100 * best["best_validation_accuracy"]],
                         [100 * imp.iloc[0]["best_validation_accuracy"]], paper_first=True)
    u = 100 * best["remaining_fraction"]
    factor = u / PAPER_BEST_U
    where = (f"{factor:.1f} times the paper's" if factor >= 1.05 else
             f"{1 / factor:.1f} times below the paper's" if factor <= 1 / 1.05 else "the paper's")
    text = (f"In our runs IMP's best round is round {int(best['round'])}, at $u$ = {u:.1f}%, {where} remaining "
            f"fraction (the paper's best round is round {PAPER['best_round']}, at $u$ = {PAPER_BEST_U:g}%). Best "
            f"validation accuracy: {c.sentence()}.")
    random = frame[frame["run"] == "random pruning"].sort_values("round")
    if len(random):
        c = accuracy_finding([imp.iloc[-1]["best_validation_accuracy"]], [random.iloc[-1]["best_validation_accuracy"]])
        text += f" At the last round ($u$ = {100 * imp.iloc[-1]['remaining_fraction']:.1f}%): {c.why}."
    return text


def locality_numbers(frame: pd.DataFrame, p: Preset) -> dict[str, str]:
    """P4's numbers for the text: IMP's locality ratio after the first pruning round and at the last, the random
    pruning run's last, and :func:`weight_decay_text`."""
    imp = _imp_rounds(frame)["locality_ratio"]
    random = frame[frame["run"] == "random pruning"].sort_values("round")["locality_ratio"]
    return {"ratio_first": f"{imp.iloc[1]:.3f}",  # after the first pruning round
            "ratio_last": f"{imp.iloc[-1]:.3f}",
            "weight_decay_text": weight_decay_text(frame, p), "random_last": f"{random.iloc[-1]:.3f}"}


def ablation_area(ablation: pd.DataFrame) -> dict[str, float]:
    """Per removal order, the area under the test accuracy against the fraction of first-layer units removed
    (0 to 1, trapezoids): the mean accuracy over the sweep, in %, the statistic the ablation figure shows."""
    out = {}
    for how, g in ablation.groupby("order", sort=False):
        g = g.sort_values("units_ablated")
        x = g["units_ablated"].to_numpy(float) / float(g["units_ablated"].max())
        y = 100 * g["test_accuracy"].to_numpy(float)
        out[str(how)] = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    return out


def ablation_comparison(ablations: list[pd.DataFrame]) -> verdicts.Comparison:
    """Removing the least connected units first hurts less than removing the most connected first (the paper): the
    mean accuracy over the removal sweep (:func:`ablation_area`) of the two orders, per seed (one frame a seed)."""
    areas = [ablation_area(a) for a in ablations]
    return verdicts.compare("least connected first", "most connected first", [a["least"] for a in areas],
                            [a["most"] for a in areas], paper_first=True, paired=True)


def ablation_text(ablations: list[pd.DataFrame]) -> str:
    """P7 in words: the mean test accuracy over the whole removal sweep per order, compared."""
    areas = [ablation_area(a) for a in ablations]
    rand = verdicts.mean_sd([a["random"] for a in areas])[0] if all("random" in a for a in areas) else None
    return ("Averaged over the whole sweep, from no unit removed to all of them (the area under each curve, as a "
            f"mean accuracy): {ablation_comparison(ablations).sentence()}"
            + (f"; a random order averages {rand:.1f}%." if rand is not None else "."))


def run_summary(records: dict[str, dict]) -> pd.DataFrame:
    """One row per run of the chapter (by label), for the "What ran" table."""
    return pd.DataFrame([{"run": k, "run_id": r["run_id"], "arch": r["arch"], "device": r["device"], "train_seconds": r["train_seconds"],
                          "training images": r["train_images"], "rounds trained": r["rounds_trained"],
                          "minutes": r["train_seconds"] / 60, "code": store.code_label(r)} for k, r in records.items()])
