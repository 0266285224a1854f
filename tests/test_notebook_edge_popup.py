"""The Edge-Popup chapter runs end to end at the smoke preset through papermill."""

from __future__ import annotations

import pytest
from conftest import check_smoke_notebook

pytestmark = pytest.mark.slow  # executes notebooks / builds the book: not in the `-m "not slow"` unit loop


def test_edge_popup_notebook_smoke(smoke_chapters, mnist):
    check_smoke_notebook(smoke_chapters("edge_popup"), 4)  # Figs. 3, 7, 4, 6
