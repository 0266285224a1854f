"""Empirical size of trained networks (Chen, Gamst & Walker 2016, arXiv 1611.09444): presets, the computations
behind the chapter's figures, the figures, and the verdicts of its "What this chapter reproduces" table
(:data:`CLAIMS`). In the comments C1-C7 name the chapter's sections in page order (knots at init, through
training, against splines, where the knots are, noisy targets, 2-D regions, MNIST segments); the page names them
in words.

Only the paper's abstract and introduction are available, so every figure is a RECONSTRUCTION: the settings
are our reading of its claims (the book's reconstruction notes list them), not the paper's, which are unknown.
C1-C6 use small synthetic regression nets (:mod:`randweights.analysis.regression`); C7 uses MNIST MLPs trained through
the run store.

Caching: training runs of C7 go through :func:`randweights.runs.get_or_run`; every other result (a 1-D or 2-D
regression run with its analyses, a spline sweep, segment counts) is stored as atomic JSON (plus an ``.npz`` for
region maps) under ``<results>/empirical-size/<kind>-<hash of its settings>.json``, so re-executing the
notebook is cheap and an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from math import comb

import numpy as np
import pandas as pd
import torch

from .. import data, plots, runs, store, verdicts
from ..analysis import regions, regression, splines
from ..config import RunConfig, make_config
from ..errors import check_choice
from ..plan import Chapter, Claim, Figure

CACHE_VERSION = 1  # bump when an analysis changes, to recompute cached results
DOMAIN = (-1.0, 1.0)

# The paper's claims (arXiv 1611.09444, abstract and introduction; companion papers arXiv 1611.09448 and
# 1811.11152) are statements, not numbers: the paper's figures and tables are not available to us. They are the
# rows of :data:`CLAIMS`: pieces can be as many as O(N^K) for K layers of N nodes (intro, citing prior work); knots
# at random init are about the number of neurons (arXiv 1811.11152); O(NK) pieces after a few steps, and the
# simplicity persists through training (intro); training a network is very different from fitting a linear spline
# (abstract).
FAR_BELOW = 0.1  # "far below the bound": at most this fraction of it
ORDER_OF = 2.0  # "of the order of the number of neurons": at most this many knots per neuron
INIT_TOLERANCE = 15.0  # knots per neuron at init: within this many % of one (the band of the init figure)


@dataclass(frozen=True)
class Preset:
    # C1: random nets, whole-line exact counts
    init_archs: tuple[tuple[int, ...], ...]
    init_seeds: int
    init_range: float
    # C2-C4: 1-D regression of sin(3 pi x) + 0.5 sin(7 pi x)
    hidden: tuple[int, ...]
    train_points: int
    steps: int
    checkpoints: tuple[int, ...]
    lr: float
    lrs: tuple[float, ...]  # C4
    weight_scales: tuple[float, ...]  # C4
    bias_inits: tuple[str, ...] = ("zero", "normal")
    test_points: int = 1001
    spline_max_knots: int = 80  # about train_points / 3: beyond, knot intervals without data make LS ill-posed
    free_knots: tuple[int, ...] = (2, 4, 8, 16, 32)
    # C5: noisy targets
    noisy_points: int = 64
    noise: float = 0.3
    noisy_steps: int = 3000
    # C6: 2-D two spirals
    hidden_2d: tuple[int, ...] = (64, 64)
    spiral_points: int = 200
    steps_2d: int = 2000
    checkpoints_2d: tuple[int, ...] = (0, 100, 300, 1000, 2000)
    resolution: int = 512
    # C7: MNIST MLP through training (run store)
    mnist: dict = field(default_factory=dict)
    mnist_epochs: tuple[int, ...] = (0, 1, 2, 4)
    mnist_methods: tuple[str, ...] = ("dense",)
    segments: int = 100
    seed: int = 0


_MNIST_QUICK = {"dataset": "mnist", "arch": "mlp-256-256", "subset": 10000, "bias": True, "optimizer": "sgd", "lr": 0.05, "schedule": "constant", "weight_decay": 0.0}
PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        init_archs=((8,), (8, 8)), init_seeds=3, init_range=1e4,
        hidden=(16, 16), train_points=64, steps=50, checkpoints=(0, 10, 50), lr=3e-3, lrs=(3e-3,), weight_scales=(1.0,),
        test_points=201, spline_max_knots=40, free_knots=(2, 4), noisy_points=32, noisy_steps=50,
        hidden_2d=(16, 16), spiral_points=50, steps_2d=30, checkpoints_2d=(0, 30), resolution=64,
        mnist={**_MNIST_QUICK, "subset": 500, "width": 0.25}, mnist_epochs=(0, 1), segments=4,
    ),
    "quick": Preset(
        init_archs=((16,), (32,), (64,), (128,), (16, 16), (32, 32), (64, 64), (16,) * 4, (32,) * 3),
        init_seeds=20, init_range=1e4,
        hidden=(64, 64), train_points=256, steps=3000, checkpoints=(0, 1, 10, 100, 300, 1000, 3000), lr=3e-3,
        lrs=(1e-3, 3e-3, 1e-2), weight_scales=(0.5, 1.0, 2.0),
        mnist=_MNIST_QUICK, mnist_epochs=(0, 1, 2, 4), mnist_methods=("dense", "edge-popup"), segments=100,
    ),
    "full": Preset(  # our full settings (20k steps, 100 segments, all of MNIST); the paper's own are unknown
        init_archs=((16,), (32,), (64,), (128,), (256,), (16, 16), (32, 32), (64, 64), (128, 128), (16,) * 4, (32,) * 3, (32,) * 4, (64,) * 4),
        init_seeds=20, init_range=1e4,
        hidden=(64, 64), train_points=256, steps=20000, checkpoints=(0, 1, 10, 100, 1000, 5000, 20000), lr=3e-3,
        lrs=(3e-4, 1e-3, 3e-3, 1e-2), weight_scales=(0.5, 1.0, 2.0), free_knots=(2, 4, 8, 16, 32, 64),
        noisy_steps=20000, steps_2d=10000, checkpoints_2d=(0, 100, 300, 1000, 3000, 10000), resolution=1024,
        mnist={**_MNIST_QUICK, "subset": None}, mnist_epochs=(0, 1, 2, 5, 10, 20), mnist_methods=("dense", "edge-popup"),
        segments=100,
    ),
}


def preset(name: str) -> Preset:
    check_choice("preset", name, PRESETS)
    return PRESETS[name]


# ---------------------------------------------------------------------------------------------- cache
def _key(kind: str, settings: dict) -> str:
    blob = json.dumps({"kind": kind, "version": CACHE_VERSION, **settings}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def cached(kind: str, settings: dict, compute: Callable[[], dict]) -> dict:
    """``compute()`` once per (kind, settings): the result is stored as atomic JSON under the results root
    (``empirical-size/<kind>-<hash>.json``), computed under the store's lock for that file."""
    header = {"kind": kind, "version": CACHE_VERSION, "settings": settings}
    return store.cached_json(f"empirical-size/{_key(kind, settings)}.json", header, compute)


def _cached_arrays(kind: str, settings: dict, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return store.cached_arrays(f"empirical-size/{_key(kind, settings)}.npz", compute)


# ---------------------------------------------------------------------------------------------- C1
def init_counts(preset_name: str) -> pd.DataFrame:
    """C1: exact knots on the whole line (t in +-init_range) of random 1-in/1-out nets, He-normal weights and
    N(0, 2/fan_in) biases, per architecture and seed."""
    p = preset(preset_name)
    rows = []
    for hidden in p.init_archs:
        settings = {"hidden": list(hidden), "seeds": p.init_seeds, "range": p.init_range}

        def compute(hidden=hidden):
            out = []
            for seed in range(p.init_seeds):
                net = regression.regression_mlp((1, *hidden, 1), "normal", seed=seed)
                pcs = regions.line_pieces(net, -p.init_range, p.init_range)
                inside = regions.line_pieces(net, *DOMAIN)
                out.append({"seed": seed, "knots": pcs.knot_count, "activation_pieces": pcs.activation_pieces, "knots_in_domain": inside.knot_count})
            return {"rows": out}

        for r in cached("init-counts", settings, compute)["rows"]:
            rows.append({"arch": "1-" + "-".join(map(str, hidden)) + "-1", "depth": len(hidden), "neurons": sum(hidden), "bound": regions.max_pieces_bound(hidden), **r})
    return pd.DataFrame(rows)


def plot_init_counts(df: pd.DataFrame, preset_name: str):
    fig, axes = plots.panels(2, width=4.6, height=3.6)
    stats = df.groupby(["arch", "depth", "neurons", "bound"])["knots"].agg(["mean", "std"]).reset_index()
    colors = plots.sns.color_palette(plots.PALETTE, stats["depth"].max())
    ax = axes[0]
    for depth, g in stats.groupby("depth"):
        ax.errorbar(g["neurons"], g["mean"], yerr=g["std"], fmt="o", capsize=2, color=colors[depth - 1], label=f"{depth} hidden layer{'s' if depth > 1 else ''}: knots at init")
        ax.scatter(g["neurons"], g["bound"] - 1, marker="x", color=colors[depth - 1], alpha=0.7)
    n = np.array([stats["neurons"].min(), stats["neurons"].max()])
    ax.plot(n, n, color="0.3", linestyle="--", label="knots = #neurons")
    ax.scatter([], [], marker="x", color="0.4", label=r"bound $\prod_l (n_l+1)$ - 1")
    ax.set(xscale="log", yscale="log", xlabel="#neurons (hidden units)", ylabel="knots on the whole line", title="knots at random init")
    ticks = sorted(stats["neurons"].unique())
    ax.set_xticks(ticks, [str(t) for t in ticks], minor=False)
    ax.set_xticks([], minor=True)
    ax = axes[1]
    stats["ratio"] = stats["mean"] / stats["neurons"]
    ax.bar(stats["arch"], stats["ratio"], color=[colors[d - 1] for d in stats["depth"]])
    ax.axhline(1.0, color="0.3", linestyle="--")
    ax.axhspan(0.85, 1.15, color="0.85", zorder=0, label="within 15%")
    ax.set(ylabel="mean knots / #neurons", title="knots per neuron")
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    plots.caption_preset(fig, preset_name, f"{df['seed'].nunique()} seeds, He-normal weights, N(0, 2/fan_in) biases")
    fig.tight_layout()
    plots.legend_outside(fig, "below", fontsize=7, ncol=3)
    return fig


# ---------------------------------------------------------------------------------------------- C2-C4
def _test_grid(p: Preset) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(*DOMAIN, p.test_points)
    return x, regression.target_1d(x)


def _predict(net, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1)).numpy().reshape(-1)


def run_1d(p: Preset, bias_init: str, lr: float, weight_scale: float = 1.0, noise: float = 0.0, points: int | None = None, steps: int | None = None, checkpoints=None) -> dict:
    """Train one 1-D regression net (full-batch Adam, MSE) and record at each checkpoint: train / test MSE
    (test: the noiseless target on a grid), exact activation pieces and knots on the data domain [-1, 1], and
    the knot positions. Cached."""
    points = p.train_points if points is None else points
    steps = p.steps if steps is None else steps
    checkpoints = p.checkpoints if checkpoints is None else checkpoints
    settings = {"hidden": list(p.hidden), "bias_init": bias_init, "lr": lr, "weight_scale": weight_scale, "noise": noise,
                "points": points, "steps": steps, "checkpoints": list(checkpoints), "test_points": p.test_points, "seed": p.seed}

    def compute():
        x, y = regression.dataset_1d(points, noise, seed=p.seed)
        xt, yt = _test_grid(p)
        net = regression.regression_mlp((1, *p.hidden, 1), bias_init, weight_scale, seed=p.seed)

        def analyse(step, model):
            pcs = regions.line_pieces(model, *DOMAIN)
            return {"test_mse": float(np.mean((_predict(model, xt) - yt) ** 2)), "knots": pcs.knot_count,
                    "activation_pieces": pcs.activation_pieces, "knot_positions": pcs.knots.tolist()}

        rows = regression.train_regression(net, x, y, steps, lr, checkpoints, analyse)
        return {"rows": rows, "neurons": sum(p.hidden), "parameters": sum(t.numel() for t in net.parameters()),
                "final_prediction": _predict(net, xt).tolist()}

    return cached("run-1d", settings, compute)


def training_runs(preset_name: str) -> pd.DataFrame:
    """C2/C4: one row per checkpoint of each run: both bias inits at every lr, and the weight scales (random
    biases, base lr)."""
    p = preset(preset_name)
    combos = {(b, lr, 1.0) for b in p.bias_inits for lr in p.lrs} | {("normal", p.lr, s) for s in p.weight_scales}
    rows = []
    for b, lr, s in sorted(combos):
        res = run_1d(p, b, lr, s)
        for r in res["rows"]:
            rows.append({"bias_init": b, "lr": lr, "weight_scale": s, "neurons": res["neurons"], "parameters": res["parameters"], **r})
    return pd.DataFrame(rows)


def plot_pieces_through_training(df: pd.DataFrame, preset_name: str):
    """C2: knots on [-1, 1] and test MSE vs step, for the base lr and weight scale."""
    p = preset(preset_name)
    base = df[(df["lr"] == p.lr) & (df["weight_scale"] == 1.0)]
    fig, axes = plots.panels(2, width=4.4, height=3.4)
    for b, g in base.groupby("bias_init"):
        x = g["step"].clip(lower=0.5)
        axes[0].plot(x, g["knots"], marker="o", label=f"bias init {b}: knots")
        axes[0].plot(x, g["activation_pieces"] - 1, linestyle=":", color=axes[0].lines[-1].get_color(), label=f"bias init {b}: activation boundaries")
        axes[1].plot(x, g["test_mse"], marker="o", label=f"bias init {b}")
    neurons = int(base["neurons"].iloc[0])
    axes[0].axhline(neurons, color="0.3", linestyle="--", label=f"#neurons = {neurons}")
    bound = regions.max_pieces_bound(p.hidden) - 1
    axes[0].set(xscale="log", xlabel="training step (0 plotted at 0.5)", ylabel="knots in [-1, 1]", title=f"knots in [-1, 1] (bound {bound:,.0f})")
    axes[1].set(xscale="log", yscale="log", xlabel="training step", ylabel="test MSE", title="fit")
    plots.caption_preset(fig, preset_name, f"1-{'-'.join(map(str, p.hidden))}-1, Adam lr {p.lr:g}, {p.train_points} points")
    fig.tight_layout()
    plots.legend_outside(fig, "below", fontsize=7, ncol=3)
    return fig


def spline_curves(preset_name: str) -> dict:
    """C3: test MSE of least-squares uniform and free-knot splines vs their number of knots, fit to the same
    training data as the base run; and the spline-equivalent size of the net at each checkpoint. Cached."""
    p = preset(preset_name)
    base = run_1d(p, "zero", p.lr)
    settings = {"points": p.train_points, "max_knots": p.spline_max_knots, "free": list(p.free_knots), "test_points": p.test_points,
                "seed": p.seed, "net": [[r["step"], r["test_mse"]] for r in base["rows"]]}

    def compute():
        x, y = regression.dataset_1d(p.train_points, 0.0, seed=p.seed)
        xt, yt = _test_grid(p)
        ks = sorted(set(np.unique(np.geomspace(1, p.spline_max_knots, 40).astype(int)).tolist()) | {0})
        uniform = [{"knots": k, "test_mse": splines.fit_uniform(x, y, k, DOMAIN).mse(xt, yt)} for k in ks]
        free = [{"knots": k, "test_mse": splines.fit_free(x, y, k, DOMAIN).mse(xt, yt)} for k in p.free_knots]
        equivalent = []
        for r in base["rows"]:
            eq_u = splines.spline_equivalent_size(x, y, xt, yt, r["test_mse"], "uniform", p.spline_max_knots, DOMAIN)
            eq_f = splines.spline_equivalent_size(x, y, xt, yt, r["test_mse"], "free", min(p.spline_max_knots, 2 * max(p.free_knots)), DOMAIN)
            equivalent.append({"step": r["step"], "net_knots": r["knots"], "net_test_mse": r["test_mse"], "uniform_knots": eq_u, "free_knots": eq_f})
        return {"uniform": uniform, "free": free, "equivalent": equivalent}

    return cached("splines", settings, compute)


def equivalent_table(curves: dict, preset_name: str) -> pd.DataFrame:
    df = pd.DataFrame(curves["equivalent"])
    return df.rename(columns={"step": "step", "net_knots": "net knots", "net_test_mse": "net test MSE",
                              "uniform_knots": "uniform spline knots", "free_knots": "free-knot spline knots"})


def plot_splines(curves: dict, preset_name: str):
    fig, axes = plots.panels(1, width=5.6, height=3.8)
    ax = axes[0]
    u, f, e = (pd.DataFrame(curves[k]) for k in ("uniform", "free", "equivalent"))
    ax.plot(u["knots"].clip(lower=0.5), u["test_mse"], label="LS spline, uniform knots")
    ax.plot(f["knots"].clip(lower=0.5), f["test_mse"], marker="s", label="LS spline, free knots")
    ax.scatter(e["net_knots"].clip(lower=0.5), e["net_test_mse"], color="k", zorder=3, label="network at checkpoints")
    for i, (_, r) in enumerate(e.iterrows()):
        if i in (0, len(e) - 1):  # the first and last checkpoint named; the ones between would overlap
            ax.annotate(f"step {int(r['step'])}", (max(r["net_knots"], 0.5), r["net_test_mse"]), fontsize=7,
                        xytext=(6, 4), textcoords="offset points")
        if r["uniform_knots"] is not None and not pd.isna(r["uniform_knots"]):
            ax.plot([max(r["uniform_knots"], 0.5), max(r["net_knots"], 0.5)], [r["net_test_mse"]] * 2, color="0.6", linewidth=0.8, linestyle=":")
    ax.set(xscale="log", yscale="log", xlabel="knots (0 plotted at 0.5)", ylabel="test MSE", title="network vs linear splines")
    plots.caption_preset(fig, preset_name, "dotted: from the spline-equivalent size to the net's knots")
    fig.tight_layout()
    plots.legend_outside(fig, "below", fontsize=7, ncol=3)
    return fig


def plot_knot_locations(df: pd.DataFrame, preset_name: str):
    """C4: where the knots are, at init and at the end, for zero vs random bias init; and counts vs lr / scale."""
    p = preset(preset_name)
    base = df[(df["lr"] == p.lr) & (df["weight_scale"] == 1.0)]
    fig, axes = plots.panels(3, width=3.9, height=3.3)
    bins = np.linspace(*DOMAIN, 41)
    xs = np.linspace(*DOMAIN, 400)
    curv = regression.target_1d_curvature(xs)
    for ax, (b, g) in zip(axes[:2], base.groupby("bias_init")):
        first, last = g.iloc[0], g.iloc[-1]
        ax.hist(first["knot_positions"], bins=bins, alpha=0.55, label=f"init ({first['knots']} knots)")
        ax.hist(last["knot_positions"], bins=bins, alpha=0.55, label=f"step {last['step']} ({last['knots']} knots)")
        top = ax.get_ylim()[1]
        ax.plot(xs, curv / curv.max() * top, color="0.3", linewidth=0.8, label="|f''| (scaled)")
        ax.set(xlabel="x", ylabel="knots per bin", title=f"bias init {b}")
    ax = axes[2]
    last = df.sort_values("step").groupby(["bias_init", "lr", "weight_scale"]).tail(1)
    for b, g in last[last["weight_scale"] == 1.0].groupby("bias_init"):
        ax.plot(g["lr"], g["knots"], marker="o", label=f"lr sweep, bias {b}")
    scales = last[(last["lr"] == p.lr) & (last["bias_init"] == "normal")]
    ax.plot(scales["weight_scale"] * p.lr, scales["knots"], marker="s", linestyle=":", label=f"weight scale (x {p.lr:g}), bias normal, lr {p.lr:g}")
    ax.axhline(sum(p.hidden), color="0.3", linestyle="--", label="#neurons")
    ax.set(xscale="log", xlabel="lr (solid) / weight scale x base lr (dotted)", ylabel=f"knots in [-1, 1] at step {p.steps}", title="counts vs lr and scale")
    plots.caption_preset(fig, preset_name)
    fig.tight_layout()
    plots.legend_outside(fig, "below", fontsize=7, ncol=3)
    return fig


# ---------------------------------------------------------------------------------------------- C5
def noisy_run(preset_name: str) -> dict:
    """C5: fit y = f(x) + N(0, noise^2) with few points; net train / test MSE vs step, and splines. Cached."""
    p = preset(preset_name)
    checkpoints = sorted({0, *np.unique(np.geomspace(1, p.noisy_steps, 12).astype(int)).tolist()})
    net = run_1d(p, "normal", p.lr, 1.0, p.noise, p.noisy_points, p.noisy_steps, checkpoints)
    settings = {"points": p.noisy_points, "noise": p.noise, "test_points": p.test_points, "seed": p.seed}

    def compute():
        x, y = regression.dataset_1d(p.noisy_points, p.noise, seed=p.seed)
        xt, yt = _test_grid(p)
        out = []
        interp = splines.fit_interpolating(x, y)
        out.append({"spline": f"interpolating ({interp.num_knots} knots)", "knots": interp.num_knots, "train_mse": interp.mse(x, y), "test_mse": interp.mse(xt, yt)})
        for k in (4, 8, 16, 32):
            s = splines.fit_uniform(x, y, k, DOMAIN)
            out.append({"spline": f"uniform, {k} knots", "knots": k, "train_mse": s.mse(x, y), "test_mse": s.mse(xt, yt)})
        return {"splines": out, "x": x.tolist(), "y": y.tolist()}

    return {"net": net, **cached("noisy-splines", settings, compute)}


def plot_noisy(res: dict, preset_name: str):
    p = preset(preset_name)
    net = pd.DataFrame(res["net"]["rows"])
    spl = pd.DataFrame(res["splines"])
    fig, axes = plots.panels(3, width=3.9, height=3.3)
    step = net["step"].clip(lower=0.5)
    axes[0].plot(step, net["train_mse"], marker="o", label="net, train")
    axes[0].plot(step, net["test_mse"], marker="o", label="net, test (noiseless f)")
    colors = plots.sns.color_palette("Greys", len(spl) + 2)[2:]
    for c, (_, r) in zip(colors, spl.iterrows()):
        axes[0].axhline(r["test_mse"], color=c, linestyle="--", linewidth=1, label=f"{r['spline']}: test")
    axes[0].axhline(p.noise**2, color="tab:red", linestyle=":", linewidth=1, label="noise variance")
    axes[0].set(xscale="log", yscale="log", xlabel="step", ylabel="MSE", title="noisy targets")
    axes[1].plot(step, net["knots"], marker="o", color="k")
    axes[1].axhline(res["net"]["neurons"], color="0.3", linestyle="--", label="#neurons")
    axes[1].axhline(p.noisy_points - 2, color="tab:red", linestyle=":", label="knots to interpolate")
    axes[1].set(xscale="log", xlabel="step", ylabel="knots in [-1, 1]", title="net knots")
    xs = np.linspace(*DOMAIN, p.test_points)
    x, y = np.array(res["x"]), np.array(res["y"])
    axes[2].scatter(x, y, s=8, color="0.3", label="noisy data")
    axes[2].plot(xs, regression.target_1d(xs), color="0.6", linewidth=1, label="f")
    axes[2].plot(xs, res["net"]["final_prediction"], label=f"net, step {int(net['step'].iloc[-1])}")
    axes[2].plot(x, y, linewidth=0.6, alpha=0.7, label="interpolating spline")
    axes[2].set(xlabel="x", ylabel="y", title="fits")
    plots.caption_preset(fig, preset_name, f"{p.noisy_points} points, noise sd {p.noise}")
    fig.tight_layout()
    plots.legend_outside(fig, "below", fontsize=7, ncol=3)
    return fig


# ---------------------------------------------------------------------------------------------- C6
def _spirals(p: Preset):
    return regression.two_spirals(p.spiral_points, seed=p.seed)


EXTENT_2D = (-1.2, 1.2, -1.2, 1.2)


def regions_2d(preset_name: str) -> dict:
    """C6: a 2-in net trained on two spirals (MSE to +-1); region count on a grid over the window at every
    checkpoint, the first layer's exact arrangement count, and the maps at init and at the end. Cached."""
    p = preset(preset_name)
    settings = {"hidden": list(p.hidden_2d), "points": p.spiral_points, "steps": p.steps_2d, "checkpoints": list(p.checkpoints_2d),
                "resolution": p.resolution, "lr": p.lr, "extent": list(EXTENT_2D), "seed": p.seed}
    plane = ([0.0, 0.0], [1.0, 0.0], [0.0, 1.0])
    maps: dict[str, np.ndarray] = {}

    def compute():
        x, y = _spirals(p)
        net = regression.regression_mlp((2, *p.hidden_2d, 1), "normal", seed=p.seed)
        last = max(c for c in p.checkpoints_2d if c <= p.steps_2d)

        def analyse(step, model):
            rm = regions.region_map(model, *plane, EXTENT_2D, p.resolution)
            if step in (0, last):
                maps[f"labels_{step}"] = rm.labels.astype(np.int32)
                s = np.linspace(EXTENT_2D[0], EXTENT_2D[1], p.resolution)
                grid = np.stack(np.meshgrid(s, s), -1).reshape(-1, 2)
                with torch.no_grad():
                    maps[f"output_{step}"] = model(torch.as_tensor(grid, dtype=torch.float32)).numpy().reshape(p.resolution, p.resolution)
            with torch.no_grad():
                acc = float(((model(torch.as_tensor(x, dtype=torch.float32)).reshape(-1) > 0).numpy() == (y > 0)).mean())
            return {"regions": rm.count, "first_layer_regions": regions.first_layer_regions(model, *plane, EXTENT_2D), "train_accuracy": acc}

        rows = regression.train_regression(net, x, y, p.steps_2d, p.lr, p.checkpoints_2d, analyse)
        return {"rows": rows, "neurons": sum(p.hidden_2d), "last": last}

    result = cached("regions-2d", settings, compute)
    arrays = _cached_arrays("regions-2d-maps", settings, lambda: maps if maps else _recompute_maps(preset_name))
    return {**result, "maps": arrays}


def _recompute_maps(preset_name: str) -> dict:
    """The maps are written together with the JSON; this path only runs if the ``.npz`` was deleted."""
    p = preset(preset_name)
    x, y = _spirals(p)
    net = regression.regression_mlp((2, *p.hidden_2d, 1), "normal", seed=p.seed)
    out: dict[str, np.ndarray] = {}
    last = max(c for c in p.checkpoints_2d if c <= p.steps_2d)
    s = np.linspace(EXTENT_2D[0], EXTENT_2D[1], p.resolution)
    grid = torch.as_tensor(np.stack(np.meshgrid(s, s), -1).reshape(-1, 2), dtype=torch.float32)

    def grab(step, model):
        if step in (0, last):
            out[f"labels_{step}"] = regions.region_map(model, [0.0, 0.0], [1.0, 0.0], [0.0, 1.0], EXTENT_2D, p.resolution).labels.astype(np.int32)
            with torch.no_grad():
                out[f"output_{step}"] = model(grid).numpy().reshape(p.resolution, p.resolution)
        return {}

    regression.train_regression(net, x, y, p.steps_2d, p.lr, (0, last), grab)
    return out


def _colour(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    palette = rng.uniform(0.25, 1.0, size=(labels.max() + 1, 3))
    return palette[labels]


def plot_regions_2d(res: dict, preset_name: str):
    p = preset(preset_name)
    x, y = _spirals(p)
    fig, axes = plots.panels(3, width=3.9, height=3.6)
    for ax, step in zip(axes[:2], (0, res["last"])):
        labels = res["maps"][f"labels_{step}"]
        ax.imshow(_colour(labels), origin="lower", extent=EXTENT_2D, interpolation="nearest")
        ax.contour(np.linspace(EXTENT_2D[0], EXTENT_2D[1], p.resolution), np.linspace(EXTENT_2D[2], EXTENT_2D[3], p.resolution),
                   res["maps"][f"output_{step}"], levels=[0.0], colors="k", linewidths=1.0)
        ax.scatter(x[:, 0], x[:, 1], c=np.where(y > 0, "tab:red", "tab:blue"), s=2)
        ax.set(title=f"{'init' if step == 0 else f'step {step}'}: {labels.max() + 1:,} regions", xticks=[], yticks=[])
        ax.title.set_fontsize(9)
        ax.grid(False)
    df = pd.DataFrame(res["rows"])
    step = df["step"].clip(lower=0.5)
    axes[2].plot(step, df["regions"], marker="o", label="activation regions (grid count)")
    axes[2].plot(step, df["first_layer_regions"], marker="s", linestyle=":", label="first layer alone (exact 1+L+I)")
    n1 = p.hidden_2d[0]
    axes[2].axhline(1 + n1 + n1 * (n1 - 1) // 2, color="0.3", linestyle="--", label=f"max for {n1} lines: 1+n+C(n,2)")
    axes[2].set(xscale="log", yscale="log", xlabel="step (0 at 0.5)", ylabel="regions in the window", title="region count vs step")
    axes[2].title.set_fontsize(9)
    plots.caption_preset(fig, preset_name, f"2-{'-'.join(map(str, p.hidden_2d))}-1, {p.resolution}x{p.resolution} grid; black: f = 0")
    fig.tight_layout()
    plots.legend_outside(fig, "below", fontsize=7, ncol=3)
    return fig


# ---------------------------------------------------------------------------------------------- C7
def mnist_configs(p: Preset) -> list[RunConfig]:
    out = []
    for method in p.mnist_methods:
        extra = {"keep_fraction": 0.5, "bias": False, "lr": 0.1, "weight_decay": 1e-4} if method == "edge-popup" else {}
        for epochs in p.mnist_epochs:
            out.append(make_config(method, **{**p.mnist, **extra, "epochs": epochs, "seed": p.seed}))
    return out


# ---------------------------------------------------------------------------------------------- claims
# Each finding takes the numbers its figure shows; the claim tests (given ``frame("C7")``, the MNIST runs of the
# page's preset) compute them for the preset those runs belong to.
def init_finding(init: pd.DataFrame, tolerance: float = INIT_TOLERANCE) -> verdicts.Finding:
    """Knots at random init about the number of neurons: per architecture, knots per neuron over the seeds (in %
    of one) against 100% within ``tolerance`` points (:func:`randweights.verdicts.level`), combined."""
    found = [verdicts.level(100 * g["knots"] / g["neurons"], 100.0, tolerance) for _, g in init.groupby("arch")]
    ratio = init.groupby("arch").apply(lambda g: g["knots"].mean() / g["neurons"].iloc[0], include_groups=False)
    return verdicts.combine(found, f"{ratio.min():.2f} to {ratio.max():.2f} knots per neuron")  # init_text reads this


def bound_finding(fractions: list[float], seeds: int, far: float = FAR_BELOW) -> verdicts.Finding:
    """Trained nets far below the O(N^K) bound: ``fractions`` (pieces over the bound for their net, one per trained
    net) all at most ``far``; reproduced with several seeds, partly with one (``seeds``)."""
    worst = max(fractions)
    ours = f"at most {100 * worst:.2g}% of it"
    why = f"largest fraction {100 * worst:.2g}% (far below: at most {100 * far:g}%), {seeds} seed{'s' if seeds != 1 else ''}"
    if worst > far:
        return verdicts.Finding(ours, verdicts.NOT_HERE, why)
    return verdicts.Finding(ours, verdicts.REPRODUCED if seeds > 1 else verdicts.PARTLY, why)


def order_finding(per_neuron: list[float], seeds: int, order: float = ORDER_OF) -> verdicts.Finding:
    """Knots of the order of the number of neurons through training: ``per_neuron`` (knots per neuron at every
    checkpoint after step 0 of every run) all at most ``order``; reproduced with several seeds, partly with one."""
    ours = f"{min(per_neuron):.2f} to {max(per_neuron):.2f} knots per neuron"
    why = f"at most {order:g} knots per neuron counts as the order of the neurons, {seeds} seed{'s' if seeds != 1 else ''}"
    if max(per_neuron) > order:
        return verdicts.Finding(ours, verdicts.NOT_HERE, why)
    return verdicts.Finding(ours, verdicts.REPRODUCED if seeds > 1 else verdicts.PARTLY, why)


def spline_finding(net_knots: list[int], spline_knots: list[int | None]) -> verdicts.Finding:
    """Training unlike fitting a spline (our reading: the net spends more knots than a least-squares uniform spline
    of the same test error), per seed at the last checkpoint; a spline that cannot reach the net's error within its
    knot range (None) counts against."""
    more = [s is not None and n > s for n, s in zip(net_knots, spline_knots)]
    shown = ", ".join("beyond range" if s is None else str(s) for s in spline_knots)
    ours = f"net {', '.join(map(str, net_knots))} vs spline {shown} knots"
    why = f"the net spends more knots than the spline in {sum(more)} of {len(more)} runs"
    if not all(more):
        return verdicts.Finding(ours, verdicts.PARTLY if any(more) else verdicts.NOT_HERE, why)
    return verdicts.Finding(ours, verdicts.REPRODUCED if len(more) > 1 else verdicts.PARTLY, why)


def _preset_of(frame: pd.DataFrame) -> str:
    """The preset whose MNIST runs ``frame`` holds."""
    ids = set(frame["run_id"])
    for name in PRESETS:
        if ids <= {cfg.run_id for cfg in mnist_configs(preset(name))}:
            return name
    raise ValueError(f"runs {sorted(ids)}: not the MNIST runs of any preset of the empirical-size chapter")


def _claim_init(frame) -> verdicts.Finding:
    return init_finding(init_counts(_preset_of(frame("C7"))))


def _trained_1d(preset_name: str) -> pd.DataFrame:
    """The base training runs (both bias inits) after step 0, with their bound on pieces along the line."""
    p = preset(preset_name)
    base = _base_training(training_runs(preset_name), preset_name)
    return base[base["step"] > 0].assign(bound=regions.max_pieces_bound(p.hidden))


def _claim_bound(frame) -> verdicts.Finding:
    name = _preset_of(frame("C7"))
    base = _trained_1d(name)
    fractions = list(base["knots"] / (base["bound"] - 1))
    seg = segment_counts(name)
    layers = len(preset(name).mnist["arch"].split("-")) - 1  # mlp-256-256: two hidden layers of equal width
    mnist_bound = regions.max_pieces_bound([int(seg["neurons"].iloc[0]) // layers] * layers)
    fractions += list(seg.groupby("run_id")["activation_pieces"].mean() / mnist_bound)
    return bound_finding(fractions, seeds=1)


def _claim_order(frame) -> verdicts.Finding:
    base = _trained_1d(_preset_of(frame("C7")))
    return order_finding(list(base["knots"] / base["neurons"]), seeds=1)


def _claim_spline(frame) -> verdicts.Finding:
    last = spline_curves(_preset_of(frame("C7")))["equivalent"][-1]
    return spline_finding([int(last["net_knots"])], [last["uniform_knots"]])


CLAIMS = (
    Claim("Knots at init: about one per neuron", "yes (2018 paper)", ("C7",), _claim_init),
    Claim("Trained nets far below the O(N^K) bound", "far simpler", ("C7",), _claim_bound),
    Claim("Knots stay O(#neurons) in training", "O(NK), persisting", ("C7",), _claim_order),
    Claim("Training unlike fitting a linear spline", "very different", ("C7",), _claim_spline),
)


# The chapter's run-store runs (C7, models kept); its other results are analyses cached on their own. `randweights
# plan`, `sweep` and `bundle` read the same list.
CHAPTER = Chapter(
    "empirical_size", "The empirical size of trained networks", "notebooks/empirical_size.ipynb", tuple(PRESETS),
    (Figure("C7", lambda name: mnist_configs(preset(name)), needs_model=True),),
    order=5,
    claims=CLAIMS,
)


def _segment_ends(cfg: RunConfig, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    test = data.load(cfg.data).test
    rng = np.random.default_rng(seed)
    i, j = rng.choice(len(test), size=(2, count), replace=True)
    same = i == j
    j[same] = (j[same] + 1) % len(test)
    return test.x[i].reshape(count, -1), test.x[j].reshape(count, -1)


def segment_counts(preset_name: str, device=None) -> pd.DataFrame:
    """C7: exact activation and function pieces along segments between random pairs of MNIST test images, for
    each stored run (method x epochs). Runs come from the run store; counts are cached per run."""
    p = preset(preset_name)
    configs = {cfg.run_id: cfg for cfg in mnist_configs(p)}
    rows = []
    for record in CHAPTER.records("C7", preset_name, device):
        cfg = configs[record["run_id"]]

        def compute(cfg=cfg):
            model = runs.load_network(cfg)
            a, b = _segment_ends(cfg, p.segments, p.seed)
            pieces = []
            for lo in range(0, p.segments, 8):
                pieces += regions.segments_pieces(model, a[lo:lo + 8], b[lo:lo + 8])
            return {"activation_pieces": [q.activation_pieces for q in pieces], "function_pieces": [q.function_pieces for q in pieces],
                    "neurons": regions.hidden_units(model)}

        res = cached("segments", {"run_id": cfg.run_id, "segments": p.segments, "seed": p.seed}, compute)
        for k, (act, fun) in enumerate(zip(res["activation_pieces"], res["function_pieces"])):
            rows.append({"method": cfg.method.name, "epochs": cfg.train.epochs, "segment": k, "activation_pieces": act, "function_pieces": fun,
                         "neurons": res["neurons"], "test_accuracy": record["test_accuracy"], "run_id": cfg.run_id})
    return pd.DataFrame(rows)


def plane_regions_bound(hidden: tuple[int, ...], inputs: int = 2) -> int:
    """The most activation regions a ReLU net with ``inputs`` inputs and hidden widths ``hidden`` can cut its input
    space into: the product over layers of sum_{j <= d} C(n_l, j), d = min(inputs, the widths before l) (each layer's
    units cut every region of the layers before into at most that many pieces: the arrangement bound of n_l
    hyperplanes in d dimensions)."""
    total, d = 1, inputs
    for n in hidden:
        total *= sum(comb(n, j) for j in range(min(d, n) + 1))
        d = min(d, n)
    return total


def regions_summary(res: dict, preset_name: str) -> str:
    """C6 in words: the regions the grid meets at init and at the last step, against the bound for the whole net
    (:func:`plane_regions_bound`), and the first layer's exact count against its own maximum."""
    p = preset(preset_name)
    df = pd.DataFrame(res["rows"])
    first, last = df.iloc[0], df.iloc[-1]
    n1 = p.hidden_2d[0]
    layer_max = plane_regions_bound(p.hidden_2d[:1])
    bound = plane_regions_bound(p.hidden_2d)
    change = "more" if last["regions"] > first["regions"] else "fewer" if last["regions"] < first["regions"] else "as many"
    arch = "2-" + "-".join(map(str, p.hidden_2d)) + "-1"
    return (f"The grid meets {int(first['regions']):,} activation regions at init and {int(last['regions']):,} at step "
            f"{int(last['step']):,} ({change} after training; a grid count is a lower bound: regions smaller than a "
            f"pixel are missed). The bound for the whole {arch} net is {bound:,} regions of the plane (the product "
            f"over its hidden layers of 1 + n + C(n, 2), the most pieces n lines can cut a plane into), so the trained "
            f"net shows {100 * last['regions'] / bound:.2g}% of what its size allows, inside this window. The first "
            f"layer alone cuts the window into exactly {int(last['first_layer_regions']):,} regions at step "
            f"{int(last['step']):,}, of at most {layer_max:,} for its {n1} lines; the second layer multiplies them "
            f"by {last['regions'] / last['first_layer_regions']:.1f}.")


def segments_summary(df: pd.DataFrame) -> str:
    """C7 in one sentence: pieces per segment of the first and the last stored run of each method, against the
    number of neurons."""
    parts = []
    for method, g in df.groupby("method", sort=False):
        means = g.groupby("epochs")["activation_pieces"].mean()
        parts.append(f"{plots.readable(method)}: {means.iloc[0]:.0f} pieces per segment after {means.index[0]} epochs"
                     + (f", {means.iloc[-1]:.0f} after {means.index[-1]}" if len(means) > 1 else ""))
    return ("; ".join(parts) + f" (the nets have {int(df['neurons'].iloc[0])} hidden neurons): "
            + ("far fewer pieces than neurons along a segment." if df["activation_pieces"].mean() < df["neurons"].iloc[0]
               else "as many pieces as neurons or more along a segment."))


def plot_segments(df: pd.DataFrame, preset_name: str):
    fig, axes = plots.panels(2, width=4.6, height=3.4)
    long = df.melt(id_vars=["method", "epochs"], value_vars=["activation_pieces", "function_pieces"], var_name="count", value_name="pieces")
    long["series"] = long["method"] + ", " + long["count"].str.replace("_", " ")
    plots.sns.pointplot(data=long, x="epochs", y="pieces", hue="series", errorbar="sd", dodge=0.3, ax=axes[0], markersize=4)
    axes[0].axhline(df["neurons"].iloc[0], color="0.3", linestyle="--", label="#neurons")
    axes[0].set(ylabel="pieces per segment (mean, sd)", xlabel="epochs trained", title="pieces between MNIST test images")
    acc = df.groupby(["method", "epochs"])["test_accuracy"].first().reset_index()
    for m, g in acc.groupby("method"):
        axes[1].plot(g["epochs"], g["test_accuracy"], marker="o", label=m)
    axes[1].set(xlabel="epochs trained", ylabel="test accuracy", title="accuracy of the same runs")
    plots.percent_axis(axes[1])
    plots.caption_preset(fig, preset_name, f"{df['segment'].nunique()} segments, exact counts")
    fig.tight_layout()
    plots.legend_outside(fig, "below", fontsize=7, ncol=3)
    return fig


# ---------------------------------------------------------------------------------------------- summary
def _setting_text(value) -> str:
    """A preset value, short: layer-size tuples as 16-16, tuples as comma lists."""
    if isinstance(value, tuple) and value and all(isinstance(v, tuple) for v in value):
        return ", ".join("-".join(map(str, v)) for v in value)
    if isinstance(value, tuple):
        return ", ".join(map(str, value))
    return str(value)


def settings_frame(preset_name: str) -> pd.DataFrame:
    """The preset's settings, one row each (the MNIST run's settings one row per key), values kept short."""
    rows = []
    for name, value in asdict(preset(preset_name)).items():
        if isinstance(value, dict):
            rows += [{"setting": f"{name}: {k}", "value": _setting_text(v)} for k, v in value.items()]
        else:
            rows.append({"setting": name, "value": _setting_text(value)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- numbers for the text
def init_text(init: pd.DataFrame) -> str:
    """C1 in words: knots per neuron against one (:func:`init_finding`), and against the bound."""
    found = init_finding(init)
    verdict = {verdicts.REPRODUCED: "as the companion paper predicts (one expected zero crossing per neuron)",
               verdicts.PARTLY: "as the companion paper predicts for only some of them",
               verdicts.NOT_HERE: "unlike the companion paper's one knot per neuron"}[found.status]
    means = init.groupby("arch")[["knots", "bound", "depth"]].mean()
    deep = means[means["depth"] > 1]
    within = sum(f.status == verdicts.REPRODUCED for f in
                 (verdicts.level(100 * g["knots"] / g["neurons"], 100.0, INIT_TOLERANCE) for _, g in init.groupby("arch")))
    text = (f"Mean knots per neuron range from {found.ours.split(' knots')[0]} across architectures, {verdict}: "
            f"{within} of {len(means)} architectures are within {INIT_TOLERANCE:g}% of one knot per neuron.")
    if len(deep):
        text += (f" For the nets with more than one hidden layer the counts are at most "
                 f"{100 * (deep['knots'] / (deep['bound'] - 1)).max():.2g}% of the bound (crosses), which grows "
                 "exponentially with depth (a one-layer net reaches its bound, n knots for n neurons).")
    return text


def training_text(training: pd.DataFrame, preset_name: str) -> str:
    """C2 in words: knots at the last checkpoint per bias init against the neurons and the bound."""
    n = training_numbers(training, preset_name)
    bound = regions.max_pieces_bound(preset(preset_name).hidden) - 1
    base = _trained_1d(preset_name)
    found = order_finding(list(base["knots"] / base["neurons"]), seeds=1)
    return (f"At the last checkpoint the nets have {n['c2_knots_zero']} (zero bias init) and {n['c2_knots_normal']} "
            f"(random bias init) knots in $[-1, 1]$, for {n['c2_neurons']} neurons and {n['c2_params']:,} parameters; "
            f"after step 0 the count stays within {found.ours}, "
            + ("of the order of the number of neurons, as claimed" if found.status != verdicts.NOT_HERE
               else f"more than {ORDER_OF:g} per neuron, unlike the claim")
            + f", and at most {100 * base['knots'].max() / bound:.2g}% of the bound ({bound:,.0f} knots).")


def init_table(init: pd.DataFrame) -> pd.DataFrame:
    """C1 per architecture: mean knots (on the line and in the domain) and activation pieces over draws."""
    return init.groupby(["arch", "neurons", "bound"])[["knots", "knots_in_domain", "activation_pieces"]].mean()


def _base_training(training: pd.DataFrame, preset_name: str) -> pd.DataFrame:
    """C2's runs: the preset's learning rate at weight scale 1."""
    return training[(training["lr"] == preset(preset_name).lr) & (training["weight_scale"] == 1.0)]


def training_numbers(training: pd.DataFrame, preset_name: str) -> dict[str, int]:
    """C2's numbers for the text: knots at the last checkpoint per bias init, neurons and parameters."""
    last = _base_training(training, preset_name).groupby("bias_init").tail(1).set_index("bias_init")
    return {"c2_knots_zero": int(last.loc["zero", "knots"]), "c2_knots_normal": int(last.loc["normal", "knots"]),
            "c2_neurons": int(last["neurons"].max()), "c2_params": int(last["parameters"].max())}


def training_table(training: pd.DataFrame, preset_name: str) -> pd.DataFrame:
    cols = ["bias_init", "step", "train_mse", "test_mse", "knots", "activation_pieces"]
    return _base_training(training, preset_name)[cols].reset_index(drop=True)


def spline_text(curves: dict) -> str:
    """C3 in words: the net's knots at its last checkpoint against the uniform and free-knot splines of the same test
    error, and what that says about the abstract's "very different from fitting a linear spline"."""
    last = curves["equivalent"][-1]
    found = spline_finding([int(last["net_knots"])], [last["uniform_knots"]])
    uniform = ("no uniform spline up to the largest we fit reaches its error" if last["uniform_knots"] is None
               else f"a uniform spline needs {last['uniform_knots']}")
    free = "" if last["free_knots"] is None else f" and a free-knot spline {last['free_knots']}"
    text = (f"At step {last['step']:,} the network has {last['net_knots']} knots; {uniform}{free} for the same test "
            "error (table above; our free-knot search is a local optimiser, so its counts are upper bounds).")
    if found.status != verdicts.NOT_HERE:
        return text + (" The net spends more knots than the spline, one reading of the abstract's \"very different "
                       "from fitting a linear spline\": its knots are not where the target needs them.")
    return text + " On this reading the net is not unlike a spline here: it spends no more knots than one."


def knot_spread_text(training: pd.DataFrame, preset_name: str, inner: float = 0.5) -> str:
    """C4 in words: the share of knots in the outer part of the domain (``|x| > inner``) at init and at the last
    checkpoint, per bias init, against a uniform spread."""
    base = _base_training(training, preset_name)
    parts = []
    for b, g in base.groupby("bias_init"):
        g = g.sort_values("step")
        shares = []
        for positions in (g["knot_positions"].iloc[0], g["knot_positions"].iloc[-1]):
            x = np.abs(np.asarray(positions, dtype=float))
            shares.append(f"{100 * (x > inner).mean():.0f}%" if len(x) else "none (no knot)")
        parts.append(f"bias init {b}: {shares[0]} at init, {shares[1]} at step {int(g['step'].iloc[-1]):,}")
    return (f"Share of the knots in the outer part of the domain, $|x| > {inner:g}$ (a uniform spread puts "
            f"{100 * (1 - inner):.0f}% there, and the target's curvature peaks reach $x = \\pm 0.9$): " + "; ".join(parts) + ".")


def noisy_table(noisy: dict) -> pd.DataFrame:
    """C5's splines (the interpolating one first)."""
    return pd.DataFrame(noisy["splines"])


def noisy_numbers(noisy: dict) -> dict[str, object]:
    """C5's numbers for the text: the net's final and best test error and final knots, against the interpolating
    spline's (the first of ``noisy["splines"]``)."""
    net = pd.DataFrame(noisy["net"]["rows"])
    interp = noisy["splines"][0]
    final = net["test_mse"].iloc[-1]  # the last checkpoint
    ratio = final / interp["test_mse"]
    return {"c5_net_test": f"{final:.3f}", "c5_net_best": f"{net['test_mse'].min():.3f}", "c5_interp_test": f"{interp['test_mse']:.3f}",
            "c5_net_knots": int(net["knots"].iloc[-1]), "c5_interp_knots": int(interp["knots"]),
            "c5_verdict": f"the net's final test error is {ratio:.2f} times the interpolating spline's" + (" (better)" if ratio < 1 else " (not better)")}


def segments_table(segments: pd.DataFrame) -> pd.DataFrame:
    """C7 per run (method, epochs): mean pieces per segment, neurons and test accuracy."""
    return segments.groupby(["method", "epochs"])[["activation_pieces", "function_pieces", "neurons", "test_accuracy"]].mean()


def regions_table(res: dict) -> pd.DataFrame:
    """C6 per checkpoint: regions the grid meets, and the first layer's count and maximum."""
    return pd.DataFrame(res["rows"])
