"""Every chapter renders from an imported bundle alone, without training: the smoke runs are exported, imported
into a fresh results folder, and every notebook executes there with training off and CUDA hidden, rebuilding the
trained networks it reads from their compact files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import figure_cells, require_dataset

from randweights import plan, reproduce, store, stored, train
from randweights.chapters import CHAPTERS

pytestmark = pytest.mark.slow  # executes every notebook twice (trained, then from the bundle)

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "randweights", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def _run_files(results: Path) -> dict[str, bytes]:
    """Every run folder's record, by run id (what a training would add to or rewrite)."""
    return {f.name: (f / store.RECORD).read_bytes() for f in results.iterdir() if (f / store.RECORD).is_file()}


def test_every_chapter_renders_from_an_imported_bundle_without_training(smoke_chapters, tmp_path):
    entries = plan.plan("smoke", CHAPTERS)
    for dataset in sorted({e.config.data.dataset for e in entries}):
        require_dataset(dataset)
    names = reproduce.available_chapters(smoke_chapters.root)
    for name in names:  # trains the smoke runs (shared with the notebook tests of this session)
        smoke_chapters(name)
    bundle = tmp_path / "smoke.tar.gz"
    done = _cli("bundle", "export", "--preset", "smoke", "--results", str(smoke_chapters.root / "results"), str(bundle))
    assert done.returncode == 0, done.stderr
    assert "without the network" not in done.stdout and "not stored" not in done.stdout, done.stdout
    results = tmp_path / "imported"
    done = _cli("bundle", "import", str(bundle), "--results", str(results))
    assert done.returncode == 0 and f"merged {len(entries)}," in done.stdout, done.stdout + done.stderr
    networks = [e for e in entries if e.keep_model or e.reads_compact]
    assert networks and all((results / e.run_id / "compact.rwc").is_file() for e in networks)
    assert not any((results / e.run_id / store.MODEL).exists() for e in entries)  # only the compact files travel
    before = _run_files(results)

    # --max-compact-bits leaves out whole the runs whose compact files hold trained weights (their records hold the
    # files' SHA-256): every run it carries reads back as stored, none as damaged
    small = tmp_path / "small.zip"
    done = _cli("bundle", "export", "--preset", "smoke", "--max-compact-bits", "16", "--results",
                str(smoke_chapters.root / "results"), str(small))
    left_out = json.loads(zipfile.ZipFile(small).read("manifest.json"))["left_out"]
    dense = {e.run_id for e in entries if e.config.method.name == "dense"}
    assert done.returncode == 0 and dense and dense <= set(left_out) and f"{len(left_out)} runs left out" in done.stdout
    assert _cli("bundle", "import", str(small), "--results", str(tmp_path / "small")).returncode == 0
    carried = [e for e in entries if e.run_id not in left_out]
    assert all(store.verified(e.config, tmp_path / "small") is not None for e in carried)
    assert not list((tmp_path / "small").glob("*/*.corrupt-*"))

    book = tmp_path / "repo"  # a fresh checkout's notebooks and book sources, no executed page
    shutil.copytree(ROOT / "book", book / "book", ignore=shutil.ignore_patterns("_build", "chapters", "figures"))
    shutil.copytree(ROOT / "notebooks", book / "notebooks")
    done = _cli("reproduce", "--preset", "smoke", "--no-build", "--root", str(book),
                env={"RANDWEIGHTS_TRAIN": "0", "CUDA_VISIBLE_DEVICES": "", "RANDWEIGHTS_RESULTS": str(results),
                     "RANDWEIGHTS_PROGRESS": "0"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "page notes it" not in done.stderr  # every chapter found all of its runs and networks

    assert _run_files(results) == before  # no run trained: the same run folders, the same records
    assert not (results / store.TRAININGS_LOG).exists()
    assert not list(results.glob("*/" + train.CHECKPOINT)) and not list(results.glob("*/" + store.MODEL))
    for name in names:
        nb = json.loads(reproduce.chapter_path(book, name).read_text())
        tags = [t for c in nb["cells"] for t in c["metadata"].get("tags", [])]
        assert reproduce.FAILED_TAG not in tags and stored.NOTE_TAG not in tags, name
        outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.get("output_type") == "error"], name
        figures = figure_cells(nb)
        assert figures, name
        for cell in figures:  # every figure of the chapter is drawn
            assert [o for o in cell["outputs"] if "image/png" in o.get("data", {})], (name, cell["metadata"]["mystnb"])
