"""The run store: records, their checks, locks, provenance and analysis caches; nothing about training or torch.

Each run lives in ``<root>/<run_id>/`` where ``run_id`` hashes its non-default settings. ``config.json`` holds
the settings in readable form and ``record.json`` the results. What the store promises:

* **One run, one writer.** A run's files are written under its lock (``<run_id>/.lock``, an OS file lock
  released when its process dies), so two processes, or two machines sharing the folder, never write one run.
  The holder names itself (host, process, since when) in ``<run_id>/.lock.holder``; a process that has waited
  ``RANDWEIGHTS_LOCK_NOTE`` seconds (30) for a lock says once which run it waits for and who holds it. A lock
  file is removed only by its holder, with the empty folder of a run that failed before writing anything, and a
  waiter that then finds its lock file gone (or replaced) makes the folder again and waits on the new one.
* **Whole records.** A record is written atomically (temporary file, fsync, rename) and last, after every other
  file of the run, so a run killed at any moment leaves a whole record or none, and "record exists" means "run
  finished". A killed write's temporary file is removed by the next write of the same file.
* **Verified records.** A record carries a checksum of its content, provenance (randweights version, git commit
  and dirty flag where available), its settings and the SHA-256 of the run's other files (``compact.rwc`` with
  its size, ``config.json``). A record that does not parse, does not match its checksum (a record of format 2
  without one included), disagrees with its own settings, or whose files differ from their SHA-256 is moved
  aside to ``record.json.corrupt-<time>`` (with the damaged file) with one warning line naming it, and
  recomputed. Records written before a field existed are read without that check.
* **Newer records.** A record written by newer code is read when the settings this code does not know are at
  their defaults (the run id says so; one note line), and refused otherwise, or when its format is newer, with a
  :class:`NewerRecord` naming the version that wrote it: never moved aside.
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

import dataclasses
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
from filelock import FileLock, Timeout

from . import env, fsutil
from ._version import __version__
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, from_dict, method_config_class, stored_name
from .errors import ConfigError
from .fsutil import json_safe, sha256_file, write_atomic, write_json

RECORD = "record.json"
CONFIG = "config.json"
MODEL = "model.pt"
COMPACT = "compact.rwc"
LOCK = ".lock"
HOLDER = ".lock.holder"  # who holds the run's lock: {"host", "pid", "since"}, written by the holder
RECORD_FORMAT = 2  # 1: no checksum or provenance (before the store was verified); 2: checksum + provenance
RENAMED_FIELDS = {"weights": "weight_count"}  # record fields renamed since records were first written: old -> new
log = logging.getLogger("randweights")
TRAININGS_LOG = "trainings.log"  # in the results root: one JSON line per run trained (run_id, host, pid, seconds)
_here = threading.local()  # trainings done by this thread (a sweep task tells "trained" from "reused")


class RunBusy(RuntimeError):
    """Another process holds the run's lock (raised only when not waiting for it)."""


class NewerRecord(ConfigError):
    """A record written by newer randweights code than this one can read (a newer format, or settings this code
    does not know set away from their defaults). It is left where it is."""

    def __init__(self, path: Path, record: dict, what: str):
        version = record.get("randweights_version")
        writer = f"randweights {version}" if isinstance(version, str) else "another randweights version"
        super().__init__("record", str(path), f"a record this randweights ({__version__}) can read; it was written by "
                                              f"{writer} ({what}): read it with that version or newer")


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
    return env.results_path(root)


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
PROVENANCE_FIELDS = ("record_format", "randweights_version", "git_commit", "git_dirty")  # only records of format 2+
_noted: set[str] = set()  # records of newer code already noted in this process


def _split_settings(config: Any) -> tuple[dict, dict]:
    """``config`` without the settings this code does not know, and those (``"section.name": value``)."""
    if not isinstance(config, dict) or not isinstance(config.get("method"), dict):
        return config, {}
    classes = {"method": method_config_class(config["method"].get("name")), "data": DataConfig, "model": ModelConfig,
               "train": TrainConfig}
    known, unknown = {}, {}
    for section, values in config.items():
        if section not in classes:
            unknown[section] = values
            continue
        if not isinstance(values, dict):
            known[section] = values
            continue
        names = {stored_name(f) for f in dataclasses.fields(classes[section])} | ({"name"} if section == "method" else set())
        known[section] = {k: v for k, v in values.items() if k in names}
        unknown.update({f"{section}.{k}": v for k, v in values.items() if k not in names})
    return known, unknown


def check_record(record: Any, cfg: RunConfig, path: Path | None = None) -> str | None:
    """What is wrong with ``record`` as the record of ``cfg`` (None: nothing). Checks the checksum (records of
    format 1 have none; one with provenance must), that its settings parse and give ``cfg``'s run key, that its
    flat fields, lr and weight decay agree with those settings, and that its accuracies are numbers in [0, 1].
    A record of newer code is :class:`NewerRecord` (or, with unknown settings at their defaults, a note)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    try:
        actual = checksum(record)
    except ValueError:
        return "it holds NaN or an infinity (not strict JSON)"
    shown = path if path is not None else Path(cfg.run_id) / RECORD
    fmt = record.get("record_format")
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt > RECORD_FORMAT:
        raise NewerRecord(shown, record, f"record format {fmt}; this code reads {RECORD_FORMAT} and older")
    if "checksum" in record and record["checksum"] != actual:
        return "checksum mismatch: the file was edited or damaged"
    if "checksum" not in record and any(k in record for k in PROVENANCE_FIELDS):
        return "its checksum is missing (records with provenance always carry one): edited or damaged"
    try:
        known, unknown = _split_settings(record["config"])
        stored = from_dict(known)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        return f"its settings do not parse ({type(err).__name__}: {err})"
    if unknown:
        names = ", ".join(f"{k}={v!r}" for k, v in unknown.items())
        if stored.run_id != record.get("run_id"):  # newer code hashed them: they differ from their defaults
            raise NewerRecord(shown, record, f"settings this code does not know, not at their defaults: {names}")
        if str(shown) not in _noted:
            _noted.add(str(shown))
            log.warning(f"randweights: note: {shown}: written by randweights {record.get('randweights_version', '(unknown)')} "
                        f"with settings this code does not know, at their defaults ({names}): ignored")
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


def check_files(folder: Path, record: dict) -> tuple[str, Path] | None:
    """What is wrong with the run's files that ``record`` holds the SHA-256 of (``compact.rwc``, its size too,
    and ``config.json``), and which file; None when they match or the record predates these fields."""
    for name, digest_key, size_key in ((COMPACT, "compact_sha256", "compact_bytes"), (CONFIG, "config_sha256", None)):
        if digest_key not in record:
            continue
        path = folder / name
        if not path.is_file():
            return ("missing, though its record lists it" if not (path.exists() or path.is_symlink()) else "not a file"), path
        size = path.stat().st_size
        if size_key is not None and size != record.get(size_key):
            return f"{size} bytes where its record says {record.get(size_key)!r} (truncated or damaged)", path
        if sha256_file(path) != record[digest_key]:
            return "its SHA-256 differs from the one its record holds (damaged or replaced)", path
    return None


def _read(path: Path, cfg: RunConfig) -> tuple[dict | None, str | None, Path]:
    """Like :func:`read_record`, also naming the damaged file (the record, or a file it holds the SHA-256 of)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None, None, path
    except OSError as err:
        return None, f"cannot be read ({err.strerror})", path
    try:
        record = json.loads(text)
    except (ValueError, UnicodeDecodeError) as err:
        return None, "empty" if not text.strip() else f"not JSON ({err})", path
    problem = check_record(record, cfg, path)
    if problem is not None:
        return None, problem, path
    damaged = check_files(path.parent, record)
    if damaged is not None:
        return None, damaged[0], damaged[1]
    for old, new in RENAMED_FIELDS.items():
        if old in record and new not in record:
            record[new] = record[old]
    for key, value in cfg.flat().items():
        record.setdefault(key, value)
    record["config"] = cfg.to_dict()
    return record, None, path


def read_record(path: Path, cfg: RunConfig) -> tuple[dict | None, str | None]:
    """``(record, None)``, ``(None, None)`` when there is no record, or ``(None, problem)``: a damaged record, or
    a run file the record holds the SHA-256 of that differs. Settings added since the record was written are
    filled in with their defaults (in memory; the file is not changed). A record of newer code that this code
    cannot read raises :class:`NewerRecord`."""
    record, problem, _ = _read(path, cfg)
    return record, problem


def move_aside(path: Path, problem: str) -> Path | None:
    """Rename a bad record to ``<name>.corrupt-<UTC time>`` and say so in one warning line."""
    return fsutil.move_aside(path, problem, "recomputing")


def load(cfg: RunConfig, root=None) -> dict | None:
    """The stored, verified record of ``cfg``, or None. A bad record is moved aside (see :func:`move_aside`); so
    is a damaged file of the run that the record holds the SHA-256 of, with its record. The caller holds the
    run's lock (or knows that nobody writes the run)."""
    path = run_dir(cfg, root) / RECORD
    record, problem, damaged = _read(path, cfg)
    if problem is not None:
        if damaged == path:
            move_aside(path, problem)
        elif damaged.exists() or damaged.is_symlink():
            fsutil.move_aside(damaged, problem, "recomputing", also=(path,))
        else:
            move_aside(path, f"{damaged.name} is {problem}")
    return record


def verified(cfg: RunConfig, root=None) -> dict | None:
    """The run's verified record for a reader that trains nothing (:func:`~randweights.runs.load_network`,
    coverage): read without the lock; when it is damaged, checked again and moved aside under the run's lock."""
    folder = run_dir(cfg, root)
    record, problem = read_record(folder / RECORD, cfg)
    if problem is None:
        return record
    with run_lock(folder):
        return load(cfg, root)


# ---------------------------------------------------------------------------------------------- locks
class RunLock:
    """The lock of one run folder: a file lock on ``<folder>/.lock`` (``fcntl``/``msvcrt`` through ``filelock``),
    released when the holder exits or dies, so two processes, or two machines on one shared filesystem, never
    train one run twice.

    Waiting polls a non-blocking lock. A lock file that disappears, or is replaced, while a process waits (its
    holder removed the empty folder of a run that failed) is not an error: the waiter makes the folder again and
    locks the new file; after locking, the waiter checks that the file it locked is still the one at the path
    (otherwise it would hold a lock nobody else sees). The holder writes ``.lock.holder`` (host, process id,
    since when); a waiter that has waited ``note_after`` seconds (``RANDWEIGHTS_LOCK_NOTE``, 30) says once, on
    the ``randweights`` logger, which run it waits for and who holds it."""

    poll = 0.05

    def __init__(self, folder: Path, blocking: bool = True, note_after: float | None = None):
        self.folder = Path(folder)
        self.lock_file = str(self.folder / LOCK)
        self.blocking = blocking
        self.note_after = note_after
        self._lock = FileLock(self.lock_file, timeout=0)

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked

    def _same_file(self) -> bool:
        """The file this process locked is still the one at the lock's path (when filelock says which it is)."""
        context = getattr(self._lock, "_context", None)
        fd = getattr(context, "lock_file_fd", None) if context is not None else getattr(self._lock, "_lock_file_fd", None)
        if not isinstance(fd, int):
            return True
        try:
            held, there = os.fstat(fd), os.stat(self.lock_file)
        except OSError:
            return False
        return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)

    def _try(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        except FileNotFoundError:  # the folder was removed by a holder whose run failed: make it again, retry
            self.folder.mkdir(parents=True, exist_ok=True)
            return False
        if self._same_file():
            return True
        self._lock.release(force=True)  # the file was removed or replaced after we opened it: lock the new one
        return False

    def holder(self) -> str:
        """Who holds the lock, as the holder wrote it: ``process 123 on host since 2025-01-01T00:00:00Z``."""
        try:
            info = json.loads((self.folder / HOLDER).read_text())
            return f"process {info['pid']} on {info['host']} since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process (it has not named itself)"

    def acquire(self) -> RunLock:
        note_after = env.lock_note_seconds() if self.note_after is None else self.note_after
        start, noted = time.monotonic(), False
        while not self._try():
            if not self.blocking:
                raise Timeout(self.lock_file)
            if not noted and time.monotonic() - start >= note_after:
                noted = True
                log.warning(f"randweights: waiting for run {self.folder.name} ({self.folder}): its lock is held by "
                            f"{self.holder()}")
            time.sleep(self.poll)
        try:
            info = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            write_atomic(self.folder / HOLDER, json.dumps(info).encode())
        except OSError:  # a note for waiters only: never a reason to fail the run
            pass
        return self

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        (self.folder / HOLDER).unlink(missing_ok=True)
        self._lock.release(force=True)

    def remove_folder(self, created: list[Path]) -> None:
        """Holding the lock: remove the run folder if it holds nothing but the lock (its run failed before
        writing anything), with the lock file, and the other ``created`` folders (deepest first) left empty;
        then release. A waiter finds the folder gone and makes it again (see the class)."""
        try:
            if self._lock.is_locked and self.folder in created:
                (self.folder / HOLDER).unlink(missing_ok=True)
                if [p.name for p in self.folder.iterdir()] == [LOCK]:
                    os.unlink(self.lock_file)
                    self.folder.rmdir()
                remove_if_empty([p for p in created if p != self.folder])
        except OSError:
            pass
        finally:
            self.release()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def run_lock(folder: Path, blocking: bool = True, note_after: float | None = None) -> RunLock:
    """The lock of one run folder (:class:`RunLock`)."""
    return RunLock(folder, blocking, note_after)


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
    """Remove each of ``folders`` (deepest first) that is empty. A lock file is never removed here: only its
    holder removes it (:meth:`RunLock.remove_folder`), as another process may be waiting on it."""
    for folder in folders:
        try:
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
        named: dict[str, Any] = dict(arrays)  # (numpy's stubs type **kwargs like its allow_pickle flag)
        np.savez_compressed(buffer, **named)
        write_atomic(path, buffer.getvalue())
    return arrays
