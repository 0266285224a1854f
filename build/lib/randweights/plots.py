"""One figure style for the whole book, and small helpers shared by the chapters."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import seaborn as sns

PALETTE = "colorblind"
DENSE_STYLE = {"color": "0.25", "linestyle": "--", "linewidth": 1.2}


def use_style() -> None:
    """Seaborn's whitegrid with a readable paper context; call once per notebook. In a Jupyter kernel, figures
    are shown inline whatever ``MPLBACKEND`` says (papermill runs inherit the caller's environment)."""
    _inline_in_kernel()
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE, font_scale=0.95)
    matplotlib.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def _inline_in_kernel() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and "IPKernelApp" in shell.config:
        shell.run_line_magic("matplotlib", "inline")


def panels(n: int, width: float = 4.0, height: float = 3.2, sharey: bool = False):
    """A row of ``n`` axes."""
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), sharey=sharey, squeeze=False)
    return fig, list(axes[0])


def mean_sd(df, by: list[str], col: str = "test_accuracy"):
    """Mean, standard deviation (0 for one seed) and count of ``col`` per group: the error bars over seeds."""
    import pandas as pd

    g = df.groupby(by)[col]
    return pd.DataFrame({"mean": g.mean(), "sd": g.std().fillna(0.0), "n": g.size()}).reset_index()


def hline(ax, y: float, label: str, **style) -> None:
    """A horizontal reference line (a baseline that does not depend on the x axis)."""
    ax.axhline(y, label=label, **{**DENSE_STYLE, **style})


def log_ticks(ax, values) -> None:
    """A log x axis labelled exactly at ``values`` (no minor labels)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(list(values)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def percent_axis(ax, axis: str = "y") -> None:
    from matplotlib.ticker import PercentFormatter

    fmt = PercentFormatter(xmax=1.0, decimals=0)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def caption_preset(fig, preset: str, note: str = "") -> None:
    """Say in the figure which preset made it."""
    fig.text(0.995, 0.005, f"preset: {preset}" + (f" · {note}" if note else ""), ha="right", va="bottom", fontsize=7, color="0.4")
