"""The book builds (warnings as errors) from the chapters executed at the smoke preset."""

from __future__ import annotations

import pytest

from randweights import reproduce

pytestmark = pytest.mark.slow  # executes notebooks / builds the book: not in the `-m "not slow"` unit loop


def test_book_builds_with_every_chapter(smoke_chapters, mnist):
    root = smoke_chapters.root
    names = reproduce.available_chapters(root)
    assert "edge_popup" in names
    for name in names:
        smoke_chapters(name)
    code = reproduce.build_book(root)
    assert code == 0
    html = root / "book" / "_build" / "html"
    assert (html / "index.html").is_file()
    for name in names:
        page = (html / "chapters" / f"{name}.html").read_text()
        assert "<img" in page, name


def test_reproduce_rejects_unknown_chapters(tmp_path):
    with pytest.raises(Exception, match="--only"):
        reproduce.reproduce(preset="smoke", only=["nope"], build=False, root=reproduce.repo_root())
