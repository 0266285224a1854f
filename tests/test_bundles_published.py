"""The published bundles (bundles/): each is listed in bundles/README.md, imports with every run verified, and
every run it carries is one the plan of its preset makes (so a chapter reads it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from randweights import bundles, plan, store
from randweights.chapters import CHAPTERS
from randweights.config import from_dict

FOLDER = Path(__file__).resolve().parents[1] / "bundles"
PUBLISHED = sorted(p for p in FOLDER.iterdir() if p.name.endswith((".tar.gz", ".tar", ".zip")))


def test_there_are_published_bundles_and_the_readme_lists_each():
    readme = (FOLDER / "README.md").read_text()
    assert PUBLISHED
    for path in PUBLISHED:
        assert f"`{path.name}`" in readme, path.name


@pytest.mark.parametrize("path", PUBLISHED, ids=lambda p: p.name)
def test_a_published_bundle_imports_verified_and_holds_planned_runs(path, tmp_path):
    report = bundles.import_bundle(path, root=tmp_path)
    assert report.refused == {} and report.merged
    preset = path.name.split("-")[0]  # smoke-<date>..., full-<where>-<date>...
    planned = {e.run_id for e in plan.plan(preset, CHAPTERS)}
    for run_id in report.merged:
        config = from_dict(json.loads((tmp_path / run_id / store.RECORD).read_text())["config"])
        record = store.verified(config, tmp_path)
        assert record is not None and record["run_id"] == run_id
        assert run_id in planned, f"{path.name}: {run_id} is not a run of preset {preset}"
