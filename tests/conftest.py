"""Shared fixtures. Datasets come from $RANDWEIGHTS_DATA; on CI (CI=true) a missing dataset fails, elsewhere skips."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one thread each, for them and their subprocesses
    os.environ["OMP_NUM_THREADS"] = "1"


@contextlib.contextmanager
def benchmark_module(name: str):
    """``benchmarks/<name>.py`` loaded as a module (with ``benchmarks/`` on the path for its own imports, and the module
    registered while in use: dataclasses look their module up)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path):
    monkeypatch.setenv("RANDWEIGHTS_PROGRESS", "0")


def require_dataset(name: str) -> None:
    from randweights import data
    from randweights.errors import DatasetNotFound

    try:
        data.load_arrays(name)
    except DatasetNotFound as err:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(str(err))


@pytest.fixture
def mnist():
    require_dataset("mnist")


@pytest.fixture(scope="session")
def smoke_chapters(tmp_path_factory):
    """Execute notebooks at the smoke preset once per session, into a scratch copy of the book.

    ``smoke_chapters(name)`` returns the executed notebook's path; the book test builds from the same folder.
    """
    import shutil
    import time

    from randweights import chapters, reproduce

    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("_build", "chapters", "figures"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copytree(ROOT / "tests" / "golden", root / "tests" / "golden")  # the equivalence appendix reads them
    done: dict[str, Path] = {}

    def run(name: str) -> Path:
        if name not in done:
            old = os.environ.get("RANDWEIGHTS_RESULTS")
            os.environ["RANDWEIGHTS_RESULTS"] = str(root / "results")
            os.environ["RANDWEIGHTS_PROGRESS"] = "0"
            try:
                start = time.perf_counter()
                done[name] = reproduce.execute(name, root, "smoke")
                # its status, as `randweights reproduce` leaves it, for the book's status page
                status = reproduce.ChapterStatus.measure(chapters.get(name), "smoke", time.perf_counter() - start, True,
                                                         True, None, root / "results")
                reproduce.write_status(root, status)
            finally:
                if old is None:
                    os.environ.pop("RANDWEIGHTS_RESULTS", None)
                else:
                    os.environ["RANDWEIGHTS_RESULTS"] = old
        return done[name]

    run.root = root
    return run


def figure_cells(nb: dict) -> list[dict]:
    """The cells of a notebook that make a numbered book figure (``mystnb.figure`` metadata)."""
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "figure" in c["metadata"].get("mystnb", {})]


def check_smoke_notebook(path: Path, min_images: int) -> list[dict]:
    """Assert an executed chapter has no error output, at least ``min_images`` figures, each shown by its own cell
    with a label for the book and followed by its caption, its sentences quoting results shown as Markdown outputs (the run note
    filled in) and the smoke preset injected by papermill; return its code cells' outputs."""
    import json

    from randweights import report, reproduce

    nb = json.loads(path.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= min_images
    figures = figure_cells(nb)
    assert len(figures) >= min_images
    for cell, after in zip(nb["cells"], nb["cells"][1:]):
        if cell in figures:  # the figure is the cell's one displayed output, its caption the cell after it
            shown = [o for o in cell["outputs"] if o["output_type"] in ("display_data", "execute_result")]
            assert len(shown) == 1 and "image/png" in shown[0]["data"], cell["metadata"]["mystnb"]
            assert cell["metadata"]["mystnb"]["figure"]["name"].startswith("fig-")
            assert "figure-caption" in after["metadata"].get("tags", []) and len("".join(after["source"])) > 40
            # its provenance travels with the image, for the book's caption: preset, runs, the redraw command, the CSV
            (line,) = reproduce.figure_provenance(cell)
            assert line.startswith("Preset `smoke` · ") and " --figure " in line and line.endswith(".csv)"), line
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'preset = "smoke"' in "".join(injected[0]["source"])
    # nothing only the book can render: no glue, and every sentence with numbers is a Markdown output
    assert not [o for o in outputs if "scrapbook" in o.get("metadata", {})]
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        assert "{glue" not in source and "myst_nb" not in source
        if cell["cell_type"] == "code" and "report.md(" in source:
            assert [o for o in cell["outputs"] if "text/markdown" in o.get("data", {})], source[:80]
    texts = ["".join(o["data"]["text/markdown"]) for o in outputs if "text/markdown" in o.get("data", {})]
    assert [t for t in texts if t.startswith("**The runs on this page:**")]  # the run note, filled in at the end
    assert report.RUN_NOTE_PENDING not in texts and not [t for t in texts if "{numbers" in t]
    return outputs


def check_jupyter_html(path: Path) -> str:
    """Render an executed chapter as ``jupyter nbconvert --to html`` does and assert it shows every figure of the
    chapter as an image and nothing written for the book only; return the HTML."""
    import json

    import nbformat
    from nbconvert import HTMLExporter

    nb = json.loads(path.read_text())
    html, _ = HTMLExporter().from_notebook_node(nbformat.reads(json.dumps(nb), as_version=4))
    assert len(re.findall(r'<img [^>]*src="data:image/png', html)) >= len(figure_cells(nb)) > 0
    for raw in ("{glue", "```{", "{numref}", "{doc}", "{cite"):
        assert raw not in html, (path.name, raw, html[max(0, html.find(raw) - 200):html.find(raw) + 200])
    assert "The runs on this page:" in html
    return html


def pytest_collection_modifyitems(config, items):
    """Every test that executes a notebook (the ``smoke_chapters`` fixture) is slow, wherever it lives, and marked
    ``smoke_book``: ``make test`` runs those in one process, after the others ran on two workers (``pytest -n 2``),
    so the session's smoke chapters are executed once."""
    for item in items:
        if "smoke_chapters" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.smoke_book)


@pytest.fixture(scope="session")
def built_book(smoke_chapters):
    """Every available chapter executed at the smoke preset and the book built from them, once per session:
    ``(exit code of the build, the html folder)``. The book test and the browser test share it."""
    from randweights import reproduce

    root = smoke_chapters.root
    for name in reproduce.available_chapters(root):
        smoke_chapters(name)
    code = reproduce.build_book(root)
    return code, root / "book" / "_build" / "html"
