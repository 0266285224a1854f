"""The book builds (warnings as errors) from the chapters executed at the smoke preset, from the committed toc."""

from __future__ import annotations

import json
import re

import pytest

from randweights import reproduce
from randweights.chapters import CHAPTERS

PAPER_CHAPTERS = [c.name for c in CHAPTERS if c.name != "synthesis"]  # one paper each


def test_toc_is_committed_and_lists_every_page():
    root = reproduce.repo_root()
    files = reproduce.toc_files(root)
    for page in ("intro", "own_model", "share", "api", "references", "scale", "reconstruction", "equivalence"):
        assert page in files
    # the chapters of randweights.chapters.CHAPTERS, in that order, and no other chapter page
    assert [f for f in files if f.startswith("chapters/")] == [f"chapters/{c.name}" for c in CHAPTERS]


def test_each_chapter_declares_its_notebook_and_title():
    root = reproduce.repo_root()
    for chapter in CHAPTERS:
        assert chapter.notebook == f"notebooks/{chapter.name}.ipynb" and (root / chapter.notebook).is_file()
        assert reproduce.chapter_title(root, chapter.name) == chapter.title


@pytest.mark.slow  # executes notebooks / builds the book: not in the `-m "not slow"` unit loop
def test_book_builds_with_every_chapter(built_book, mnist):
    code, html = built_book
    assert code == 0
    assert (html / "index.html").is_file()
    root = html.parents[2]
    for name in reproduce.available_chapters(root):
        page = (html / "chapters" / f"{name}.html").read_text()
        assert "<img" in page, name
        assert 'preset = "smoke"' not in page, name  # the parameters cells are hidden
    for name in PAPER_CHAPTERS:
        page = (html / "chapters" / f"{name}.html").read_text()
        # numbered, captioned figures (one per figure cell, captioned from the cell after it), the parameters
        # cells hidden, and the sentences quoting results shown without their code
        figures_in_notebook = sum("figure" in c["metadata"].get("mystnb", {})
                                  for c in json.loads((root / "notebooks" / f"{name}.ipynb").read_text())["cells"])
        assert len(re.findall(r'<span class="caption-number">Fig\. \d+ </span>', page)) == figures_in_notebook, name
        # under each caption its provenance: preset, the redraw command, and the rows plotted as a download
        legends = re.findall(r'<div class="legend">\s*<p>Preset <code.*?</p>', page, flags=re.S)
        assert len(legends) == figures_in_notebook, name
        for legend in legends:
            assert "--figure" in legend and re.search(r'class="reference download internal" download="" href="\.\./_downloads/\w+/\w+\.csv"', legend)
        assert "report.md(" not in page and "{glue" not in page and "{cite" not in page, name
        assert "The runs on this page:" in page and "preset <code" in page, name  # the preset/device/date note
        # every figure is also a PNG and an SVG under book/figures/<chapter>/
        figures = root / "book" / "figures" / name
        pngs = sorted(p.stem for p in figures.glob("*.png"))
        assert pngs and pngs == sorted(p.stem for p in figures.glob("*.svg")), name
    footer = (html / "intro.html").read_text()
    assert "The randweights developers" in footer and "CC BY 4.0" in footer and "Built from commit" in footer
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "cdn.jsdelivr" not in footer
    status = (html / "status.html").read_text()  # the execution status page: one row per executed chapter
    for name in reproduce.available_chapters(root):
        assert re.search(rf"<td><p>{name}</p></td>\s*<td><p>smoke</p></td>", status), name
    api = (html / "api.html").read_text()
    assert 'id="randweights.methods.edge_popup.apply"' in api


def test_reproduce_rejects_unknown_chapters(tmp_path):
    with pytest.raises(Exception, match="--only"):
        reproduce.reproduce(preset="smoke", only=["nope"], build=False, root=reproduce.repo_root())


def test_notebooks_keep_only_parameters_calls_and_figures():
    """No outputs, one ``parameters`` cell, and no arithmetic on frames in a cell: the numbers a page quotes come
    from library functions (positional access, groupby and concatenation live in the chapter modules)."""
    root = reproduce.repo_root()
    for chapter in CHAPTERS:
        cells = json.loads((root / chapter.notebook).read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(not c.get("outputs") for c in code), chapter.name
        assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1, chapter.name
        text = "\n".join("".join(c["source"]) for c in code)
        for banned in (".iloc[", ".groupby(", "pd.concat(", ".pivot_table(", "compact.size_", "what_ran("):
            assert banned not in text, (chapter.name, banned)
        assert text.count("report.closing(") == 1 and text.count("report.run_note_slot()") == 1, chapter.name


def test_notebooks_show_everything_as_cell_outputs_with_no_book_only_syntax():
    """What Jupyter and Colab cannot render is not in a notebook: no glue (myst-nb), no MyST role or directive.
    A figure's cell carries its book label, the cell after it is its caption; a sentence quoting results is
    the Markdown output of a cell whose code the book hides."""
    root = reproduce.repo_root()
    for chapter in CHAPTERS:
        cells = json.loads((root / chapter.notebook).read_text())["cells"]
        for before, cell in zip([None, *cells], cells):
            source = "".join(cell["source"])
            assert "glue" not in source and "myst_nb" not in source, (chapter.name, source[:80])
            if cell["cell_type"] == "markdown":
                assert not re.search(r"\{[a-z:]+\}`|```\{|^:::", source, re.MULTILINE), (chapter.name, source[:80])
            figure = cell["metadata"].get("mystnb", {}).get("figure")
            assert (figure is not None) == ("plots.figure(" in source), (chapter.name, source[:80])
            if figure is not None:
                assert set(figure) == {"name"} and figure["name"].startswith("fig-"), chapter.name
            if reproduce.CAPTION_TAG in cell["metadata"].get("tags", []):
                assert cell["cell_type"] == "markdown" and "figure" in before["metadata"].get("mystnb", {})
            if "report.md(" in source or "report.run_note_slot()" in source or "report.compact_sizes(" in source:
                assert "remove-input" in cell["metadata"]["tags"], (chapter.name, source[:80])
        captions = [c for c in cells if reproduce.CAPTION_TAG in c["metadata"].get("tags", [])]
        assert len(captions) == sum("figure" in c["metadata"].get("mystnb", {}) for c in cells) > 0, chapter.name
