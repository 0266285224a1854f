"""What a chapter page reports about its own runs: the "What ran" table, the compact file sizes, the run note, and
the closing cell of every chapter (:func:`closing`) that glues and shows them.

The numbers come from the stored records (``<results>/<run_id>/record.json``); method names are the registry's
labels (:func:`randweights.methods.label`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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
    parts = [f"{r['method']} on {r['arch']}: {r['compact kB']:g} kB against {r['dense fp32 kB']:g} kB "
             f"({r['smaller by']:g}x smaller, {r['bits per weight']:g} bits per weight)" for _, r in table.iterrows()]
    return "Stored compactly (seed + what the method found), the median file is: " + "; ".join(parts) + "."


def glue_text(values: Mapping[str, object]) -> None:
    """Glue each value under its key, for the page's text (``{glue:text}`key```), shown nowhere else."""
    from myst_nb import glue

    for key, value in values.items():
        glue(key, value, display=False)


def closing(chapter: str, frame: pd.DataFrame, preset: str, by: list[str] | None = None, show: list[str] | None = None,
            hide: Iterable[str] = (), note: str = "", note_frame: pd.DataFrame | None = None, percent: Iterable[str] = (),
            decimals: int = 1, **columns):
    """The closing cell of a chapter page, in one call; returns the "What ran" table to show.

    ``frame``: one row per run of the page (with ``run_id``). The table is :func:`what_ran` of ``frame`` grouped
    ``by`` with the aggregations ``columns``, or, without ``by``, ``frame`` itself (its columns ``show``, or all
    but ``hide``), formatted by :func:`randweights.plots.book_table` (``percent``, ``decimals``). Glues
    ``run_note`` (:func:`randweights.plots.run_note` of ``note_frame``, default ``frame``, then ``note``),
    ``<chapter>_compact_sizes`` (:func:`size_sentence`) and ``<chapter>_compact_table`` (:func:`size_table`, shown
    by the page's "Stored compactly" section)."""
    from myst_nb import glue

    plots.glue_markdown("run_note", plots.run_note(frame if note_frame is None else note_frame, preset) + (f" {note}" if note else ""))
    sizes = size_table(frame["run_id"])
    glue(f"{chapter}_compact_sizes", size_sentence(sizes), display=False)
    glue(f"{chapter}_compact_table", sizes, display=False)
    if by:
        return plots.book_table(what_ran(frame, by, **columns), index=True, percent=list(percent), decimals=decimals)
    table = frame[list(show)] if show else frame.drop(columns=list(hide))
    return plots.book_table(table, percent=list(percent), decimals=decimals)
