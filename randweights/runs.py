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


def get_or_run(cfg: RunConfig, root=None, device: str | None = None, keep_model: bool = False) -> dict:
    """Return the stored record of ``cfg``, training it first if there is none. With ``keep_model`` the trained
    state dict is stored as ``model.pt`` beside the record (before it, so a record implies its model)."""
    record = load(cfg, root)
    if record is not None and (not keep_model or (run_dir(cfg, root) / "model.pt").is_file()):
        return record
    from .train import CHECKPOINT, Checkpointer, run  # heavy import only when training

    folder = run_dir(cfg, root)
    checkpoint = Checkpointer(folder / CHECKPOINT, cfg.to_dict())  # resumes a killed run; saved every epoch
    model, record = run(cfg, device, checkpoint=checkpoint)
    write_json(folder / "config.json", cfg.to_dict())
    if keep_model:
        buffer = _state_bytes(model)
        write_atomic(folder / "model.pt", buffer)
    write_json(folder / RECORD, record)
    checkpoint.finish()  # removed after the record (RANDWEIGHTS_KEEP_CHECKPOINTS=1 keeps it)
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
    """``get_or_run`` over ``configs`` in order; rerunning after an interruption trains only missing runs."""
    from .train import progress

    configs = list(configs)
    return [get_or_run(cfg, root, device) for cfg in progress(configs, desc=desc)]


def frame(records: Iterable[dict]):
    """Records as a pandas DataFrame (one row per run; lists such as ``history`` kept as objects)."""
    import pandas as pd

    return pd.DataFrame([{k: v for k, v in r.items() if k != "config"} for r in records])
