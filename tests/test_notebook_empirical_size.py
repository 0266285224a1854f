"""The empirical-size chapter executes end to end at the smoke preset (papermill, scratch results folder)."""

from __future__ import annotations

import pytest
from conftest import check_smoke_notebook

pytestmark = pytest.mark.slow  # executes notebooks / builds the book: not in the `-m "not slow"` unit loop


def test_empirical_size_notebook_runs_in_smoke(smoke_chapters, mnist):
    check_smoke_notebook(smoke_chapters("empirical_size"), 7)  # C1..C7
    cached = list((smoke_chapters.root / "results" / "empirical-size").glob("*.json"))
    assert cached  # results went through the cache, not the repository
