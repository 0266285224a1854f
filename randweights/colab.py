"""The Colab and GPU route: every notebook's install cell and "Open in Colab" badge, derived from one place.

The repository URL lives only in ``pyproject.toml`` (``[project.urls] Repository``); an installed package reads it
from its metadata. The notebooks open on Colab before anything is installed, so their first code cell must hold
the URL literally: ``python -m randweights.colab`` writes that cell (tagged ``remove-cell``: hidden in the book)
and the badge cell into every notebook, and a test fails when a notebook has drifted from ``pyproject.toml``.

Both are pinned to one git ref, by default the release tag of this version (``v`` + ``randweights.__version__``;
``--ref`` names another tag or a commit): the badge opens the notebook of that release and the install cell installs
the package of the same release, so a notebook never runs against a library newer or older than itself. A branch
name is refused: what it installs changes under the notebook.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ._version import __version__

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TAG = "remove-cell"  # Jupyter Book drops the cell from the page; papermill and Colab still run it
INSTALL_MARK = "# Install randweights with the notebooks extra"
BADGE_MARK = "colab-badge.svg"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
RELEASE_REF = f"v{__version__}"  # the tag a release of this version carries
PINNED_REF = re.compile(r"v\d+\.\d+\.\d+(?:[.-]?[A-Za-z0-9.]+)?|[0-9a-f]{40}")  # a release tag or a full commit hash


def check_ref(ref: str) -> str:
    """``ref`` if it pins the code (a release tag ``vX.Y.Z`` or a 40-digit commit hash), else ValueError."""
    if not isinstance(ref, str) or not PINNED_REF.fullmatch(ref):
        raise ValueError(f"ref must be a release tag (vX.Y.Z) or a full 40-digit commit hash, got {ref!r}")
    return ref


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


def install_requirement(url: str | None = None, ref: str = RELEASE_REF) -> str:
    """What pip installs on Colab: the package with what a notebook needs (``[notebooks]``), from git at ``ref``."""
    return f"randweights[notebooks] @ git+{url or repository_url()}@{check_ref(ref)}"


def colab_url(notebook: str, url: str | None = None, ref: str = RELEASE_REF) -> str:
    """The Colab address of ``notebooks/<notebook>.ipynb`` at ``ref`` on GitHub."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)(?:\.git)?/?", url or repository_url())
    if match is None:
        raise ValueError(f"not a GitHub repository URL: {url or repository_url()}")
    owner, repo = match.groups()
    return f"https://colab.research.google.com/github/{owner}/{repo}/blob/{check_ref(ref)}/notebooks/{notebook}.ipynb"


def install_source(url: str | None = None, ref: str = RELEASE_REF) -> str:
    return (
        f"{INSTALL_MARK} where it is missing (Colab): the release this notebook belongs to\n"
        "# (stamped by `python -m randweights.colab` from pyproject.toml's [project.urls] and the package version).\n"
        "import importlib.util\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        "if importlib.util.find_spec(\"randweights\") is None:\n"
        "    subprocess.check_call([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                           \"{install_requirement(url, ref)}\"])"
    )


def badge_source(notebook: str, url: str | None = None, ref: str = RELEASE_REF) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook, url, ref)})"


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def expected_cells(notebook: str, url: str | None = None, ref: str = RELEASE_REF) -> tuple[dict, dict]:
    """The badge (markdown) and install (code) cells ``notebook`` should have, right after its title cell."""
    badge = {"cell_type": "markdown", "metadata": {}, "source": _lines(badge_source(notebook, url, ref))}
    install = {"cell_type": "code", "execution_count": None, "metadata": {"tags": [INSTALL_TAG]}, "outputs": [],
               "source": _lines(install_source(url, ref))}
    return badge, install


def stamp(path: Path, url: str | None = None, ref: str = RELEASE_REF) -> bool:
    """Put the badge and install cells, pinned to ``ref``, into ``path`` (replacing older ones); True when the file
    changed. Only those cells change; the file keeps its JSON layout."""
    raw = path.read_text()
    nb = json.loads(raw)
    cells = nb["cells"]
    keep = [c for c in cells if not _is_badge(c) and not _is_install(c)]
    badge, install = expected_cells(path.stem, url, ref)
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
    """``python -m randweights.colab [--ref REF] [NOTEBOOK ...]``: stamp the given notebooks (default:
    ``notebooks/*.ipynb``), pinned to ``REF`` (default: this version's release tag)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m randweights.colab", description=main.__doc__)
    parser.add_argument("--ref", default=RELEASE_REF, help=f"release tag or full commit hash (default {RELEASE_REF})")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    try:
        check_ref(args.ref)
    except ValueError as err:
        parser.error(f"--ref: {err}")
    for path in args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb")):
        if stamp(path, ref=args.ref):
            print(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
