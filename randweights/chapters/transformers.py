"""Random transformers chapter (beyond the five papers): the methods on small vision transformers.

No paper of the five trains a transformer. This chapter asks, with our own runs on :class:`randweights.models.PatchViT`
(patch-4 ViTs, 4 heads, pre-norm blocks): does Edge-Popup find a subnetwork of a random ViT near the same ViT
trained densely, over k and as the width grows; do Slot Machines (over K) and LaPerm carry over; does one shared
random layer (every block masks the same frozen weights, the idea of Shen et al. 2021 for a one-layer random
Transformer) do as well as independent random weights per block; and which weights the masks keep in attention
against the MLP blocks. Weight matrices (patch embedding, packed q/k/v projection, attention output, MLP, head)
are random and frozen; the positional embedding, class token and (non-affine) norms stay as drawn
(``learn_extras=False``), the papers' reading: nothing but the masks, selections or permutations is learned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .. import compact, data, models, plots, store, verdicts
from ..bits import unpack_bits
from ..config import RunConfig, make_config
from ..errors import check_choice
from ..plan import Chapter, Claim, Figure

LABELS = {"dense": "dense (learned weights)", "edge-popup": "Edge-Popup", "slot": "Slot Machines", "laperm": "LaPerm",
          "supermask-bernoulli": "Bernoulli supermask"}


@dataclass(frozen=True)
class Family:
    """One dataset and training budget for the ViTs (flat RunConfig settings, ``arch`` excluded)."""

    label: str
    settings: dict = field(default_factory=dict)

    def config(self, method: str, arch: str, seed: int, **overrides) -> RunConfig:
        return make_config(method, arch=arch, seed=seed, **{**self.settings, **overrides})


@dataclass(frozen=True)
class Preset:
    seeds: tuple[int, ...]
    families: tuple[Family, ...]
    arch: str  # the ViT of the k, K and LaPerm figures
    keep_fractions: tuple[float, ...]  # Edge-Popup's k
    widths: tuple[float, ...]  # the width sweep (Edge-Popup at width_k against dense)
    width_k: float
    slots: tuple[int, ...]  # Slot Machines' K (K = 1: the untrained random network)
    deep_arch: str  # the ViT of the shared-vs-independent figure
    shared_k: float
    bernoulli_k: float = 0.5  # the Bernoulli supermask's initial kept fraction


MNIST_SMOKE = {"dataset": "mnist", "subset": 1000, "epochs": 1}
# quick: 10,000 MNIST images, 3 epochs (about 19 s a run at width 1, depth 2, two runs at a time on 2 cores)
MNIST_QUICK = {"dataset": "mnist", "subset": 10000, "epochs": 3}
# full (GPU): every training image, MNIST 50 epochs, CIFAR-10 100 epochs with flips and crops
MNIST_FULL = {"dataset": "mnist", "epochs": 50}
CIFAR_FULL = {"dataset": "cifar10", "epochs": 100, "augment": True}

PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        seeds=(0,),
        families=(Family("MNIST", MNIST_SMOKE),),
        arch="vit-p4-d1",
        keep_fractions=(0.3, 0.5, 0.7),
        widths=(0.5, 1.0),
        width_k=0.5,
        slots=(1, 2, 4),
        deep_arch="vit-p4-d2",
        shared_k=0.5,
    ),
    "quick": Preset(
        seeds=(0, 1),
        families=(Family("MNIST", MNIST_QUICK),),
        arch="vit-p4-d2",
        keep_fractions=(0.1, 0.25, 0.5, 0.75, 0.9),
        widths=(0.25, 0.5, 1.0),  # width 2 (128 features) costs 3x width 1 a run: left to `full`
        width_k=0.5,
        slots=(1, 2, 4, 8),
        deep_arch="vit-p4-d4",
        shared_k=0.5,
    ),
    "full": Preset(
        seeds=(0, 1, 2),
        families=(Family("MNIST", MNIST_FULL), Family("CIFAR-10", CIFAR_FULL)),
        arch="vit-p4-d4",
        keep_fractions=(0.05, 0.1, 0.25, 0.5, 0.75, 0.9),
        widths=(0.5, 1.0, 2.0, 4.0),
        width_k=0.5,
        slots=(1, 2, 4, 8, 16, 32),
        deep_arch="vit-p4-d6",
        shared_k=0.5,
    ),
}


def preset(name: str) -> Preset:
    check_choice("preset", name, tuple(PRESETS))
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------- runs
def k_configs(p: Preset) -> list[RunConfig]:
    """Edge-Popup over k and the dense ViT of the same shape, per family and seed."""
    out = []
    for fam in p.families:
        for seed in p.seeds:
            out += [fam.config("edge-popup", p.arch, seed, keep_fraction=k) for k in p.keep_fractions]
            out.append(fam.config("dense", p.arch, seed))
    return out


def width_configs(p: Preset) -> list[RunConfig]:
    """Edge-Popup at ``width_k`` and dense, per width (the first family)."""
    fam = p.families[0]
    return [fam.config(method, p.arch, seed, width=w, **({"keep_fraction": p.width_k} if method == "edge-popup" else {}))
            for w in p.widths for seed in p.seeds for method in ("edge-popup", "dense")]


# Slot Machines train the ViTs at lr 1.0, not the paper's 0.2 (tuned for conv nets): at `quick`, seed 1, lr 0.2 left
# K = 4 at chance (9.6%) and K = 8 at 60.4%; lr 1.0 gave K = 2 67.5% and K = 4 76.9%; lr 0.05 was worse still.
SLOT_LR = 1.0


def slot_config(fam: Family, arch: str, seed: int, k: int) -> RunConfig:
    """Slot Machines with K candidates at :data:`SLOT_LR` (K = 1 trains nothing: the random network)."""
    return fam.config("slot", arch, seed, num_slots=k, lr=SLOT_LR, **({"epochs": 0} if k == 1 else {}))


def slot_configs(p: Preset) -> list[RunConfig]:
    """Slot Machines over K, LaPerm, and the dense ViT."""
    out = []
    for fam in p.families:
        for seed in p.seeds:
            out += [slot_config(fam, p.arch, seed, k) for k in p.slots]
            out.append(fam.config("laperm", p.arch, seed))
            out.append(fam.config("dense", p.arch, seed))
    return out


def shared_configs(p: Preset) -> list[RunConfig]:
    """Edge-Popup at ``shared_k`` on the deeper ViT: one shared random layer against independent blocks."""
    fam = p.families[0]
    return [fam.config("edge-popup", p.deep_arch, seed, keep_fraction=p.shared_k, shared_blocks=shared)
            for seed in p.seeds for shared in (False, True)]


def kept_configs(p: Preset) -> list[RunConfig]:
    """The masks read back from their compact files: Edge-Popup at ``width_k`` and the Bernoulli supermask."""
    fam = p.families[0]
    return [fam.config(method, p.arch, seed, keep_fraction=k)
            for seed in p.seeds for method, k in (("edge-popup", p.width_k), ("supermask-bernoulli", p.bernoulli_k))]


# ---------------------------------------------------------------------------------------------- frames
def frame(figure: str, preset_name: str, device=None) -> pd.DataFrame:
    """The runs of ``figure`` (one of :data:`CHAPTER`'s), one row each, with ``family``, ``label`` and
    ``shared``."""
    return annotate(CHAPTER.frame(figure, preset_name, device))


def annotate(df: pd.DataFrame) -> pd.DataFrame:
    """``family`` (dataset label), ``label`` (method in words) and ``shared`` (one shared random layer) columns."""
    df = df.copy()
    names = {f.settings["dataset"]: f.label for p in PRESETS.values() for f in p.families}
    df["family"] = df["dataset"].map(names)
    df["label"] = df["method"].map(LABELS)
    df["shared"] = df["shared_blocks"].eq(True) if "shared_blocks" in df else False
    return df


def _pct(values) -> list[float]:
    return [100 * float(v) for v in values]


def best_k(df: pd.DataFrame, family: str | None = None) -> float | None:
    """The k whose Edge-Popup accuracy (mean over seeds) is highest."""
    ep = df[df["method"] == "edge-popup"]
    if family is not None:
        ep = ep[ep["family"] == family]
    if ep.empty:
        return None
    return float(ep.groupby("keep_fraction")["test_accuracy"].mean().idxmax())


def best_against_dense(df: pd.DataFrame, family: str | None = None) -> verdicts.Comparison | None:
    """Edge-Popup at its best k against the dense ViT (per seed). Conv nets put the best subnetwork near dense
    (Ramanujan et al. 2020): the direction compared is "dense ahead or level", shown as a difference."""
    family = family or df["family"].iloc[0]
    sub = df[df["family"] == family]
    k = best_k(sub)
    if k is None or sub[sub["method"] == "dense"].empty:
        return None
    ep, dense = sub[(sub["method"] == "edge-popup") & (sub["keep_fraction"] == k)], sub[sub["method"] == "dense"]
    a, b, paired = verdicts.paired_by_seed(verdicts.by_seed(ep), verdicts.by_seed(dense))
    return verdicts.compare(f"Edge-Popup at k = {k:g}", "dense", a, b, paired=paired)


def inverted_u(df: pd.DataFrame, family: str | None = None) -> str:
    """Whether accuracy over k peaks inside the grid (an inverted U, as in conv nets) or at an end, in words."""
    family = family or df["family"].iloc[0]
    ep = df[(df["method"] == "edge-popup") & (df["family"] == family)]
    means = 100 * ep.groupby("keep_fraction")["test_accuracy"].mean()
    if len(means) < 3:
        return "fewer than three k at this preset: no shape to tell"
    k = float(means.idxmax())
    lo, hi = float(means.index.min()), float(means.index.max())
    shape = ("an inverted U: it peaks inside the grid" if lo < k < hi else
             f"no inverted U on this grid: it peaks at its {'smallest' if k == lo else 'largest'} k")
    return (f"{shape}, at k = {k:g} ({means[k]:.1f}%), against {means[lo]:.1f}% at k = {lo:g} and {means[hi]:.1f}% "
            f"at k = {hi:g}")


def width_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """Per width: Edge-Popup and dense (mean over seeds, %) and dense minus Edge-Popup, in points."""
    rows = []
    for w, g in df.groupby("width"):
        ep, dense = g[g["method"] == "edge-popup"], g[g["method"] == "dense"]
        if ep.empty or dense.empty:
            continue
        a, b, _ = verdicts.paired_by_seed(verdicts.by_seed(ep), verdicts.by_seed(dense))
        rows.append({"width": float(w), "features": int(64 * w), "Edge-Popup": float(np.mean(a)), "dense": float(np.mean(b)),
                     "gap": float(np.mean(b) - np.mean(a)), "gap sd": float(np.std(np.subtract(b, a), ddof=1)) if len(a) > 1 else 0.0})
    return pd.DataFrame(rows)


def width_sentence(df: pd.DataFrame) -> str:
    """Dense minus Edge-Popup per width, and how it moves from the narrowest to the widest ViT, in words."""
    gaps = width_gaps(df)
    if len(gaps) < 2:
        return "fewer than two widths at this preset"
    parts = [f"{int(r['features'])} features: {r['gap']:+.1f} points" for _, r in gaps.iterrows()]
    first, last = gaps["gap"].iloc[0], gaps["gap"].iloc[-1]
    move = "falls" if last < first else "rises" if last > first else "stays"
    ahead = ("Edge-Popup is ahead of dense at every width" if (gaps["gap"] < 0).all() else
             "dense is ahead at every width" if (gaps["gap"] > 0).all() else "the lead changes sides")
    return (f"dense minus Edge-Popup, {'; '.join(parts)}: the difference {move} by {abs(last - first):.1f} points from the "
            f"narrowest to the widest ViT, and {ahead}")


def slot_trend(df: pd.DataFrame) -> verdicts.Comparison | None:
    """Slot Machines at the largest K against K = 2 (per seed): conv nets rise with K (Aladago & Torresani 2021)."""
    s = df[df["method"] == "slot"]
    ks = sorted(int(k) for k in s["num_slots"].unique() if k >= 2)
    if len(ks) < 2:
        return None
    hi, lo = s[s["num_slots"] == ks[-1]], s[s["num_slots"] == ks[0]]
    a, b, paired = verdicts.paired_by_seed(verdicts.by_seed(hi), verdicts.by_seed(lo))
    return verdicts.compare(f"K = {ks[-1]}", f"K = {ks[0]}", a, b, paper_first=True, paired=paired)


def methods_sentence(df: pd.DataFrame) -> str:
    """Each method's accuracy (mean over seeds) on the figure's ViT: Slot Machines per K, LaPerm, dense."""
    parts = []
    slot = 100 * df[df["method"] == "slot"].groupby("num_slots")["test_accuracy"].mean()
    parts += [f"Slot Machines K = {int(k)}: {v:.1f}%" + (" (untrained)" if k == 1 else "") for k, v in slot.items()]
    for method in ("laperm", "dense"):
        sub = df[df["method"] == method]
        if len(sub):
            parts.append(f"{LABELS[method]}: {100 * sub['test_accuracy'].mean():.1f}%")
    return "; ".join(parts)


def shared_comparison(df: pd.DataFrame) -> verdicts.Comparison | None:
    """Shared against independent random blocks (per seed); the one-layer work has the shared layer competitive,
    so no direction is assumed."""
    shared, independent = df[df["shared"]], df[~df["shared"]]
    if shared.empty or independent.empty:
        return None
    a, b, paired = verdicts.paired_by_seed(verdicts.by_seed(shared), verdicts.by_seed(independent))
    return verdicts.compare("one shared random layer", "independent random blocks", a, b, paired=paired)


def distinct_weights(arch: str, dataset: str, width: float = 1.0, shared: bool = False) -> int:
    """Random values a ViT holds in its weight matrices (counted as :func:`randweights.models.count_weights`
    does, on the meta device): every block its own, or ``shared`` the first block's once."""
    with torch.device("meta"):
        net = models.build(arch, data.SHAPES[dataset], data.NUM_CLASSES[dataset], width)
    total = models.count_weights(net)
    if shared:
        total -= sum(models.count_weights(block) for block in list(net.get_submodule("blocks").children())[1:])
    return total


def shared_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per setting: accuracy (mean ± sd over seeds), the compact file's bits per weight (median), and the random
    values the network holds (distinct frozen weights), from the runs' records."""
    rows = []
    for shared, g in df.groupby("shared"):
        record = g.iloc[0]
        acc = _pct(g["test_accuracy"])
        mean, sd = verdicts.mean_sd(acc)
        rows.append({"blocks": "one shared random layer" if shared else "independent random blocks",
                     "test accuracy (%)": f"{mean:.1f}" + (f" ± {sd:.1f}" if sd is not None else ""),
                     "compact bits per weight": round(float(g["compact_bits_per_weight"].median()), 3),
                     "weights": int(record["weight_count"]),
                     "distinct random values": distinct_weights(record["arch"], record["dataset"], record["width"], bool(shared))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- masks kept
PARTS = ("patch embedding", "q", "k", "v", "attention out", "MLP in", "MLP out", "head")


def _parts_of(layer: str, mask: np.ndarray) -> list[tuple[str, str, np.ndarray]]:
    """``(block, part, mask)`` of one masked layer of a :class:`~randweights.models.PatchViT`; the packed
    q/k/v projection (``attn``: rows q, then k, then v) in its three parts."""
    if layer == "patch":
        return [("", "patch embedding", mask)]
    if layer == "head":
        return [("", "head", mask)]
    _, block, rest = layer.split(".", 2)
    label = f"block {int(block) + 1}"
    if rest == "attn":
        return [(label, part, rows) for part, rows in zip("qkv", np.split(mask, 3, axis=0))]
    return [(label, {"attn.out_proj": "attention out", "mlp.0": "MLP in", "mlp.2": "MLP out"}[rest], mask)]


def kept_parts(path) -> pd.DataFrame:
    """Per block and part (:data:`PARTS`) of a ViT's compact file: weights kept by its mask and in all."""
    header, arrays = compact.read(path)
    if len(header["layers"]) != len(header["covered"]):
        raise ValueError(f"{path}: layers and covered tensors differ in number")
    rows = []
    for layer, key in zip(header["layers"], header["covered"]):
        shape = tuple(header["shapes"][key])
        mask = unpack_bits(arrays[f"mask/{layer}"], shape).reshape(shape[0], -1).numpy()
        rows += [{"block": block, "part": part, "kept": int(m.sum()), "weights": int(m.size)} for block, part, m in _parts_of(layer, mask)]
    return pd.DataFrame(rows)


def kept_frame(runs: pd.DataFrame, preset_name: str, root=None) -> pd.DataFrame:
    """Kept fraction per method, seed, block and part of the runs of "masks kept" (``runs``: their frame,
    :func:`frame`), read from their compact files."""
    configs = {c.run_id: c for c in CHAPTER.figure("masks kept").configs(preset_name)}
    rows = []
    for _, r in runs.iterrows():
        parts = kept_parts(store.run_dir(configs[r["run_id"]], root) / r["compact_file"])
        parts.insert(0, "method", LABELS[r["method"]])
        parts.insert(1, "seed", r["seed"])
        parts.insert(2, "run_id", r["run_id"])
        rows.append(parts)
    out = pd.concat(rows, ignore_index=True)
    out["kept fraction"] = out["kept"] / out["weights"]
    return out


def kept_sentence(kept: pd.DataFrame) -> str:
    """Per method: kept fraction of attention (q, k, v, out) against MLP weights, and of q, k, v apart."""
    parts = []
    for method, g in kept.groupby("method", sort=False):
        attention = g[g["part"].isin(["q", "k", "v", "attention out"])]
        mlp = g[g["part"].isin(["MLP in", "MLP out"])]
        qkv = {p: g[g["part"] == p]["kept"].sum() / g[g["part"] == p]["weights"].sum() for p in "qkv"}
        parts.append(f"{method}: attention {100 * attention['kept'].sum() / attention['weights'].sum():.1f}%, MLP "
                     f"{100 * mlp['kept'].sum() / mlp['weights'].sum():.1f}% (q {100 * qkv['q']:.1f}%, k {100 * qkv['k']:.1f}%, "
                     f"v {100 * qkv['v']:.1f}%)")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------- figures
def _k_axis(ax, values, log2: bool = False) -> None:
    values = sorted(float(v) for v in values)
    if log2:
        ax.set_xscale("log", base=2)
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.minorticks_off()
    else:
        ax.set_xticks(values, [f"{v:g}" for v in values])


def _finish(fig, axes, preset_name: str, ylabel: str = "test accuracy", ncol: int = 2, note: str = ""):
    """Label the first panel, fit the layout, put the legend below and the preset in the corner."""
    axes[0].set_ylabel(ylabel)
    return plots.finish(fig, preset_name, note, fontsize=8, ncol=ncol)


def plot_k(df: pd.DataFrame, preset_name: str):
    """Edge-Popup accuracy against k per family, the dense ViT as a dashed line with its seed band."""
    families = list(dict.fromkeys(df["family"]))
    fig, axes = plots.panels(len(families), width=4.4)
    for ax, family in zip(axes, families):
        sub = df[df["family"] == family]
        st = plots.mean_sd(sub[sub["method"] == "edge-popup"], ["keep_fraction"])
        ax.errorbar(st["keep_fraction"], st["mean"], yerr=st["sd"], marker="o", ms=4, capsize=2, label="Edge-Popup (random ViT, masked)")
        dense = sub[sub["method"] == "dense"]["test_accuracy"]
        plots.hline(ax, dense.mean(), "same ViT, weights trained (dense)")
        if len(dense) > 1:
            ax.axhspan(dense.mean() - dense.std(), dense.mean() + dense.std(), color="0.85", zorder=0)
        _k_axis(ax, st["keep_fraction"])
        ax.set(title=f"{arch_label(sub['arch'].iloc[0])}, {family}", xlabel="kept fraction k")
        plots.percent_axis(ax)
    return _finish(fig, axes, preset_name)


def arch_label(arch: str, width: float = 1.0) -> str:
    """"ViT, depth 2, 64 features" for vit-p4-d2 at width 1."""
    depth = int(arch.rsplit("d", 1)[1])
    return f"ViT, depth {depth}, {int(64 * width)} features"


def plot_width(df: pd.DataFrame, preset_name: str):
    """Left: Edge-Popup and dense accuracy against width. Right: dense minus Edge-Popup, in points."""
    fig, axes = plots.panels(2, width=3.6)
    for method, marker in (("edge-popup", "o"), ("dense", "s")):
        st = plots.mean_sd(df[df["method"] == method], ["width"])
        axes[0].errorbar(64 * st["width"], st["mean"], yerr=st["sd"], marker=marker, ms=4, capsize=2,
                         label=LABELS[method] + (f" (k = {df[df['method'] == method]['keep_fraction'].iloc[0]:g})" if method == "edge-popup" else ""))
    gaps = width_gaps(df)
    axes[1].errorbar(gaps["features"], gaps["gap"], yerr=gaps["gap sd"], marker="o", ms=4, capsize=2, color="0.3")
    axes[1].axhline(0, color="0.6", linewidth=0.8)
    for ax in axes:
        _k_axis(ax, 64 * np.array(sorted(df["width"].unique())), log2=True)
        ax.set_xlabel("features per token (width)")
    axes[0].set(title=f"{arch_label(df['arch'].iloc[0]).rsplit(',', 1)[0]}, {df['family'].iloc[0]}")
    plots.percent_axis(axes[0])
    axes[1].set(ylabel="dense minus Edge-Popup (points)", title="gap to dense")
    return _finish(fig, axes, preset_name)


def plot_slots(df: pd.DataFrame, preset_name: str):
    """Slot Machines accuracy against K (log axis), LaPerm and dense as lines, K = 1 (random) dotted."""
    families = list(dict.fromkeys(df["family"]))
    fig, axes = plots.panels(len(families), width=4.4)
    colors = plots.sns.color_palette(plots.PALETTE, 4)
    for ax, family in zip(axes, families):
        sub = df[df["family"] == family]
        slot = sub[sub["method"] == "slot"]
        st = plots.mean_sd(slot[slot["num_slots"] >= 2], ["num_slots"])
        ax.errorbar(st["num_slots"], st["mean"], yerr=st["sd"], marker="o", ms=4, capsize=2, color=colors[0], label="Slot Machines (greedy)")
        plots.hline(ax, sub[sub["method"] == "dense"]["test_accuracy"].mean(), "dense (weights trained)")
        plots.hline(ax, sub[sub["method"] == "laperm"]["test_accuracy"].mean(), "LaPerm (weights permuted)", linestyle="-.", color=colors[2])
        k1 = slot[slot["num_slots"] == 1]["test_accuracy"]
        if len(k1):
            plots.hline(ax, k1.mean(), "K = 1: the random ViT", linestyle=":", color="0.45")
        _k_axis(ax, st["num_slots"], log2=True)
        ax.set(title=f"{arch_label(sub['arch'].iloc[0])}, {family}", xlabel="candidates per connection, K")
        plots.percent_axis(ax)
    return _finish(fig, axes, preset_name)


def plot_shared(df: pd.DataFrame, preset_name: str):
    """Test accuracy per seed and its mean: one shared random layer against independent random blocks."""
    fig, axes = plots.panels(1, width=4.6)
    ax = axes[0]
    colors = plots.sns.color_palette(plots.PALETTE, 2)
    for x, (shared, label) in enumerate(((False, "independent random blocks"), (True, "one shared random layer"))):
        acc = df[df["shared"] == shared]["test_accuracy"]
        ax.bar(x, acc.mean(), width=0.6, color=colors[x], alpha=0.8, label=label)
        ax.scatter([x] * len(acc), acc, color="k", s=14, zorder=3)
    ax.set_xticks([0, 1], ["independent\nrandom blocks", "one shared\nrandom layer"])
    lows = df["test_accuracy"].min()
    ax.set_ylim(max(0.0, lows - 0.05), min(1.0, df["test_accuracy"].max() + 0.03))
    ax.set(ylabel="test accuracy", title=f"Edge-Popup, k = {df['keep_fraction'].iloc[0]:g}, {arch_label(df['arch'].iloc[0])}")
    plots.percent_axis(ax)
    fig.tight_layout()
    plots.caption_preset(fig, preset_name, "dots: seeds")
    return fig


def plot_kept(kept: pd.DataFrame, preset_name: str):
    """Kept fraction per part (x) and block (bars), one panel per method; dashed: the method's overall kept fraction."""
    methods_shown = list(dict.fromkeys(kept["method"]))
    fig, axes = plots.panels(len(methods_shown), width=3.6, sharey=True)
    totals = kept.groupby(["method", "block", "part"], sort=False)[["kept", "weights"]].sum().reset_index()
    totals["fraction"] = totals["kept"] / totals["weights"]
    blocks = sorted(b for b in totals["block"].unique() if b)
    colors = dict(zip(blocks, plots.sns.color_palette("viridis", len(blocks))))
    width = 0.8 / max(1, len(blocks))
    for ax, method in zip(axes, methods_shown):
        sub = totals[totals["method"] == method]
        for i, part in enumerate(PARTS):
            at = sub[sub["part"] == part]
            if part in ("patch embedding", "head"):
                ax.bar(i, at["fraction"].iloc[0], width=0.5, color="0.55")
                continue
            for j, block in enumerate(blocks):
                row = at[at["block"] == block]
                ax.bar(i + (j - (len(blocks) - 1) / 2) * width, row["fraction"].iloc[0], width=width, color=colors[block],
                       label=block if i == 1 else None)
        m = kept[kept["method"] == method]
        ax.axhline(m["kept"].sum() / m["weights"].sum(), color="0.3", linestyle="--", linewidth=1)
        ax.set_xticks(range(len(PARTS)), [p.replace(" ", "\n") for p in PARTS], fontsize=7)
        ax.set(title=method)
        plots.percent_axis(ax)
    return _finish(fig, axes, preset_name, "kept fraction", ncol=len(blocks), note="dashed: all weights")


# ---------------------------------------------------------------------------------------------- claims
def _near_dense_claim(frame) -> verdicts.Finding:
    df = annotate(frame("accuracy vs k"))
    found, shown = [], []
    for family in dict.fromkeys(df["family"]):
        sub = df[df["family"] == family]
        k = best_k(sub)
        ep = sub[(sub["method"] == "edge-popup") & (sub["keep_fraction"] == k)]
        dense = 100 * sub[sub["method"] == "dense"]["test_accuracy"].mean()
        f = verdicts.level(_pct(ep.groupby("seed")["test_accuracy"].mean()), dense, NEAR_POINTS)
        found.append(f)
        shown.append(f"{family} k = {k:g}: {f.ours} vs dense {dense:.1f}%")
    return verdicts.combine(found, "; ".join(shown))


def _inverted_u_claim(frame) -> verdicts.Finding:
    df = annotate(frame("accuracy vs k"))
    found, shown = [], []
    for family in dict.fromkeys(df["family"]):
        ep = df[(df["family"] == family) & (df["method"] == "edge-popup")]
        ks = sorted(ep["keep_fraction"].unique())
        k = best_k(ep)
        if len(ks) < 3:
            continue
        peak = verdicts.by_seed(ep[ep["keep_fraction"] == k])
        for end in (ks[0], ks[-1]):
            a, b, paired = verdicts.paired_by_seed(peak, verdicts.by_seed(ep[ep["keep_fraction"] == end]))
            found.append(verdicts.Finding("", verdicts.compare(f"k = {k:g}", f"k = {end:g}", a, b, paper_first=True, paired=paired).status
                                          if end != k else verdicts.NOT_HERE))
        shown.append(f"{family}: peak at k = {k:g} of {ks[0]:g} to {ks[-1]:g}")
    return verdicts.combine(found, "; ".join(shown) or "fewer than three k")


def _slots_claim(frame) -> verdicts.Finding:
    c = slot_trend(annotate(frame("Slot Machines and LaPerm")))
    if c is None:
        return verdicts.Finding("fewer than two K >= 2", verdicts.NOT_HERE)
    return verdicts.Finding(f"{c.first} - {c.second}: {c.diff:+.1f} points", c.status)


def _shared_claim(frame) -> verdicts.Finding:
    df = annotate(frame("shared random layer"))
    independent = 100 * df[~df["shared"]]["test_accuracy"].mean()
    f = verdicts.level(_pct(df[df["shared"]].groupby("seed")["test_accuracy"].mean()), independent, NEAR_POINTS)
    return verdicts.Finding(f"shared {f.ours} vs independent {independent:.1f}%", f.status, f.why)


NEAR_POINTS = 2.0  # "near": within 2 points (or two seed standard deviations) of the other side

CLAIMS = (
    Claim("Edge-Popup's best subnetwork of a random ViT is near the dense ViT", "conv nets: near dense (Ramanujan 2020); ViTs: untested",
          ("accuracy vs k",), _near_dense_claim),
    Claim("accuracy over k is an inverted U", "conv nets: peak at middle k (Ramanujan 2020, Fig. 3)", ("accuracy vs k",), _inverted_u_claim),
    Claim("Slot Machines: accuracy rises with K", "conv nets: K = 2 to 8 rises (Aladago 2021)", ("Slot Machines and LaPerm",), _slots_claim),
    Claim("one shared random layer as good as independent blocks", "translation: 29.45 BLEU from one shared layer (Shen 2021)",
          ("shared random layer",), _shared_claim),
)

CHAPTER = Chapter(
    "transformers", "Random transformers: supermasks, slot machines and permutations in a ViT", "notebooks/transformers.ipynb",
    tuple(PRESETS),
    (
        Figure("accuracy vs k", lambda name: k_configs(preset(name))),
        Figure("width", lambda name: width_configs(preset(name))),
        Figure("Slot Machines and LaPerm", lambda name: slot_configs(preset(name))),
        Figure("shared random layer", lambda name: shared_configs(preset(name))),
        Figure("masks kept", lambda name: kept_configs(preset(name)), reads_compact=True),
    ),
    order=6,
    claims=CLAIMS,
)


# ---------------------------------------------------------------------------------------------- the page's text
def scale_text(p: Preset) -> str:
    """How this preset trains, for the text: seeds, images and epochs per family."""
    parts = []
    for fam in p.families:
        s = fam.settings
        images = f"{s['subset']:,}" if s.get("subset") else "all"
        parts.append(f"{images} {fam.label} training images, {s['epochs']} epoch{'s' if s['epochs'] != 1 else ''}"
                     + (", flips and crops" if s.get("augment") else ""))
    return f"{len(p.seeds)} seed{'s' if len(p.seeds) != 1 else ''}; " + "; ".join(parts)
