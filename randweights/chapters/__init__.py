"""The book's chapters, one module each (presets, the runs behind each figure, the figures), and
:data:`CHAPTERS`: the one list of them, in book order.

Each module of this package declares itself once as ``CHAPTER`` (a :class:`randweights.plan.Chapter`: name,
title, notebook, presets, figures and its ``order`` in the book); this package collects every module that does.
``randweights plan``, ``sweep``, ``bundle``, ``reproduce`` and the book's table of contents (checked by the
tests) all read :data:`CHAPTERS`. To add a chapter: write its module with a ``CHAPTER``, its notebook, and its
line in ``book/_toc.yml``.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..plan import Chapter, CostModel, plan, select
from ..plan import cost_table as cost_table_rows


def _collect() -> tuple[Chapter, ...]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        chapter = getattr(module, "CHAPTER", None)
        if isinstance(chapter, Chapter):
            if chapter.name != info.name:
                raise TypeError(f"{module.__name__}.CHAPTER is named {chapter.name!r}: name it after its module")
            found.append(chapter)
    orders = [c.order for c in found]
    if len(set(orders)) != len(orders):
        raise TypeError(f"two chapters share a place in the book: {sorted((c.order, c.name) for c in found)}")
    return tuple(sorted(found, key=lambda c: c.order))


#: Every chapter, in book order.
CHAPTERS: tuple[Chapter, ...] = _collect()
NAMES: tuple[str, ...] = tuple(c.name for c in CHAPTERS)


def get(name: str) -> Chapter:
    """The chapter called ``name`` (a ConfigError on ``--only`` otherwise)."""
    return select(CHAPTERS, [name])[0]


def headline_table(presets: tuple[str, ...] = ("full",), root=None):
    """Every chapter's headline numbers (:meth:`randweights.plan.Chapter.headline_table`) in one table, with the
    chapter's name: the paper's value beside ours at ``presets`` (stored runs only, never trains)."""
    import pandas as pd

    frames = []
    for chapter in CHAPTERS:
        if chapter.headlines:
            table = chapter.headline_table(presets, root)
            table.insert(0, "chapter", chapter.title.split(":")[0])
            frames.append(table)
    return pd.concat(frames, ignore_index=True)


def claims_table(presets: tuple[str, ...] = ("quick", "full"), root=None):
    """Every chapter's "What this chapter reproduces" rows (:meth:`randweights.plan.Chapter.claims_table`, stored
    runs only, never trains) in one table, with the chapter's short name."""
    import pandas as pd

    frames = []
    for chapter in CHAPTERS:
        if chapter.claims:
            table = chapter.claims_table(None, root=root, stored=presets)
            table.insert(0, "chapter", chapter.title.split(":")[0])
            frames.append(table)
    return pd.concat(frames, ignore_index=True)


def cost_table(preset: str = "full", model: CostModel = CostModel()):
    """What ``preset`` costs per chapter, from the plan (:func:`randweights.plan.cost_table`): runs, optimizer steps
    and GPU-hours under ``model``'s assumptions, with each chapter's share; the last row is the whole preset."""
    import pandas as pd

    rows = cost_table_rows(plan(preset, CHAPTERS), model)
    total = rows[-1]["gpu_hours"] or 1.0
    titles = {c.name: c.title.split(":")[0] for c in CHAPTERS} | {"all": "all chapters"}
    return pd.DataFrame([{"chapter": titles[r["chapter"]], "runs": r["runs"], "optimizer steps (millions)": r["steps"] / 1e6,
                          "GPU-hours": r["gpu_hours"], "share": r["gpu_hours"] / total} for r in rows])


def cost_assumptions(model: CostModel = CostModel()) -> str:
    """The sentence under :func:`cost_table`: what its hours assume."""
    return (f"Estimated, not measured: every optimizer step costs {model.fixed_seconds * 1e3:g} ms whatever the network "
            f"(kernel launches and Python, what bounds a small network's step) plus three times its forward pass's "
            f"floating-point operations per image times the batch at {model.flops_per_second / 1e12:g} TFLOP/s, on "
            f"{model.device}; evaluations between epochs are left out. Steps are the plan's: epochs times steps per "
            f"epoch, every training phase; an IMP run, which stops once a layer has few units left connected, up to "
            f"the round that leaves {model.imp_remaining:.0e} of its weights (an upper bound). `bash benchmarks/gpu_check.sh OUT` times every recipe's step on the GPU "
            f"at hand and gives measured hours.")
