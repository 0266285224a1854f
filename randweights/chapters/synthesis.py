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

from .. import bits, compact, data, methods, plots, runs, store
from ..analysis import locality, regions
from ..config import RunConfig, make_config
from ..errors import check_choice
from ..plan import Chapter, Figure

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
            out += [(fam, "imp", f"{r} rounds", fam.config("imp", seed, rounds=r, **p.imp)) for r in p.imp_rounds]
    return out


def run_table(preset_name: str, device: str | None = None) -> pd.DataFrame:
    """Every run of the chapter (trained once, then read from the store), one row each, in training order."""
    p = preset(preset_name)
    meta = {cfg.run_id: (fam, method, setting, cfg) for fam, method, setting, cfg in configs(p)}
    rows = []
    for r in CHAPTER.records("Figs. 1-5", preset_name, device):
        fam, method, setting, cfg = meta[r["run_id"]]
        rows.append({
            "family": fam.key, "family_label": fam.label, "method": method, "label": LABELS[method], "setting": setting,
            "seed": cfg.train.seed, "run_id": r["run_id"], "config": cfg, "test_accuracy": r["test_accuracy"],
            "train_minutes": r["train_seconds"] / 60, "train_seconds": r["train_seconds"], "device": r.get("device"),
            "weights": r["weight_count"],
            "bits_per_weight": r.get("compact_bits_per_weight"), "compact_bytes": r.get("compact_bytes"),
            "dense_bytes": r.get("dense_bytes"), "compact_path": str(store.run_dir(cfg) / r["compact_file"]) if r.get("compact_file") else None,
            "keep_fraction": kept_fraction(method, cfg, r),
        })
    return pd.DataFrame(rows)


def kept_fraction(method: str, cfg: RunConfig, record: dict) -> float:
    """Fraction of the weights the network uses (1 for methods that keep every connection)."""
    if method == "edge-popup":
        return cfg.method.keep_fraction
    if method == "supermask-bernoulli":
        return record.get("kept_fraction", cfg.method.keep_fraction)
    if method == "imp":
        return record["final_remaining_fraction"]
    return 1.0


def network(row) -> torch.nn.Module:
    """The run's trained network (:func:`randweights.runs.load_network`: from its compact file, a plain model in
    eval mode)."""
    return runs.load_network(row["config"])


# Every run of the chapter feeds Figs. 1-2 and the table; the networks of Figs. 3-5 are read back from their
# compact files. `randweights plan`, `sweep` and `bundle` read the same list.
CHAPTER = Chapter(
    "synthesis", "Synthesis: five ways to train without training weight values", "notebooks/synthesis.ipynb",
    tuple(PRESETS),
    (Figure("Figs. 1-5", lambda name: [cfg for _, _, _, cfg in configs(preset(name))], reads_compact=True),),
    order=6,
)


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
    fig, axes = plots.panels(len(fams), width=4.8, height=3.6)
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
        ax.set(xlabel=xlabel, ylabel="test accuracy", title=sub["family_label"].iloc[0])
        plots.percent_axis(ax)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title, fontsize=10)
    plots.caption_preset(fig, preset_name, "lines: each method's Pareto front")
    fig.tight_layout()
    return fig


def plot_bits(df: pd.DataFrame, preset_name: str):
    """Fig. 1: accuracy against bits stored per weight; dense at 32 bits (its fp32 values)."""
    df = df.copy()
    df.loc[df["method"] == "dense", "bits_per_weight"] = 32.0
    return plot_tradeoff(df, preset_name, "bits_per_weight", "bits stored per weight (compact file, seed included)",
                         "Accuracy against storage")


def plot_time(df: pd.DataFrame, preset_name: str):
    """Fig. 2: accuracy against training time (minutes, from the records)."""
    return plot_tradeoff(df, preset_name, "train_minutes", "training time (minutes, log scale)", "Accuracy against training time")


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
    rows = []
    for _, row in df[(df["family"] == p.families[0].key) & df["compact_path"].notna()].iterrows():
        masks = first_layer_connections(network(row), row["method"], p.top_fraction, (1, 28, 28))
        rows.append({"method": row["method"], "label": row["label"], "setting": row["setting"], "seed": row["seed"],
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
        rows.append({"method": row["method"], "label": row["label"], "setting": row["setting"], "seed": row["seed"],
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
    fams = list(dict.fromkeys(table["family"]))
    fig, axes = plots.panels(len(fams), width=4.6, height=3.4)
    labels = dict(zip(df["family"], df["family_label"]))
    for ax, fam in zip(axes, fams):
        sub = table[table["family"] == fam].reset_index(drop=True)
        names = [f"{layer}\nk={k:.2g}" for layer, k in zip(sub["layer"], sub["keep_fraction"])]
        x = np.arange(len(sub))
        ax.bar(x, sub["overlap"], color=_colors()["imp"], label="IMP's kept weights also kept by Edge-Popup")
        ax.scatter(x, sub["chance"], color="black", marker="_", s=300, zorder=3, label="chance (independent masks)")
        ax.set_xticks(x, names, fontsize=6)
        ax.set(ylabel="overlap", ylim=(0, 1), title=labels.get(fam, fam), xlabel="layer, keep fraction")
        plots.percent_axis(ax)
    axes[0].legend(fontsize=6, loc="upper right")
    plots.caption_preset(fig, preset_name, "output layer excluded (IMP never prunes it)")
    fig.tight_layout()
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


def claims(df: pd.DataFrame, loc: pd.DataFrame | None = None, pieces: pd.DataFrame | None = None,
           overlap: pd.DataFrame | None = None) -> dict[str, str]:
    """The numbers the chapter's text quotes (shown as Markdown outputs); the analyses' numbers once their tables are given."""
    loc = pd.DataFrame() if loc is None else loc
    pieces = pd.DataFrame() if pieces is None else pieces
    overlap = pd.DataFrame() if overlap is None else overlap
    first = df["family"].iloc[0]
    mnist = df[df["family"] == first]
    best = mnist.loc[mnist["test_accuracy"].idxmax()]
    dense = mnist[mnist["method"] == "dense"]["test_accuracy"].max()
    cheap = mnist[(mnist["bits_per_weight"] <= 1.5) & (mnist["method"] != "dense")]
    cheap_best = cheap.loc[cheap["test_accuracy"].idxmax()] if not cheap.empty else None
    by_method = loc.groupby("method")["locality_ratio"].min() if not loc.empty else pd.Series(dtype=float)
    out = {
        "best_method": f"{LABELS[best['method']]} {best['setting']}".strip(),
        "best_accuracy": f"{100 * best['test_accuracy']:.1f}%",
        "dense_accuracy": f"{100 * dense:.1f}%",
        "cheap_method": f"{LABELS[cheap_best['method']]} {cheap_best['setting']}".strip() if cheap_best is not None else "none",
        "cheap_accuracy": f"{100 * cheap_best['test_accuracy']:.1f}%" if cheap_best is not None else "n/a",
        "cheap_bits": f"{cheap_best['bits_per_weight']:.2f}" if cheap_best is not None else "n/a",
        "imp_locality": f"{by_method.get('imp', float('nan')):.2f}",
        "popup_locality": f"{by_method.get('edge-popup', float('nan')):.2f}",
        "laperm_locality": f"{by_method.get('laperm', float('nan')):.2f}",
        "runs": f"{len(df)}",
        "train_minutes": f"{df['train_minutes'].sum():.1f}",
    }
    if not pieces.empty:
        out["pieces_range"] = f"{pieces['pieces'].min():.0f} to {pieces['pieces'].max():.0f}"
        out["neurons"] = f"{int(pieces['neurons'].max())}"
    if not overlap.empty:
        excess = overlap["overlap"] - overlap["chance"]
        out["overlap_excess"] = f"{100 * excess.mean():+.1f}"
        out["overlap_max"] = f"{100 * overlap['overlap'].max():.0f}%"
    return out


HEADLINE = ("best_method", "best_accuracy", "dense_accuracy", "cheap_method", "cheap_accuracy", "cheap_bits", "runs", "train_minutes")
ANALYSES = ("imp_locality", "popup_locality", "laperm_locality", "pieces_range", "neurons", "overlap_excess", "overlap_max")


def headline_numbers(df: pd.DataFrame) -> dict[str, str]:
    """The numbers of the chapter's opening text (:data:`HEADLINE` of :func:`claims`)."""
    out = claims(df)
    return {name: out[name] for name in HEADLINE}


def analysis_numbers(df: pd.DataFrame, loc: pd.DataFrame, pieces: pd.DataFrame, overlap: pd.DataFrame) -> dict[str, str]:
    """The numbers of the analyses' text (:data:`ANALYSES` of :func:`claims`; "n/a" where a table is empty)."""
    out = claims(df, loc, pieces, overlap)
    return {name: out.get(name, "n/a") for name in ANALYSES}


RUN_COLUMNS = ["family", "label", "setting", "test_accuracy", "bits_per_weight", "train_minutes", "run_id"]
