"""Every ``RANDWEIGHTS_*`` environment variable, read here and nowhere else, with one rule for yes/no values.

================================  ==========================================================================
variable                          meaning
================================  ==========================================================================
``RANDWEIGHTS_DATA``              folder of the datasets (default ``data``)
``RANDWEIGHTS_RESULTS``           folder of the run store (default ``results``; set but empty is an error)
``RANDWEIGHTS_TRAIN``             yes/no: train runs that are not stored (default yes); no: stored runs only
``RANDWEIGHTS_DOWNLOAD``          auto/yes/no: download a missing dataset (auto: when its server answers)
``RANDWEIGHTS_PROGRESS``          auto/yes/no: progress bars (auto: when the output is a terminal)
``RANDWEIGHTS_KEEP_CHECKPOINTS``  yes/no: keep ``checkpoint.pt`` after a run finishes (default no)
``RANDWEIGHTS_FIGURES``           folder where every figure is also written as PNG and SVG (default: the book's)
``RANDWEIGHTS_LOCK_NOTE``         seconds a process waits for another's run lock before saying who holds it (default 30)
``RANDWEIGHTS_ONLY_FIGURE``       a book figure's name: the notebooks write and show that figure only (``reproduce --figure``)
================================  ==========================================================================

Yes/no values: ``1``, ``true``, ``yes``, ``on`` and ``0``, ``false``, ``no``, ``off`` (any case, spaces
ignored); unset or empty means the default. Anything else is a :class:`~randweights.errors.ConfigError` naming
the variable. The variables are read when asked for (not at import), so a test or a notebook may set them.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .errors import ConfigError

DATA = "RANDWEIGHTS_DATA"
RESULTS = "RANDWEIGHTS_RESULTS"
TRAIN = "RANDWEIGHTS_TRAIN"
DOWNLOAD = "RANDWEIGHTS_DOWNLOAD"
PROGRESS = "RANDWEIGHTS_PROGRESS"
KEEP_CHECKPOINTS = "RANDWEIGHTS_KEEP_CHECKPOINTS"
FIGURES = "RANDWEIGHTS_FIGURES"
LOCK_NOTE = "RANDWEIGHTS_LOCK_NOTE"
ONLY_FIGURE = "RANDWEIGHTS_ONLY_FIGURE"
VARIABLES = (DATA, RESULTS, TRAIN, DOWNLOAD, PROGRESS, KEEP_CHECKPOINTS, FIGURES, LOCK_NOTE, ONLY_FIGURE)

_YES = ("1", "true", "yes", "on")
_NO = ("0", "false", "no", "off")
_ALLOWED = "1/true/yes/on or 0/false/no/off"


def _raw(name: str) -> str:
    return os.environ.get(name, "").strip()


def flag(name: str, default: bool) -> bool:
    """The yes/no variable ``name`` (see the module's rule); ``default`` when unset or empty."""
    value = _raw(name).lower()
    if not value:
        return default
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ConfigError(name, os.environ[name], _ALLOWED)


def tristate(name: str) -> bool | None:
    """``auto`` (or unset) as None, else the yes/no value of ``name``."""
    value = _raw(name).lower()
    if value in ("", "auto"):
        return None
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ConfigError(name, os.environ[name], "auto or " + _ALLOWED)


def data_dir() -> Path:
    return Path(_raw(DATA) or "data")


def results_dir() -> Path:
    """``$RANDWEIGHTS_RESULTS``, or ``results`` when unset. Set but empty is a ConfigError: an unset variable
    meant as a path (``RANDWEIGHTS_RESULTS=$TYPO``) must not send runs somewhere else."""
    if RESULTS in os.environ and not _raw(RESULTS):
        raise ConfigError(RESULTS, os.environ[RESULTS], "a folder path (unset it for the default, results/)")
    return Path(_raw(RESULTS) or "results")


def results_path(given: str | os.PathLike | None = None, parameter: str = "results") -> Path:
    """The results folder: ``given``, else :func:`results_dir`. An empty ``given`` (``--results=``) is a
    ConfigError naming ``parameter``: it would mean the working directory."""
    if given is None:
        return results_dir()
    if not isinstance(given, (str, os.PathLike)):
        raise ConfigError(parameter, given, "a folder path")
    if not str(os.fspath(given)).strip():
        raise ConfigError(parameter, os.fspath(given), "a folder path (leave it out for $RANDWEIGHTS_RESULTS or results/)")
    return Path(given)


def figures_dir() -> Path | None:
    value = _raw(FIGURES)
    return Path(value) if value else None


def only_figure() -> str | None:
    """``RANDWEIGHTS_ONLY_FIGURE``: the one book figure to draw (None: every figure)."""
    return _raw(ONLY_FIGURE) or None


def training_allowed() -> bool:
    """False when ``RANDWEIGHTS_TRAIN`` says no: the store then returns stored runs only."""
    return flag(TRAIN, True)


def download_mode() -> bool | None:
    """``RANDWEIGHTS_DOWNLOAD``: None (auto), True (always try) or False (never)."""
    return tristate(DOWNLOAD)


def progress_mode() -> bool | None:
    """``RANDWEIGHTS_PROGRESS``: None (auto: bars on a terminal), True or False."""
    return tristate(PROGRESS)


def keep_checkpoints() -> bool:
    return flag(KEEP_CHECKPOINTS, False)


def lock_note_seconds() -> float:
    """``RANDWEIGHTS_LOCK_NOTE``: seconds of waiting for a run's lock before one line names its holder (30)."""
    value = _raw(LOCK_NOTE)
    if not value:
        return 30.0
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0 or seconds == float("inf"):
        raise ConfigError(LOCK_NOTE, os.environ[LOCK_NOTE], "a number of seconds >= 0")
    return seconds


def current(names: tuple[str, ...] = VARIABLES) -> dict[str, str]:
    """The variables of ``names`` that are set, as they are (to hand on to worker processes)."""
    return {name: os.environ[name] for name in names if name in os.environ}


def apply(values: dict[str, str]) -> None:
    """Set variables handed on by :func:`current` (in a worker process)."""
    unknown = [name for name in values if name not in VARIABLES]
    if unknown:
        raise ConfigError("environment", unknown[0], "one of " + ", ".join(VARIABLES))
    os.environ.update(values)


def set_default(name: str, value: str) -> None:
    """Set ``name`` for this process and its children unless it is set already."""
    if not _raw(name):
        os.environ[name] = value


def set_flag(name: str, value: bool) -> None:
    """Set a yes/no variable for this process and its children (``reproduce`` turns training off)."""
    os.environ[name] = "1" if value else "0"


def command(args: str, root: str | os.PathLike | None = None) -> str:
    """The command line that runs ``randweights <args>`` here, to print for a reader: ``randweights`` where that is
    this interpreter's script on the PATH; else this interpreter with ``-m randweights``, as a path relative to
    ``root`` (default: the working directory) when it lies inside it (``.venv/bin/python -m randweights ...`` after
    ``make book``); else ``python -m randweights ...`` (no machine path)."""
    script = Path(sys.executable).with_name("randweights")
    on_path = shutil.which("randweights")
    if on_path and script.exists() and Path(on_path).resolve() == script.resolve():
        return f"randweights {args}"
    python = Path(sys.executable).absolute()
    base = Path(root if root is not None else os.getcwd()).absolute()
    if python.is_relative_to(base):
        return f"{python.relative_to(base)} -m randweights {args}"
    return f"python -m randweights {args}"
