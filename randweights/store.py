"""The run store: records, their checks, locks, provenance and analysis caches; nothing about training or torch.

Each run lives in ``<root>/<run_id>/`` where ``run_id`` hashes its non-default settings. ``config.json`` holds
the settings in readable form and ``record.json`` the results. What the store promises:

* **One run, one writer.** A run's files are written under its lock (``<run_id>/.lock``, an OS file lock
  released when its process dies), so two processes, or two machines sharing the folder, never write one run.
* **Whole records.** A record is written atomically (temporary file, fsync, rename) and last, after every other
  file of the run, so a run killed at any moment leaves a whole record or none, and "record exists" means "run
  finished". A killed write's temporary file is removed by the next write of the same file.
* **Verified records.** A record carries a checksum of its content, provenance (randweights version, git commit
  and dirty flag where available) and its settings. A record that does not parse, does not match its checksum,
  or disagrees with its own settings is moved aside to ``record.json.corrupt-<time>`` with one warning line
  naming it, and recomputed.
* **Old records stay valid** while the non-default settings they were stored under are unchanged (OpenLTH's
  rule): settings added later with defaults are filled in on load, and fields renamed since are read under their
  new names (``weights`` -> ``weight_count``).
* **Problems first.** The results folder is created and tested for writing before any work starts; a failed
  run leaves no folder it created behind.
* **Caches.** Analyses a chapter computes from stored runs are cached under the results root, computed once
  under a lock (:func:`cached_json`, :func:`cached_arrays`).
* Strict JSON (NaN and infinities are written as ``null``), files readable by the group (0644).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from . import env
from ._version import __version__
from .config import RunConfig, from_dict
from .errors import ConfigError
from .fsutil import json_safe, write_atomic, write_json

RECORD = "record.json"
CONFIG = "config.json"
MODEL = "model.pt"
LOCK = ".lock"
RECORD_FORMAT = 2  # 1: no checksum or provenance (before the store was verified); 2: checksum + provenance
RENAMED_FIELDS = {"weights": "weight_count"}  # record fields renamed since records were first written: old -> new
log = logging.getLogger("randweights")
TRAININGS_LOG = "trainings.log"  # in the results root: one JSON line per run trained (run_id, host, pid, seconds)
_here = threading.local()  # trainings done by this thread (a sweep task tells "trained" from "reused")


class RunBusy(RuntimeError):
    """Another process holds the run's lock (raised only when not waiting for it)."""


def trainings_here() -> int:
    """How many runs this thread has trained (:func:`note_training`)."""
    return getattr(_here, "trainings", 0)


def note_training(folder: Path, seconds: float) -> None:
    """Count a training in this thread and append it to ``<results root>/trainings.log``."""
    _here.trainings = trainings_here() + 1
    line = {"run_id": folder.name, "host": socket.gethostname(), "pid": os.getpid(), "seconds": round(seconds, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(folder.parent / TRAININGS_LOG, "a") as f:  # one short append per line: whole lines even with several writers
        f.write(json.dumps(line) + "\n")


def results_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$RANDWEIGHTS_RESULTS``, else ``results/``."""
    return Path(root) if root is not None else env.results_dir()


def run_dir(cfg: RunConfig, root=None) -> Path:
    return results_root(root) / cfg.run_id


def checksum(record: dict) -> str:
    """``sha256:`` of the record's canonical JSON (sorted keys, no spaces), without its ``checksum`` field."""
    content = {k: v for k, v in record.items() if k != "checksum"}
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- provenance
@functools.cache
def provenance() -> dict[str, Any]:
    """randweights version and, when the package is a git checkout, its commit and whether tracked files differ
    from it (computed once per process)."""
    package = Path(__file__).resolve().parent
    commit, dirty = None, None
    try:
        git = ["git", "-C", str(package.parent)]
        top = subprocess.run([*git, "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10)
        if top.returncode == 0 and Path(top.stdout.strip()).resolve() == package.parent:
            commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip() or None
            status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=30)
            dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):  # no git, or too slow: provenance without the commit
        pass
    return {"randweights_version": __version__, "git_commit": commit, "git_dirty": dirty}


# ---------------------------------------------------------------------------------------------- reading
def check_record(record: Any, cfg: RunConfig) -> str | None:
    """What is wrong with ``record`` as the record of ``cfg`` (None: nothing). Checks the checksum (records of
    format 1 have none), that its settings parse and give ``cfg``'s run key, that its flat fields, lr and weight
    decay agree with those settings, and that its accuracies are numbers in [0, 1]."""
    if not isinstance(record, dict):
        return "not a JSON object"
    try:
        actual = checksum(record)
    except ValueError:
        return "it holds NaN or an infinity (not strict JSON)"
    if "checksum" in record and record["checksum"] != actual:
        return "checksum mismatch: the file was edited or damaged"
    try:
        stored = from_dict(record["config"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return f"its settings do not parse ({type(err).__name__}: {err})"
    if stored.run_id != cfg.run_id or record.get("run_id") != cfg.run_id:
        return f"its settings are those of run {stored.run_id}, not {cfg.run_id}"
    expected = {**stored.flat(), "lr": stored.lr, "weight_decay": stored.weight_decay}
    for key, value in expected.items():
        if key in record and record[key] != value:
            return f"{key} is {record[key]!r} but its settings say {value!r}"
    for key, value in record.items():
        if key.endswith("accuracy") and value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            return f"{key} is {value!r}, not an accuracy in [0, 1]"
    if not isinstance(record.get("test_accuracy"), (int, float)):
        return f"test_accuracy is {record.get('test_accuracy')!r}, not a number"
    return None


def read_record(path: Path, cfg: RunConfig) -> tuple[dict | None, str | None]:
    """``(record, None)``, ``(None, None)`` when there is no record, or ``(None, problem)``. Settings added since
    the record was written are filled in with their defaults (in memory; the file is not changed)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as err:
        return None, f"cannot be read ({err.strerror})"
    try:
        record = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        return None, "empty" if not text.strip() else f"not JSON ({err})"
    problem = check_record(record, cfg)
    if problem is not None:
        return None, problem
    for old, new in RENAMED_FIELDS.items():
        if old in record and new not in record:
            record[new] = record[old]
    for key, value in cfg.flat().items():
        record.setdefault(key, value)
    record["config"] = cfg.to_dict()
    return record, None


def move_aside(path: Path, problem: str) -> Path | None:
    """Rename a bad record to ``<name>.corrupt-<UTC time>`` and say so in one warning line."""
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    if target.exists():
        target = target.with_name(f"{target.name}-{os.getpid()}")
    try:
        os.replace(path, target)
    except FileNotFoundError:  # another process moved it first
        return None
    except OSError as err:
        log.warning(f"randweights: warning: {path}: {problem}; could not move it aside ({err.strerror}); recomputing")
        return None
    log.warning(f"randweights: warning: {path}: {problem}; moved aside to {target.name}; recomputing")
    return target


def load(cfg: RunConfig, root=None) -> dict | None:
    """The stored, verified record of ``cfg``, or None. A bad record is moved aside (see :func:`move_aside`)."""
    path = run_dir(cfg, root) / RECORD
    record, problem = read_record(path, cfg)
    if problem is not None:
        move_aside(path, problem)
    return record


# ---------------------------------------------------------------------------------------------- locks
def run_lock(folder: Path, blocking: bool = True):
    """The lock of one run folder: a file lock on ``<folder>/.lock`` (``fcntl``/``msvcrt``), released when the
    holder exits or dies, so two processes, or two machines on one shared filesystem, never train one run twice."""
    return FileLock(str(folder / LOCK), timeout=-1 if blocking else 0)


def prepare_folder(folder: Path, root=None) -> list[Path]:
    """Create ``folder`` (and the results root) and check that this process can write files in it, before any
    data is loaded or any step taken. Returns the folders it created, deepest first. A results folder that is a
    file, not writable, or on a read-only mount is a ConfigError naming ``results``."""
    created, existing = [], folder
    while not existing.exists() and existing != existing.parent:
        created.append(existing)
        existing = existing.parent
    shown = str(results_root(root))
    if not existing.is_dir():
        raise ConfigError("results", shown, f"a folder ({existing} is a file)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        remove_if_empty(created)
        raise ConfigError("results", shown, f"a folder this process can write ({err.strerror or err})") from None
    return created


def remove_if_empty(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that holds nothing but a released lock file."""
    for folder in folders:
        try:
            if [p.name for p in folder.iterdir()] == [LOCK]:
                (folder / LOCK).unlink()
            folder.rmdir()
        except OSError:
            return


def write_record(folder: Path, record: dict) -> dict:
    """Seal ``record`` (strict JSON, provenance, format, checksum) and write it, last, as ``<folder>/record.json``;
    return it as written. The caller holds the run's lock."""
    record = json_safe({**record, **provenance(), "record_format": RECORD_FORMAT})
    for old, new in RENAMED_FIELDS.items():
        if old in record:
            record.setdefault(new, record.pop(old))
    record.pop("checksum", None)
    record["checksum"] = checksum(record)
    write_json(folder / RECORD, record)
    return record


def code_label(record: dict) -> str:
    """Which code trained a record: ``0.1.0 @ 1a2b3c4d5e`` (`` +changes`` when the checkout had uncommitted
    changes), the version alone without git, or ``not recorded`` for records older than provenance."""
    version, commit, dirty = (record.get(k) for k in ("randweights_version", "git_commit", "git_dirty"))
    if not isinstance(version, str):
        return "not recorded"
    if not isinstance(commit, str):
        return version
    return f"{version} @ {commit[:10]}" + (" +changes" if dirty is True else "")


# ---------------------------------------------------------------------------------------------- caches
def _cache_lock(path: Path) -> FileLock:
    return FileLock(str(path.with_name(f".{path.name}.lock")))


def cached_json(relpath: str, header: dict, compute: Callable[[], Any], root=None, field: str = "result") -> Any:
    """``compute()`` once: stored as ``{**header, field: result}`` in ``<results root>/<relpath>`` (atomic JSON) and
    computed under that file's lock, so that two processes compute it once. A stored file whose header differs
    (other settings, an older analysis version) or that does not parse is computed again."""
    path = results_root(root) / relpath
    wanted = json.loads(json.dumps(json_safe(header), default=str))

    def stored() -> tuple[bool, Any]:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return False, None
        ok = isinstance(data, dict) and field in data and all(data.get(k) == v for k, v in wanted.items())
        return ok, data[field] if ok else None

    found, value = stored()
    if found:
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    with _cache_lock(path):
        found, value = stored()
        if found:
            return value
        value = compute()
        write_json(path, {**wanted, field: value})
    return value


def cached_arrays(relpath: str, compute: Callable[[], dict[str, np.ndarray]], root=None) -> dict[str, np.ndarray]:
    """Arrays computed once and stored as ``<results root>/<relpath>`` (an ``.npz``, atomic, under its lock)."""
    path = results_root(root) / relpath

    def stored() -> dict[str, np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            return None

    found = stored()
    if found is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    with _cache_lock(path):
        found = stored()
        if found is not None:
            return found
        arrays = compute()
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        write_atomic(path, buffer.getvalue())
    return arrays
