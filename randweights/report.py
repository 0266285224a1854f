"""What a chapter page reports about its own runs: the "What ran" table, the compact file sizes, the run note, and
the closing cell of every chapter (:func:`closing`) that shows them; and :func:`md`, how a page's sentences with
numbers in them are shown.

A chapter notebook shows everything as cell outputs, so it reads the same in Jupyter, in Colab and in the book:
a sentence quoting results is the Markdown output of a code cell (:func:`md`), a figure the image output of its
cell (:func:`randweights.plots.figure`).

The numbers come from the stored records (``<results>/<run_id>/record.json``); method names are the registry's
labels (:func:`randweights.methods.label`).
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from . import methods, plots, runs, store

SIZE_COLUMNS = ["method", "arch", "runs", "compact kB", "dense fp32 kB", "smaller by", "bits per weight"]


def combine(*frames: pd.DataFrame) -> pd.DataFrame:
    """The rows of several figures' frames, each run once (first occurrence kept), in order."""
    return pd.concat([f for f in frames if len(f)], ignore_index=True).drop_duplicates("run_id")


def what_ran(frame: pd.DataFrame, by: list[str], root=None, **columns) -> pd.DataFrame:
    """A chapter's "What ran" table: ``frame`` (records as rows) grouped by ``by`` with the named aggregations
    ``columns`` (as ``DataFrame.agg`` takes them), plus ``code``: the version and commit that trained the runs.
    Rows without provenance columns are looked up in the store by ``run_id``."""
    rows = frame.to_dict("records")
    labels = []
    for row in rows:
        if "randweights_version" not in row and isinstance(row.get("run_id"), str):
            row = runs.stored_record(row["run_id"], root) or row
        labels.append(store.code_label(row))
    return frame.assign(code=labels).groupby(by).agg(**columns, code=("code", lambda s: ", ".join(sorted(set(s)))))


def run_sizes(run_ids: Iterable[str], root=None) -> list[dict]:
    """Per stored run (by id, from its record): method, architecture, compact and dense bytes, bits per weight.
    Runs stored before compact files existed (or without one) are left out."""
    out = []
    for run_id in dict.fromkeys(run_ids):
        r = runs.stored_record(run_id, root)
        if r is not None and r.get("compact_file"):
            out.append({"run_id": run_id, "method": r["method"], "arch": r["arch"],
                        "weight_count": r.get("weight_count", r.get("weights")),
                        "compact_bytes": r["compact_bytes"], "dense_bytes": r["dense_bytes"],
                        "bits_per_weight": r["compact_bits_per_weight"]})
    return out


def size_table(run_ids: Iterable[str], root=None) -> pd.DataFrame:
    """One row per method and architecture: the median compact file against the dense fp32 state dict."""
    rows = pd.DataFrame(run_sizes(run_ids, root))
    if rows.empty:
        return pd.DataFrame(columns=SIZE_COLUMNS)
    table = rows.groupby(["method", "arch"], sort=False).agg(
        runs=("run_id", "size"), compact=("compact_bytes", "median"), dense=("dense_bytes", "median"),
        bits=("bits_per_weight", "median")).reset_index()
    table["method"] = table["method"].map(methods.label)
    return pd.DataFrame({"method": table["method"], "arch": table["arch"], "runs": table["runs"],
                         "compact kB": (table["compact"] / 1000).round(1), "dense fp32 kB": (table["dense"] / 1000).round(1),
                         "smaller by": (table["dense"] / table["compact"]).round(1), "bits per weight": table["bits"].round(2)})


def size_sentence(table: pd.DataFrame) -> str:
    """One sentence for a chapter: each method's compact file against its dense fp32 state dict."""
    if table.empty:
        return "No run of this page has a compact file yet (they were stored before compact files existed)."
    parts = [f"{r['method']} on {plots.readable(r['arch'])}: {r['compact kB']:g} kB against {r['dense fp32 kB']:g} kB "
             f"({r['smaller by']:g}x smaller, {r['bits per weight']:g} bits per weight)" for _, r in table.iterrows()]
    return "Stored compactly (seed + what the method found), the median file is: " + "; ".join(parts) + "."


RUN_NOTE_ID = "randweights-run-note"
RUN_NOTE_PENDING = "*The runs on this page: named here once the page has run to its end.*"


def md(text: str):
    """``text`` (Markdown, with ``$...$`` math) as a cell's output: how a page shows a sentence quoting results.
    A notebook cell ending with ``report.md(f"...")`` shows the sentence in Jupyter, Colab and the book alike."""
    from IPython.display import Markdown

    return Markdown(text)


def run_note_slot() -> None:
    """Show where the page's run note goes (near its top); :func:`closing` fills it in once the runs are known."""
    from IPython.display import display

    display(md(RUN_NOTE_PENDING), display_id=RUN_NOTE_ID)


def compact_sizes(frame: pd.DataFrame, root=None, table: bool = True):
    """The "Stored compactly" section of a page: the table of :func:`size_table` for the runs of ``frame`` (with
    ``run_id``), shown unless ``table`` is false, and the sentence of :func:`size_sentence`, returned as Markdown."""
    sizes = size_table(frame["run_id"], root)
    if table and not sizes.empty:
        plots.show(plots.book_table(sizes))
    return md(size_sentence(sizes))


def closing(frame: pd.DataFrame, preset: str, by: list[str] | None = None, show: list[str] | None = None,
            hide: Iterable[str] = (), note: str = "", note_frame: pd.DataFrame | None = None, percent: Iterable[str] = (),
            decimals: int = 1, **columns):
    """The closing cell of a chapter page, in one call; returns the "What ran" table to show.

    ``frame``: one row per run of the page (with ``run_id``). The table is :func:`what_ran` of ``frame`` grouped
    ``by`` with the aggregations ``columns``, or, without ``by``, ``frame`` itself (its columns ``show``, or all
    but ``hide``), formatted by :func:`randweights.plots.book_table` (``percent``, ``decimals``). Fills in the
    page's run note (:func:`run_note_slot`) with :func:`randweights.plots.run_note` of ``note_frame`` (default
    ``frame``), then ``note``."""
    from IPython.display import update_display

    text = plots.run_note(frame if note_frame is None else note_frame, preset) + (f" {note}" if note else "")
    update_display(md(text), display_id=RUN_NOTE_ID)
    if by:
        return plots.book_table(what_ran(frame, by, **columns), index=True, percent=list(percent), decimals=decimals)
    table = frame[list(show)] if show else frame.drop(columns=list(hide))
    return plots.book_table(table, percent=list(percent), decimals=decimals)


def against_chance(accuracy: float, images: int, classes: int, what: str) -> str:
    """A sentence comparing ``accuracy`` (a fraction, on ``images`` test images of ``classes`` balanced classes)
    with chance, 1 / ``classes``: above chance only past two binomial standard errors of a classifier at chance
    (``2 * sqrt(p (1 - p) / images)``: one at chance lands inside that band about 95 % of the time); inside the
    band the run cannot be told from guessing. ValueError for an accuracy outside [0, 1], fewer than one image or
    fewer than two classes."""
    if not 0 <= accuracy <= 1:
        raise ValueError(f"accuracy: a fraction in [0, 1], got {accuracy!r}")
    if images < 1 or classes < 2:
        raise ValueError(f"images >= 1 and classes >= 2, got images={images!r}, classes={classes!r}")
    chance = 1 / classes
    band = 2 * (chance * (1 - chance) / images) ** 0.5
    gap = accuracy - chance
    text = (f"{what}: {accuracy:.1%} of {images} test images against chance {chance:.0%} ({100 * gap:+.1f} points; "
            f"a classifier that guesses lands within ±{100 * band:.1f} points of chance on {images} images about 95% "
            f"of the time)")
    if gap > band:
        return f"{text}: above chance, so the training has learned something"
    if gap < -band:
        return f"{text}: below chance by more than that, so it has learned nothing useful"
    return f"{text}: within that band, so it cannot be told from guessing: at this budget it has learned nothing measurable"
