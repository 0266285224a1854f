"""The FCN-to-CNN chapter runs end to end at the smoke preset through papermill."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def cifar10():
    from conftest import require_dataset

    require_dataset("cifar10")


def test_fcn_to_cnn_notebook_smoke(smoke_chapters, cifar10):
    path = smoke_chapters("fcn_to_cnn")
    nb = json.loads(path.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 10  # P1-P9 and the shuffled gallery
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'preset = "smoke"' in "".join(injected[0]["source"])
