"""Every page of the built book in a real browser (headless Chromium), from disk, with the network off: images
load, math is typeset by the MathJax shipped with the book, no page shows a traceback or an error banner."""

from __future__ import annotations

import os

import pytest
from browser import Browser, find_chromium

pytestmark = pytest.mark.slow  # needs the smoke book (see conftest.built_book)

SKIP_DIRS = {"_static", "_sources", "_images", "reports", "_sphinx_design_static"}


def _chromium() -> str:
    exe = find_chromium()
    if exe is None:
        reason = "Chromium not installed (Debian package `chromium`; `make chromium` installs it as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return exe


def test_every_page_renders_offline(built_book, mnist, tmp_path):
    exe = _chromium()
    code, html = built_book
    assert code == 0
    pages = sorted(p for p in html.rglob("*.html") if not SKIP_DIRS & set(p.relative_to(html).parts))
    assert len(pages) >= 5
    reports = []
    with Browser(exe) as browser:
        for page in pages:
            report = browser.open(page.as_uri())
            reports.append(report)
            name = page.relative_to(html)
            assert report.broken == [], f"{name}: images that did not load: {report.broken}"
            assert report.raw_tex == [], f"{name}: raw TeX in the text: {report.raw_tex}"
            assert report.problems == [], f"{name}: {report.problems}"
            online = [r for r in report.failed_requests if "http" in r]
            assert online == [], f"{name}: asked the network for {online}"
            if report.math_sources:
                assert report.mathjax_loaded and report.math_rendered >= report.math_sources, (
                    f"{name}: {report.math_rendered} of {report.math_sources} formulas typeset")
        chapter = html / "chapters" / "edge_popup.html"
        browser.open(chapter.as_uri())
        shot = tmp_path / "edge_popup.png"
        browser.screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    typeset = sum(r.math_rendered for r in reports)
    captions = [c for r in reports for c in r.figure_captions]
    assert typeset > 20
    assert any(c.startswith("Fig. 1") for c in captions), captions[:5]
