"""The run store: each run lives in ``<root>/<run_id>/`` where ``run_id`` hashes its non-default settings.

``<root>/<run_id>/config.json`` holds the settings in readable form and ``record.json`` the results. What the
store promises:

* **One run, one trainer.** :func:`get_or_run` trains under the run's lock (``<run_id>/.lock``, an OS file lock
  released when its process dies): a second process asking for the same run waits and returns the stored record.
* **Whole records.** A record is written atomically (temporary file, fsync, rename) and last, after every other
  file of the run, so a run killed at any moment leaves a whole record or none, and "record exists" means "run
  finished". A killed write's temporary file is removed by the next write of the same file.
* **Verified records.** A record carries a checksum of its content, provenance (randweights version, git commit
  and dirty flag where available, torch, device) and its settings. A record that does not parse, does not match
  its checksum, or disagrees with its own settings is moved aside to ``record.json.corrupt-<time>`` with one
  warning line naming it, and recomputed; a sweep goes on.
* **Old records stay valid** while the non-default settings they were stored under are unchanged (OpenLTH's
  rule): settings added later with defaults are filled in on load.
* **Problems first.** The results folder is created and tested for writing before any data is loaded; a failed
  run (bad input, missing data, Ctrl-C) leaves no folder it created behind.
* Strict JSON (NaN and infinities are written as ``null``), files readable by the group (0644).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig, check_device, from_dict
from .errors import ConfigError

RECORD = "record.json"
LOCK = ".lock"
FILE_MODE = 0o644
RECORD_FORMAT = 2  # 1: no checksum or provenance (before the store was verified); 2: checksum + provenance
log = logging.getLogger("randweights")
TRAININGS_LOG = "trainings.log"  # in the results root: one JSON line per run trained (run_id, host, pid, seconds)
_here = threading.local()  # trainings done by this thread (a sweep task tells "trained" from "reused")


class RunMissing(LookupError):
    """A run has no stored record (or model) and training is off (``RANDWEIGHTS_TRAIN=0``)."""

    def __init__(self, run_id: str, what: str = "record"):
        self.run_id = run_id
        super().__init__(f"{run_id}: no stored {what} and training is off (RANDWEIGHTS_TRAIN=0)")


def training_allowed() -> bool:
    """False when ``$RANDWEIGHTS_TRAIN`` is 0: ``get_or_run`` then raises :class:`RunMissing` instead of
    training, and ``sweep`` returns the stored records only (``randweights reproduce`` without CUDA)."""
    return os.environ.get("RANDWEIGHTS_TRAIN", "1").strip().lower() not in ("0", "false", "no")


def trainings_here() -> int:
    """How many runs ``get_or_run`` has trained in this thread."""
    return getattr(_here, "trainings", 0)


def _note_training(folder: Path, seconds: float) -> None:
    """Count a training in this thread and append it to ``<results root>/trainings.log``."""
    _here.trainings = trainings_here() + 1
    line = {"run_id": folder.name, "host": socket.gethostname(), "pid": os.getpid(), "seconds": round(seconds, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with open(folder.parent / TRAININGS_LOG, "a") as f:  # one short append per line: whole lines even with several writers
        f.write(json.dumps(line) + "\n")


def results_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$RANDWEIGHTS_RESULTS``, else ``results/``."""
    return Path(root if root is not None else os.environ.get("RANDWEIGHTS_RESULTS", "results"))


# ---------------------------------------------------------------------------------------------- files
def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file, or the whole new one, never a part. The file
    is readable by the group (0644). Temporary files that a killed earlier write of ``path`` left are removed:
    writes of one path are serialized by the run's lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None, tuples as lists and numpy scalars as Python numbers: what strict
    JSON can hold, so that every reader (``jq``, JavaScript, pandas) reads it and a reload gives equal values."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(json_safe(obj), indent=1, sort_keys=False, allow_nan=False).encode())


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
    from . import __version__

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
def run_dir(cfg: RunConfig, root=None) -> Path:
    return results_root(root) / cfg.run_id


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


# ---------------------------------------------------------------------------------------------- training
def run_lock(folder: Path, blocking: bool = True):
    """The lock of one run folder: a file lock on ``<folder>/.lock`` (``fcntl``/``msvcrt``), released when the
    holder exits or dies, so two processes, or two machines on one shared filesystem, never train one run twice."""
    from filelock import FileLock

    return FileLock(str(folder / LOCK), timeout=-1 if blocking else 0)


class RunBusy(RuntimeError):
    """Another process holds the run's lock (raised only by ``get_or_run(..., wait=False)``)."""


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


def get_or_run(cfg: RunConfig, root=None, device: str | None = None, keep_model: bool = False, wait: bool = True) -> dict:
    """Return the stored record of ``cfg``, training it first if there is none. With ``keep_model`` the trained
    state dict is stored as ``model.pt`` beside the record (before it, so a record implies its model).

    Training happens under the run's lock: a second process asking for the same run waits for the first and
    returns its record (or, with ``wait=False``, raises :class:`RunBusy` at once). The steps are always: lock,
    load and verify the record, train if it is missing, write the extra files, write the record last."""
    check_device(device)
    folder = run_dir(cfg, root)
    record, _ = read_record(folder / RECORD, cfg)  # no lock needed to read a finished run
    if _complete(record, folder, keep_model):
        return record
    if not training_allowed():
        raise RunMissing(cfg.run_id, "record" if record is None else "model")
    created = prepare_folder(folder, root)
    from filelock import Timeout

    try:
        with run_lock(folder, blocking=wait):
            record = load(cfg, root)  # another process may have finished it while we waited; a bad one is moved
            if _complete(record, folder, keep_model):
                return record
            return _train_and_store(cfg, folder, device, keep_model)
    except Timeout as err:
        raise RunBusy(f"{folder}: another process is training this run") from err
    except BaseException:
        remove_if_empty(created)  # bad input, missing data, Ctrl-C: leave no empty folder behind
        raise


def _complete(record: dict | None, folder: Path, keep_model: bool) -> bool:
    return record is not None and (not keep_model or (folder / "model.pt").is_file())


def _train_and_store(cfg: RunConfig, folder: Path, device: str | None, keep_model: bool) -> dict:
    from .train import run  # heavy import only when training

    start = time.perf_counter()
    model, record = run(cfg, device)  # nothing is written before the run has finished
    write_json(folder / "config.json", cfg.to_dict())
    if keep_model:
        write_atomic(folder / "model.pt", _state_bytes(model))
    from .compact import save_for_run  # issue 12: the compact file, before the record

    record.update(save_for_run(model, folder))
    record = json_safe({**record, **provenance(), "record_format": RECORD_FORMAT})
    record.pop("checksum", None)
    record["checksum"] = checksum(record)
    write_json(folder / RECORD, record)  # last: a record means the run is finished
    _note_training(folder, time.perf_counter() - start)
    return record


def _state_bytes(model: torch.nn.Module) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def load_state(cfg: RunConfig, root=None) -> dict:
    """The state dict stored by ``get_or_run(cfg, keep_model=True)``."""
    return torch.load(run_dir(cfg, root) / "model.pt", map_location="cpu", weights_only=True)


def sweep(configs: Iterable[RunConfig], root=None, device: str | None = None, desc: str = "sweep", executor=None, **kwargs):
    """``get_or_run`` over ``configs``; rerunning after an interruption trains only missing runs. Returns the
    records; with training off (:func:`training_allowed`) only the stored ones.

    Several processes may run the same sweep at once: a run another worker is training is skipped at first and
    collected at the end (waiting for it then), so N workers share the runs and each run is trained once.

    With ``executor`` (any ``concurrent.futures.Executor``: a process pool, Dask's, submitit's) every distinct run
    is a task of :func:`randweights.sweeps.sweep` (``kwargs`` go there) and the call returns its Summary."""
    if executor is not None:
        from . import sweeps

        return sweeps.sweep(configs, executor, root=root, device=device, **kwargs)
    from .train import progress

    configs = list(configs)
    if not training_allowed():
        return [r for r in (load(cfg, root) for cfg in configs) if r is not None]
    records: dict[int, dict] = {}
    busy = []
    for i, cfg in enumerate(progress(configs, desc=desc)):
        try:
            records[i] = get_or_run(cfg, root, device, wait=False)
        except RunBusy:
            busy.append(i)
    for i in busy:
        records[i] = get_or_run(configs[i], root, device)
    return [records[i] for i in range(len(configs))]


def frame(records: Iterable[dict]):
    """Records as a pandas DataFrame (one row per run; lists such as ``history`` kept as objects)."""
    import pandas as pd

    return pd.DataFrame([{k: v for k, v in r.items() if k != "config"} for r in records])


def code_label(record: dict) -> str:
    """Which code trained a record: ``0.1.0 @ 1a2b3c4d5e`` (`` +changes`` when the checkout had uncommitted
    changes), the version alone without git, or ``not recorded`` for records older than provenance."""
    version, commit, dirty = (record.get(k) for k in ("randweights_version", "git_commit", "git_dirty"))
    if not isinstance(version, str):
        return "not recorded"
    if not isinstance(commit, str):
        return version
    return f"{version} @ {commit[:10]}" + (" +changes" if dirty is True else "")


def what_ran(frame, by: list[str], root=None, **columns):
    """A chapter's "What ran" table: ``frame`` (records as rows) grouped by ``by`` with the named aggregations
    ``columns`` (as ``DataFrame.agg`` takes them), plus ``code``: the version and commit that trained the runs.
    Rows without provenance columns are looked up in the store by ``run_id``."""
    rows = frame.to_dict("records")
    labels = []
    for row in rows:
        if "randweights_version" not in row and isinstance(row.get("run_id"), str):
            try:
                row = json.loads((results_root(root) / row["run_id"] / RECORD).read_text())
            except (OSError, ValueError):
                pass
        labels.append(code_label(row))
    table = frame.assign(code=labels).groupby(by).agg(**columns, code=("code", lambda s: ", ".join(sorted(set(s)))))
    return table
