"""The Slot Machines chapter runs end to end at the smoke preset through papermill."""

from __future__ import annotations

import json


def test_slot_machines_notebook_smoke(smoke_chapters, mnist):
    path = smoke_chapters("slot_machines")
    nb = json.loads(path.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # accuracy vs K, GS vs PS, selection changes, finetuning, value histograms
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'preset = "smoke"' in "".join(injected[0]["source"])
    tagged = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1
