"""The runner: the one module that composes the store, training and compact files.

:func:`get_or_run` returns a run's stored record, training it first when there is none (lock, data, model,
method, training with a checkpoint every epoch, compact file, record written last); :func:`load_network` gives a
stored run's trained network back. Everything above (plans, sweeps, chapters) goes through these.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TypeGuard

import torch
from filelock import Timeout
from torch import nn

from . import compact, env, store, train
from .config import RunConfig, check_device
from .errors import RunFailed
from .fsutil import aside_name, sha256_file, write_atomic, write_json
from .store import RECORD, RunBusy

__all__ = ["RunBusy", "RunFailed", "RunMissing", "frame", "get_or_run", "get_or_run_all", "has_network", "load_network"]


class RunMissing(LookupError):
    """A run has no stored record (or model) and training is off (``RANDWEIGHTS_TRAIN=0``)."""

    def __init__(self, run_id: str, what: str = "record"):
        self.run_id = run_id
        super().__init__(f"{run_id}: no stored {what} and training is off (RANDWEIGHTS_TRAIN=0)")


def check_run_config(cfg, parameter: str = "config") -> None:
    """A TypeError naming ``parameter`` unless ``cfg`` is a :class:`RunConfig` (``make_config(...)`` makes one)."""
    if not isinstance(cfg, RunConfig):
        raise TypeError(f"{parameter}: got {type(cfg).__name__}, allowed: a RunConfig (randweights.make_config(...))")


def get_or_run(cfg: RunConfig, root=None, device: str | None = None, keep_model: bool = False, wait: bool = True) -> dict:
    """Return the stored record of ``cfg``, training it first if there is none. With ``keep_model`` the caller
    also reads the trained network (:func:`load_network`): a stored run counts only when its network is stored
    beside its record, as its compact file or as ``model.pt`` (:func:`has_network`); a run trained now also
    stores its state dict as ``model.pt`` (before the record, so a record implies its network). With training off
    (``RANDWEIGHTS_TRAIN=0``), a run without its record, or (with ``keep_model``) without its network, is
    :class:`RunMissing`, naming the run: nothing is retrained.

    Training happens under the run's lock: a second process asking for the same run waits for the first and
    returns its record (or, with ``wait=False``, raises :class:`~randweights.store.RunBusy` at once). The steps
    are always: lock, load and verify the record, train if it is missing, write the extra files, write the
    record last. A finished run's leftover checkpoint (a kill between the record and its removal) is removed.
    A run that fails before writing anything leaves no folder behind (removed by the lock's holder, so that a
    process waiting for the lock is not disturbed)."""
    check_run_config(cfg)
    check_device(device)
    folder = store.run_dir(cfg, root)
    record, _ = store.read_record(folder / RECORD, cfg)  # no lock needed to read a finished run
    if _complete(record, folder, keep_model):
        _remove_stale_checkpoint(cfg, folder)
        return record
    if not env.training_allowed():
        raise RunMissing(cfg.run_id, "record" if record is None else NETWORK)
    created = store.prepare_folder(folder, root)
    lock = store.run_lock(folder, blocking=wait)
    try:
        lock.acquire()
    except Timeout as err:
        raise RunBusy(f"{folder}: another process is training this run") from err
    except BaseException:  # Ctrl-C while waiting: remove what this process made only if nobody holds the lock
        _remove_if_free(folder, created)
        raise
    try:
        record = store.load(cfg, root)  # another process may have finished it while we waited; a bad one is moved
        if _complete(record, folder, keep_model):
            _drop_checkpoint(folder)
            return record
        return _train_and_store(cfg, folder, device, keep_model)
    except BaseException:
        lock.remove_folder(created)  # bad input, missing data, Ctrl-C: leave no empty folder behind
        raise
    finally:
        lock.release()


def _drop_checkpoint(folder: Path) -> None:
    """Under the run's lock, with its record written: the checkpoint has no more use (unless asked to keep it)."""
    path = folder / train.CHECKPOINT
    if not env.keep_checkpoints() and (path.is_file() or path.is_symlink()):
        path.unlink(missing_ok=True)


def _remove_stale_checkpoint(cfg: RunConfig, folder: Path) -> None:
    """A finished run whose checkpoint remains (killed between writing its record and removing the checkpoint):
    remove it under the run's lock, unless another process holds the lock (it removes its own)."""
    path = folder / train.CHECKPOINT
    if env.keep_checkpoints() or not (path.is_file() or path.is_symlink()):
        return
    try:
        with store.run_lock(folder, blocking=False):
            if store.read_record(folder / RECORD, cfg)[0] is not None:
                _drop_checkpoint(folder)
    except (Timeout, OSError):
        pass


def _remove_if_free(folder: Path, created: list[Path]) -> None:
    try:
        lock = store.run_lock(folder, blocking=False)
        lock.acquire()
    except (Timeout, OSError):
        return
    lock.remove_folder(created)


def _complete(record: dict | None, folder: Path, keep_model: bool) -> TypeGuard[dict]:
    """Whether ``record`` is a finished run (and, with ``keep_model``, its network is stored beside it)."""
    return record is not None and (not keep_model or has_network(record, folder))


NETWORK = "network (compact file or model.pt)"


def has_network(record: dict, folder: Path) -> bool:
    """Whether the run stored in ``folder`` with ``record`` has its trained network beside it, in a form
    :func:`load_network` rebuilds: its compact file (where its record has one), or ``model.pt``. Presence only:
    the compact file's SHA-256 is checked when it is loaded."""
    return bool(record.get("compact_file")) and (folder / COMPACT_FILE).is_file() or (folder / store.MODEL).is_file()


def _train_and_store(cfg: RunConfig, folder: Path, device: str | None, keep_model: bool) -> dict:
    start = time.perf_counter()
    checkpoint = train.Checkpointer(folder / train.CHECKPOINT, cfg.to_dict())  # resumes a killed run; saved every epoch
    model, record = train.run(cfg, device, checkpoint=checkpoint)  # nothing but the checkpoint is written before the end
    write_json(folder / store.CONFIG, cfg.to_dict())
    record["config_sha256"] = sha256_file(folder / store.CONFIG)  # the record's checksum covers the run's files
    if keep_model:
        write_atomic(folder / store.MODEL, _state_dict_file(model))
    record.update(_save_compact(cfg, model, folder, checkpoint))  # the compact file, before the record
    record = store.write_record(folder, record)  # last: a record means the run is finished
    checkpoint.finish()  # removed after the record (RANDWEIGHTS_KEEP_CHECKPOINTS=1 keeps it)
    store.note_training(folder, time.perf_counter() - start)
    return record


def _state_dict_file(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


COMPACT_FILE = store.COMPACT


def _save_compact(cfg: RunConfig, model: nn.Module, folder: Path, checkpoint: train.Checkpointer) -> dict:
    """Write the run's compact file and return the record's fields: its name, bytes, SHA-256, bits per weight
    and the dense fp32 state dict's bytes.

    When the file would not give the trained network back and the method's frozen weights are drawn again from
    a seed (Edge-Popup, Bernoulli, Slot Machines, LaPerm), the network trained is not the one its settings
    define (its frozen weights changed: a damaged checkpoint, memory): the run fails (:class:`RunFailed`), its
    checkpoint is moved aside and nothing is stored. Where nothing is drawn again (dense, IMP, or weights of
    one's own), or the model cannot be packed at all, the numbers still describe the trained network: the record
    gets ``compact_file: None`` and the reason, as before."""
    if not isinstance(model, nn.Module):  # a stand-in trainer (tests) returned no network
        return {}
    model = model.cpu()  # the bit-for-bit promise is on the CPU
    try:
        size = compact.save(model, folder / COMPACT_FILE)
    except compact.RoundTripError as err:
        if compact.regenerates_weights(model):
            moved = _move_checkpoint_aside(checkpoint)
            raise RunFailed(cfg.run_id, f"its compact file would not give the trained network back ({err}): its frozen "
                                        f"weights are not those its seed draws, so its numbers cannot be trusted; nothing "
                                        f"stored{moved}") from None
        return {"compact_file": None, "compact_error": f"{type(err).__name__}: {err}"}
    except (RuntimeError, ValueError) as err:
        return {"compact_file": None, "compact_error": f"{type(err).__name__}: {err}"}
    return {"compact_file": COMPACT_FILE, "compact_bytes": size["compact_bytes"],
            "compact_sha256": sha256_file(folder / COMPACT_FILE),
            "compact_bits_per_weight": size["bits_per_weight"], "dense_bytes": size["dense_bytes"]}


def _move_checkpoint_aside(checkpoint: train.Checkpointer) -> str:
    """A failed run's checkpoint is suspect: moved aside, so that a rerun starts from the beginning."""
    path = checkpoint.path
    if path is None or not path.is_file():
        return ""
    target = aside_name(path)
    try:
        path.replace(target)
    except OSError:
        return f"; its checkpoint {path} could not be moved aside"
    return f"; its checkpoint was moved aside to {target.name}, a rerun starts from the beginning"


def load_network(cfg: RunConfig, root=None) -> nn.Module:
    """The trained network of a stored run, as a plain torch model in evaluation mode on the CPU: rebuilt from
    its compact file (bit for bit what training ended with), or, for a run without one, from its ``model.pt``
    (a run stored with ``keep_model``). Training is never started: a run without either is :class:`RunMissing`."""
    check_run_config(cfg)
    folder = store.run_dir(cfg, root)
    record = store.verified(cfg, root)  # the compact file's SHA-256 included; a damaged run is moved aside
    if record is not None and record.get("compact_file") and (folder / COMPACT_FILE).is_file():
        return compact.load(folder / COMPACT_FILE)
    if record is not None and (folder / store.MODEL).is_file():
        return train.model_from_state(cfg, torch.load(folder / store.MODEL, map_location="cpu", weights_only=True)).eval()
    raise RunMissing(cfg.run_id, "record" if record is None else NETWORK)


def get_or_run_all(configs: Iterable[RunConfig], root=None, device: str | None = None, desc: str = "runs") -> list[dict]:
    """``get_or_run`` over ``configs`` in this process; rerunning after an interruption trains only missing runs.
    Returns the records; with training off (``RANDWEIGHTS_TRAIN=0``) only the stored ones.

    Several processes may run the same list at once: a run another process is training is skipped at first and
    collected at the end (waiting for it then), so N processes share the runs and each run is trained once. For
    runs on a pool, Dask or Slurm see :mod:`randweights.sweeps`."""
    configs = list(configs)
    for i, cfg in enumerate(configs):
        check_run_config(cfg, f"configs[{i}]")
    check_device(device)
    if not env.training_allowed():
        return [r for r in (store.load(cfg, root) for cfg in configs) if r is not None]
    records: dict[int, dict] = {}
    busy = []
    for i, cfg in enumerate(train.progress(configs, desc=desc)):
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


def stored_record(run_id: str, root=None) -> dict | None:
    """The record file of ``run_id`` as it is on disk (unverified; for provenance columns), or None."""
    try:
        return json.loads((store.results_root(root) / str(run_id) / RECORD).read_text())
    except (OSError, ValueError):
        return None
