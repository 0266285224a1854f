"""Issue 22: everything beside the record held to the record's standard. Checkpoints carry a digest and a damaged
or foreign one is moved aside; no checkpoint outlives its record; a compact round-trip failure of a method whose
frozen weights are drawn from a seed fails the run; lock files are removed only by their holder and a waiter says
who holds the lock; the record covers compact.rwc and config.json; compact files refuse a model of another shape;
records of newer code are read or refused, never moved aside."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from randweights import compact, make_config, runs, store, train
from randweights.errors import ConfigError, RunFailed

FIXTURES = Path(__file__).parent / "fixtures" / "records"
TINY = dict(subset=100, epochs=1, batch_size=50)
ENV = {**os.environ, "RANDWEIGHTS_PROGRESS": "0", "OMP_NUM_THREADS": "1"}


def _numbers(record: dict) -> tuple:
    return record["test_accuracy"], record["test_loss"], [h.get("train_loss") for h in record.get("history", [])]


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ------------------------------------------------------------------------------------------ checkpoints
def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) - 64, len(data)):  # 64 bytes of the payload's end
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _foreign(path: Path, other: Path) -> None:
    path.write_bytes(other.read_bytes())


def _old_format(path: Path) -> None:
    state = train.read_checkpoint(path)
    state["format"] = 1
    torch.save(state, path)  # a bare torch.save, as before checkpoints had a digest


CHECKPOINT_DAMAGES = {
    "truncated": lambda p, o: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "empty": lambda p, o: p.write_bytes(b""),
    "garbage": lambda p, o: p.write_bytes(os.urandom(4000)),
    "64 flipped bytes": lambda p, o: _flip(p),
    "a folder": lambda p, o: (p.unlink(), p.mkdir(), (p / "x").write_text("x")),
    "another run's": _foreign,
    "bare torch.save (format 1)": lambda p, o: _old_format(p),
}


@pytest.fixture(scope="module")
def kept_checkpoints(tmp_path_factory):
    """Two tiny Edge-Popup runs trained with their checkpoints kept (and one trained through)."""
    from conftest import require_dataset

    require_dataset("mnist")
    root = tmp_path_factory.mktemp("kept")
    cfg, other = make_config("edge-popup", **TINY), make_config("edge-popup", **{**TINY, "seed": 1})
    os.environ["RANDWEIGHTS_KEEP_CHECKPOINTS"] = "1"
    try:
        records = [runs.get_or_run(c, root=root) for c in (cfg, other)]
    finally:
        del os.environ["RANDWEIGHTS_KEEP_CHECKPOINTS"]
    return root, cfg, other, records[0]


def _unfinished_copy(kept, tmp_path: Path) -> tuple[Path, Path]:
    root, cfg, other, _ = kept
    shutil.copytree(root / cfg.run_id, tmp_path / cfg.run_id)
    folder = tmp_path / cfg.run_id
    for name in ("record.json", "compact.rwc", "config.json"):  # as if killed after its last checkpoint
        (folder / name).unlink()
    return folder / train.CHECKPOINT, root / other.run_id / train.CHECKPOINT


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGES))
def test_a_damaged_or_foreign_checkpoint_is_moved_aside_in_one_line_and_the_run_restarts(tmp_path, kept_checkpoints, caplog, damage):
    path, other = _unfinished_copy(kept_checkpoints, tmp_path)
    CHECKPOINT_DAMAGES[damage](path, other)
    with caplog.at_level(logging.WARNING, logger="randweights"):
        record = runs.get_or_run(kept_checkpoints[1], root=tmp_path)
    warnings = _warnings(caplog)
    aside = list(path.parent.glob("checkpoint.pt.corrupt-*"))
    assert len(warnings) == 1 and str(path) in warnings[0] and "\n" not in warnings[0] and "from the start" in warnings[0]
    assert len(aside) == 1 and aside[0].name in warnings[0]
    assert _numbers(record) == _numbers(kept_checkpoints[3])  # trained from the start: the uninterrupted numbers
    assert not path.exists() and store.read_record(path.parent / "record.json", kept_checkpoints[1])[1] is None


def test_a_good_checkpoint_still_resumes(tmp_path, kept_checkpoints, monkeypatch):
    path, _ = _unfinished_copy(kept_checkpoints, tmp_path)
    steps = []
    original = train.Checkpointer.save
    monkeypatch.setattr(train.Checkpointer, "save", lambda self, *a, **k: (steps.append(a[:2]), original(self, *a, **k)))
    record = runs.get_or_run(kept_checkpoints[1], root=tmp_path)
    assert steps == [] and _numbers(record) == _numbers(kept_checkpoints[3])  # resumed at its last epoch: no step
    assert not path.exists()


KILLED_AFTER_RECORD = textwrap.dedent(
    """
    import json, sys, time
    from randweights import config, runs, train
    def finish(self):
        print("recorded", flush=True)
        time.sleep(600)
    train.Checkpointer.finish = finish
    runs.get_or_run(config.from_dict(json.loads(sys.argv[1])), root=sys.argv[2])
    """
)


def test_a_kill_between_record_and_checkpoint_removal_leaves_no_checkpoint_behind(tmp_path, mnist, monkeypatch):
    cfg = make_config("edge-popup", **TINY)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_AFTER_RECORD, json.dumps(cfg.to_dict()), str(tmp_path)],
                            env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "recorded"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    folder = tmp_path / cfg.run_id
    assert (folder / "record.json").is_file() and (folder / train.CHECKPOINT).is_file()
    monkeypatch.setattr(train, "run", lambda *a, **k: pytest.fail("trained, but the run is finished"))
    record = runs.get_or_run(cfg, root=tmp_path)
    assert not (folder / train.CHECKPOINT).exists() and record["run_id"] == cfg.run_id


def test_a_round_trip_failure_of_seeded_frozen_weights_fails_the_run(tmp_path, kept_checkpoints):
    """A checkpoint whose frozen weights changed but whose digest was made again (memory, a forged file):
    resuming it trains a network its seed does not describe; the compact round trip notices, the run fails naming
    itself, nothing is stored, and the checkpoint is moved aside so that the rerun starts over."""
    path, _ = _unfinished_copy(kept_checkpoints, tmp_path)
    cfg = kept_checkpoints[1]
    state = train.read_checkpoint(path)
    frozen = [k for k in state["model"] if k.endswith("original")]
    assert frozen
    state["model"][frozen[0]] = state["model"][frozen[0]] * 1.5
    path.write_bytes(train.checkpoint_bytes(state))
    with pytest.raises(RunFailed, match=f"^{cfg.run_id}: run failed: its compact file would not give") as err:
        runs.get_or_run(cfg, root=tmp_path)
    assert "\n" not in str(err.value) and "moved aside" in str(err.value)
    assert not (path.parent / "record.json").exists() and not path.exists()
    assert _numbers(runs.get_or_run(cfg, root=tmp_path)) == _numbers(kept_checkpoints[3])


# ------------------------------------------------------------------------------------------ locks
FAKE = """
import json, os, sys, time
from randweights import config, runs, store, train
cfg = config.from_dict(json.loads(sys.argv[1]))
mode = sys.argv[3]
def run(cfg, device=None, **kwargs):
    if mode == "hold":
        print("training", flush=True)
        time.sleep(600)
    return None, {"run_id": cfg.run_id, "config": cfg.to_dict(), **cfg.flat(), "lr": cfg.lr, "weight_decay": cfg.weight_decay,
                  "test_accuracy": 0.5, "history": []}
train.run = run
if mode == "wait":
    print("asking", flush=True)
print(json.dumps(runs.get_or_run(cfg, root=sys.argv[2])["test_accuracy"]), flush=True)
"""


def _fake(cfg, root: Path, mode: str, **env) -> subprocess.Popen:
    # as a foreground command would: Ctrl-C's default action even when this test runs with SIGINT ignored (a
    # background job inherits that, and Python then keeps ignoring it)
    return subprocess.Popen([sys.executable, "-c", FAKE, json.dumps(cfg.to_dict()), str(root), mode],
                            env={**ENV, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _until_waiting(folder: Path, waiter: subprocess.Popen) -> None:
    assert waiter.stdout.readline().strip() == "asking"
    time.sleep(2.0)  # in get_or_run: past the record check, polling the lock


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["interrupted", "killed"])
def test_a_holder_stopped_before_its_first_checkpoint_never_crashes_a_waiter(tmp_path, stop):
    """Three rounds: the holder (interrupted: it removes its empty folder and lock file; killed: it leaves them)
    stops while another process waits; the waiter trains the run and exits 0."""
    for i in range(3):
        cfg = make_config("dense", epochs=1, seed=100 + i)
        root = tmp_path / f"r{i}" / "results"  # the holder creates the results folder too, and removes it
        holder = _fake(cfg, root, "hold")
        assert holder.stdout.readline().strip() == "training"
        waiter = _fake(cfg, root, "wait")
        _until_waiting(root / cfg.run_id, waiter)
        holder.send_signal(stop)
        holder.communicate(timeout=60)
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0, err
        assert out.splitlines()[-1] == "0.5" and "Traceback" not in err
        assert store.read_record(root / cfg.run_id / "record.json", cfg)[0]["test_accuracy"] == 0.5


def test_a_waiter_names_the_run_and_the_holder_once(tmp_path):
    cfg = make_config("dense", epochs=1, seed=200)
    holder = _fake(cfg, tmp_path, "hold")
    assert holder.stdout.readline().strip() == "training"
    waiter = _fake(cfg, tmp_path, "wait", RANDWEIGHTS_LOCK_NOTE="0.5")
    _until_waiting(tmp_path / cfg.run_id, waiter)
    time.sleep(1.5)  # several notes' worth of waiting
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    out, err = waiter.communicate(timeout=120)
    assert waiter.returncode == 0, err
    lines = [line for line in err.splitlines() if "waiting for run" in line]
    assert len(lines) == 1, err
    assert cfg.run_id in lines[0] and f"process {holder.pid} on {socket.gethostname()}" in lines[0]


def test_a_lock_file_is_never_removed_by_a_process_that_does_not_hold_it(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".lock").touch()
    store.remove_if_empty([folder])
    assert (folder / ".lock").exists()


# ------------------------------------------------------------------------------------------ the record covers the run's files
def _replace_compact(folder: Path, other: Path) -> None:
    (folder / "compact.rwc").write_bytes((other / "compact.rwc").read_bytes())


FILE_DAMAGES = {
    "compact truncated": lambda f, o: (f / "compact.rwc").write_bytes((f / "compact.rwc").read_bytes()[:100]),
    "compact garbage (same size)": lambda f, o: (f / "compact.rwc").write_bytes(os.urandom((f / "compact.rwc").stat().st_size)),
    "compact missing": lambda f, o: (f / "compact.rwc").unlink(),
    "compact of another run": _replace_compact,
    "compact a folder": lambda f, o: ((f / "compact.rwc").unlink(), (f / "compact.rwc").mkdir()),
    "config garbage": lambda f, o: (f / "config.json").write_bytes(os.urandom(50)),
    "config edited": lambda f, o: (f / "config.json").write_text((f / "config.json").read_text().replace("100", "200")),
    "config missing": lambda f, o: (f / "config.json").unlink(),
}


@pytest.mark.parametrize("damage", list(FILE_DAMAGES))
def test_a_damaged_run_file_is_found_moved_aside_in_one_line_and_recomputed(tmp_path, kept_checkpoints, caplog, damage):
    root, cfg, other, good = kept_checkpoints
    shutil.copytree(root / cfg.run_id, tmp_path / cfg.run_id)
    folder = tmp_path / cfg.run_id
    (folder / train.CHECKPOINT).unlink()
    FILE_DAMAGES[damage](folder, root / other.run_id)
    assert store.read_record(folder / "record.json", cfg)[1] is not None  # found by a plain read
    with caplog.at_level(logging.WARNING, logger="randweights"):
        with pytest.raises(runs.RunMissing):
            os.environ["RANDWEIGHTS_TRAIN"] = "0"
            try:
                runs.load_network(cfg, root=tmp_path)  # a reader: moves it aside, trains nothing
            finally:
                del os.environ["RANDWEIGHTS_TRAIN"]
        record = runs.get_or_run(cfg, root=tmp_path)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "\n" not in warnings[0] and "moved aside" in warnings[0], warnings
    assert list(folder.glob("record.json.corrupt-*"))
    assert _numbers(record) == _numbers(good)
    assert store.read_record(folder / "record.json", cfg) == (record, None)
    assert isinstance(runs.load_network(cfg, root=tmp_path), torch.nn.Module)


def test_records_hold_the_sha256_of_their_files(kept_checkpoints):
    root, cfg, _, record = kept_checkpoints
    folder = root / cfg.run_id
    assert record["compact_sha256"] == store.sha256_file(folder / "compact.rwc")
    assert record["compact_bytes"] == (folder / "compact.rwc").stat().st_size
    assert record["config_sha256"] == store.sha256_file(folder / "config.json")


def _net(width: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(20, width, bias=False), torch.nn.ReLU(), torch.nn.Linear(width, 4, bias=False))


@pytest.mark.parametrize("method", ["edge-popup", "supermask-bernoulli", "slot"])
@pytest.mark.parametrize("width", [29, 31, 64])
def test_a_compact_file_refuses_a_model_of_another_shape_naming_the_layer(tmp_path, method, width):
    from randweights.methods import edge_popup, slot_machines, supermask_bernoulli

    g = torch.Generator().manual_seed(0)
    apply = {"edge-popup": lambda m: edge_popup.apply(m, keep_fraction=0.3, generator=g),
             "supermask-bernoulli": lambda m: supermask_bernoulli.apply(m, keep_fraction=0.5, generator=g),
             "slot": lambda m: slot_machines.apply(m, num_slots=4, generator=g)}[method]
    compact.save(apply(_net(30)), tmp_path / "m.rwc")
    assert isinstance(compact.load(tmp_path / "m.rwc", _net(30)), torch.nn.Module)
    with pytest.raises(ConfigError, match=r"layer 0\.weight is \(30, 20\) in the file, \(\d+, 20\) in the model") as err:
        compact.load(tmp_path / "m.rwc", _net(width))
    assert "\n" not in str(err.value)


def test_a_compact_file_without_shapes_still_loads(tmp_path):
    from randweights.methods import edge_popup

    model = edge_popup.apply(_net(30), keep_fraction=0.5, generator=torch.Generator().manual_seed(0))
    header, arrays = compact.pack(model)
    header.pop("shapes")
    (tmp_path / "old.rwc").write_bytes(compact._archive(header, arrays))
    loaded = compact.load(tmp_path / "old.rwc", _net(30))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), compact.plain_copy(model).state_dict().values()))


# ------------------------------------------------------------------------------------------ records of newer code
GOOD = FIXTURES / "format2-87282a7"
SLOT = make_config("slot", num_slots=4, subset=200, epochs=1, batch_size=100, seed=7)


def _newer(tmp_path: Path, change) -> Path:
    shutil.copytree(GOOD, tmp_path, dirs_exist_ok=True)
    path = tmp_path / SLOT.run_id / "record.json"
    record = json.loads(path.read_text())
    record["randweights_version"] = "0.9.0"
    change(record)
    record["checksum"] = store.checksum(record)
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(train, "run", lambda *a, **k: pytest.fail("trained, but a stored record was expected"))


def test_a_newer_record_with_unknown_settings_at_their_defaults_is_read_with_a_note(tmp_path, no_training, caplog):
    path = _newer(tmp_path, lambda r: r["config"]["train"].update(warp_drive=False))
    with caplog.at_level(logging.WARNING, logger="randweights"):
        record = runs.get_or_run(SLOT, root=tmp_path)
        runs.get_or_run(SLOT, root=tmp_path)
    notes = _warnings(caplog)
    assert record["test_accuracy"] == 0.4968
    assert len(notes) == 1 and "note" in notes[0] and "train.warp_drive=False" in notes[0] and "0.9.0" in notes[0]
    assert not list(path.parent.glob("*.corrupt-*"))


@pytest.mark.parametrize("change", [
    lambda r: (r["config"]["train"].update(warp_drive=True), r.update(run_id="slot-0123456789ab")),
    lambda r: r.update(record_format=3),
], ids=["unknown setting not at its default", "newer record format"])
def test_a_newer_record_this_code_cannot_read_is_refused_naming_its_version(tmp_path, no_training, change):
    path = _newer(tmp_path, change)
    before = path.read_bytes()
    with pytest.raises(store.NewerRecord, match="written by randweights 0.9.0") as err:
        runs.get_or_run(SLOT, root=tmp_path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes() == before and not list(path.parent.glob("*.corrupt-*"))
