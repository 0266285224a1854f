"""The synthesis chapter runs end to end at the smoke preset through papermill."""

from __future__ import annotations

import json

from conftest import check_smoke_notebook


def test_synthesis_notebook_smoke(smoke_chapters, mnist):
    outputs = check_smoke_notebook(smoke_chapters("synthesis"), 5)  # the five figures
    text = json.dumps(outputs)
    for method in ("Edge-Popup", "Bernoulli supermask", "Slot Machines", "LaPerm", "IMP", "dense"):
        assert method in text  # every method has runs (the table and the run list name them)
    assert "bits per weight" in text and "smaller" in text  # the summary table and the compact-size sentence
