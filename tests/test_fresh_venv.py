"""The GPU / Colab route as a new user takes it: a fresh virtual environment with nothing but torch and
``randweights[notebooks]`` executes a chapter notebook (at ``smoke``) through papermill."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _torch_pins() -> list[str]:
    """The torch / torchvision pins of the Makefile (the builds this machine serves); a fresh venv needs torch
    first, as on Colab, where it is preinstalled."""
    pins = re.search(r"^TORCH_PINS \?= (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    return pins.split()


@pytest.mark.slow
def test_a_fresh_venv_with_the_notebooks_extra_runs_a_chapter(tmp_path, mnist):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *_torch_pins()], check=True)
    source = tmp_path / "source"  # a copy of what the package is built from, so no build/ lands in the checkout
    shutil.copytree(ROOT / "randweights", source / "randweights", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([*pip, f"{source}[notebooks]"], check=True)  # not editable: the notebook sees the package only

    work = tmp_path / "work"  # outside the checkout, so `import randweights` finds the installed copy
    work.mkdir()
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
           "RANDWEIGHTS_RESULTS": str(work / "results"), "RANDWEIGHTS_PROGRESS": "0", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    out = work / "edge_popup.ipynb"
    subprocess.run([python, "-m", "papermill", str(ROOT / "notebooks" / "edge_popup.ipynb"), str(out),
                    "-p", "preset", "smoke", "-k", "python3", "--cwd", str(work), "--no-progress-bar"],
                   check=True, env=env, cwd=work)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    where = subprocess.run([python, "-c", "import randweights, papermill; print(randweights.__file__)"], env=env,
                           cwd=work, check=True, capture_output=True, text=True).stdout
    assert str(venv) in where  # the installed package ran, not the checkout
    book = subprocess.run([python, "-c", "import myst_nb"], env=env, cwd=work, capture_output=True, text=True)
    assert book.returncode != 0  # the notebooks extra pulls in nothing of the book's, and the chapter ran without it
    figures = [o for c in nb["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) >= 4  # its figures are the cells' outputs
    assert list((work / "results").glob("*/record.json"))  # the chapter trained its smoke runs there
