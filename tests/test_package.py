"""The package as a user installs it: a wheel built from this checkout, installed in a fresh virtual environment."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow  # builds a wheel and a venv (about a minute)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    import shutil

    src = tmp_path_factory.mktemp("src")  # a copy: setuptools writes build/ beside the sources
    for name in ("pyproject.toml", "README.md", "LICENSE", "_randweights_launcher.py"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "randweights", src / "randweights", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True, cwd=out,
    )
    (found,) = out.glob("randweights-*.whl")
    return found


def test_wheel_carries_licence_types_marker_and_metadata(wheel):
    import randweights

    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "randweights/py.typed" in names and "_randweights_launcher.py" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert f"Version: {randweights.__version__}" in meta
    assert "License-Expression: MIT" in meta
    assert "Author: The randweights developers" in meta
    assert "Project-URL: Repository, https://github.com/" in meta
    assert "Classifier: Typing :: Typed" in meta
    assert not any(n.startswith(("tests/", "notebooks/", "book/")) for n in names)


def test_fresh_venv_install_gives_version_and_grouped_help(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    # Reuse this environment's torch and friends (as --system-site-packages would), but not its randweights.
    (site / "_reuse_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, cwd=tmp_path)
    where = subprocess.check_output([str(py), "-c", "import randweights; print(randweights.__file__)"], cwd=tmp_path,
                                    text=True)
    assert where.startswith(str(site)), where
    exe = venv / "bin" / "randweights"
    import randweights

    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"randweights {randweights.__version__}"
    help_text = subprocess.run([str(exe), "train", "--help"], capture_output=True, text=True, cwd=tmp_path).stdout
    for title in ("data (which images):", "model (which network):", "train (how to optimize):", "method edge-popup:"):
        assert title in help_text
    assert "(default: 0.5; allowed: a number in (0, 1])" in " ".join(help_text.split())
    outside = subprocess.run([str(exe), "reproduce"], capture_output=True, text=True, cwd=tmp_path)
    assert outside.returncode == 2 and "git clone https://github.com/randweights/randweights" in outside.stderr
