"""Shared fixtures. Datasets come from $RANDWEIGHTS_DATA; on CI (CI=true) a missing dataset fails, elsewhere skips."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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

    from randweights import reproduce

    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("_build", "chapters", "figures"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    done: dict[str, Path] = {}

    def run(name: str) -> Path:
        if name not in done:
            old = os.environ.get("RANDWEIGHTS_RESULTS")
            os.environ["RANDWEIGHTS_RESULTS"] = str(root / "results")
            os.environ["RANDWEIGHTS_PROGRESS"] = "0"
            try:
                done[name] = reproduce.execute(name, root, "smoke")
            finally:
                if old is None:
                    os.environ.pop("RANDWEIGHTS_RESULTS", None)
                else:
                    os.environ["RANDWEIGHTS_RESULTS"] = old
        return done[name]

    run.root = root
    return run


def check_smoke_notebook(path: Path, min_images: int) -> list[dict]:
    """Assert an executed chapter has no error output, at least ``min_images`` figures and the smoke preset
    injected by papermill; return its code cells' outputs."""
    import json

    nb = json.loads(path.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # a figure is shown directly or glued for a numbered {glue:figure} (myst-nb stores it under a papermill key)
    assert sum(any(k.endswith("image/png") for k in o.get("data", {})) for o in outputs) >= min_images
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and 'preset = "smoke"' in "".join(injected[0]["source"])
    # every glue key the page's text or figures refer to is glued by the executed notebook (else the book shows a gap)
    glued = {o.get("metadata", {}).get("scrapbook", {}).get("name") for o in outputs}
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    referenced = set(re.findall(r"\{glue(?::[a-z]+)?\}`([^`]+)`", text)) | set(re.findall(r"```\{glue(?::[a-z]+)?\} *([\w-]+)", text))
    assert referenced and not referenced - glued, f"referenced but never glued: {sorted(referenced - glued)}"
    return outputs


def pytest_collection_modifyitems(config, items):
    """Every test that executes a notebook (the ``smoke_chapters`` fixture) is slow, wherever it lives."""
    for item in items:
        if "smoke_chapters" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


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
