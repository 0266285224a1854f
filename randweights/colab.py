"""The Colab and GPU route: every notebook's install cell and "Open in Colab" badge, derived from one place.

The repository URL lives only in ``pyproject.toml`` (``[project.urls] Repository``); an installed package reads it
from its metadata. The notebooks open on Colab before anything is installed, so their first code cell must hold
the URL literally: ``python -m randweights.colab`` writes that cell (tagged ``remove-cell``: hidden in the book)
and the badge cell into every notebook, and a test fails when a notebook has drifted from ``pyproject.toml``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TAG = "remove-cell"  # Jupyter Book drops the cell from the page; papermill and Colab still run it
INSTALL_MARK = "# Install randweights with the notebooks extra"
BADGE_MARK = "colab-badge.svg"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
BRANCH = "main"


def repository_url() -> str:
    """``[project.urls] Repository`` of the checkout's pyproject.toml, else of the installed package's metadata."""
    pyproject = ROOT / "pyproject.toml"
    if pyproject.is_file():
        section = pyproject.read_text().partition("[project.urls]")[2].split("\n[", 1)[0]
        match = re.search(r'^Repository\s*=\s*"([^"]+)"', section, re.MULTILINE)
        if match is None:
            raise LookupError(f"{pyproject}: no Repository in [project.urls]")
        return match.group(1)
    from importlib.metadata import metadata

    for entry in metadata("randweights").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip()
    raise LookupError("randweights' metadata names no Repository URL")


def install_requirement(url: str | None = None) -> str:
    """What pip installs on Colab: the package with every notebook dependency (``[notebooks]``), from git."""
    return f"randweights[notebooks] @ git+{url or repository_url()}"


def colab_url(notebook: str, url: str | None = None) -> str:
    """The Colab address of ``notebooks/<notebook>.ipynb`` on GitHub's default branch."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", url or repository_url())
    if match is None:
        raise ValueError(f"not a GitHub repository URL: {url or repository_url()}")
    owner, repo = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{BRANCH}/notebooks/{notebook}.ipynb"


def install_source(url: str | None = None) -> str:
    return (
        f"{INSTALL_MARK} where it is missing (Colab); the URL is pyproject.toml's [project.urls].\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        "if importlib.util.find_spec(\"randweights\") is None or importlib.util.find_spec(\"myst_nb\") is None:\n"
        "    subprocess.check_call([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                           \"{install_requirement(url)}\"])"
    )


def badge_source(notebook: str, url: str | None = None) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook, url)})"


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def expected_cells(notebook: str, url: str | None = None) -> tuple[dict, dict]:
    """The badge (markdown) and install (code) cells ``notebook`` should have, right after its title cell."""
    badge = {"cell_type": "markdown", "metadata": {}, "source": _lines(badge_source(notebook, url))}
    install = {"cell_type": "code", "execution_count": None, "metadata": {"tags": [INSTALL_TAG]}, "outputs": [],
               "source": _lines(install_source(url))}
    return badge, install


def stamp(path: Path, url: str | None = None) -> bool:
    """Put the badge and install cells into ``path`` (replacing older ones); True when the file changed. Only
    those cells change; the file keeps its JSON layout."""
    raw = path.read_text()
    nb = json.loads(raw)
    cells = nb["cells"]
    keep = [c for c in cells if not _is_badge(c) and not _is_install(c)]
    badge, install = expected_cells(path.stem, url)
    old = [c for c in cells if _is_install(c)]
    if any("id" in c for c in cells):  # nbformat >= 4.5: every cell needs an id; keep the old one
        badge["id"] = "colab-badge"
        install["id"] = old[0].get("id", "install") if old else "install"
    nb["cells"] = keep[:1] + [badge, install] + keep[1:]
    text = json.dumps(nb, indent=1, ensure_ascii=False) + ("\n" if raw.endswith("\n") else "")
    if text == raw:
        return False
    path.write_text(text)
    return True


def _is_badge(cell: dict) -> bool:
    return cell["cell_type"] == "markdown" and BADGE_MARK in _source(cell)


def _is_install(cell: dict) -> bool:
    src = _source(cell)
    return cell["cell_type"] == "code" and ("pip\", \"install" in src or INSTALL_MARK in src)


def main(argv: list[str] | None = None) -> int:
    """``python -m randweights.colab [NOTEBOOK ...]``: stamp the given notebooks (default: ``notebooks/*.ipynb``)."""
    paths = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        if stamp(path):
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
