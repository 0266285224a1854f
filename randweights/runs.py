"""The run store: each run lives in ``<root>/<run_id>/`` where ``run_id`` hashes its non-default settings.

``<root>/<run_id>/config.json`` holds the settings in readable form and ``record.json`` the results. A record is
written atomically (temporary file, fsync, rename), so a run killed at any moment leaves a whole record or
none; :func:`get_or_run` returns a stored record without training, and :func:`sweep` therefore resumes a killed
sweep by computing only what is missing.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig

RECORD = "record.json"
LOCK = ".lock"


def results_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$RANDWEIGHTS_RESULTS``, else ``results/``."""
    return Path(root if root is not None else os.environ.get("RANDWEIGHTS_RESULTS", "results"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file, or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=False).encode())


def run_dir(cfg: RunConfig, root=None) -> Path:
    return results_root(root) / cfg.run_id


def load(cfg: RunConfig, root=None) -> dict | None:
    """The stored record of ``cfg``, or None."""
    path = run_dir(cfg, root) / RECORD
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record.get("config") != cfg.to_dict():
        raise RuntimeError(f"{path}: stored settings differ from the requested ones (hash collision or edited file)")
    return record


def run_lock(folder: Path, blocking: bool = True):
    """The lock of one run folder: a file lock on ``<folder>/.lock`` (``fcntl``/``msvcrt``), released when the
    holder exits or dies, so two processes, or two machines on one shared filesystem, never train one run twice."""
    from filelock import FileLock

    return FileLock(str(folder / LOCK), timeout=-1 if blocking else 0)


class RunBusy(RuntimeError):
    """Another process holds the run's lock (raised only by ``get_or_run(..., wait=False)``)."""


def get_or_run(cfg: RunConfig, root=None, device: str | None = None, keep_model: bool = False, wait: bool = True) -> dict:
    """Return the stored record of ``cfg``, training it first if there is none. With ``keep_model`` the trained
    state dict is stored as ``model.pt`` beside the record (before it, so a record implies its model).

    Training happens under the run's lock: a second process asking for the same run waits for the first and
    returns its record (or, with ``wait=False``, raises :class:`RunBusy` at once). The steps are always: lock,
    load the record, train if it is missing, write the extra files, write the record last."""
    folder = run_dir(cfg, root)
    record = load(cfg, root)
    if _complete(record, folder, keep_model):
        return record
    folder.mkdir(parents=True, exist_ok=True)
    from filelock import Timeout

    try:
        with run_lock(folder, blocking=wait):
            record = load(cfg, root)  # another process may have finished it while we waited
            if _complete(record, folder, keep_model):
                return record
            return _train_and_store(cfg, folder, device, keep_model)
    except Timeout as err:
        raise RunBusy(f"{folder}: another process is training this run") from err


def _complete(record: dict | None, folder: Path, keep_model: bool) -> bool:
    return record is not None and (not keep_model or (folder / "model.pt").is_file())


def _train_and_store(cfg: RunConfig, folder: Path, device: str | None, keep_model: bool) -> dict:
    from .train import run  # heavy import only when training

    model, record = run(cfg, device)  # nothing is written before the run has finished
    write_json(folder / "config.json", cfg.to_dict())
    if keep_model:
        write_atomic(folder / "model.pt", _state_bytes(model))
    write_json(folder / RECORD, record)  # last: a record means the run is finished
    return record


def _state_bytes(model: torch.nn.Module) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def load_state(cfg: RunConfig, root=None) -> dict:
    """The state dict stored by ``get_or_run(cfg, keep_model=True)``."""
    return torch.load(run_dir(cfg, root) / "model.pt", map_location="cpu", weights_only=True)


def sweep(configs: Iterable[RunConfig], root=None, device: str | None = None, desc: str = "sweep") -> list[dict]:
    """``get_or_run`` over ``configs``; rerunning after an interruption trains only missing runs.

    Several processes may run the same sweep at once: a run another worker is training is skipped at first and
    collected at the end (waiting for it then), so N workers share the runs and each run is trained once."""
    from .train import progress

    configs = list(configs)
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
