"""Edge-Popup chapter: the runs behind each figure, per preset, and the figures.

Figure ids follow the paper (Ramanujan et al., 2020): Fig. 3 (accuracy vs fraction of weights kept, several
architectures, with the dense baseline), Fig. 7 (weight initializations), Fig. 4 (width), Fig. 6 (Edge-Popup vs
the Bernoulli supermask of Zhou et al.).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .. import plots, runs
from ..config import RunConfig, make_config
from ..errors import check_choice
from ..plan import Planned

SKC, KN = "signed-constant", "kaiming-normal"
INIT_LABELS = {
    "signed-constant": "signed Kaiming constant",
    "kaiming-normal": "Kaiming normal",
    "scaled-signed-constant": "scaled signed Kaiming constant",
    "scaled-kaiming-normal": "scaled Kaiming normal",
    "unsigned-constant": "unsigned constant",
}


@dataclass(frozen=True)
class Family:
    """One architecture on one dataset with its training settings (flat RunConfig names)."""

    arch: str
    settings: dict = field(default_factory=dict)

    def config(self, method: str, **overrides) -> RunConfig:
        return make_config(method, arch=self.arch, **{**self.settings, **overrides})

    @property
    def label(self) -> str:
        width = self.settings.get("width", 1.0)
        name = {"lenet-300-100": "LeNet-300-100", "resnet18": "ResNet-18"}.get(self.arch, self.arch.replace("conv", "Conv-"))
        return name if width == 1.0 else f"{name} (width {width:g})"


@dataclass(frozen=True)
class Preset:
    seeds: tuple[int, ...]
    families: tuple[Family, ...]  # Fig. 3 panels; the first one is also used by Figs. 4, 6, 7
    keep_fractions: tuple[float, ...]  # Fig. 3 grid for the first family (an MLP)
    conv_keep_fractions: tuple[float, ...]  # Fig. 3 grid for the others
    conv_inits: tuple[str, ...]
    init_keep_fractions: tuple[float, ...]  # Fig. 7
    width_family: Family
    widths: tuple[float, ...]  # Fig. 4
    bernoulli_keep_fractions: tuple[float, ...]  # Fig. 6
    dense_adam: bool = False  # also the "learned dense weights (Adam)" line


MNIST_QUICK = {"dataset": "mnist", "subset": 20000, "epochs": 3}
CIFAR_QUICK = {"dataset": "cifar10", "subset": 5000, "epochs": 4, "width": 0.25}
MNIST_FULL = {"dataset": "mnist", "epochs": 100}
CIFAR_FULL = {"dataset": "cifar10", "epochs": 100, "augment": True}

PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        seeds=(0,),
        families=(Family("lenet-300-100", {"dataset": "mnist", "subset": 1000, "epochs": 1}),),
        keep_fractions=(0.1, 0.5, 0.9),
        conv_keep_fractions=(),
        conv_inits=(SKC,),
        init_keep_fractions=(0.1,),
        width_family=Family("lenet-300-100", {"dataset": "mnist", "subset": 1000, "epochs": 1}),
        widths=(0.5, 1.0),
        bernoulli_keep_fractions=(0.5,),
    ),
    "quick": Preset(
        seeds=(0,),
        families=(
            Family("lenet-300-100", MNIST_QUICK),
            Family("conv2", CIFAR_QUICK),
            Family("conv4", CIFAR_QUICK),
        ),
        keep_fractions=(0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99),
        conv_keep_fractions=(0.1, 0.3, 0.5, 0.7, 0.9),
        conv_inits=(SKC,),
        init_keep_fractions=(0.05, 0.1, 0.5),
        width_family=Family("lenet-300-100", MNIST_QUICK),
        widths=(0.25, 0.5, 1.0, 2.0),
        bernoulli_keep_fractions=(0.1, 0.3, 0.5, 0.7),
    ),
    "full": Preset(  # the paper's recipe (Sec. 4, appendix; official configs): SGD 0.1, cosine, 100 epochs
        seeds=(0, 1, 2),
        families=(
            Family("lenet-300-100", MNIST_FULL),
            Family("conv2", CIFAR_FULL),
            Family("conv4", CIFAR_FULL),
            Family("conv6", CIFAR_FULL),
            Family("conv8", CIFAR_FULL),
            Family("resnet18", {**CIFAR_FULL, "batch_size": 256, "weight_decay": 5e-4}),
        ),
        keep_fractions=(0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99),
        conv_keep_fractions=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
        conv_inits=(SKC, KN),
        init_keep_fractions=(0.1, 0.3, 0.5, 0.7),
        width_family=Family("conv4", CIFAR_FULL),
        widths=(0.25, 0.5, 1.0, 2.0),
        bernoulli_keep_fractions=(0.1, 0.3, 0.5, 0.7, 0.9),
        dense_adam=True,
    ),
}

# Adam recipe of the dense baselines (Frankle & Carbin style; Edge-Popup's official configs): batch 60, no decay.
ADAM_LR = {"lenet-300-100": 1.2e-3, "conv2": 2e-4, "conv4": 3e-4, "conv6": 3e-4, "conv8": 3e-4, "resnet18": 1e-3}

# The paper's numbers, read off Fig. 3 by a third party (see ../shared/specs, A.6) and quoted in Slot Machines
# Table 2 for Conv-2/4/6: best Edge-Popup accuracy over k on CIFAR-10 and the dense (SGD) baseline, in %.
PAPER_FIG3 = {
    "conv2": {"edge-popup": 77.7, "dense": 79.5},
    "conv4": {"edge-popup": 85.8, "dense": 86.5},
    "conv6": {"edge-popup": 88.1, "dense": 88.5},
    "conv8": {"edge-popup": 88.5, "dense": 88.0},
}


def preset(name: str) -> Preset:
    check_choice("preset", name, PRESETS)
    return PRESETS[name]


def _sweep(configs: list[RunConfig], device, desc: str) -> pd.DataFrame:
    return runs.frame(runs.sweep(configs, device=device, desc=desc))


# ---------------------------------------------------------------------------------------------- runs
def keep_sweep_configs(p: Preset) -> list[RunConfig]:
    out = []
    for i, fam in enumerate(p.families):
        grid = p.keep_fractions if i == 0 else p.conv_keep_fractions
        inits = (SKC, KN) if i == 0 else p.conv_inits
        for seed in p.seeds:
            out += [fam.config("edge-popup", keep_fraction=k, init=init, seed=seed) for init in inits for k in grid]
            out.append(fam.config("dense", seed=seed))
            if p.dense_adam:
                out.append(fam.config("dense", seed=seed, optimizer="adam", batch_size=60, lr=ADAM_LR[fam.arch], weight_decay=0.0, schedule="constant"))
    return out


def keep_sweep(preset_name: str, device=None) -> pd.DataFrame:
    """Fig. 3: test accuracy vs fraction of weights kept, per architecture; dense baselines as extra rows."""
    p = preset(preset_name)
    df = _sweep(keep_sweep_configs(p), device, "Fig. 3")
    labels = {f.arch: f.label for f in p.families}
    df["family"] = df["arch"].map(labels)
    return df


def init_configs(p: Preset) -> list[RunConfig]:
    fam = p.families[0]
    return [
        fam.config("edge-popup", keep_fraction=k, init=init, seed=seed)
        for seed in p.seeds
        for init in INIT_LABELS
        for k in p.init_keep_fractions
    ]


def init_sweep(preset_name: str, device=None) -> pd.DataFrame:
    """Fig. 7: the weight distribution matters; scaling helps at small k; unsigned constants fail."""
    return _sweep(init_configs(preset(preset_name)), device, "Fig. 7")


def width_configs(p: Preset) -> list[RunConfig]:
    fam = p.width_family
    out = []
    for seed in p.seeds:
        for w in p.widths:
            out.append(fam.config("edge-popup", keep_fraction=0.5, width=w, seed=seed))
            out.append(fam.config("dense", width=w, seed=seed))
    return out


def width_sweep(preset_name: str, device=None) -> pd.DataFrame:
    """Fig. 4: accuracy vs width at k = 0.5, Edge-Popup vs dense training of the same network."""
    return _sweep(width_configs(preset(preset_name)), device, "Fig. 4")


def bernoulli_configs(p: Preset) -> list[RunConfig]:
    fam = p.families[0]
    out = []
    for seed in p.seeds:
        for k in p.bernoulli_keep_fractions:
            out.append(fam.config("supermask-bernoulli", keep_fraction=k, seed=seed))
            out.append(fam.config("edge-popup", keep_fraction=k, seed=seed))
    return out


def bernoulli_sweep(preset_name: str, device=None) -> pd.DataFrame:
    """Fig. 6: Edge-Popup vs the Bernoulli supermask at matching kept fractions. The Bernoulli kept fraction is
    an outcome: we plot it at the realized (final, expected) fraction."""
    df = _sweep(bernoulli_configs(preset(preset_name)), device, "Fig. 6")
    return df.rename(columns={"kept_fraction": "realized_keep_fraction"})


def plan(preset_name: str) -> list[Planned]:
    """Every run of the chapter by figure, without training (``randweights plan``, sweeps, bundles)."""
    p = preset(preset_name)
    figures = {"Fig. 3": keep_sweep_configs(p), "Fig. 7": init_configs(p), "Fig. 4": width_configs(p), "Fig. 6": bernoulli_configs(p)}
    return [Planned(figure, cfg) for figure, cfgs in figures.items() for cfg in cfgs]


def best_init_by_k(df: pd.DataFrame) -> str:
    """"k = 0.1: scaled signed Kaiming constant (95.1%); ..." from an init sweep."""
    means = df.groupby(["keep_fraction", "init"])["test_accuracy"].mean()
    parts = []
    for k, group in means.groupby(level=0):
        init = group.droplevel(0).idxmax()
        parts.append(f"k = {100 * k:g}%: {INIT_LABELS[init]} ({100 * group.max():.1f}%)")
    return "; ".join(parts)


def peak_sentence(sweep: pd.DataFrame) -> str:
    """Where each network's Edge-Popup curve peaks: inside the k range (the paper's inverted U) or at an end."""
    inside, parts = 0, []
    for family, group in sweep[sweep["method"] == "edge-popup"].groupby("family", sort=False):
        curve = group.groupby("keep_fraction")["test_accuracy"].mean()
        best = curve.idxmax()
        interior = curve.index[0] < best < curve.index[-1]
        inside += interior
        parts.append(f"{family} at k = {100 * best:g}%" + ("" if interior else " (an end of the range)"))
    total = len(parts)
    verdict = "as in the paper" if inside == total else f"the paper's inverted U shows in {inside} of {total}"
    return f"The curves peak inside the range of k for {inside} of {total} networks ({verdict}): " + "; ".join(parts) + "."


def width_gaps(df: pd.DataFrame) -> tuple[float, float]:
    """Dense minus Edge-Popup accuracy (points) at the narrowest and the widest width."""
    means = df.groupby(["width", "method"])["test_accuracy"].mean().unstack()
    gap = 100 * (means["dense"] - means["edge-popup"])
    return float(gap.iloc[0]), float(gap.iloc[-1])


def bernoulli_gap(df: pd.DataFrame) -> float:
    """Mean accuracy of Edge-Popup minus the Bernoulli supermask, in points, with Edge-Popup's curve
    interpolated at each Bernoulli run's realized kept fraction."""
    import numpy as np

    ep_curve = df[df["method"] == "edge-popup"].groupby("keep_fraction")["test_accuracy"].mean()
    zb = df[df["method"] == "supermask-bernoulli"]
    ep_at = np.interp(zb["realized_keep_fraction"], ep_curve.index, ep_curve.values)
    return float(100 * (ep_at - zb["test_accuracy"]).mean())


# ---------------------------------------------------------------------------------------------- tables
def comparison_table(sweep: pd.DataFrame, preset_name: str) -> pd.DataFrame:
    """Best Edge-Popup accuracy over k and the dense (SGD) accuracy, ours beside the paper's, per family."""
    rows = []
    for family, group in sweep.groupby("family", sort=False):
        arch = group["arch"].iloc[0]
        ep = group[group["method"] == "edge-popup"].groupby(["keep_fraction", "init"])["test_accuracy"].mean()
        dense = group[(group["method"] == "dense") & (group["optimizer"] == "sgd")]["test_accuracy"].mean()
        best_k, best_init = ep.idxmax()
        paper = PAPER_FIG3.get(arch, {})
        rows.append(  # None ("-" in the book): the paper reports no such number
            {
                "network": family,
                f"Edge-Popup, ours ({preset_name})": round(100 * ep.max(), 1),
                "best k (ours)": best_k,
                "Edge-Popup, paper": paper.get("edge-popup"),
                f"dense SGD, ours ({preset_name})": round(100 * dense, 1),
                "dense SGD, paper": paper.get("dense"),
                "training images (ours)": int(group["train_images"].iloc[0]),
                "epochs (ours)": int(group["epochs"].iloc[0]),
            }
        )
    return pd.DataFrame(rows).set_index("network")


# ---------------------------------------------------------------------------------------------- figures
def _arch_label(df: pd.DataFrame) -> str:
    row = df.iloc[0]
    return Family(row["arch"], {"width": row["width"]} if "width" in row and df["width"].nunique() == 1 else {}).label


def plot_keep_sweep(df: pd.DataFrame, preset_name: str):
    families = list(dict.fromkeys(df["family"]))
    fig, axes = plots.panels(len(families), width=3.8)
    colors = dict(zip((SKC, KN), plots.sns.color_palette(plots.PALETTE, 2)))
    for ax, family in zip(axes, families):
        sub = df[df["family"] == family]
        ep = plots.mean_sd(sub[sub["method"] == "edge-popup"], ["init", "keep_fraction"])
        for init, g in ep.groupby("init"):
            ax.errorbar(g["keep_fraction"], g["mean"], yerr=g["sd"], marker="o", ms=4, capsize=2, color=colors[init], label=f"Edge-Popup, {INIT_LABELS[init]}")
        dense = sub[sub["method"] == "dense"]
        for opt, g in dense.groupby("optimizer"):
            style = {} if opt == "sgd" else {"linestyle": ":"}
            plots.hline(ax, g["test_accuracy"].mean(), f"dense ({opt.upper()})", **style)
        ax.set(title=family, xlabel="fraction of weights kept, k", xlim=(0, 1))
        plots.percent_axis(ax)
    axes[0].set_ylabel("test accuracy")
    fig.tight_layout()
    plots.legend_outside(fig, "below", fontsize=8, ncol=3)
    plots.caption_preset(fig, preset_name)
    return fig


def plot_init_sweep(df: pd.DataFrame, preset_name: str):
    fig, axes = plots.panels(1, width=6.0)
    ax = axes[0]
    stats = plots.mean_sd(df, ["init", "keep_fraction"])
    stats["initialization"] = stats["init"].map(INIT_LABELS)
    plots.sns.barplot(data=stats, x="keep_fraction", y="mean", hue="initialization", hue_order=list(INIT_LABELS.values()), ax=ax)
    ax.set(xlabel="fraction of weights kept, k", ylabel="test accuracy", title=_arch_label(df))
    ax.set_ylim(0, 1)
    plots.percent_axis(ax)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="initialization")
    plots.caption_preset(fig, preset_name)
    fig.tight_layout()
    return fig


def plot_width_sweep(df: pd.DataFrame, preset_name: str):
    fig, axes = plots.panels(2, width=4.2)
    stats = plots.mean_sd(df, ["method", "width"])
    for method, g in stats.groupby("method"):
        axes[0].errorbar(g["width"], g["mean"], yerr=g["sd"], marker="o", capsize=2, label="Edge-Popup (k = 0.5)" if method == "edge-popup" else "dense (SGD)")
    axes[0].set(xlabel="width multiplier", ylabel="test accuracy", title=_arch_label(df))
    plots.log_ticks(axes[0], sorted(df["width"].unique()))
    plots.percent_axis(axes[0])
    pivot = stats.pivot(index="width", columns="method", values="mean")
    gap = 100 * (pivot["dense"] - pivot["edge-popup"])
    axes[1].plot(gap.index, gap.values, marker="o", color="0.3")
    axes[1].set(xlabel="width multiplier", ylabel="gap (points)", title="dense minus Edge-Popup")
    plots.log_ticks(axes[1], sorted(df["width"].unique()))
    fig.tight_layout()
    plots.legend_outside(fig, "below", fontsize=8, ncol=2)
    plots.caption_preset(fig, preset_name)
    return fig


def plot_bernoulli(df: pd.DataFrame, preset_name: str):
    fig, axes = plots.panels(1, width=5.0)
    ax = axes[0]
    ep = plots.mean_sd(df[df["method"] == "edge-popup"], ["keep_fraction"])
    ax.errorbar(ep["keep_fraction"], ep["mean"], yerr=ep["sd"], marker="o", capsize=2, label="Edge-Popup")
    zb = df[df["method"] == "supermask-bernoulli"]
    ax.scatter(zb["realized_keep_fraction"], zb["test_accuracy"], marker="s", color=plots.sns.color_palette(plots.PALETTE)[3], label="Bernoulli supermask (Zhou et al.)\nat its realized kept fraction", zorder=3)
    ax.set(xlabel="fraction of weights kept", ylabel="test accuracy", title=_arch_label(df), xlim=(0, 1))
    plots.percent_axis(ax)
    plots.legend_outside(ax, "right", fontsize=8)
    plots.caption_preset(fig, preset_name)
    fig.tight_layout()
    return fig
