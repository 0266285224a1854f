"""The ``randweights`` console script: ``randweights --version`` answers without importing the package.

Importing anything under ``randweights`` runs the package's ``__init__``, which registers every method and
architecture and so imports torch (seconds). This module lives outside the package for that reason: for
``--version`` (or ``-V``) it reads ``randweights/_version.py`` as text, via the import system's finder (which
locates the package without executing it); for every other command it imports :mod:`randweights.cli` with
``importlib`` (the one import of the package it makes, done only when a command needs it) and runs its ``main``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path


def version() -> str:
    """``__version__`` of ``randweights/_version.py``, read without importing the package."""
    spec = importlib.util.find_spec("randweights")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("randweights is not installed")
    source = Path(next(iter(spec.submodule_search_locations)), "_version.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError("randweights/_version.py sets no __version__")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(f"randweights {version()}")
        return 0
    return importlib.import_module("randweights.cli").main(args)


if __name__ == "__main__":
    sys.exit(main())
