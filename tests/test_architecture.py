"""The package's structure: layers that import only downward, no imports of our own modules hidden in functions,
and every public module named in the README's module table and in the API reference (book/api.md)."""

from __future__ import annotations

import ast
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "randweights"


# ---------------------------------------------------------------------------------------------- the modules
def public_modules() -> list[str]:
    """Every public module of the package (no part of its name starting with ``_``), found on disk with
    pkgutil, without importing anything."""
    found: list[str] = []

    def walk(path: Path, prefix: str) -> None:
        for info in pkgutil.iter_modules([str(path)]):
            if info.name.startswith("_"):
                continue
            name = f"{prefix}.{info.name}"
            found.append(name)
            if info.ispkg:
                walk(path / info.name, name)

    walk(PACKAGE, "randweights")
    return sorted(found)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


# ---------------------------------------------------------------------------------------------- local imports
def imported_modules(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The absolute names an import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level == 0:
        return [node.module or ""]
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return [".".join(base + ([node.module] if node.module else []))]


def is_ours(name: str) -> bool:
    return name == "randweights" or name.startswith("randweights.")


def local_imports(path: Path, source: str | None = None) -> list[str]:
    """``file:line  statement`` for every import of ``randweights.*`` inside a function or class body (imports of
    other packages there, such as papermill, dask, submitit or myst_nb, are heavy optional dependencies and
    allowed)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    module, is_package = module_name(path), path.name == "__init__.py"
    found: list[str] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)) and nested:
                if any(is_ours(name) for name in imported_modules(child, module, is_package)):
                    found.append(f"{path.relative_to(ROOT)}:{child.lineno}  {ast.unparse(child)}")
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
            visit(child, inner)

    visit(tree, False)
    return found


def test_the_local_import_check_resolves_relative_and_absolute_imports(tmp_path):
    code = (
        "import os\nfrom . import config\n\n"
        "def f():\n    import papermill\n    from .. import runs\n    import randweights.store as s\n"
        "    from randweights import env\n    from dask import distributed\n\n"
        "class C:\n    def g(self):\n        from .layers import select\n"
    )
    probe = PACKAGE / "methods" / "probe.py"  # parsed as if it were there; nothing is written
    lines = [line.split(":")[1].split()[0] for line in local_imports(probe, code)]
    assert lines == ["6", "7", "8", "13"]


def test_no_function_local_imports_of_our_own_modules():
    found = [line for path in source_files() for line in local_imports(path)]
    assert not found, (
        f"{len(found)} imports of randweights.* inside functions or classes; import at module level, from a lower "
        "layer (pyproject.toml [tool.importlinter]):\n" + "\n".join(found)
    )


def root_names_imported(path: Path) -> list[str]:
    """``file:line  statement`` for every import of a name defined in ``randweights/__init__.py`` (such as
    ``__version__`` or ``make_config``) rather than a module: the package's ``__init__`` sits above every layer."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module, is_package = module_name(path), path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and imported_modules(node, module, is_package) == ["randweights"]:
            names = [a.name for a in node.names if not (PACKAGE / a.name).is_dir() and not (PACKAGE / f"{a.name}.py").is_file()]
            if names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}  {ast.unparse(node)}")
    return found


def test_no_module_imports_names_from_the_package_root():
    found = [line for path in source_files() if path != PACKAGE / "__init__.py" for line in root_names_imported(path)]
    assert not found, "import these from the module that defines them, not from randweights/__init__.py:\n" + "\n".join(found)


# ---------------------------------------------------------------------------------------------- import contracts
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


@pytest.mark.parametrize("contract", ["layers", "services"])
def test_import_contracts(contract):
    """The contracts of pyproject.toml ([tool.importlinter]), as ``make lint`` checks them."""
    pytest.importorskip("importlinter", reason="import-linter is in the test extra: pip install -e '.[test]'")
    done = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo", "--contract", contract],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, f"lint-imports --contract {contract}:\n{done.stdout}\n{done.stderr}"


# ---------------------------------------------------------------------------------------------- docs list them
def readme_table_modules() -> list[str]:
    """The modules in the first column of README's "| module | what it is |" table (``pkg.*`` allowed)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\|\s*module\s*\|", line))
    names = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        names += re.findall(r"`(randweights(?:\.\w+)*(?:\.\*)?)`", line.split("|")[1])
    return names


def api_modules() -> list[str]:
    return re.findall(r"^\.\. automodule:: (\S+)", (ROOT / "book" / "api.md").read_text(), flags=re.M)


def covered(module: str, listed: list[str]) -> bool:
    """Whether ``listed`` names ``module``: itself, or ``pkg.*`` for a package and every module in it."""
    return any(module == name.removesuffix(".*") or (name.endswith(".*") and module.startswith(name[:-1]))
               for name in listed)


def test_readme_module_table_names_every_public_module():
    listed = readme_table_modules()
    assert listed, "README.md has no '| module | what it is |' table"
    missing = [m for m in public_modules() if not covered(m, listed)]
    assert not missing, "README.md's module table does not name: " + ", ".join(missing)


def test_readme_module_table_names_only_existing_modules():
    modules = set(public_modules())
    stale = [n for n in readme_table_modules() if n.removesuffix(".*") not in modules]
    assert not stale, "README.md's module table names modules that do not exist: " + ", ".join(stale)


def test_api_reference_documents_every_public_module():
    listed = api_modules()
    missing = [m for m in public_modules() if m not in listed]
    assert not missing, "book/api.md has no automodule for: " + ", ".join(missing)


def test_api_reference_documents_only_existing_modules_once():
    listed = api_modules()
    modules = set(public_modules())
    assert not [n for n in listed if n not in modules], "book/api.md documents modules that do not exist: " + ", ".join(
        n for n in listed if n not in modules
    )
    assert len(listed) == len(set(listed)), "book/api.md documents a module twice"
