"""One figure style for the whole book, and small helpers shared by the chapters."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import seaborn as sns

from . import env, runs, store

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
    """A row of ``n`` axes, at most the text column's 7 inches wide in all."""
    width = min(width, MAX_WIDTH_IN / n)
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

    fmt = PercentFormatter(xmax=1.0, decimals=None)  # as many decimals as the range needs
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def caption_preset(fig, preset: str, note: str = "") -> None:
    """Say in the figure which preset made it."""
    fig.text(0.995, 0.005, f"preset: {preset}" + (f" · {note}" if note else ""), ha="right", va="bottom", fontsize=7, color="0.4")


# ---------------------------------------------------------------------------------------------- book figures
MAX_WIDTH_IN = 7.0  # the book's text column


def figures_dir(chapter: str) -> Path:
    """Where a chapter's figure files go: ``$RANDWEIGHTS_FIGURES/<chapter>``, else ``book/figures/<chapter>`` of the
    checkout holding the working directory (the chapters run there), else ``figures/<chapter>``."""
    if env.figures_dir() is not None:
        return env.figures_dir() / chapter
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "book" / "_config.yml").is_file():
            return folder / "book" / "figures" / chapter
    return here / "figures" / chapter


def fit_width(fig, max_width: float = MAX_WIDTH_IN) -> None:
    """Shrink ``fig`` (keeping its aspect) to at most ``max_width`` inches: text keeps its point size, so a wide
    figure stays readable in the text column instead of being scaled down as an image."""
    width, height = fig.get_size_inches()
    if width > max_width:
        fig.set_size_inches(max_width, height * max_width / width)


def figure(fig, name: str, chapter: str, data=None, preset: str | None = None, behind=None) -> None:
    """Finish a book figure: fit it to the text column, save it as ``<name>.png`` and ``<name>.svg`` under
    :func:`figures_dir`, show it as the cell's output (in Jupyter, Colab and the book alike: the notebook cell's
    ``mystnb.figure`` metadata gives the book its number, caption and label) and close it, so the cell shows it
    once. Returns None: a notebook cell ending with it displays nothing else. The same figure drawn again from the
    same runs gives the same bytes (PNG and SVG).

    ``data``: what the figure plots (a DataFrame, a run record, a list or dict of records); its rows are written
    beside the image as ``<name>.csv``. ``behind``: the run records (or a frame with ``run_id``) behind the figure
    when ``data`` does not carry ``run_id`` itself. With ``preset``, the figure's :class:`Provenance` (preset,
    runs and seeds, the code that trained them, the command that draws it again, the CSV) travels with the image
    as output metadata (``randweights.provenance``), which the book puts under the caption.

    While ``$RANDWEIGHTS_ONLY_FIGURE`` names another figure (``randweights reproduce --figure``), nothing is
    written or shown: the figure is only closed."""
    only = env.only_figure()
    if only is not None and only != name:
        plt.close(fig)
        return
    fit_width(fig)
    folder = figures_dir(chapter)
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{name}.png")
    with matplotlib.rc_context({"svg.hashsalt": name}):  # the same figure, the same bytes: no date, fixed ids
        fig.savefig(folder / f"{name}.svg", metadata={"Date": None})
    metadata = None
    if data is not None or preset is not None:
        rows = plot_rows(data)
        rows.to_csv(folder / f"{name}.csv", index=False)
        if preset is not None:
            rows_behind = plot_rows(behind) if behind is not None else rows
            metadata = {PROVENANCE_KEY: {"provenance": provenance(rows_behind, name, chapter, preset).markdown()}}
    show(fig, metadata)
    plt.close(fig)


PROVENANCE_KEY = "randweights"  # the figure output's metadata key holding its provenance line


def plot_rows(data):
    """What a figure plots as a DataFrame, one row per plotted item: a DataFrame as it is; a run record as one row;
    a list of records, one row each; a dict of records (``{"IMP": record, ...}``), one row each with its key in a
    ``key`` column; anything else pandas can tabulate. The record's ``config`` is left out (its settings are the
    record's flat columns); columns holding lists (a run's ``history``) are written as JSON."""
    import json

    import pandas as pd

    if data is None:
        frame = pd.DataFrame()
    elif isinstance(data, pd.DataFrame):
        frame = data.copy()
    elif isinstance(data, dict) and "run_id" in data:
        frame = _records_frame([data])
    elif isinstance(data, dict) and data and all(isinstance(v, dict) and "run_id" in v for v in data.values()):
        frame = _records_frame(list(data.values()))
        frame.insert(0, "key", list(data.keys()))
    elif isinstance(data, (list, tuple)) and data and all(isinstance(v, dict) for v in data):
        frame = _records_frame(list(data))
    elif isinstance(data, dict):
        parts = _tables(data, "")
        frame = pd.concat([t.assign(part=name)[["part", *t.columns]] for name, t in parts], ignore_index=True) if parts else pd.DataFrame()
    else:
        frame = pd.DataFrame(data)
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, (list, tuple, dict))).any():
            frame[column] = frame[column].map(lambda v: json.dumps(v, default=str) if isinstance(v, (list, tuple, dict)) else v)
    return frame


def _tables(data: dict, prefix: str) -> list:
    """The tables inside a computed result (a dict): each list of rows (dicts), each nested dict's tables, and its
    lists of numbers side by side (one table per length), as ``(part, DataFrame)`` named by their keys (``net.rows``).
    Arrays (images, maps) and single values are left out."""
    import pandas as pd

    out, columns = [], {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out += _tables(value, name)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
            out.append((name, pd.DataFrame(list(value))))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            columns.setdefault(len(value), {})[str(key)] = list(value)
    for same_length in columns.values():
        out.append((prefix or "values", pd.DataFrame(same_length)))
    return out


def _records_frame(records: list[dict]):
    import pandas as pd

    return pd.DataFrame([{k: v for k, v in r.items() if k != "config"} for r in records])


@dataclass(frozen=True)
class Provenance:
    """Where a book figure comes from: its ``preset``, the distinct runs behind it (``run_count``) and their
    ``seeds``, the code that trained them (``code``: :func:`randweights.store.code_label` of each, distinct), the
    ``command`` that draws it again, and ``csv``: the link to its rows, relative to the source notebook (the book
    rewrites it for its page)."""

    figure: str
    chapter: str
    preset: str
    run_count: int
    seeds: tuple
    code: tuple[str, ...]
    command: str
    csv: str

    def markdown(self) -> str:
        """One Markdown line: ``Preset `smoke` · 7 runs, seeds 0, 1 · code: randweights 0.2.0 @ 1a2b3c4d5e ·
        redraw: `randweights reproduce ...` · [rows plotted (CSV)](...)``."""
        if self.run_count:
            seeds = f", seed {self.seeds[0]}" if len(self.seeds) == 1 else (f", seeds {', '.join(map(str, self.seeds))}" if self.seeds else "")
            code = "; ".join(c if c == "not recorded" else f"randweights {c}" for c in self.code)
            behind = f"{self.run_count} run{'s' if self.run_count != 1 else ''}{seeds} · code: {code}"
        else:
            behind = "no stored run (computed on this page)"
        return (f"Preset `{self.preset}` · {behind} · redraw: `{self.command}` · "
                f"[rows plotted (CSV)]({self.csv})")


def provenance(rows, name: str, chapter: str, preset: str, results=None) -> Provenance:
    """The :class:`Provenance` of figure ``name`` of ``chapter`` at ``preset`` from the rows behind it (those with
    a ``run_id``: one per run, or several rows per run, counted once); each run's seed and code are read from its
    stored record in ``results`` (default: the run store), else from its row."""
    records = []
    if "run_id" in rows and len(rows):
        for row in rows.drop_duplicates("run_id").to_dict("records"):
            records.append(runs.stored_record(str(row["run_id"]), results) or row)  # the stored record knows its code
    seeds = tuple(sorted({int(r["seed"]) for r in records if isinstance(r.get("seed"), (int, float)) and r["seed"] == r["seed"]}))
    code = tuple(dict.fromkeys(store.code_label(r) for r in records))
    command = env.command(f"reproduce --only {chapter} --figure {name} --preset {preset}")
    return Provenance(name, chapter, preset, len(records), seeds, code, command, f"{BOOK_FIGURES}/{chapter}/{name}.csv")


BOOK_FIGURES = "../book/figures"  # the book's figures, relative to a source notebook (notebooks/)


def show(obj, metadata: dict | None = None) -> None:
    """Show ``obj`` as an output of the running notebook cell (with ``metadata``, the output's metadata); outside
    IPython (a script) nothing is shown."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return
    if get_ipython() is not None:
        if metadata:
            display(obj, metadata=metadata)
        else:
            display(obj)


def finish(fig, preset: str, note: str = "", **legend):
    """End a multi-panel figure the book's way: fit the layout, one legend below the panels (``legend``: its
    keyword arguments, e.g. ``ncol``, ``fontsize``), the preset (and ``note``) in the corner. Returns ``fig``."""
    fig.tight_layout()
    legend_outside(fig, "below", **legend)
    caption_preset(fig, preset, note)
    return fig


def legend_outside(fig_or_ax, where: str = "right", **kwargs):
    """One legend for the figure (or axes), outside the data: to the ``right`` of the axes or ``below`` them."""
    if where == "right":
        kw = {"loc": "center left", "bbox_to_anchor": (1.0, 0.5)}
    else:
        kw = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.02), "ncol": 4}
    if hasattr(fig_or_ax, "legend") and hasattr(fig_or_ax, "axes") and not hasattr(fig_or_ax, "plot"):
        fig = fig_or_ax
        handles = {}
        for ax in fig.axes:
            for h, label in zip(*ax.get_legend_handles_labels()):
                if label not in handles and not label.startswith("_"):
                    handles[label] = h
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        if where == "right":
            kw["bbox_to_anchor"] = (1.0, 0.5)
        return fig.legend(list(handles.values()), list(handles), frameon=False, **{**kw, **kwargs})
    return fig_or_ax.legend(frameon=False, **{**kw, **kwargs})


def run_note(frame, preset: str, results=None) -> str:
    """One Markdown sentence naming the preset, device(s) and date(s) of the runs in ``frame`` (the dates are
    those of the stored records)."""
    root = store.results_root(results)
    devices = sorted({str(d) for d in frame["device"].dropna()}) if "device" in frame else []
    stamps = [
        (root / rid / "record.json").stat().st_mtime
        for rid in frame.get("run_id", [])
        if (root / rid / "record.json").is_file()
    ]
    days = sorted({datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d") for t in stamps})
    when = days[0] if len(days) == 1 else (f"{days[0]} to {days[-1]}" if days else "an unknown date")
    seconds = float(frame["train_seconds"].sum()) if "train_seconds" in frame else float("nan")
    spent = f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"
    return (
        f"**The runs on this page:** preset `{preset}`, {len(frame)} runs ({spent} of training) on "
        f"{', '.join(devices) or 'an unknown device'}, stored {when}."
    )


# ---------------------------------------------------------------------------------------------- book tables
# Names a reader knows, for the ids the code uses (architectures, methods, settings).
READABLE = {
    "lenet-300-100": "LeNet-300-100", "mlp-256-256": "MLP 256-256", "conv2": "Conv-2", "conv4": "Conv-4",
    "conv6": "Conv-6", "conv8": "Conv-8", "resnet18": "ResNet-18", "resnet20-cifar": "ResNet-20",
    "resnet50-cifar": "ResNet-50", "vgg19": "VGG-19", "fcn": "FCN", "f1": "F1 (784-10)",
    "f2": "F2 (784-128-64-10)", "laperm-conv2": "Conv-2 (LaPerm)", "laperm-conv4": "Conv-4 (LaPerm)",
    "laperm-conv7": "Conv-7 (LaPerm)", "laperm-conv13": "Conv-13 (LaPerm)", "slot-conv2": "Conv-2 (Slot Machines)",
    "slot-conv4": "Conv-4 (Slot Machines)", "slot-conv6": "Conv-6 (Slot Machines)", "vit-p4-d1": "ViT-1 (patch 4)",
    "vit-p4-d2": "ViT-2 (patch 4)", "vit-p4-d4": "ViT-4 (patch 4)", "vit-p4-d6": "ViT-6 (patch 4)", "edge-popup": "Edge-Popup",
    "supermask-bernoulli": "Bernoulli supermask", "dense": "dense", "imp": "IMP", "slot": "Slot Machines",
    "laperm": "LaPerm", "mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "imagenet32": "ImageNet32",
    "he-uniform": "He uniform", "weight-agnostic": "weight-agnostic", "random-sparse": "random sparse",
    "signed-constant": "signed constant", "kaiming-normal": "Kaiming normal", "sgd": "SGD", "adam": "Adam",
}


def readable(value):
    """The reader's name for an id (``"laperm-conv7"`` -> ``"Conv-7 (LaPerm)"``); anything else unchanged."""
    return READABLE.get(value, value) if isinstance(value, str) else value


def column_name(name) -> str:
    """``"test_accuracy"`` -> ``"test accuracy"``; names that already read well are kept."""
    return str(readable(name)).replace("_", " ") if isinstance(name, str) else ", ".join(map(str, name))


def book_table(df, percent: tuple | list = (), points: tuple | list = (), decimals: int = 1, index: bool = False,
               caption: str | None = None):
    """A table formatted for reading: no index (unless ``index``: it becomes the first column), "-" for a missing
    value, the ``percent`` columns (fractions in [0, 1]) and the ``points`` columns (already in %) as percentages,
    whole numbers without decimals, other numbers with ``decimals``, ids as the names readers know. Returns a
    pandas Styler (renders as HTML)."""
    import numbers

    import pandas as pd

    frame = df.reset_index() if index or not isinstance(df.index, pd.RangeIndex) else df.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [" ".join(str(p) for p in c if str(p)) for c in frame.columns]
    frame = frame.map(readable)
    percent = {column_name(c) for c in percent}
    points = {column_name(c) for c in points}
    frame.columns = [column_name(c) for c in frame.columns]

    def fmt(column):
        def one(v):
            if v is None or (isinstance(v, float) and v != v):
                return "-"
            if isinstance(v, bool) or not isinstance(v, numbers.Number):
                return str(v)
            if column in percent:
                return f"{100 * v:.{decimals}f}%"
            if column in points:
                return f"{v:.{decimals}f}%"
            if float(v).is_integer():
                return f"{int(v):,}" if abs(v) >= 10000 else f"{int(v)}"
            return f"{v:.{decimals}f}" if abs(v) >= 0.1 else f"{v:.3g}"

        return one

    styler = frame.style.format({c: fmt(c) for c in frame.columns}).hide(axis="index")
    # ids from the content, not random: the same runs render the same page, byte for byte
    styler.set_uuid(hashlib.sha1(frame.to_csv().encode()).hexdigest()[:10])
    if caption:
        styler = styler.set_caption(caption)
    return styler.set_table_attributes('class="book-table"')
