"""Synthesis chapter: every method on the same networks and data, compared by what it stores and what it finds.

Each family (an architecture on a dataset, with one training budget) is trained densely and by Edge-Popup over k,
the Bernoulli supermask, Slot Machines over K, LaPerm and IMP over its rounds, each with its paper's own optimizer
settings (the method's default learning rate). Every run is a record of the run store with its compact file
(:mod:`randweights.compact`); the figures read the records and the networks back from those files:

1. accuracy against bits stored per weight (compact file size over the number of weights, seed included);
2. accuracy against training time;
3. first-layer locality ratio (the FCN chapter's measure) of each method's network on MNIST;
4. exact linear pieces along segments between test images (the empirical-size chapter's counter);
5. overlap of the Edge-Popup mask with the IMP mask at the same keep fraction, against chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .. import bits, compact, data, methods, plots, runs, store, verdicts
from ..analysis import locality, regions
from ..config import RunConfig, make_config
from ..errors import check_choice
from ..plan import Chapter, Claim, Figure
from . import transformers
from .fcn_to_cnn import PAPER as FCN_PAPER

METHODS = ("dense", "edge-popup", "supermask-bernoulli", "slot", "laperm", "imp")
LABELS = {name: methods.label(name) for name in METHODS}
MASKING = ("edge-popup", "supermask-bernoulli", "imp")  # methods whose networks have pruned (zero) weights


@dataclass(frozen=True)
class Family:
    """One architecture on one dataset with one training budget (flat RunConfig settings)."""

    key: str
    label: str
    arch: str
    settings: dict = field(default_factory=dict)

    def config(self, method: str, seed: int, **overrides) -> RunConfig:
        return make_config(method, arch=self.arch, seed=seed, **{**self.settings, **overrides})


@dataclass(frozen=True)
class Preset:
    families: tuple[Family, ...]  # the first one is the MNIST MLP of Figs. 3 and 4
    seeds: tuple[int, ...]
    keep_fractions: tuple[float, ...]  # Edge-Popup's k
    bernoulli_keep_fractions: tuple[float, ...]  # initial expected kept fraction
    slot_counts: tuple[int, ...]  # Slot Machines' K
    imp_rounds: tuple[int, ...]  # one IMP run per entry, pruned that many rounds
    imp: dict = field(default_factory=dict)  # IMP settings (prune_fraction, rewind_step)
    segments: int = 8  # Fig. 4: test-image pairs
    top_fraction: float = 0.1  # Fig. 3: a unit's connections in an unmasked network: its largest |w|


MNIST_QUICK = {"dataset": "mnist", "subset": 10000, "epochs": 2}
CIFAR_QUICK = {"dataset": "cifar10", "subset": 3000, "epochs": 2, "width": 0.25}

PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        families=(Family("mnist", "LeNet-300-100, MNIST", "lenet-300-100", {"dataset": "mnist", "subset": 500, "epochs": 1}),),
        seeds=(0,),
        keep_fractions=(0.25, 0.5),
        bernoulli_keep_fractions=(0.5,),
        slot_counts=(2, 8),
        imp_rounds=(1, 2),
        imp={"prune_fraction": 0.5, "rewind_step": 1},
        segments=2,
    ),
    "quick": Preset(
        families=(
            Family("mnist", "LeNet-300-100, MNIST", "lenet-300-100", MNIST_QUICK),
            Family("cifar", "Conv-2 (width 0.25), CIFAR-10", "conv2", CIFAR_QUICK),
        ),
        seeds=(0,),
        keep_fractions=(0.1, 0.25, 0.5, 0.75),
        bernoulli_keep_fractions=(0.5,),
        slot_counts=(2, 8),
        imp_rounds=(1, 2),
        imp={"prune_fraction": 0.5, "rewind_step": 20},
        segments=8,
    ),
    "full": Preset(  # the papers' budgets on the papers' networks (GPU)
        families=(
            Family("mnist", "LeNet-300-100, MNIST", "lenet-300-100", {"dataset": "mnist", "epochs": 50}),
            Family("conv4", "Conv-4, CIFAR-10", "conv4", {"dataset": "cifar10", "epochs": 100, "augment": True}),
            Family("conv6", "Conv-6, CIFAR-10", "conv6", {"dataset": "cifar10", "epochs": 100, "augment": True}),
        ),
        seeds=(0, 1, 2),
        keep_fractions=(0.05, 0.1, 0.25, 0.5, 0.75),
        bernoulli_keep_fractions=(0.3, 0.5, 0.7),
        slot_counts=(2, 8, 16, 64),
        imp_rounds=(1, 2, 3, 4),
        imp={"prune_fraction": 0.5, "rewind_step": 500},
        segments=32,
    ),
}


def preset(name: str) -> Preset:
    check_choice("preset", name, tuple(PRESETS))
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------- the runs
def configs(p: Preset) -> list[tuple[Family, str, str, RunConfig]]:
    """``(family, method, setting label, config)`` of every run of the chapter, in training order."""
    out = []
    for fam in p.families:
        for seed in p.seeds:
            out.append((fam, "dense", "", fam.config("dense", seed)))
            out += [(fam, "edge-popup", f"k={k:g}", fam.config("edge-popup", seed, keep_fraction=k)) for k in p.keep_fractions]
            out += [(fam, "supermask-bernoulli", f"p0={k:g}", fam.config("supermask-bernoulli", seed, keep_fraction=k))
                    for k in p.bernoulli_keep_fractions]
            out += [(fam, "slot", f"K={k}", fam.config("slot", seed, num_slots=k)) for k in p.slot_counts]
            out.append((fam, "laperm", "", fam.config("laperm", seed)))
            out += [(fam, "imp", f"{r} round" + ("s" if r != 1 else ""), fam.config("imp", seed, rounds=r, **p.imp)) for r in p.imp_rounds]
    return out


def vit_configs(preset_name: str) -> list[tuple[Family, str, str, RunConfig]]:
    """The random transformer of the "Random transformers" chapter at the same preset, as a family of this one:
    that chapter's first seed of its dense ViT, Edge-Popup over k, the Bernoulli supermask, Slot Machines over
    K >= 2 and LaPerm (the same runs: nothing trains twice)."""
    tp = transformers.preset(preset_name)
    source, seed = tp.families[0], tp.seeds[0]
    fam = Family("vit", f"random ViT (depth {tp.arch.rsplit('d', 1)[1]}), {source.label}", tp.arch, source.settings)
    out = [(fam, "dense", "", fam.config("dense", seed))]
    out += [(fam, "edge-popup", f"k={k:g}", fam.config("edge-popup", seed, keep_fraction=k)) for k in tp.keep_fractions]
    out.append((fam, "supermask-bernoulli", f"p0={tp.bernoulli_k:g}", fam.config("supermask-bernoulli", seed, keep_fraction=tp.bernoulli_k)))
    out += [(fam, "slot", f"K={k}", transformers.slot_config(source, tp.arch, seed, k)) for k in tp.slots if k >= 2]
    out.append((fam, "laperm", "", fam.config("laperm", seed)))
    return out


def vit_table(preset_name: str, device: str | None = None) -> pd.DataFrame:
    """The random transformer's runs (:func:`vit_configs`) as rows of the chapter's table."""
    preset(preset_name)
    return table_from_records(CHAPTER.records("random ViT", preset_name, device))


def with_vit(table: pd.DataFrame, vit: pd.DataFrame) -> pd.DataFrame:
    """The chapter's table with the random transformer's rows after it (one family more)."""
    return pd.concat([table, vit], ignore_index=True)


def run_table(preset_name: str, device: str | None = None) -> pd.DataFrame:
    """Every run of the chapter (trained once, then read from the store), one row each, in training order."""
    preset(preset_name)
    return table_from_records(CHAPTER.records("Figs. 1-5", preset_name, device))


def _planned() -> dict:
    """``run_id -> (family, method, setting label, config)`` over every preset's runs."""
    planned = {cfg.run_id: (fam, method, setting, cfg) for p in PRESETS.values() for fam, method, setting, cfg in configs(p)}
    return planned | {cfg.run_id: (fam, method, setting, cfg) for name in PRESETS for fam, method, setting, cfg in vit_configs(name)}


def table_from_records(records) -> pd.DataFrame:
    """The chapter's table (one row per run, with its family, method and setting) from run records: a list of
    record dicts or the DataFrame a claim's test receives (:meth:`randweights.plan.Chapter.frame`)."""
    if isinstance(records, pd.DataFrame):
        records = records.to_dict("records")
    meta = _planned()
    rows = []
    for r in records:
        fam, method, setting, cfg = meta[r["run_id"]]
        bits_value = r.get("compact_bits_per_weight")
        rows.append({
            "family": fam.key, "family_label": fam.label, "method": method, "label": LABELS[method], "setting": setting,
            "seed": cfg.train.seed, "run_id": r["run_id"], "config": cfg, "test_accuracy": r["test_accuracy"],
            "train_minutes": r["train_seconds"] / 60, "train_seconds": r["train_seconds"], "device": r.get("device"),
            "weights": r["weight_count"],
            "bits_per_weight": None if bits_value is None or pd.isna(bits_value) else bits_value,
            "compact_bytes": r.get("compact_bytes"), "dense_bytes": r.get("dense_bytes"),
            "compact_path": str(store.run_dir(cfg) / r["compact_file"]) if isinstance(r.get("compact_file"), str) else None,
            "keep_fraction": kept_fraction(method, cfg, r),
            "rounds_trained": r.get("rounds_trained"),
        })
    return pd.DataFrame(rows)


def kept_fraction(method: str, cfg: RunConfig, record: dict) -> float:
    """Fraction of the weights the network uses (1 for methods that keep every connection)."""
    if method == "edge-popup":
        return cfg.method.keep_fraction
    if method == "supermask-bernoulli":
        value = record.get("kept_fraction")
        return cfg.method.keep_fraction if value is None or pd.isna(value) else value
    if method == "imp":
        return record["final_remaining_fraction"]
    return 1.0


def network(row) -> torch.nn.Module:
    """The run's trained network (:func:`randweights.runs.load_network`: from its compact file, a plain model in
    eval mode)."""
    return runs.load_network(row["config"])


# ---------------------------------------------------------------------------------------------- Fig. 1, 2
def pareto(points: pd.DataFrame, x: str, y: str = "test_accuracy") -> pd.DataFrame:
    """The points no other point beats on both ``x`` (lower is better) and ``y`` (higher is better), by x."""
    best, front = -np.inf, []
    for _, row in points.sort_values([x, y], ascending=[True, False]).iterrows():
        if row[y] > best:
            front.append(row)
            best = row[y]
    return pd.DataFrame(front)


def _colors() -> dict:
    return dict(zip(METHODS, plots.sns.color_palette(plots.PALETTE, len(METHODS))))


def plot_tradeoff(df: pd.DataFrame, preset_name: str, x: str, xlabel: str, title: str, log: bool = True):
    fams = list(dict.fromkeys(df["family"]))
    fig, axes = plots.panels(len(fams), width=3.5, height=3.4)
    colors = _colors()
    for ax, fam in zip(axes, fams):
        sub = df[df["family"] == fam]
        for method in METHODS:
            pts = sub[sub["method"] == method].dropna(subset=[x])
            if pts.empty:
                continue
            ax.scatter(pts[x], pts["test_accuracy"], color=colors[method], s=22, label=LABELS[method], zorder=3)
            front = pareto(pts, x)
            ax.plot(front[x], front["test_accuracy"], color=colors[method], linewidth=1, alpha=0.8)
        if log:
            grid = (0.5, 1, 2, 4, 8, 16, 32) if x == "bits_per_weight" else (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
            lo, hi = float(sub[x].min()), float(sub[x].max())
            plots.log_ticks(ax, [v for v in grid if lo / 1.5 <= v <= hi * 1.5])
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("test accuracy", fontsize=8)
        ax.set_title(short_title(sub["family_label"].iloc[0]), fontsize=9)
        ax.tick_params(labelsize=7)
        plots.percent_axis(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=len(labels), bbox_to_anchor=(0.5, 0.04),
               frameon=False, handletextpad=0.2, columnspacing=0.8)
    fig.suptitle(title, fontsize=10)
    plots.caption_preset(fig, preset_name, "lines: each method's Pareto front")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def short_title(family_label: str) -> str:
    """A family's label on two lines where it is long: "Conv-2 (width 0.25),\nCIFAR-10"."""
    return family_label.replace(", ", ",\n") if len(family_label) > 24 else family_label


def plot_bits(df: pd.DataFrame, preset_name: str):
    """Fig. 1: accuracy against bits stored per weight; dense at 32 bits (its fp32 values)."""
    df = df.copy()
    df.loc[df["method"] == "dense", "bits_per_weight"] = 32.0
    return plot_tradeoff(df, preset_name, "bits_per_weight", "bits stored per weight (log scale)",
                         "Accuracy against storage")


def plot_time(df: pd.DataFrame, preset_name: str):
    """Fig. 2: accuracy against training time (minutes, from the records)."""
    return plot_tradeoff(df, preset_name, "train_minutes", "training minutes (log scale)", "Accuracy against training time")


# ---------------------------------------------------------------------------------------------- Fig. 3
def first_layer_connections(model: torch.nn.Module, method: str, top_fraction: float, input_shape) -> np.ndarray:
    """(units, C, H, W) booleans: the first layer's non-zero weights for masking methods, else each unit's
    ``top_fraction`` largest |w| (a connection set of comparable size for dense, Slot Machines and LaPerm)."""
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    w = first.weight.detach().abs()
    if method in MASKING:
        keep = w > 0
    else:
        count = max(1, round(top_fraction * w.shape[1]))
        keep = torch.zeros_like(w, dtype=torch.bool).scatter_(1, w.topk(count, dim=1).indices, True)
    return locality.as_units(keep, input_shape)


def locality_table(df: pd.DataFrame, preset_name: str) -> pd.DataFrame:
    """Fig. 3: per MNIST run, the mean locality ratio of its first layer (1: as random; < 1: local)."""
    p = preset(preset_name)
    return locality_rows(df, p.families[0].key, p.top_fraction)


def locality_rows(df: pd.DataFrame, family: str, top_fraction: float) -> pd.DataFrame:
    """:func:`locality_table` of the runs of ``family`` (an MNIST family: 28 x 28 inputs)."""
    rows = []
    for _, row in df[(df["family"] == family) & df["compact_path"].notna()].iterrows():
        masks = first_layer_connections(network(row), row["method"], top_fraction, (1, 28, 28))
        rows.append({"run_id": row["run_id"], "method": row["method"], "label": row["label"], "setting": row["setting"], "seed": row["seed"],
                     "locality_ratio": locality.locality_ratio(masks), "connections": float(masks.mean())})
    return pd.DataFrame(rows)


def _run_names(df: pd.DataFrame) -> list[str]:
    return [f"{lab} {s}".strip() for lab, s in zip(df["label"], df["setting"])]


def plot_locality(table: pd.DataFrame, preset_name: str):
    fig, ax = plt_single(6.8, 3.4)
    colors = _colors()
    names = _run_names(table)
    ax.bar(range(len(table)), table["locality_ratio"], color=[colors[m] for m in table["method"]])
    ax.axhline(1.0, **plots.DENSE_STYLE, label="random mask with the same counts")
    ax.set_xticks(range(len(table)), names, rotation=60, ha="right", fontsize=7)
    ax.set(ylabel="first-layer locality ratio", title="Local receptive fields? (LeNet-300-100, MNIST)")
    ax.set_ylim(min(0.8, float(table["locality_ratio"].min()) - 0.02), max(1.05, float(table["locality_ratio"].max()) + 0.02))
    ax.legend(fontsize=7)
    plots.caption_preset(fig, preset_name, f"unmasked networks: each unit's top {preset(preset_name).top_fraction:.0%} |w|")
    fig.tight_layout()
    return fig


def plt_single(width: float, height: float):
    fig, axes = plots.panels(1, width=width, height=height)
    return fig, axes[0]


# ---------------------------------------------------------------------------------------------- Fig. 4
def segment_ends(dataset: str, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` pairs of distinct test images (flattened), the same for every method."""
    test = data.load(make_config("dense", dataset=dataset).data).test
    rng = np.random.default_rng(seed)
    i = rng.choice(len(test), size=count, replace=False)
    j = (i + 1 + rng.integers(0, len(test) - 1, size=count)) % len(test)
    return test.x[i].reshape(count, -1), test.x[j].reshape(count, -1)


def active_neurons(model: torch.nn.Module) -> int:
    """Hidden units with at least one non-zero incoming and one non-zero outgoing weight."""
    layers = regions.affine_layers(model)
    count = 0
    for (w, _, relu), (w_next, _, _) in zip(layers[:-1], layers[1:]):
        if relu:
            count += int(((w != 0).any(1) & (w_next != 0).any(0)).sum())
    return count


def pieces_table(df: pd.DataFrame, preset_name: str) -> pd.DataFrame:
    """Fig. 4: exact activation pieces along segments between MNIST test images, per run, with its neurons."""
    p = preset(preset_name)
    fam = p.families[0]
    a, b = segment_ends(fam.settings["dataset"], p.segments)
    rows = []
    for _, row in df[(df["family"] == fam.key) & df["compact_path"].notna()].iterrows():
        model = network(row).double()
        counts = []
        for lo in range(0, p.segments, 8):
            counts += [q.activation_pieces for q in regions.segments_pieces(model, a[lo:lo + 8], b[lo:lo + 8])]
        rows.append({"run_id": row["run_id"], "method": row["method"], "label": row["label"], "setting": row["setting"], "seed": row["seed"],
                     "pieces": float(np.mean(counts)), "pieces_sd": float(np.std(counts)),
                     "neurons": regions.hidden_units(model), "active_neurons": active_neurons(model)})
    return pd.DataFrame(rows)


def plot_pieces(table: pd.DataFrame, preset_name: str):
    fig, ax = plt_single(5.6, 3.8)
    colors = _colors()
    for method in METHODS:
        pts = table[table["method"] == method]
        if not pts.empty:
            ax.errorbar(pts["active_neurons"], pts["pieces"], yerr=pts["pieces_sd"], fmt="o", color=colors[method],
                        label=LABELS[method], capsize=2, markersize=4)
    lo, hi = table["active_neurons"].min(), table["active_neurons"].max()
    span = max(20, 0.1 * (hi - lo))
    xs = np.array([lo - span, hi + span])
    ax.plot(xs, xs, **plots.DENSE_STYLE, label="pieces = neurons")
    ax.set_xlim(*xs)
    ax.set_ylim(0, max(float(table["pieces"].max()), hi) * 1.1)
    ax.set(xlabel="active hidden neurons", ylabel="linear pieces per segment (mean, sd)",
           title="Pieces between MNIST test images")
    ax.legend(fontsize=7)
    plots.caption_preset(fig, preset_name, f"{preset(preset_name).segments} segments, exact counts")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- Fig. 5
def overlap_table(df: pd.DataFrame) -> pd.DataFrame:
    """Fig. 5: per family, layer and IMP run, the share of IMP's kept weights that Edge-Popup (at the same keep
    fraction, same seed) also keeps, and its chance value (Edge-Popup's own kept share of the layer)."""
    rows = []
    for (fam, seed), sub in df[df["compact_path"].notna()].groupby(["family", "seed"], sort=False):
        popup = sub[sub["method"] == "edge-popup"]
        for _, imp in sub[sub["method"] == "imp"].iterrows():
            match = popup[np.isclose(popup["keep_fraction"], imp["keep_fraction"], atol=0.01)]
            if match.empty:
                continue
            ep_header, ep_arrays = compact.read(match.iloc[0]["compact_path"])
            imp_header, imp_arrays = compact.read(imp["compact_path"])
            shapes = {k: v.shape for k, v in network(imp).state_dict().items()}
            for key in imp_header["covered"]:
                if not key.endswith("weight") or f"mask/{key[:-len('.weight')]}" not in ep_arrays:
                    continue
                a = bits.unpack_bits(imp_arrays[f"mask/{key}"], shapes[key]).numpy()
                b = bits.unpack_bits(ep_arrays[f"mask/{key[:-len('.weight')]}"], shapes[key]).numpy()
                layer = f"{int(np.prod(shapes[key][1:]))}\u2192{shapes[key][0]}"  # fan-in -> units
                rows.append({"family": fam, "seed": seed, "layer": layer, "keep_fraction": imp["keep_fraction"],
                             "imp_kept": float(a.mean()), "overlap": float((a & b).sum() / max(1, a.sum())), "chance": float(b.mean())})
    return pd.DataFrame(rows)


def plot_overlap(table: pd.DataFrame, df: pd.DataFrame, preset_name: str):
    """Fig. 5: one row per family; per layer (fan-in -> units) a bar per keep fraction (mean over seeds) and its
    chance mark."""
    fams = list(dict.fromkeys(table["family"]))
    fig, axes = plots.plt.subplots(len(fams), 1, figsize=(plots.MAX_WIDTH_IN, 2.3 * len(fams) + 0.5), squeeze=False)
    labels = dict(zip(df["family"], df["family_label"]))
    ks = sorted(table["keep_fraction"].round(3).unique(), reverse=True)
    shades = plots.sns.light_palette(_colors()["imp"], len(ks) + 1)[1:]
    width = 0.8 / len(ks)
    for ax, fam in zip(axes[:, 0], fams):
        sub = table[table["family"] == fam].assign(k=lambda t: t["keep_fraction"].round(3))
        layers = list(dict.fromkeys(sub["layer"]))
        means = sub.groupby(["layer", "k"])[["overlap", "chance"]].mean()
        for j, k in enumerate(ks):
            x = [i - 0.4 + width * (j + 0.5) for i in range(len(layers))]
            rows = [means.loc[(layer, k)] if (layer, k) in means.index else None for layer in layers]
            ax.bar(x, [r["overlap"] if r is not None else 0 for r in rows], width=width * 0.92, color=shades[j],
                   label=f"k = {k:g}")
            ax.scatter(x, [r["chance"] if r is not None else np.nan for r in rows], color="black", marker="_",
                       s=1200 * width, linewidths=2, zorder=3, label="chance (independent masks)" if j == 0 else None)
        ax.set_xticks(range(len(layers)), layers, fontsize=7)
        ax.set_ylabel("overlap", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(labels.get(fam, fam), fontsize=9)
        ax.tick_params(labelsize=7)
        plots.percent_axis(ax)
    axes[-1, 0].set_xlabel("layer (inputs \u2192 units); bars: IMP's kept weights also kept by Edge-Popup", fontsize=8)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, fontsize=7, loc="lower center", ncol=len(names), bbox_to_anchor=(0.5, 0.035), frameon=False)
    plots.caption_preset(fig, preset_name, "output layer excluded (IMP never prunes it)")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


# ---------------------------------------------------------------------------------------------- table, text
def summary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per family and method: the best run's accuracy, its bits per weight and its minutes of training."""
    rows = []
    for (fam, method), sub in df.groupby(["family", "method"], sort=False):
        best = sub.loc[sub["test_accuracy"].idxmax()]
        bits = 32.0 if method == "dense" else best["bits_per_weight"]
        rows.append({"network": best["family_label"], "method": LABELS[method], "best setting": best["setting"] or "-",
                     "test accuracy (%)": round(100 * best["test_accuracy"], 1), "bits per weight": round(float(bits), 2),
                     "minutes": round(float(best["train_minutes"]), 2)})
    return pd.DataFrame(rows)


RUN_COLUMNS = ["family", "label", "setting", "test_accuracy", "bits_per_weight", "train_minutes", "run_id"]


# ---------------------------------------------------------------------------------------------- verdicts
def short_name(family_label: str) -> str:
    """A family's network in a few characters, for tables: "LeNet-300-100, MNIST" -> "LeNet"."""
    return family_label.split(",")[0].split(" (")[0].replace("-300-100", "")


def per_seed(df: pd.DataFrame, family: str, method: str, setting: str | None = None,
             column: str = "test_accuracy", scale: float = 100.0) -> list[float]:
    """``column`` (times ``scale``: accuracies in %) of one method's runs in ``family`` at ``setting`` (None: any),
    by seed."""
    sub = df[(df["family"] == family) & (df["method"] == method)]
    if setting is not None:
        sub = sub[sub["setting"] == setting]
    return [scale * float(v) for v in sub.sort_values("seed")[column]]


def best_setting(df: pd.DataFrame, family: str, method: str) -> str:
    """The setting of ``method`` in ``family`` with the highest mean test accuracy over seeds ("" for none)."""
    sub = df[(df["family"] == family) & (df["method"] == method)]
    return str(sub.groupby("setting")["test_accuracy"].mean().idxmax())


def run_name(method: str, setting: str) -> str:
    """A run as the page names it: "Slot Machines K=8", "dense"."""
    return f"{LABELS[method]} {setting}".strip()


def method_comparison(df: pd.DataFrame, family: str, first: tuple[str, str | None], second: tuple[str, str | None],
                      paper_first: bool | None) -> verdicts.Comparison:
    """``first`` against ``second`` in ``family``: each a ``(method, setting)``, setting None for its best one (by
    mean accuracy), per seed and paired by seed; accuracies in %."""
    sides = []
    for method, setting in (first, second):
        setting = best_setting(df, family, method) if setting is None else setting
        sides.append((run_name(method, setting), per_seed(df, family, method, setting)))
    (n1, v1), (n2, v2) = sides
    return verdicts.compare(n1, n2, v1, v2, paper_first=paper_first, paired=len(v1) == len(v2))


def _families(df: pd.DataFrame) -> list[tuple[str, str]]:
    return list(dict.fromkeys(zip(df["family"], df["family_label"])))


def _over_families(df: pd.DataFrame, compare_one) -> verdicts.Finding:
    """One comparison per family (``compare_one(family) -> Comparison``) combined into one finding; ours: each
    family's difference."""
    found, shown = [], []
    for family, label in _families(df):
        c = compare_one(family)
        found.append(verdicts.Finding("", c.status))
        shown.append(f"{short_name(label)} {c.diff:+.1f}")
    return verdicts.combine(found, ", ".join(shown) + " points")


def edge_popup_over_bernoulli(df: pd.DataFrame) -> verdicts.Finding:
    """Ramanujan et al.: Edge-Popup ahead of the Bernoulli supermask of Zhou et al. (each at its best setting)."""
    return _over_families(df, lambda fam: method_comparison(df, fam, ("edge-popup", None), ("supermask-bernoulli", None), True))


def slots_help(df: pd.DataFrame) -> verdicts.Finding:
    """Aladago and Torresani: more candidates per weight, higher accuracy (the largest K against the smallest)."""
    def one(fam):
        counts = sorted({int(s[2:]) for s in df[(df["family"] == fam) & (df["method"] == "slot")]["setting"]})
        return method_comparison(df, fam, ("slot", f"K={counts[-1]}"), ("slot", f"K={counts[0]}"), True)
    return _over_families(df, one)


def imp_over_dense(df: pd.DataFrame) -> verdicts.Finding:
    """Pellegrini and Biroli: the IMP-pruned network (its most pruned run) at least as accurate as the dense one."""
    def one(fam):
        rounds = df[(df["family"] == fam) & (df["method"] == "imp")]
        most = rounds.loc[rounds["keep_fraction"].idxmin(), "setting"]
        return method_comparison(df, fam, ("imp", most), ("dense", ""), True)
    return _over_families(df, one)


#: What a mask or a choice among K candidates costs per weight in the papers (the seed aside): 1 bit for a mask,
#: ceil(log2 K) for Slot Machines.
SEED_ALLOWANCE = 0.5  # bits per weight allowed on top for the seed and the file's framing


def nominal_bits(method: str, setting: str) -> float:
    """The papers' storage per weight of a run: 1 bit for a mask, ceil(log2 K) bits for a Slot Machine."""
    if method == "slot":
        return float(np.ceil(np.log2(int(setting[2:]))))
    return 1.0


def storage(df: pd.DataFrame) -> verdicts.Finding:
    """Ramanujan et al., Aladago and Torresani: a seed plus a mask (1 bit per weight) or a choice among K
    (ceil(log2 K) bits) stores the network. Reproduced when every masking and Slot Machines run's compact file is
    within :data:`SEED_ALLOWANCE` bits of that; partly when all are at least 4 times smaller than fp32 (8 bits)."""
    runs_ = df[df["method"].isin(("edge-popup", "supermask-bernoulli", "slot")) & df["bits_per_weight"].notna()]
    if runs_.empty:
        return verdicts.Finding("no compact files", verdicts.NOT_RUN)
    excess = [b - nominal_bits(m, s) for m, s, b in zip(runs_["method"], runs_["setting"], runs_["bits_per_weight"])]
    bits_ = runs_["bits_per_weight"].astype(float)
    shown = f"{bits_.min():.2f}-{bits_.max():.2f} bits, at most {max(excess):+.2f} over"
    if max(excess) <= SEED_ALLOWANCE:
        return verdicts.Finding(shown, verdicts.REPRODUCED)
    return verdicts.Finding(shown, verdicts.PARTLY if bits_.max() <= 8 else verdicts.NOT_HERE)


def locality_percent(ratio: float) -> float:
    """A locality ratio as how much shorter than random a unit's connections are, in % (ratio 0.92 -> 8)."""
    return 100 * (1 - ratio)


def locality_comparison(loc: pd.DataFrame) -> verdicts.Comparison:
    """Pellegrini and Biroli: IMP's first layer local, the dense network's not: the most pruned IMP run against
    dense, in % shorter than random (:func:`locality_percent`), per seed."""
    imp = loc[loc["method"] == "imp"]
    most = imp.loc[imp["connections"].idxmin(), "setting"]
    sides = []
    for method, setting in (("imp", most), ("dense", "")):
        sub = loc[(loc["method"] == method) & (loc["setting"] == setting)].sort_values("seed")
        sides.append((run_name(method, setting), [locality_percent(r) for r in sub["locality_ratio"]]))
    (n1, v1), (n2, v2) = sides
    return verdicts.compare(n1, n2, v1, v2, paper_first=True, paired=len(v1) == len(v2))


TOP_FRACTION = 0.1  # every preset's Preset.top_fraction


def imp_locality(df: pd.DataFrame) -> verdicts.Finding:
    """:func:`locality_comparison` on the MNIST family's networks (read back from their compact files)."""
    family = df["family"].iloc[0]
    c = locality_comparison(locality_rows(df, family, TOP_FRACTION))
    return verdicts.Finding(f"IMP {c.mean_first:.1f}%, dense {c.mean_second:.1f}% below random", c.status)


def _claim_test(derive):
    return lambda frame: derive(table_from_records(frame("Figs. 1-5")))


CLAIMS = (
    Claim("Edge-Popup ahead of the Bernoulli supermask", "Ramanujan 2020", ("Figs. 1-5",),
          _claim_test(edge_popup_over_bernoulli)),
    Claim("Slot Machines: larger K, higher accuracy", "Aladago 2021", ("Figs. 1-5",), _claim_test(slots_help)),
    Claim("IMP-pruned network as accurate as dense", "Frankle 2019; Pellegrini 2021", ("Figs. 1-5",),
          _claim_test(imp_over_dense)),
    Claim("Seed + mask: 1 bit/weight; slots: log2 K", "Zhou 2019; Aladago 2021", ("Figs. 1-5",),
          _claim_test(storage)),
    Claim("IMP's first layer more local than dense's", "Pellegrini 2021", ("Figs. 1-5",),
          _claim_test(imp_locality)),
)


# Every run of the chapter feeds Figs. 1-2 and the table; the networks of Figs. 3-5 are read back from their
# compact files. `randweights plan`, `sweep` and `bundle` read the same list.
CHAPTER = Chapter(
    "synthesis", "Synthesis: five ways to train without training weight values", "notebooks/synthesis.ipynb",
    tuple(PRESETS),
    (Figure("Figs. 1-5", lambda name: [cfg for _, _, _, cfg in configs(preset(name))], reads_compact=True),
     Figure("random ViT", lambda name: [cfg for _, _, _, cfg in vit_configs(name)])),
    order=7,
    claims=CLAIMS,
)


# ---------------------------------------------------------------------------------------------- the page's text
def settings_text(df: pd.DataFrame, family: str, method_names: tuple[str, ...]) -> str:
    """How the runs of ``method_names`` in ``family`` were trained, read from their configs: "Edge-Popup at lr
    0.1, Bernoulli supermask at lr 200, each for 2 epochs on 10,000 images"."""
    parts, budgets = [], set()
    for method in method_names:
        cfg = df[(df["family"] == family) & (df["method"] == method)].iloc[0]["config"]
        parts.append(f"{LABELS[method]} at lr {cfg.lr:g}")
        images = f"{cfg.data.subset:,} images" if cfg.data.subset else "the full training set"
        budgets.add(f"{cfg.train.epochs} epochs on {images}")
    return ", ".join(parts) + ", each for " + " / ".join(sorted(budgets))


def imp_budget_text(df: pd.DataFrame, family: str, setting: str) -> str:
    """IMP's training budget against dense's, read from the record and the config."""
    row = df[(df["family"] == family) & (df["method"] == "imp") & (df["setting"] == setting)].iloc[0]
    rounds = int(row["rounds_trained"]) if row["rounds_trained"] is not None and not pd.isna(row["rounds_trained"]) else int(row["config"].method.rounds) + 1
    return (f"IMP trains its network {rounds} times for {row['config'].train.epochs} epochs each, rewinding between "
            f"rounds, dense once: {rounds} times the budget")


def ordering_lines(df: pd.DataFrame) -> list[str]:
    """Per family, the three orderings of the claims table in sentences (numbers on both sides, the seed spread,
    the verdict) with, where ours is the reverse of the paper's, how the two sides were trained."""
    lines = []
    for family, label in _families(df):
        items = []
        c = method_comparison(df, family, ("edge-popup", None), ("supermask-bernoulli", None), True)
        why = f" ({settings_text(df, family, ('edge-popup', 'supermask-bernoulli'))})" if c.direction == "reversed" else ""
        items.append("Ramanujan et al. (2020): " + c.sentence() + why)
        counts = sorted({int(s[2:]) for s in df[(df["family"] == family) & (df["method"] == "slot")]["setting"]})
        c = method_comparison(df, family, ("slot", f"K={counts[-1]}"), ("slot", f"K={counts[0]}"), True)
        items.append("Aladago and Torresani (2021): " + c.sentence()
                     + (f" ({settings_text(df, family, ('slot',))})" if c.direction == "reversed" else ""))
        imp = df[(df["family"] == family) & (df["method"] == "imp")]
        most = imp.loc[imp["keep_fraction"].idxmin(), "setting"]
        c = method_comparison(df, family, ("imp", most), ("dense", ""), True)
        items.append(f"Frankle and Carbin (2019), Pellegrini and Biroli (2021): {c.sentence()} "
                     f"({imp_budget_text(df, family, most)})")
        lines.append(f"- **{label}**: " + "; ".join(items) + ".")
    return lines


def headline_text(df: pd.DataFrame, vit: pd.DataFrame | None = None) -> str:
    """The text under the storage figure: the most accurate run and the best cheap one against dense (first
    family; with ``vit``, the random transformer's too), then every family's orderings (:func:`ordering_lines`)."""
    text = best_text(df)
    if vit is not None and not vit.empty:
        text += " " + best_text(vit)
    return (text + "\n\nThe orderings the papers report, on the shared networks (the first three rows of the table "
            "at the top):\n\n" + "\n".join(ordering_lines(df)))


def best_text(df: pd.DataFrame) -> str:
    """The most accurate run of ``df``'s first family and its most accurate run storing at most 1.5 bits per
    weight, each against dense (per seed)."""
    family, label = _families(df)[0]
    sub = df[df["family"] == family]
    means = sub.groupby(["method", "setting"], sort=False)["test_accuracy"].mean()
    method, setting = means.idxmax()
    dense = per_seed(df, family, "dense", "")
    best = verdicts.compare(run_name(method, setting), "dense", per_seed(df, family, method, setting), dense)
    text = f"On {label} the most accurate run is {best.first}: {best.sentence()}."
    cheap = sub[(sub["method"] != "dense") & (sub["bits_per_weight"] <= 1.5)]
    if not cheap.empty:
        cm = cheap.groupby(["method", "setting"], sort=False)["test_accuracy"].mean()
        c_method, c_setting = cm.idxmax()
        bits_ = float(cheap[(cheap["method"] == c_method) & (cheap["setting"] == c_setting)]["bits_per_weight"].mean())
        c = verdicts.compare(run_name(c_method, c_setting), "dense", per_seed(df, family, c_method, c_setting), dense)
        text += (f" The most accurate run storing at most 1.5 bits per weight is {c.first}, at {bits_:.2f} bits per "
                 f"weight, {32 / bits_:.0f} times less than dense's 32: {c.sentence()}.")
    return text


def locality_text(loc: pd.DataFrame, df: pd.DataFrame) -> str:
    """The text under the locality figure: which network is the most local and by how much, IMP against dense
    (:func:`locality_comparison`), and what that says against the FCN-to-CNN paper."""
    means = loc.groupby(["method", "setting"], sort=False)["locality_ratio"].mean().sort_values()
    (m1, s1), (m2, s2) = means.index[0], means.index[1]
    r1, r2 = float(means.iloc[0]), float(means.iloc[1])
    first = "the dense network" if m1 == "dense" else run_name(m1, s1)
    text = (f"The most local first layer is that of {first}: locality ratio {r1:.2f}, its connections "
            f"{locality_percent(r1):.1f}% shorter than random, {r2 - r1:.2f} below the next, {run_name(m2, s2)} "
            f"({r2:.2f}).")
    c = locality_comparison(loc)
    text += f" Measured as how much shorter than random the connections are, {c.sentence()}."
    imp = loc[loc["method"] == "imp"]
    most = imp.loc[imp["connections"].idxmin()]
    row = df[(df["family"] == df["family"].iloc[0]) & (df["method"] == "imp") & (df["setting"] == most["setting"])].iloc[0]
    if c.direction != "agrees":
        text += (f" So at this budget pruning has not made the first layer more local than plain training: "
                 f"the FCN-to-CNN paper finds local fields after many rounds (its best network keeps "
                 f"{FCN_PAPER['remaining_percent']:.2g}% of the weights, at round {FCN_PAPER['best_round']}), ours keeps "
                 f"{100 * most['connections']:.0f}% after {row['config'].method.rounds} rounds of "
                 f"{row['config'].train.epochs} epochs. The unpruned networks' connections here are each unit's "
                 f"largest {100 * TOP_FRACTION:.0f}% |w|, a smaller set than IMP's {100 * most['connections']:.0f}%, "
                 f"so the two ratios are not of sets of the same size.")
    return text


def pieces_text(pieces: pd.DataFrame) -> str:
    """The text under the pieces figure: the range of mean pieces per segment against the hidden neurons."""
    per_neuron = pieces["pieces"] / pieces["active_neurons"]
    return (f"Along the same segments the networks have {pieces['pieces'].min():.0f} to {pieces['pieces'].max():.0f} "
            f"linear pieces on average, {per_neuron.min():.2f} to {per_neuron.max():.2f} per connected hidden neuron "
            f"({int(pieces['active_neurons'].min())} to {int(pieces['active_neurons'].max())} neurons): of the order "
            f"of the neuron count, and below it, for every method.") if bool((per_neuron < 1).all()) else (
            f"Along the same segments the networks have {pieces['pieces'].min():.0f} to {pieces['pieces'].max():.0f} "
            f"linear pieces on average, {per_neuron.min():.2f} to {per_neuron.max():.2f} per connected hidden neuron.")


def overlap_text(overlap: pd.DataFrame) -> str:
    """Edge-Popup's share of IMP's kept weights against chance, mean over layers and keep fractions, per seed."""
    by_seed = overlap.groupby("seed")[["overlap", "chance"]].mean().sort_index()
    c = verdicts.compare("Edge-Popup keeps", "chance", list(100 * by_seed["overlap"]), list(100 * by_seed["chance"]),
                         paired=True)
    return (f"Of IMP's kept weights (mean over layers and keep fractions) {c.sentence()}: no paper predicts this "
            f"overlap, so there is no paper direction to agree with.")
