"""LaPerm chapter (Qiu & Suda, 2020, "Train-by-Reconnect"): the runs behind each figure, per preset, and the figures.

Figure ids are the chapter's own (the paper numbers its figures differently; the book's reconstruction notes map
them): F-L1 weight profiles, F-L2 the rank-substitution test, F-L3 LaPerm vs Adam over the sync period k, F-L4 sparse
init (rewiring vs a fixed mask), F-L5 the weight-agnostic nets F1 and F2, F-L6 the class maps of a permuted
logistic regression. One plain-Adam run (``sync_period=0``, with rank-substitution probes) serves F-L1, F-L2 and
the Adam line of F-L3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .. import data, plots, runs, verdicts
from ..config import RunConfig, make_config
from ..errors import check_choice
from ..methods import laperm
from ..plan import Chapter, Claim, Figure, Headline, RecipeRow

# ---------------------------------------------------------------------------------------------- presets
# Sec. 5.5, the F1_and_F2 notebook: pixels x / 255, no biases, Adam 1e-3 * 0.95^epoch, batch 128, k = 250.
F1 = {"arch": "f1", "init": "weight-agnostic", "shared_value": 0.08, "init_sparsity": 3 / 7, "biases": "none",
      "inputs": "unit", "sync_period": 250, "epochs": 10, "schedule": "exponential"}  # keep 4/7
F2_OFFICIAL = {"arch": "f2", "init": "weight-agnostic", "shared_value": 0.03, "layer_sparsity": "14/15,6/7,2/3",
               "biases": "none", "inputs": "unit", "sync_period": 250, "epochs": 25, "schedule": "exponential",
               "weight_decay": 2e-4}  # keep 1/15, 1/7, 1/3; Keras L2 1e-4 is Adam weight decay 2e-4
# Our F2 recipe (same net, shared value, sparsity, k, epochs and optimizer): every unit gets exactly its
# layer's share of zeros, standardized pixels, and a softmax temperature of 30 in the loss. The chapter says why.
F2 = {**F2_OFFICIAL, "inputs": "standardized", "in_degree": "fixed", "logit_scale": 30.0}
F2_ABLATIONS = {  # our F2 recipe with one of its three changes undone
    "official pixels (x / 255)": {"inputs": "unit"},
    "official in-degree (binomial)": {"in_degree": "binomial"},
    "no temperature": {"logit_scale": 1.0},
}
LOGREG = {"arch": "f1", "init": "he-uniform", "biases": "none", "sync_period": 250, "schedule": "constant"}
# `full` draws and regularizes as the official Keras notebooks do: a bias's He-uniform fan_in is its length, and the
# L2 sits on the conv and hidden dense kernels only (not on the output layer, biases or BatchNorm).
KERAS = {"bias_fan": "keras", "l2_scope": "hidden-kernels"}


@dataclass(frozen=True)
class Preset:
    seeds: tuple[int, ...]
    mlp: dict  # data and epochs of the LeNet-300-100 runs (F-L1..F-L4)
    sync_periods: tuple[int, ...]  # F-L3
    sparse_sync_period: int  # F-L4
    sparsities: tuple[float, ...]  # F-L4: fraction of zeros drawn at init
    probe_every: int  # F-L2/F-L3: steps between rank-substitution probes
    probe_images: int
    f1: dict  # F-L5
    f2: dict  # our recipe
    f2_official: dict  # the official notebook's recipe, ported
    ablation_seeds: tuple[int, ...]  # F-L5: our F2 recipe with one change undone
    logreg: dict  # F-L6
    conv: dict | None = None  # F-L1: a small CNN's conv layer (None: skipped)
    paper_nets: tuple[str, ...] = ()  # the table's CIFAR/Conv7 recipes, run only at full


SMOKE_DATA = {"dataset": "mnist", "subset": 1000, "epochs": 1}
PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        seeds=(0,), mlp=SMOKE_DATA, sync_periods=(5,), sparse_sync_period=5, sparsities=(0.5,),
        probe_every=2, probe_images=500, conv={"arch": "conv2", "width": 0.25, "dataset": "mnist", "subset": 200, "epochs": 1},
        f1={**F1, "subset": 2000, "sync_period": 4}, f2={**F2, "subset": 2000, "epochs": 1, "sync_period": 4},
        f2_official={**F2_OFFICIAL, "subset": 2000, "epochs": 1, "sync_period": 4}, ablation_seeds=(0,),
        logreg={**LOGREG, "subset": 1000, "epochs": 1, "sync_period": 4},
    ),
    "quick": Preset(
        seeds=(0, 1), mlp={"dataset": "mnist", "subset": 20000, "epochs": 3},
        sync_periods=(1, 10, 20, 100, 250, 1000), sparse_sync_period=20, sparsities=(0.0, 0.3, 0.5, 0.7, 0.9),
        probe_every=25, probe_images=2000,
        f1=F1, f2=F2, f2_official=F2_OFFICIAL, ablation_seeds=(0, 1),  # F1, F2 at the paper's scale
        logreg={**LOGREG, "epochs": 3},
        conv={"arch": "conv2", "width": 0.25, "dataset": "mnist", "subset": 4000, "epochs": 1},
    ),
    "full": Preset(  # the quick plan on all of MNIST, three seeds, and the paper's own CIFAR recipes
        seeds=(0, 1, 2), mlp={"dataset": "mnist", "epochs": 5, **KERAS},
        sync_periods=(1, 10, 20, 100, 250, 1000), sparse_sync_period=20, sparsities=(0.0, 0.3, 0.5, 0.7, 0.9),
        probe_every=100, probe_images=5000,
        f1=F1, f2={**F2, **KERAS}, f2_official={**F2_OFFICIAL, **KERAS}, ablation_seeds=(0, 1, 2),
        logreg={**LOGREG, "epochs": 3},
        conv={"arch": "conv2", "width": 0.5, "dataset": "mnist", "epochs": 5, **KERAS},
        paper_nets=("laperm-conv7", "laperm-conv2", "laperm-conv4", "laperm-conv13", "resnet50-cifar"),
    ),
}

# The paper's recipes, as the official notebooks run them (github.com/ihsuy/Train-by-Reconnect, commit 71f4627): Adam
# 1e-3, batch 50. Conv7: pixels x / 255, lr 1e-3 * 0.95**epoch, k = 20, random rotation / zoom / shift, biases
# permuted. Conv2/4/13: raw pixels in [0, 255] (their `normalize` returns its input), lr 1e-3 * 0.6**(epoch // 10),
# k = 1000, biases He-uniform and trained freely, L2 1e-4 on the hidden kernels. ResNet-50: x / 255 minus the mean
# training image, the Keras CIFAR ResNet step decay, k = 800, biases zeros (Keras' default) and free, L2 1e-4 on
# every conv kernel. What remains different (augmentation on CIFAR) is in the chapter's recipe table (RECIPE).
CIFAR = {"dataset": "cifar10", "augment": True, "batch_size": 50, "affine_bn": True, "biases": "free", **KERAS}
PAPER_RECIPES: dict[str, dict] = {
    "laperm-conv7": {"dataset": "mnist", "batch_size": 50, "epochs": 45, "sync_period": 20, "inputs": "unit",
                     "schedule": "exponential", "random_affine": True, **KERAS},
    "laperm-conv2": {**CIFAR, "epochs": 125, "sync_period": 1000, "weight_decay": 2e-4, "schedule": "step-0.6", "inputs": "raw"},
    "laperm-conv4": {**CIFAR, "epochs": 125, "sync_period": 1000, "weight_decay": 2e-4, "schedule": "step-0.6", "inputs": "raw"},
    "laperm-conv13": {**CIFAR, "epochs": 125, "sync_period": 1000, "weight_decay": 2e-4, "schedule": "step-0.6", "inputs": "raw"},
    "resnet50-cifar": {**CIFAR, "epochs": 200, "sync_period": 800, "weight_decay": 2e-4, "schedule": "resnet-step",
                       "bias_init": "zeros", "normalize": "mean-image"},
}
RESNET_SPARSITIES = (0.0, 0.3, 0.5, 0.7)

# The paper's numbers: top-1 best test accuracy in %, from the official repository's README table of pretrained
# weights (github.com/ihsuy/Train-by-Reconnect, commit 71f4627).
PAPER_ACCURACY = {
    ("f1", 0.0): 85.46,
    ("f2", 0.0): 78.14,
    ("laperm-conv7", 0.0): 99.72,
    ("laperm-conv2", 0.0): 78.21,
    ("laperm-conv4", 0.0): 89.17,
    ("laperm-conv13", 0.0): 92.21,
    ("resnet50-cifar", 0.0): 92.53,
    ("resnet50-cifar", 0.3): 92.32,
    ("resnet50-cifar", 0.5): 92.02,
    ("resnet50-cifar", 0.7): 90.97,
}
# F-L5 targets we set ourselves for the reproduction (the paper reports 85.46 and 78.14).
TARGETS = {"f1": 0.80, "f2": 0.70}


def preset(name: str) -> Preset:
    check_choice("preset", name, PRESETS)
    return PRESETS[name]


def mlp_config(p: Preset, seed: int = 0, **settings) -> RunConfig:
    """LeNet-300-100 (He-uniform weights and biases, biases permuted), the probes on."""
    base = {"arch": "lenet-300-100", "probe_every": p.probe_every, "probe_images": p.probe_images, **p.mlp}
    return make_config("laperm", seed=seed, **{**base, **settings})


def adam_config(p: Preset, seed: int = 0) -> RunConfig:
    """Plain Adam from the same init (k = 0: never sync), probed: F-L1, F-L2 and the baseline of F-L3."""
    return mlp_config(p, seed, sync_period=0)


# ---------------------------------------------------------------------------------------------- F-L1
def conv_config(p: Preset) -> RunConfig:
    """A small CNN trained with plain Adam for the conv-layer profiles of F-L1."""
    return make_config("laperm", sync_period=0, **p.conv)


def run_record(cfg: RunConfig, device=None) -> dict:
    """The record of ``cfg``'s run (stored by :func:`initial_and_trained`; trained here where it is not): the run
    behind a figure drawn from its network."""
    return runs.get_or_run(cfg, device=device)


def initial_and_trained(cfg: RunConfig, device=None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Kernels of every Linear/Conv layer at init (rebuilt from the config, deterministic) and after training
    (the stored network, :func:`randweights.runs.load_network`)."""
    runs.get_or_run(cfg, device=device, keep_model=True)
    shape, classes = data.SHAPES[cfg.data.dataset], data.NUM_CLASSES[cfg.data.dataset]
    model = laperm.build_initialized(cfg, shape, classes)
    trained_layers = dict(runs.load_network(cfg).named_modules())
    names = [n for n, m in model.named_modules() if isinstance(m, laperm.WEIGHTED)]
    initial = [dict(model.named_modules())[n].weight.detach().clone() for n in names]
    trained = [trained_layers[n].weight.detach() for n in names]
    return initial, trained


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b|."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max())


def profile_similarity(kernels: list[torch.Tensor], pairs: int = 300, seed: int = 0) -> pd.DataFrame:
    """Per layer: median KS distance between two random rows (units) of the layer, against the median KS
    distance between a row and the pooled weights of the next (or previous) layer (F-L1; a measure of ours)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, w in enumerate(kernels):
        r = laperm.rows(w).numpy()
        other = laperm.rows(kernels[i + 1 if i + 1 < len(kernels) else i - 1]).numpy().ravel()
        idx = rng.integers(0, len(r), size=(pairs, 2))
        within = [ks_distance(r[a], r[b]) for a, b in idx if a != b]
        across = [ks_distance(r[a], other) for a in idx[:, 0]]
        out.append({"layer": i + 1, "units": r.shape[0], "fan_in": r.shape[1], "KS within layer": float(np.median(within)) if within else float("nan"),
                    "KS to another layer": float(np.median(across))})
    return pd.DataFrame(out)


def plot_profiles(initial: list[torch.Tensor], trained: list[torch.Tensor], preset_name: str, title: str, max_rows: int = 100):
    """Every unit's fan-in vector sorted ascending (one thin line per unit), at init (top) and after training
    (bottom), one column per layer; the first row of each layer is also drawn unsorted (grey) in the trained
    panel, to show the noise that sorting removes."""
    n = len(initial)
    fig, axes = plots.plt.subplots(2, n, figsize=(min(3.4, plots.MAX_WIDTH_IN / n) * n, 5.2), squeeze=False)
    for j, (w0, w) in enumerate(zip(initial, trained)):
        for i, (tensor, when) in enumerate(((w0, "at init"), (w, "trained"))):
            ax = axes[i][j]
            r = laperm.rows(tensor)[:max_rows]
            x = np.linspace(0, 1, r.shape[1])
            if i == 1:
                ax.plot(x, r[0].numpy(), color="0.75", lw=0.4, label="one unit, unsorted")
            ax.plot(x, r.sort(dim=1).values.numpy().T, lw=0.5, alpha=0.35)
            units, fan_in = laperm.rows(tensor).shape
            ax.set(title=f"layer {j + 1}, {when}\n{units} units x {fan_in} inputs", xlabel="rank / fan-in")
            ax.title.set_fontsize(8)
        axes[0][j].sharey(axes[1][j])
    axes[0][0].set_ylabel("weight value")
    axes[1][0].set_ylabel("weight value")
    fig.suptitle(title, fontsize=10)
    return plots.finish(fig, preset_name, fontsize=8)


# ---------------------------------------------------------------------------------------------- F-L2
def probe_frame(record: dict) -> pd.DataFrame:
    return pd.DataFrame(record["probes"])


def rank_substitution(preset_name: str, device=None) -> tuple[dict, pd.DataFrame]:
    """F-L2: the plain-Adam run with its probes (accuracy of theta_t, of sync(theta_t), of row-shuffled
    theta_t, every ``probe_every`` steps)."""
    record = CHAPTER.records("F-L1, F-L2, F-L3", preset_name, device)[0]
    return record, probe_frame(record)


def plot_rank_substitution(record: dict, probes: pd.DataFrame, preset_name: str):
    fig, axes = plots.panels(2, width=4.6)
    ax = axes[0]
    ax.plot(probes["step"], probes["current"], marker=".", label=r"Adam weights $\theta_t$")
    ax.plot(probes["step"], probes["synced"], marker=".", label=r"ranks of $\theta_t$, values of $\theta_0$")
    ax.plot(probes["step"], probes["shuffled"], marker=".", label=r"values of $\theta_t$, rows shuffled")
    start = probes.iloc[0]
    plots.hline(ax, start["current"], r"$\theta_0$")
    plots.hline(ax, start["init_permuted"], r"$\theta_0$, rows shuffled", linestyle=":")
    ax.set(xlabel="training step", ylabel=f"accuracy ({record['probe_images']} test images)", ylim=(0, 1), title="locations vs values")
    plots.percent_axis(ax)
    ax = axes[1]
    later = probes[probes["step"] > 0]
    ax.plot(later["step"], later["distance_ratio"], marker=".", color="0.3")
    ax.set(xlabel="training step", ylabel=r"$\|\mathrm{sync}(\theta_t)-\theta_t\| \,/\, \|\theta_t-\theta_0\|$", title="how far the projection moves", ylim=(0, None))
    return plots.finish(fig, preset_name, "LeNet-300-100, Adam", fontsize=8, ncol=2)


# ---------------------------------------------------------------------------------------------- F-L3
def sync_period_configs(p: Preset) -> list[RunConfig]:
    return [adam_config(p, s) for s in p.seeds] + [mlp_config(p, s, sync_period=k) for s in p.seeds for k in p.sync_periods]


def sync_period_frame(preset_name: str, device=None) -> pd.DataFrame:
    """F-L3: LaPerm for every k against plain Adam, same init, lr and schedule."""
    df = CHAPTER.frame("F-L3", preset_name, device)
    df["label"] = [f"LaPerm k = {k}" if k else "Adam" for k in df["sync_period"]]
    return df


def sawtooth_period(df: pd.DataFrame, min_syncs: int = 3) -> int:
    """The largest sync period k whose probed run has at least ``min_syncs`` syncs inside the probed steps (so the
    right panel of F-L3 shows syncs at all); the smallest k when none has."""
    best = None
    for k in sorted(k for k in df["sync_period"].unique() if k):
        r = df[(df["sync_period"] == k) & (df["seed"] == df["seed"].min())].iloc[0]
        probes = r.get("probes") if isinstance(r.get("probes"), list) else []
        steps = max((p["step"] for p in probes), default=0)
        if probes and steps >= min_syncs * k:
            best = k
    return int(best if best is not None else min(k for k in df["sync_period"].unique() if k))


def plot_sync_periods(df: pd.DataFrame, preset_name: str, sawtooth_k: int | None = None):
    """Left: synced test accuracy after every epoch. Middle: final accuracy vs k. Right: accuracy of the
    inner optimizer's unconstrained weights between syncs for one large k (drops at each sync)."""
    fig, axes = plots.panels(3, width=4.2, height=3.0)
    colors = plots.sns.color_palette("viridis", len(df["sync_period"].unique()))
    periods = sorted(k for k in df["sync_period"].unique() if k)
    for color, k in zip(colors, periods):
        for _, r in df[df["sync_period"] == k].iterrows():
            h = pd.DataFrame(r["history"])
            axes[0].plot(h["epoch"], h["test_accuracy"], marker="o", ms=3, color=color, label=f"k = {k}" if r["seed"] == df["seed"].min() else None)
    for _, r in df[df["sync_period"] == 0].iterrows():
        h = pd.DataFrame(r["history"])
        axes[0].plot(h["epoch"], h["test_accuracy"], color="0.2", ls="--", lw=1.5, label="Adam" if r["seed"] == df["seed"].min() else None)
    axes[0].set(xlabel="epoch", ylabel="test accuracy (synced weights)", title="LaPerm vs Adam")
    plots.percent_axis(axes[0])
    lap = df[df["sync_period"] > 0].groupby("sync_period")["test_accuracy"].agg(["mean", "std"]).reset_index()
    axes[1].errorbar(lap["sync_period"], lap["mean"], yerr=lap["std"].fillna(0), marker="o", capsize=2, label="LaPerm")
    plots.hline(axes[1], df[df["sync_period"] == 0]["test_accuracy"].mean(), "Adam")
    axes[1].set(xscale="log", xlabel="sync period k (steps)", ylabel="final test accuracy", title="effect of k")
    plots.percent_axis(axes[1])
    k = sawtooth_k or sawtooth_period(df)
    r = df[(df["sync_period"] == k) & (df["seed"] == df["seed"].min())].iloc[0]
    pr = pd.DataFrame(r["probes"])
    axes[2].plot(pr["step"], pr["current"], marker=".", color="C3", label="inner (Adam) weights between syncs")
    axes[2].plot(pr["step"], pr["synced"], marker=".", alpha=0.7, color="C4", label="synced copy")
    for s in range(k, int(pr["step"].max()) + 1, k):
        axes[2].axvline(s, color="0.6", lw=0.6, ls=":")
    axes[2].set(xlabel="step (dotted: syncs)", ylabel="probe accuracy", title=f"between syncs, k = {k}")
    plots.percent_axis(axes[2])
    for ax in axes:
        ax.title.set_fontsize(9)
    return plots.finish(fig, preset_name, f"LeNet-300-100, {int(df['train_images'].iloc[0])} images", fontsize=7, ncol=4)


# ---------------------------------------------------------------------------------------------- F-L4
def sparse_configs(p: Preset) -> list[RunConfig]:
    out = []
    for s in p.seeds:
        for q in p.sparsities:
            common = {"init": "random-sparse", "init_sparsity": q, "probe_every": 0}
            out.append(mlp_config(p, s, sync_period=p.sparse_sync_period, **common))
            out.append(mlp_config(p, s, sync_period=0, hold_zeros=True, **common))
    return out


def sparse_frame(preset_name: str, device=None) -> pd.DataFrame:
    """F-L4: random-sparse init; LaPerm (which moves the zeros) vs Adam with the zeros held fixed."""
    df = CHAPTER.frame("F-L4", preset_name, device)
    df["label"] = np.where(df["hold_zeros"], "Adam, fixed random mask", "LaPerm (rewires)")
    return df


def plot_sparse(df: pd.DataFrame, preset_name: str):
    fig, axes = plots.panels(2, width=4.4)
    for label, g in df.groupby("label"):
        s = g.groupby("init_sparsity")["test_accuracy"].agg(["mean", "std"]).reset_index()
        axes[0].errorbar(s["init_sparsity"], s["mean"], yerr=s["std"].fillna(0), marker="o", capsize=2, label=label)
    axes[0].set(xlabel="p, zeros drawn per layer\n(input layer at most 20%)", ylabel="test accuracy", title="sparse init")
    axes[0].xaxis.label.set_fontsize(8)
    plots.percent_axis(axes[0])
    plots.percent_axis(axes[0], "x")
    lap = df[~df["hold_zeros"]].groupby("init_sparsity")[["connectivity_change", "init_zero_fraction"]].mean().reset_index()
    axes[1].plot(lap["init_sparsity"], lap["connectivity_change"], marker="o", label="entries whose zero / non-zero status changed")
    axes[1].plot(lap["init_sparsity"], lap["init_zero_fraction"], marker="s", ls="--", label="zeros in the kernels (overall)")
    axes[1].set(xlabel="p", ylabel="fraction of kernel entries", title="LaPerm rewires", ylim=(0, None))
    plots.percent_axis(axes[1])
    plots.percent_axis(axes[1], "x")
    return plots.finish(fig, preset_name, "LeNet-300-100", fontsize=8, ncol=2)


# ---------------------------------------------------------------------------------------------- F-L5
AGNOSTIC_NETS = {"F1": "f1", "F2, our recipe": "f2", "F2, official recipe": "f2_official"}


def agnostic_configs(p: Preset) -> list[RunConfig]:
    return [make_config("laperm", seed=s, **getattr(p, field)) for field in AGNOSTIC_NETS.values() for s in p.seeds]


def agnostic_label(row) -> str:
    """"F1", "F2, our recipe" or "F2, official recipe" for a record of F-L5 (other records: their arch)."""
    if row["arch"] != "f2":
        return row["arch"].upper() if row["arch"] == "f1" else row["arch"]
    return "F2, our recipe" if row["logit_scale"] != 1.0 else "F2, official recipe"


def agnostic_frame(preset_name: str, device=None) -> pd.DataFrame:
    """F-L5: F1 and F2 (our recipe and the official one), weight-agnostic (one shared value and zeros), LaPerm
    k = 250. Models are kept."""
    df = CHAPTER.frame("F-L5", preset_name, device)
    df["net"] = df.apply(agnostic_label, axis=1)
    return df


def f2_ablation_configs(p: Preset) -> dict[str, list[RunConfig]]:
    """Our F2 recipe and each of its ablations, by variant name, one config per ablation seed."""
    variants = {"our recipe": {}, **F2_ABLATIONS}
    return {name: [make_config("laperm", seed=s, **{**p.f2, **change}) for s in p.ablation_seeds] for name, change in variants.items()}


def f2_ablation(preset_name: str, device=None) -> pd.DataFrame:
    """Our F2 recipe, and the same with each of its three changes from the official recipe undone, final and
    best synced test accuracy (mean over the preset's ablation seeds)."""
    variant = {c.run_id: name for name, cs in f2_ablation_configs(preset(preset_name)).items() for c in cs}
    df = CHAPTER.frame("F-L5 ablation", preset_name, device)
    df["variant"] = df["run_id"].map(variant)
    return df.groupby("variant", sort=False)[["test_accuracy", "best_test_accuracy"]].agg(["mean", "min", "max"])


@torch.no_grad()
def logit_spread(cfg: RunConfig, images: int = 1000) -> float:
    """Median over the first test images of the gap between the largest and smallest logit, for the model of
    ``cfg`` at its initialization (how flat the softmax starts)."""
    model = laperm.build_initialized(cfg, data.SHAPES[cfg.data.dataset], data.NUM_CLASSES[cfg.data.dataset]).eval()
    logits = model(data.load(cfg.data).test.x[:images])
    return float((logits.amax(1) - logits.amin(1)).median())


def f2_logit_spreads(preset_name: str) -> dict[str, float]:
    """:func:`logit_spread` of F2 at init (seed 0): the official recipe, and ours before its temperature."""
    p = preset(preset_name)
    return {"official": logit_spread(make_config("laperm", **p.f2_official)),
            "ours": logit_spread(make_config("laperm", **{**p.f2, "logit_scale": 1.0}))}


def plot_agnostic(df: pd.DataFrame, preset_name: str, f1_cfg: RunConfig):
    """Left: synced test accuracy per epoch (mean over seeds, band: min to max) for F1 and both F2 recipes, with
    the paper's numbers. Right: F1's ten class rows after training, as 28x28 maps (white: v, black: 0)."""
    fig = plots.plt.figure(figsize=(plots.MAX_WIDTH_IN, 3.4))
    grid = fig.add_gridspec(2, 7)
    ax = fig.add_subplot(grid[:, :2])
    for i, (net, g) in enumerate(df.groupby("net", sort=False)):
        curves = pd.concat([pd.DataFrame(h).set_index("epoch")["test_accuracy"] for h in g["history"]], axis=1)
        color = f"C{i}"
        ax.plot(curves.index, curves.mean(axis=1), marker="o", ms=3, color=color, label=f"{net} ({len(g)} seeds)")
        ax.fill_between(curves.index, curves.min(axis=1), curves.max(axis=1), color=color, alpha=0.2, lw=0)
    for arch, color in (("f1", "C0"), ("f2", "C1")):
        plots.hline(ax, PAPER_ACCURACY[(arch, 0.0)] / 100, f"{arch.upper()}, paper", linestyle=":", color=color)
    ax.set(xlabel="epoch", ylabel="synced test accuracy", title="weight-agnostic nets", ylim=(0, 1))
    plots.percent_axis(ax)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(-0.3, -0.3), ncol=2, frameon=False)
    _, trained = initial_and_trained(f1_cfg)
    maps = trained[0].view(10, 28, 28).numpy()
    for c in range(10):
        a = fig.add_subplot(grid[c // 5, 2 + c % 5])
        a.imshow(maps[c], cmap="gray", interpolation="nearest")
        a.set_title(f"class {c}", fontsize=8)
        a.axis("off")
    # fixed margins: the legend below the curves leaves tight_layout no room (it warns and gives up)
    fig.subplots_adjust(left=0.1, right=0.99, top=0.9, bottom=0.38, wspace=0.25, hspace=0.3)
    plots.caption_preset(fig, preset_name)
    return fig


# ---------------------------------------------------------------------------------------------- F-L6
def logreg_config(p: Preset, seed: int = 0) -> RunConfig:
    return make_config("laperm", seed=seed, **p.logreg)


def plot_class_maps(cfg: RunConfig, preset_name: str, arrows: int = 40):
    """Top: the ten class rows of a dense He-uniform logistic regression at init; middle: the same values after
    LaPerm, permuted within each row; bottom left: for class 0, arrows from where the ``arrows`` largest
    initial values sat to where they ended up (the permutation tracer of App. A.4)."""
    initial, trained = initial_and_trained(cfg)
    w0, w = initial[0].view(10, 28, 28).numpy(), trained[0].view(10, 28, 28).numpy()
    lim = float(np.abs(w0).max())
    fig = plots.plt.figure(figsize=(plots.MAX_WIDTH_IN, 5.0))
    grid = fig.add_gridspec(4, 10, height_ratios=(1, 1, 0.5, 3), left=0.05, right=0.99, top=0.95, bottom=0.12,
                            hspace=0.25, wspace=0.08)  # row 2: a spacer for the titles of the bottom panels
    for c in range(10):
        for row, maps in ((0, w0), (1, w)):
            a = fig.add_subplot(grid[row, c])
            a.imshow(maps[c], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            a.set_xticks([])
            a.set_yticks([])
            if c == 0:
                a.set_ylabel("init" if row == 0 else "LaPerm", fontsize=8)
            if row == 0:
                a.set_title(str(c), fontsize=9)
    ax = fig.add_subplot(grid[3, 1:4])
    ax.imshow(w[0], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    src = np.argsort(w0[0].ravel())[-arrows:]
    dst = [int(np.flatnonzero(w[0].ravel() == w0[0].ravel()[i])[0]) for i in src]
    for i, j in zip(src, dst):
        ax.annotate("", xy=(j % 28, j // 28), xytext=(i % 28, i // 28), arrowprops={"arrowstyle": "->", "lw": 0.6, "color": "0.1"})
    ax.set_title(f"class 0: where its {arrows} largest initial values moved", fontsize=8)
    ax.axis("off")
    ax = fig.add_subplot(grid[3, 6:9])
    for c in (0, 1):
        ax.plot(np.sort(w0[c].ravel()), lw=2.5, alpha=0.5, label=f"class {c}, init")
        ax.plot(np.sort(w[c].ravel()), lw=0.8, ls="--", color="k" if c == 0 else "0.5", label=f"class {c}, trained")
    ax.set(xlabel="rank", ylabel="value", title="sorted rows: identical multisets")
    ax.title.set_fontsize(9)
    ax.xaxis.label.set_fontsize(8)
    ax.yaxis.label.set_fontsize(8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="upper left", frameon=False)
    plots.caption_preset(fig, preset_name, "784-10 logistic regression, He-uniform, LaPerm k = 250")
    return fig


# ---------------------------------------------------------------------------------------------- table
def paper_configs(p: Preset) -> list[RunConfig]:
    """The README table's recipes (full preset only): Conv7, Conv2/4/13 and the CIFAR ResNet-50 at p = 0..70 %."""
    out = []
    for arch in p.paper_nets:
        r = PAPER_RECIPES[arch]
        grid = RESNET_SPARSITIES if arch == "resnet50-cifar" else (0.0,)
        for q in grid:
            init = {"init": "random-sparse", "init_sparsity": q} if q else {}
            out.append(make_config("laperm", arch=arch, **{**r, **init}))
    return out


def paper_frame(preset_name: str, device=None) -> pd.DataFrame:
    """The README table's recipes (``full`` only; an empty frame at the other presets)."""
    if not paper_configs(preset(preset_name)):
        return pd.DataFrame()
    return CHAPTER.frame("paper table", preset_name, device)


# ---------------------------------------------------------------------------------------------- recipe table
def _arch(*names: str):
    """A recipe row's run selector: the runs of these architectures."""
    return lambda cfg: cfg.model.arch in names


PAPER_NETS, VGG = _arch(*PAPER_RECIPES), _arch("laperm-conv2", "laperm-conv4", "laperm-conv13")
CONV7, RESNET = _arch("laperm-conv7"), _arch("resnet50-cifar")


def agnostic_run(cfg: RunConfig) -> bool:
    """F1 and F2 (weight-agnostic), not F-L6's dense logistic regression on the F1 net."""
    return cfg.model.arch in ("f1", "f2") and cfg.method.init == "weight-agnostic"


OURS = _arch("lenet-300-100", "conv2")  # F-L1..F-L4: no official notebook; our recipe
# Where paper, released code and `full` differ or could. "-": the paper's text is not our source for the setting;
# the published numbers (the README table) are the notebooks', so `full` follows the notebooks.
RECIPE = (
    RecipeRow("inner optimizer (every run)", "Adam", "Adam (tf.keras defaults)", "inner", note="as released"),
    RecipeRow("learning rate (every run)", "-", "1e-3 in every notebook", "lr", note="as released"),
    RecipeRow("lr schedule, Conv7", "-", "1e-3 * 0.95^epoch", "schedule", CONV7, "as released"),
    RecipeRow("lr schedule, Conv2/4/13", "-", "1e-3 * 0.6^(epoch // 10)", "schedule", VGG,
              "as released (step-0.6); earlier versions of `full` ran a cosine"),
    RecipeRow("lr schedule, ResNet-50", "-", "x0.1 after epoch 80, x0.01 after 120, x0.001 after 160, x0.0005 after 180 "
              "(the Keras CIFAR ResNet example; 0-based epochs)", "schedule", RESNET,
              "as released (resnet-step, exact at every epoch); earlier versions of `full` ran a cosine"),
    RecipeRow("lr schedule, F1 and F2", "1e-3 * 0.95^epoch (Sec. 5.5)", "1e-3 * 0.95^epoch", "schedule", agnostic_run, "as released"),
    RecipeRow("lr schedule, LeNet-300-100 and Conv-2", "-", "no notebook", "schedule", OURS,
              "ours: the chapter's own experiments"),
    RecipeRow("sync period k, Conv7 | Conv2/4/13 | ResNet-50", "-", "20 | 1000 | 800 (k_scheduler)", "sync_period", PAPER_NETS,
              "as released"),
    RecipeRow("sync period k, F1 and F2", "250", "250", "sync_period", agnostic_run, "as released"),
    RecipeRow("epochs, Conv7 | Conv2/4/13 | ResNet-50", "-", "45 | 125 | 200", "epochs", PAPER_NETS, "as released"),
    RecipeRow("batch size, Conv7 and the CIFAR nets", "-", "50 (the ResNet notebook: 'orig paper ... 128')", "batch_size",
              PAPER_NETS, "as released (50)"),
    RecipeRow("biases, Conv7 | CIFAR nets", "-", "permuted (skip_bias=False) | trained freely (skip_bias=True, the default)",
              "biases", PAPER_NETS, "as released"),
    RecipeRow("bias init, Conv7 and Conv2/4/13", "-", "He-uniform (bias_initializer='he_uniform'): Keras' fan_in of a "
              "1-D bias is its length", "bias_fan", _arch("laperm-conv7", "laperm-conv2", "laperm-conv4", "laperm-conv13"),
              "as released (bias_fan=keras)"),
    RecipeRow("bias init, ResNet-50", "-", "zeros (Keras' default bias_initializer)", "bias_init", RESNET,
              "as released; earlier versions of `full` drew He-uniform biases"),
    RecipeRow("weight decay, Conv7", "-", "none", "weight_decay", CONV7, "as released"),
    RecipeRow("weight decay, Conv2/4/13 and ResNet-50", "-", "Keras L2 1e-4 (gradient 2e-4 w)", "weight_decay",
              _arch("laperm-conv2", "laperm-conv4", "laperm-conv13", "resnet50-cifar"),
              "as released: Adam weight decay 2e-4 adds the same gradient"),
    RecipeRow("L2 scope, Conv2/4/13 and ResNet-50", "-", "kernel_regularizer on the conv and hidden dense kernels; not "
              "the output layer, biases or BatchNorm", "l2_scope",
              _arch("laperm-conv2", "laperm-conv4", "laperm-conv13", "resnet50-cifar"), "as released"),
    RecipeRow("inputs, Conv7", "-", "x / 255", "inputs", CONV7, "as released"),
    RecipeRow("inputs, Conv2/4/13", "-", "raw pixels in [0, 255]: the notebooks' normalize() returns its input unchanged",
              "inputs", VGG, "as released (inputs=raw): the published numbers were trained so; the BatchNorm after "
              "each conv absorbs the scale, the biases become negligible"),
    RecipeRow("inputs, ResNet-50", "-", "x / 255 minus the mean training image", "normalize", RESNET,
              "as released (normalize=mean-image)"),
    RecipeRow("inputs, F1 and F2 (F1 and the official F2 recipe)", "x / 255", "x / 255", "inputs",
              lambda cfg: agnostic_run(cfg) and (cfg.model.arch == "f1" or cfg.method.logit_scale == 1.0 and cfg.method.in_degree == "binomial"
                                             and cfg.method.inputs == "unit"),
              "as released; our F2 recipe changes it (the section on weight-agnostic nets says why)"),
    RecipeRow("augmentation, Conv7", "-", "rotation 10 deg, zoom 10 %, shift 10 % (ImageDataGenerator)", "random_affine",
              CONV7, "as released"),
    RecipeRow("augmentation, Conv2/4/13", "-", "rotation 15 deg, shift 10 %, horizontal flip", "augment", VGG,
              "DIFFERS: crop (4-pixel zero padding) + flip; no rotations"),
    RecipeRow("augmentation, ResNet-50", "-", "shift 10 % (edges repeated), horizontal flip", "augment", RESNET,
              "DIFFERS slightly: crop (4-pixel zero padding, whole pixels) + flip"),
    RecipeRow("BatchNorm, CIFAR nets", "-", "Keras BatchNormalization (scale and shift learned, not permuted: "
              "skip_bn=True; momentum 0.99, eps 1e-3)", "affine_bn", _arch("laperm-conv2", "laperm-conv4", "laperm-conv13",
                                                                             "resnet50-cifar"),
              "scale and shift as released; PyTorch's running-average momentum 0.1 and eps 1e-5 (DIFFERS slightly)"),
)


# The chapter's figures with their runs per preset; runs whose trained weights a figure reads keep their model.
# The notebook trains them only through these (plain-Adam run: rank_substitution; the others: initial_and_trained
# on a config of these figures), and `randweights plan`, `sweep` and `bundle` read the same list.
README = "the official repository's README table (best test accuracy)"
HEADLINES = (
    Headline("F1 on MNIST, weight-agnostic (one shared value), k = 250", PAPER_ACCURACY[("f1", 0.0)], "F-L5",
             lambda c: c.model.arch == "f1", README, "best_test_accuracy"),
    Headline("F2 on MNIST, weight-agnostic, our recipe", PAPER_ACCURACY[("f2", 0.0)], "F-L5",
             lambda c: c.model.arch == "f2" and c.method.logit_scale != 1.0, README, "best_test_accuracy"),
    Headline("F2 on MNIST, weight-agnostic, the official recipe", PAPER_ACCURACY[("f2", 0.0)], "F-L5",
             lambda c: c.model.arch == "f2" and c.method.logit_scale == 1.0, README, "best_test_accuracy"),
    Headline("Conv7 on MNIST", PAPER_ACCURACY[("laperm-conv7", 0.0)], "paper table",
             lambda c: c.model.arch == "laperm-conv7", README, "best_test_accuracy"),
    Headline("Conv4 on CIFAR-10", PAPER_ACCURACY[("laperm-conv4", 0.0)], "paper table",
             lambda c: c.model.arch == "laperm-conv4", README, "best_test_accuracy"),
    Headline("ResNet-50 on CIFAR-10", PAPER_ACCURACY[("resnet50-cifar", 0.0)], "paper table",
             lambda c: c.model.arch == "resnet50-cifar" and c.method.init_sparsity == 0.0, README, "best_test_accuracy"),
)

# ---------------------------------------------------------------------------------------------- claims
def _adam_claim(frame) -> verdicts.Finding:
    c, _ = period_comparisons(frame("F-L3"))
    found = matches(c)
    return verdicts.Finding(f"{c.first.replace('LaPerm at ', '')}: {c.diff:+.1f} points", found.status, found.why)


def _period_claim(frame) -> verdicts.Finding:
    _, c = period_comparisons(frame("F-L3"))
    return verdicts.Finding(f"{c.first} vs {c.second}: {c.diff:+.1f} points", c.status)


def _rank_claim(frame) -> verdicts.Finding:
    c = rank_comparison(frame("F-L3"))
    return verdicts.Finding(f"{c.mean_first:.1f}% vs shuffled {c.mean_second:.1f}%", c.status)


LEVEL_TOLERANCE = 2.0  # points, for the weight-agnostic nets' best accuracy against the paper's


def agnostic_level(agnostic: pd.DataFrame, net: str) -> verdicts.Finding:
    """One weight-agnostic net's best synced accuracy (mean over seeds) against the paper's (a single run's best):
    :func:`randweights.verdicts.level` of the mean with :data:`LEVEL_TOLERANCE`, so a wide seed spread does not
    widen the band; the spread is shown beside the mean."""
    g = agnostic[agnostic.apply(agnostic_label, axis=1) == net]
    arch = "f1" if net == "F1" else "f2"
    values = list(100 * g["best_test_accuracy"])
    on_mean = verdicts.level([float(np.mean(values))], PAPER_ACCURACY[(arch, 0.0)], LEVEL_TOLERANCE)
    return verdicts.Finding(verdicts.level(values, PAPER_ACCURACY[(arch, 0.0)], LEVEL_TOLERANCE).ours, on_mean.status, on_mean.why)


def agnostic_levels(agnostic: pd.DataFrame) -> str:
    """The weight-agnostic nets' levels against the paper's, in words."""
    parts = []
    for net in AGNOSTIC_NETS:
        found = agnostic_level(agnostic, net)
        parts.append(f"{net} {found.ours} best ({found.why}): {found.status}")
    return "; ".join(parts) + "."


def _level_claim(net: str, arch: str):
    def test(frame) -> verdicts.Finding:
        return agnostic_level(frame("F-L5"), net)
    return test


CLAIMS = (
    Claim("LaPerm matches Adam (same init, lr, schedule)", "similar accuracy", ("F-L3",), _adam_claim),
    Claim("accuracy depends on the sync period k", "accuracy varies with k", ("F-L3",), _period_claim),
    Claim("ranks, not values, carry what Adam learned", "rank substitution keeps accuracy", ("F-L3",), _rank_claim),
    Claim("F1 (one shared value, 43% zeros) by reconnection", f"{PAPER_ACCURACY[('f1', 0.0)]}% best", ("F-L5",),
          _level_claim("F1", "f1")),
    Claim("F2, the official recipe", f"{PAPER_ACCURACY[('f2', 0.0)]}% best", ("F-L5",),
          _level_claim("F2, official recipe", "f2")),
    Claim("F2, our recipe (three changes)", f"{PAPER_ACCURACY[('f2', 0.0)]}% best", ("F-L5",),
          _level_claim("F2, our recipe", "f2")),
)

CHAPTER = Chapter(
    "laperm", "LaPerm: training by reconnecting random weights", "notebooks/laperm.ipynb", tuple(PRESETS),
    (
        Figure("F-L1, F-L2, F-L3", lambda name: [adam_config(preset(name))], needs_model=True),
        Figure("F-L1 (conv)", lambda name: [conv_config(preset(name))] if preset(name).conv else [], needs_model=True),
        Figure("F-L3", lambda name: sync_period_configs(preset(name))),
        Figure("F-L4", lambda name: sparse_configs(preset(name))),
        Figure("F-L5", lambda name: agnostic_configs(preset(name)), needs_model=True),
        Figure("F-L5 ablation", lambda name: [c for cs in f2_ablation_configs(preset(name)).values() for c in cs]),
        Figure("F-L6", lambda name: [logreg_config(preset(name))], needs_model=True),
        Figure("paper table", lambda name: paper_configs(preset(name))),
    ),
    order=3,
    recipe=RECIPE,
    headlines=HEADLINES,
    claims=CLAIMS,
)


def comparison_table(preset_name: str, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Paper vs ours, best synced test accuracy over epochs (the paper's protocol) and final, in %."""
    df = pd.concat([f for f in frames if len(f)], ignore_index=True).drop_duplicates("run_id")
    rows = []
    for (arch, q), paper in PAPER_ACCURACY.items():
        if arch == "f2":
            labels = df.apply(agnostic_label, axis=1)
            for recipe in ("our recipe", "official recipe"):
                rows.append(_row(arch, q, paper, df[labels == f"F2, {recipe}"], preset_name, f"LaPerm, {recipe}"))
            continue
        g = df[(df["arch"] == arch) & (df["init_sparsity"].round(2) == q) & (df["sync_period"] > 0)] if arch != "f1" else df[df["arch"] == arch]
        rows.append(_row(arch, q, paper, g, preset_name))
    mlp = df[(df["arch"] == "lenet-300-100") & (df["init"] == "he-uniform")]
    for k in sorted(mlp["sync_period"].unique()):
        rows.append(_row("lenet-300-100", 0.0, float("nan"), mlp[mlp["sync_period"] == k], preset_name, "Adam" if k == 0 else f"LaPerm k = {k}"))
    return pd.DataFrame(rows)


def zeros_at_init(arch: str, q: float, g: pd.DataFrame) -> float:
    """The fraction of kernel entries that are zero at init, as the runs measured it (``init_zero_fraction``, mean
    over seeds), else the row's drawn sparsity ``q`` (unknown, NaN, for F1 and F2 without runs). F1 and F2 draw their zeros through their own settings
    (``init_sparsity``, ``layer_sparsity``), not the table's sparsity key, so only the runs know it."""
    if len(g) and "init_zero_fraction" in g and g["init_zero_fraction"].notna().any():
        return float(g["init_zero_fraction"].mean())
    return float("nan") if arch in ("f1", "f2") else q


def _row(arch: str, q: float, paper: float, g: pd.DataFrame, preset_name: str, method: str = "LaPerm") -> dict:
    run = len(g) > 0
    return {
        "network": plots.readable(arch), "method": method, "p (zeros at init)": zeros_at_init(arch, q, g), "paper (best)": paper,
        f"ours best ({preset_name})": round(100 * g["best_test_accuracy"].mean(), 2) if run else "full preset",
        f"ours final ({preset_name})": round(100 * g["test_accuracy"].mean(), 2) if run else "full preset",
        "k": int(g["sync_period"].iloc[0]) if run else PAPER_RECIPES.get(arch, {}).get("sync_period", 250),
        "epochs": int(g["epochs"].iloc[0]) if run else PAPER_RECIPES.get(arch, {}).get("epochs"),
        "training images": int(g["train_images"].iloc[0]) if run else None,
        "seeds": len(g),
    }


# ---------------------------------------------------------------------------------------------- numbers for the text
def ks_table(initial: list[torch.Tensor], trained: list[torch.Tensor]) -> pd.DataFrame:
    """F-L1: :func:`profile_similarity` of the initial and of the trained kernels, one block each."""
    blocks = {"init": profile_similarity(initial), "trained": profile_similarity(trained)}
    return pd.concat(blocks, names=["weights"]).reset_index(level=0).reset_index(drop=True).round(3)


def ks_numbers(ks: pd.DataFrame) -> dict[str, str]:
    """F-L1's numbers for the text: median KS distances of the trained kernels within and across layers."""
    trained = ks[ks["weights"] == "trained"]
    within, across = trained["KS within layer"].median(), trained["KS to another layer"].median()
    return {"ks_within_trained": f"{within:.2f}", "ks_across_trained": f"{across:.2f}",
            "ks_verdict": "smaller than" if within < across else "not smaller than"}


def rank_numbers(probes: pd.DataFrame) -> dict[str, str]:
    """F-L2's numbers for the text, at the last probe of the plain-Adam run."""
    last = probes.sort_values("step").iloc[-1]
    return {"fl2_current": f"{100 * last['current']:.1f}%", "fl2_synced": f"{100 * last['synced']:.1f}%",
            "fl2_shuffled": f"{100 * last['shuffled']:.1f}%", "fl2_ratio": f"{last['distance_ratio']:.2f}"}


def rank_comparison(periods: pd.DataFrame) -> verdicts.Comparison:
    """The rank-substitution test over seeds: at the last probe of every plain-Adam run (``sync_period`` 0, probed),
    the rank-substituted weights against the trained weights with each unit's weights shuffled (paired by seed; the
    paper has the ranks carrying what was learned)."""
    synced, shuffled = [], []
    for _, r in periods[periods["sync_period"] == 0].sort_values("seed").iterrows():
        last = pd.DataFrame(r["probes"]).sort_values("step").iloc[-1]
        synced.append(100 * last["synced"])
        shuffled.append(100 * last["shuffled"])
    return verdicts.compare("the rank-substituted weights", "the shuffled ones", synced, shuffled, paper_first=True, paired=True)


def sync_period_table(periods: pd.DataFrame) -> pd.DataFrame:
    """F-L3 per line (Adam, LaPerm at each k): mean accuracies, syncs and training time over seeds."""
    return periods.groupby("label", sort=False)[["test_accuracy", "best_test_accuracy", "syncs", "train_seconds"]].mean()


MATCH_TOLERANCE = 1.0  # points: "similar accuracy" (the paper's words for LaPerm against Adam)


def _by_seed(df: pd.DataFrame) -> dict[int, float]:
    return {int(k): 100 * float(v) for k, v in df.groupby("seed")["test_accuracy"].mean().items()}


def period_comparisons(periods: pd.DataFrame) -> tuple[verdicts.Comparison, verdicts.Comparison]:
    """The best sync period (highest mean final accuracy) against Adam, and against the worst period (per seed,
    paired where the seeds match)."""
    lap = periods[periods["sync_period"] > 0]
    means = lap.groupby("sync_period")["test_accuracy"].mean()
    best, worst = int(means.idxmax()), int(means.idxmin())
    b, w = _by_seed(lap[lap["sync_period"] == best]), _by_seed(lap[lap["sync_period"] == worst])
    a = _by_seed(periods[periods["sync_period"] == 0])
    paired = set(b) == set(a)
    versus_adam = verdicts.compare(f"LaPerm at k = {best}", "Adam", [b[s] for s in sorted(b)], [a[s] for s in sorted(a)],
                                   paired=paired)
    versus_worst = verdicts.compare(f"k = {best}", f"k = {worst}", [b[s] for s in sorted(b)], [w[s] for s in sorted(w)],
                                    paper_first=True, paired=set(b) == set(w))
    return versus_adam, versus_worst


def matches(c: verdicts.Comparison, tolerance: float = MATCH_TOLERANCE) -> verdicts.Finding:
    """"Similar or better" (``first`` at least ``second`` less ``tolerance`` points, or less the seed spread where
    that is larger): reproduced; behind by up to three times that: partly; further behind: not at this preset."""
    band = max(tolerance, c.spread or 0.0)
    ours = f"{c.diff:+.1f} points"
    if c.diff >= -band:
        return verdicts.Finding(ours, verdicts.REPRODUCED, f"within {band:.1f} points or ahead")
    if c.diff >= -3 * band:
        return verdicts.Finding(ours, verdicts.PARTLY, f"behind by up to {3 * band:.1f} points")
    return verdicts.Finding(ours, verdicts.NOT_HERE, f"behind by more than {3 * band:.1f} points")


def match_sentence(c: verdicts.Comparison, tolerance: float = MATCH_TOLERANCE) -> str:
    """:meth:`randweights.verdicts.Comparison.sentence` and whether that is the paper's "similar accuracy" by :func:`matches`."""
    found = matches(c, tolerance)
    words = {verdicts.REPRODUCED: "similar or better, as the paper reports",
             verdicts.PARTLY: "a little behind the paper's similar accuracy",
             verdicts.NOT_HERE: "clearly behind, unlike the paper's similar accuracy"}[found.status]
    return f"{c.sentence()}: {words} ({found.why})"


def sync_period_numbers(periods: pd.DataFrame) -> dict[str, str]:
    """The sync-period figure's numbers for the text: the best sync period against Adam and against the worst
    period, per seed (means over seeds)."""
    versus_adam, versus_worst = period_comparisons(periods)
    return {"fl3_saw_k": f"{sawtooth_period(periods)}", "fl3_verdict": match_sentence(versus_adam),
            "fl3_k_verdict": versus_worst.sentence()}


SPARSITY = "p (zeros at init)"


def sparse_table(sparse: pd.DataFrame) -> pd.DataFrame:
    """F-L4: mean test accuracy per initial sparsity (rows, :data:`SPARSITY`) and line (columns)."""
    return sparse.pivot_table(index="init_sparsity", columns="label", values="test_accuracy").rename_axis(SPARSITY)


def sparse_numbers(table: pd.DataFrame) -> dict[str, str]:
    """F-L4's numbers for the text, at the largest initial sparsity of :func:`sparse_table`."""
    p = table.index.max()
    top = table.loc[p]
    return {"fl4_p": f"{100 * p:.0f}%", "fl4_laperm": f"{100 * top['LaPerm (rewires)']:.1f}%",
            "fl4_fixed": f"{100 * top['Adam, fixed random mask']:.1f}%"}


def sparse_comparison(sparse: pd.DataFrame) -> verdicts.Comparison:
    """At the largest drawn sparsity, LaPerm (rewiring) against Adam on the fixed random mask, per seed (paired).
    The paper gives no such MLP comparison; we expected rewiring at or above the fixed mask."""
    top = sparse[sparse["init_sparsity"] == sparse["init_sparsity"].max()]
    lap, fixed = _by_seed(top[~top["hold_zeros"].astype(bool)]), _by_seed(top[top["hold_zeros"].astype(bool)])
    return verdicts.compare("LaPerm", "Adam on the fixed mask", [lap[s] for s in sorted(lap)], [fixed[s] for s in sorted(fixed)],
                            paired=set(lap) == set(fixed))


def sparse_sentence(sparse: pd.DataFrame) -> str:
    """The sparse-init comparison in words: numbers on both sides; where LaPerm trails, the reason we see."""
    c = sparse_comparison(sparse)
    text = f"At the largest sparsity, per seed: {c.sentence()}."
    if c.diff < 0:
        text += (" We expected rewiring at or above the fixed mask; here it is behind: Adam keeps free values on its "
                 "fixed connections while LaPerm only moves the initial ones, and on a small MLP trained "
                 f"{int(sparse['epochs'].max())} epochs that can outweigh rewiring.")
    return text


def agnostic_numbers(agnostic: pd.DataFrame, preset_name: str) -> dict[str, str]:
    """F-L5's numbers for the text: mean and range of each net's accuracy, and F2's logit spreads at init."""
    acc = agnostic.groupby("net")["test_accuracy"].agg(["mean", "min", "max"])
    out = {f"f2_spread_{key}": f"{value:.3f}" for key, value in f2_logit_spreads(preset_name).items()}
    for net, key in (("F1", "f1"), ("F2, our recipe", "f2"), ("F2, official recipe", "f2_official")):
        out[f"{key}_acc"] = f"{100 * acc.loc[net, 'mean']:.1f}%"
        out[f"{key}_range"] = f"{100 * acc.loc[net, 'min']:.1f}-{100 * acc.loc[net, 'max']:.1f}%"
    return out


AGNOSTIC_COLUMNS = ["net", "seed", "epochs", "test_accuracy", "best_test_accuracy", "multisets_kept", "train_seconds"]


def agnostic_table(agnostic: pd.DataFrame) -> pd.DataFrame:
    return agnostic[AGNOSTIC_COLUMNS]
