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

from ..plan import Chapter, select


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
