"""Files that are whole or absent: atomic writes and strict JSON."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import DiskFull

FILE_MODE = 0o644
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left, disk quota exceeded
log = logging.getLogger("randweights")


def sha256_file(path: str | os.PathLike) -> str:
    """``sha256:`` and the hex digest of a file's bytes (read in blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def aside_name(path: Path) -> Path:
    """``<name>.corrupt-<UTC time>`` beside ``path`` (with the process id when that name is taken)."""
    target = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    if target.exists() or target.is_symlink():
        target = target.with_name(f"{target.name}-{os.getpid()}")
    return target


def move_aside(path: str | os.PathLike, problem: str, then: str, also: tuple[Path, ...] = ()) -> Path | None:
    """Rename a damaged file (or a folder where a file belongs) to ``<name>.corrupt-<UTC time>`` and say so in one
    warning line on the ``randweights`` logger: ``<path>: <problem>; moved aside to <name>; <then>``. The files in
    ``also`` (that depend on it, e.g. the record of a damaged compact file) are moved aside with it and named in
    the same line. Returns the new path (None when another process moved it first or it could not be moved)."""
    path = Path(path)
    target = aside_name(path)
    try:
        os.replace(path, target)
    except FileNotFoundError:  # another process moved it first
        return None
    except OSError as err:
        log.warning(f"randweights: warning: {path}: {problem}; could not move it aside ({err.strerror}); {then}")
        return None
    moved = [target.name]
    for other in also:
        other = Path(other)
        other_target = aside_name(other)
        try:
            os.replace(other, other_target)
            moved.append(other_target.name)
        except OSError:
            continue
    log.warning(f"randweights: warning: {path}: {problem}; moved aside to {', '.join(moved)}; {then}")
    return target


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file, or the whole new one, never a part. The file
    is readable by the group (0644). Temporary files that a killed earlier write of ``path`` left are removed
    (writers of one path are serialized by the caller, e.g. the run's lock). A full disk is a
    :class:`~randweights.errors.DiskFull` naming ``path``; the old file, if any, is left as it was."""
    _atomic(path, lambda f: f.write(data))


def copy_atomic(source: str | os.PathLike, path: str | os.PathLike) -> None:
    """Copy the file ``source`` to ``path`` as :func:`write_atomic` writes (streamed, never whole in memory)."""
    with open(source, "rb") as src:
        _atomic(path, lambda f: shutil.copyfileobj(src, f, 1 << 20))


def _atomic(path: str | os.PathLike, fill) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, DiskFull) and err.errno in DISK_FULL:
            raise DiskFull(path, err.strerror or os.strerror(err.errno)) from None
        raise


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None, tuples as lists, numpy / torch values as Python ones: what strict
    JSON can hold, so that every reader (``jq``, JavaScript, pandas) reads it and a reload gives equal values."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy / torch scalars and arrays
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` as strict JSON (see :func:`json_safe`), written atomically."""
    write_atomic(path, json.dumps(json_safe(obj), indent=1, sort_keys=False, allow_nan=False).encode())
