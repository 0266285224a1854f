"""The empirical-size chapter executes end to end at the smoke preset (papermill, scratch results folder)."""

from __future__ import annotations

import json


def test_empirical_size_notebook_runs_in_smoke(smoke_chapters, mnist):
    path = smoke_chapters("empirical_size")
    nb = json.loads(path.read_text())
    errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))
    assert images >= 7  # C1..C7
    cached = list((smoke_chapters.root / "results" / "empirical-size").glob("*.json"))
    assert cached  # results went through the cache, not the repository
