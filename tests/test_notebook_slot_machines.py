"""The Slot Machines chapter runs end to end at the smoke preset through papermill."""

from __future__ import annotations

import json

import pytest
from conftest import check_smoke_notebook

pytestmark = pytest.mark.slow  # executes notebooks / builds the book: not in the `-m "not slow"` unit loop


def test_slot_machines_notebook_smoke(smoke_chapters, mnist):
    path = smoke_chapters("slot_machines")
    check_smoke_notebook(path, 5)  # accuracy vs K, GS vs PS, selection changes, finetuning, value histograms
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
