"""The Edge-Popup chapter runs end to end at the smoke preset through papermill."""

from __future__ import annotations

from conftest import check_smoke_notebook


def test_edge_popup_notebook_smoke(smoke_chapters, mnist):
    check_smoke_notebook(smoke_chapters("edge_popup"), 4)  # Figs. 3, 7, 4, 6
