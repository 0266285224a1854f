"""The LaPerm chapter runs end to end at the smoke preset through papermill."""

from __future__ import annotations

import json


def test_laperm_notebook_smoke(smoke_chapters, mnist):
    path = smoke_chapters("laperm")
    nb = json.loads(path.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6  # F-L1 .. F-L6 (the conv profiles are skipped at smoke)
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'preset = "smoke"' in "".join(injected[0]["source"])
    text = json.dumps(outputs)
    assert "full preset" in text  # the paper-vs-ours table is there, with the GPU-only rows marked
