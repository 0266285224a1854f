"""What the repository says about itself agrees with itself: environment.yml lists what pyproject.toml does, with
compatible ranges; CITATION.cff, the changelog and the book's repository button name this version and this
repository; the source distribution carries complete tests."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from randweights._version import __version__

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Extras that environment.yml installs (its header says so).
EXTRAS = ("notebooks", "book", "test", "cluster")
# pip names whose conda-forge package has another name: dask[distributed] is dask plus distributed
CONDA_EXTRAS = {"dask": ["distributed"]}


def pyproject_requirements() -> dict[str, Requirement]:
    project = PYPROJECT["project"]
    found: dict[str, Requirement] = {}
    for line in project["dependencies"] + [r for extra in EXTRAS for r in project["optional-dependencies"][extra]]:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name in found and str(found[name].specifier) != str(req.specifier):
            raise AssertionError(f"pyproject.toml gives {name} two ranges: {found[name].specifier}, {req.specifier}")
        found[name] = req
        for extra in sorted(req.extras):
            found[canonicalize_name(extra)] = Requirement(f"{extra}{req.specifier}")
    return found


def environment_requirements() -> dict[str, Requirement]:
    spec = yaml.safe_load((ROOT / "environment.yml").read_text())
    lines: list[str] = []
    for item in spec["dependencies"]:
        if isinstance(item, dict):
            lines += [line for line in item["pip"] if not line.startswith("-")]  # `-e .` is the package itself
        elif not item.startswith(("python=", "pip")) or item.startswith("pip:"):
            lines.append(item)
    reqs = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in reqs}


def test_environment_yml_lists_the_packages_of_pyproject_with_compatible_ranges():
    ours, conda = pyproject_requirements(), environment_requirements()
    assert set(conda) == set(ours), (f"only in environment.yml: {sorted(set(conda) - set(ours))}; "
                                     f"only in pyproject.toml: {sorted(set(ours) - set(conda))}")
    for name, req in conda.items():
        wanted = ours[name].specifier
        pins = [s.version for s in req.specifier if s.operator == "=="]
        if pins:  # a pin (torch, torchvision: the builds on our disk) must lie in pyproject's range
            assert wanted.contains(pins[0], prereleases=True), f"{name}=={pins[0]} is outside pyproject's {wanted}"
        else:  # a range is the same range
            assert req.specifier == wanted, f"{name}: environment.yml {req.specifier}, pyproject.toml {wanted}"
    assert CONDA_EXTRAS["dask"][0] in conda  # the extra of dask[distributed] is a package of its own on conda


def test_citation_changelog_and_book_name_this_version_and_repository():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    repository = PYPROJECT["project"]["urls"]["Repository"]
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["version"] == __version__
    assert citation["repository-code"] == repository
    assert citation["license"] == PYPROJECT["project"]["license"]
    assert all(a.get("name") or a.get("family-names") for a in citation["authors"])
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(__version__)}\]", changelog, flags=re.M)
    book = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert book["repository"]["url"] == repository
    assert book["html"]["use_repository_button"] and book["html"]["use_issues_button"]


@pytest.mark.slow  # builds the source distribution (setuptools, half a minute)
def test_the_sdist_carries_the_tests_with_their_conftest_and_fixtures(tmp_path):
    subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta as b; b.build_sdist(sys.argv[1])", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True)
    (sdist,) = tmp_path.glob("randweights-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    tests = {p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").rglob("*") if p.is_file()
             and "__pycache__" not in p.parts}
    assert "tests/conftest.py" in tests and any(t.startswith("tests/fixtures/") for t in tests)
    assert tests <= names, sorted(tests - names)[:5]
    assert {"_randweights_launcher.py", "randweights/py.typed", "CITATION.cff", "CHANGELOG.md", "LICENSE"} <= names
