"""The Colab route: install cells and badges derived from pyproject.toml, datasets that download when online."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from randweights import colab, data
from randweights._version import __version__
from randweights.errors import DatasetNotFound

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _src(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def test_the_repository_url_is_written_once_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    url = colab.repository_url()
    assert url.startswith("https://github.com/") and text.count(url) == 1
    extra = re.search(r"^notebooks = \[(.*)\]$", text, re.MULTILINE).group(1)
    assert "papermill" in extra and "ipykernel" in extra  # a kernel, and papermill to run a chapter at a preset
    assert "myst-nb" not in extra and "jupyter-book" not in extra  # the notebooks need nothing of the book's


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_has_a_hidden_install_cell_and_a_colab_badge_from_pyproject(path, tmp_path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    install = code[0]
    assert install["metadata"]["tags"] == [colab.INSTALL_TAG]
    # pinned: the release of this version, whose notebook the badge opens too (never a moving branch)
    assert colab.RELEASE_REF == f"v{__version__}"
    assert f'"randweights[notebooks] @ git+{colab.repository_url()}@v{__version__}"' in _src(install)
    assert [c["metadata"].get("tags") for c in code].count(["parameters"]) == 1
    badges = [c for c in nb["cells"][:3] if c["cell_type"] == "markdown" and colab.BADGE_MARK in _src(c)]
    assert len(badges) == 1 and f"({colab.colab_url(path.stem)})" in _src(badges[0])
    assert f"/blob/v{__version__}/notebooks/{path.stem}.ipynb" in _src(badges[0])
    assert f"notebooks/{path.stem}.ipynb" in colab.colab_url(path.stem)
    ids = [c.get("id") for c in nb["cells"]]
    assert None not in ids and len(set(ids)) == len(ids)  # nbformat 4.5: every cell has its own id
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    assert colab.stamp(copy) is False  # nothing drifted from pyproject.toml


def test_stamp_rewrites_a_drifted_notebook_once(tmp_path):
    copy = tmp_path / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], copy)
    before = len(json.loads(copy.read_text())["cells"])
    assert colab.stamp(copy, url="https://github.com/someone/fork") is True
    nb = json.loads(copy.read_text())
    assert len(nb["cells"]) == before  # replaced in place, not added
    text = copy.read_text()
    assert "git+https://github.com/someone/fork" in text
    assert f"colab.research.google.com/github/someone/fork/blob/v{__version__}/notebooks/" in text
    assert colab.stamp(copy, url="https://github.com/someone/fork") is False
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert colab.stamp(copy, url="https://github.com/someone/fork", ref=commit) is True
    text = copy.read_text()
    assert f"git+https://github.com/someone/fork@{commit}" in text and f"/blob/{commit}/notebooks/" in text
    assert f"@v{__version__}" not in text


def test_stamping_refuses_a_ref_that_does_not_pin_the_code(tmp_path, capsys):
    copy = tmp_path / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], copy)
    before = copy.read_bytes()
    for ref in ("main", "HEAD", "0123abc", ""):
        with pytest.raises(ValueError, match="release tag"):
            colab.stamp(copy, ref=ref)
        with pytest.raises(SystemExit) as exit_:
            colab.main(["--ref", ref, str(copy)])
        assert exit_.value.code == 2
        assert "--ref" in capsys.readouterr().err
    assert copy.read_bytes() == before  # nothing written


def test_colab_url_needs_a_github_repository():
    assert colab.colab_url("laperm", "https://github.com/a/b.git", ref="v1.2.3") == (
        "https://colab.research.google.com/github/a/b/blob/v1.2.3/notebooks/laperm.ipynb")
    with pytest.raises(ValueError, match="not a GitHub repository URL"):
        colab.colab_url("laperm", "https://example.org/a/b")


# ---------------------------------------------------------------------------------------------- downloads
def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_offline_a_missing_dataset_names_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RANDWEIGHTS_DOWNLOAD", raising=False)
    monkeypatch.setattr(data, "reachable", lambda dataset, timeout=3.0: False)
    monkeypatch.setattr(data, "_download", lambda *a: pytest.fail("downloaded while offline"))
    with pytest.raises(DatasetNotFound) as err:
        data.load_arrays("mnist", root=str(tmp_path / "nothing"))
    message = str(err.value)
    assert "\n" not in message and "offline" in message and "RANDWEIGHTS_DATA" in message
    assert not (tmp_path / "nothing").exists()  # nothing written


def test_online_a_missing_dataset_downloads_without_any_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("RANDWEIGHTS_DOWNLOAD", raising=False)
    monkeypatch.setattr(data, "reachable", lambda dataset, timeout=3.0: True)
    calls = []

    def fake_download(dataset: str, root: Path) -> None:  # what torchvision leaves on disk
        calls.append(dataset)
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for split, n in (("train", 30), ("t10k", 10)):
            _write_idx(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
            _write_idx(raw / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)

    monkeypatch.setattr(data, "_download", fake_download)
    arrays = data.load_arrays("mnist", root=str(tmp_path))
    assert calls == ["mnist"] and arrays["train"][0].shape == (30, 28, 28) and len(arrays["test"][1]) == 10
    monkeypatch.setenv("RANDWEIGHTS_DOWNLOAD", "0")  # never: the same call refuses to download
    with pytest.raises(DatasetNotFound):
        data.load_arrays("mnist", root=str(tmp_path / "elsewhere"))
    assert calls == ["mnist"]
