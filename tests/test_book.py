"""The book builds (warnings as errors) from the chapters executed at the smoke preset, from the committed toc."""

from __future__ import annotations

import re

import pytest

from randweights import reproduce

PAPER_CHAPTERS = ("edge_popup", "slot_machines", "laperm", "fcn_to_cnn", "empirical_size")

pytestmark = pytest.mark.slow  # executes notebooks / builds the book: not in the `-m "not slow"` unit loop


def test_toc_is_committed_and_lists_every_page():
    root = reproduce.repo_root()
    files = reproduce.toc_files(root)
    for page in ("intro", "own_model", "api", "references", "scale", "chapters/synthesis"):
        assert page in files
    for name in reproduce.CHAPTERS:
        assert f"chapters/{name}" in files


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
        # numbered, captioned figures, and the parameters cells hidden
        assert re.search(r'<span class="caption-number">Fig\. \d+ </span>', page), name
        assert "The runs on this page:" in page and "preset <code" in page, name  # the preset/device/date note
        # every figure is also a PNG and an SVG under book/figures/<chapter>/
        figures = root / "book" / "figures" / name
        pngs = sorted(p.stem for p in figures.glob("*.png"))
        assert pngs and pngs == sorted(p.stem for p in figures.glob("*.svg")), name
    footer = (html / "intro.html").read_text()
    assert "The randweights developers" in footer and "CC BY 4.0" in footer and "Built from commit" in footer
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert "cdn.jsdelivr" not in footer
    api = (html / "api.html").read_text()
    assert 'id="randweights.methods.edge_popup.apply"' in api


def test_reproduce_rejects_unknown_chapters(tmp_path):
    with pytest.raises(Exception, match="--only"):
        reproduce.reproduce(preset="smoke", only=["nope"], build=False, root=reproduce.repo_root())
