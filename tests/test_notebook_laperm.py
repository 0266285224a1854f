"""The LaPerm chapter runs end to end at the smoke preset through papermill."""

from __future__ import annotations

import json

import pytest
from conftest import check_smoke_notebook

pytestmark = pytest.mark.slow  # executes notebooks / builds the book: not in the `-m "not slow"` unit loop


def test_laperm_notebook_smoke(smoke_chapters, mnist):
    outputs = check_smoke_notebook(smoke_chapters("laperm"), 6)  # F-L1 .. F-L6 (no conv profiles at smoke)
    text = json.dumps(outputs)
    assert "full preset" in text  # the paper-vs-ours table is there, with the GPU-only rows marked
    assert "F2, official recipe" in text and "no temperature" in text  # both F2 recipes and the ablation
