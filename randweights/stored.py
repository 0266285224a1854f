"""Stored runs of a chapter: whether ``reproduce`` trains, and how much of a chapter's plan is stored.

On a machine without CUDA, ``randweights reproduce --preset full`` trains nothing: it sets ``RANDWEIGHTS_TRAIN=0``
for the notebooks, so the run store returns stored records and raises :class:`randweights.runs.RunMissing` for
the rest, sweeps keep only the stored rows, and a chapter whose runs are incomplete gets a note at the top of its
page (how many of how many runs are stored). ``--train-missing`` trains anyway; with CUDA the missing runs are
trained as always.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import env, plan, runs, store
from .plan import Chapter

TRAIN_ENV = env.TRAIN
NOTE_TAG = "runs-incomplete"


def has_cuda(device: str | None) -> bool:
    """Whether the notebooks would train on CUDA with ``device`` (None / "auto": CUDA when present)."""
    if device not in (None, "auto"):
        return str(device).startswith("cuda")
    import torch

    return torch.cuda.is_available()


def should_train(preset: str, device: str | None = None, train_missing: bool | None = None) -> bool:
    """``train_missing`` when given; else train unless the preset is ``full`` and there is no CUDA (days on a
    CPU) or ``$RANDWEIGHTS_TRAIN`` is already 0."""
    if train_missing is not None:
        return train_missing
    if not env.training_allowed():
        return False
    return preset != "full" or has_cuda(device)


@dataclass
class Coverage:
    chapter: str
    preset: str
    present: int
    total: int
    without_model: int = 0  # runs with a record whose chapter also reads their model weights or compact file, missing

    @property
    def complete(self) -> bool:
        return self.present == self.total

    def sentence(self) -> str:
        extra = f"; {self.without_model} more have a record but not the model weights or compact file a figure reads" if self.without_model else ""
        return (f"{self.present} of {self.total} runs of preset `{self.preset}` are stored{extra}. This page shows only "
                f"what they give: figures and numbers that need the missing runs are partial or absent. To complete it, "
                f"import a bundle (`{env.command('bundle import FILE')}`) or train the rest "
                f"(`{env.command(f'sweep --preset {self.preset} --only {self.chapter}')}`, or "
                f"`{env.command(f'reproduce --preset {self.preset} --train-missing')}`).")


def chapter_coverage(chapter: Chapter, preset: str, root=None) -> Coverage:
    """How many runs of ``chapter``'s plan at ``preset`` have a verified record (and, where the chapter reads
    the trained network: its compact file or ``model.pt``, :func:`randweights.runs.has_network`; where it reads
    the compact file itself, that file) in the results folder ``root``."""
    entries = plan.plan(preset, [chapter])
    present = without_model = 0
    for entry in entries:
        folder = store.run_dir(entry.config, root)
        record = store.verified(entry.config, root)  # its files' SHA-256 too; a damaged run is moved aside
        if record is None:
            continue
        has_compact = bool(record.get("compact_file")) and (folder / runs.COMPACT_FILE).is_file()
        if entry.keep_model and not runs.has_network(record, folder) or entry.reads_compact and not has_compact:
            without_model += 1
        else:
            present += 1
    return Coverage(chapter.name, preset, present, len(entries), without_model)


def note_page(notebook: Path, coverage: Coverage) -> bool:
    """Put a note saying how many runs are stored under the title of an executed chapter, if any are missing
    (replacing an earlier note). Returns whether the page has a note."""
    nb = json.loads(notebook.read_text())
    cells = [c for c in nb["cells"] if NOTE_TAG not in c.get("metadata", {}).get("tags", [])]
    if not coverage.complete:
        note = {"cell_type": "markdown", "metadata": {"tags": [NOTE_TAG]},
                "source": [f":::{{warning}} Incomplete: {coverage.sentence()}\n:::\n"]}
        title = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "".join(c["source"]).lstrip().startswith("# ")), -1)
        cells.insert(title + 1, note)
    nb["cells"] = cells
    notebook.write_text(json.dumps(nb, indent=1))
    return not coverage.complete
