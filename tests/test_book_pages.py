"""The book's pages read cleanly: one figure numbering (the book's, the paper's figure named in the caption), a
"What this chapter reproduces" table at the top of every chapter, no internal labels, code inputs hidden unless a
reader learns from them."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from randweights import reproduce
from randweights.chapters import CHAPTERS

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PAPER_FIGURE_IN_HEADING = re.compile(r"^#+ .*\((the paper's )?(Figs?|Table)\.?\s*\d", re.M | re.I)
CAPTION_END = re.compile(r"\((The paper's (Figs?\.|Tables?) |After (the|one of the) paper's |Not a figure of the paper)[^()]*\.\)\s*$")
INTERNAL_LABEL = re.compile(r"\b(F-L\d|FL\d|P\d|C\d|the spec)\b")


def cells(name: str) -> list[dict]:
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())["cells"]


def text(cell: dict) -> str:
    return "".join(cell["source"])


@pytest.mark.parametrize("name", [c.name for c in CHAPTERS])
def test_headings_carry_no_figure_number_and_captions_name_the_papers(name):
    for cell in cells(name):
        if cell["cell_type"] != "markdown":
            continue
        assert not PAPER_FIGURE_IN_HEADING.search(text(cell)), f"{name}: a heading numbers a figure: {text(cell)[:80]!r}"
        if "figure-caption" in cell.get("metadata", {}).get("tags", []):
            assert CAPTION_END.search(text(cell)), f"{name}: caption does not end naming the paper's figure: {text(cell)[-120:]!r}"


@pytest.mark.parametrize("name", [c.name for c in CHAPTERS])
def test_every_chapter_opens_with_its_reproduces_table(name):
    chapter = next(c for c in CHAPTERS if c.name == name)
    assert chapter.claims, f"{name}: no claims declared"
    nb = cells(name)
    heading = next(i for i, c in enumerate(nb) if c["cell_type"] == "markdown" and "## What this chapter reproduces" in text(c))
    first_figure = next(i for i, c in enumerate(nb) if c["cell_type"] == "code" and "plots.figure(" in text(c))
    assert heading < first_figure
    table = next(c for c in nb[heading:] if c["cell_type"] == "code")
    assert "claims_table(preset, device)" in text(table)


@pytest.mark.parametrize("name", [c.name for c in CHAPTERS])
def test_no_internal_labels_in_the_prose(name):
    for cell in cells(name):
        source = text(cell)
        prose = source if cell["cell_type"] == "markdown" else " ".join(re.findall(r'r?f?"""(.*?)"""', source, re.S))
        found = INTERNAL_LABEL.findall(prose)
        assert not found, f"{name}: internal label(s) {found} in {source[:100]!r}"


def test_the_book_hides_code_inputs_unless_tagged_show_code():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("numbers['x'] = 1"),
        nbformat.v4.new_code_cell("frame = ep.keep_fraction_frame(preset)", metadata={"tags": ["show-code"]}),
        nbformat.v4.new_code_cell("pip install", metadata={"tags": ["remove-cell"]}),
        nbformat.v4.new_markdown_cell("Some prose."),
    ]
    reproduce.book_page(nb)
    assert nb.cells[0].metadata["tags"] == ["remove-input"]
    assert nb.cells[1].metadata["tags"] == ["show-code", "hide-input"]
    assert nb.cells[2].metadata["tags"] == ["remove-cell"]
    assert nb.cells[3].metadata["tags"] == []
