"""Every chapter reads in Jupyter and Colab as in the book: rendered as `jupyter nbconvert --to html` renders it,
an executed chapter shows each of its figures as an image and its numbers in the text, with nothing left that only
the book can render. Reuses the chapters the notebook tests executed (the ``smoke_chapters`` fixture)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import check_jupyter_html

from randweights.chapters import CHAPTERS

pytestmark = pytest.mark.slow  # executes notebooks (once per session, shared with the notebook tests)


@pytest.mark.parametrize("name", [c.name for c in CHAPTERS])
def test_executed_chapter_renders_in_plain_jupyter(smoke_chapters, mnist, name):
    path = smoke_chapters(name)
    html = check_jupyter_html(path)
    # every sentence quoting results (a cell ending in report.md) is rendered as Markdown in the cell's output
    cells = json.loads(path.read_text())["cells"]
    sentences = sum(c["cell_type"] == "code" and "report.md(" in "".join(c["source"]) for c in cells)
    rendered = re.findall(r'class="jp-RenderedHTMLCommon jp-RenderedMarkdown jp-OutputArea-output[" ]', html)
    assert sentences > 0 and len(rendered) >= sentences
