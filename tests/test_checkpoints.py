"""Runs that resume: a real process killed by SIGKILL mid-run resumes from its checkpoint, and the record is bit
for bit the one an uninterrupted run gives (timing fields aside)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from randweights import make_config, runs, store, train

SMALL = dict(subset=400, batch_size=64)

# A child process: run the config through the store; with a kill point, pause forever right after saving it so the
# parent can SIGKILL it there; print every (phase, epoch) it saves.
CHILD = textwrap.dedent(
    """
    import json, sys, time
    from randweights import config, runs, train
    cfg = config.from_dict(json.loads(sys.argv[1]))
    root, kill = sys.argv[2], json.loads(sys.argv[3])
    original = train.Checkpointer.save
    def save(self, phase, epoch, *args, **kwargs):
        original(self, phase, epoch, *args, **kwargs)
        print("saved", phase, epoch, flush=True)
        if [phase, epoch] == kill:
            time.sleep(600)
    train.Checkpointer.save = save
    runs.get_or_run(cfg, root=root)
    """
)


def _child(cfg, root: Path, kill=None) -> subprocess.Popen:
    env = {**os.environ, "RANDWEIGHTS_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", CHILD, json.dumps(cfg.to_dict()), str(root), json.dumps(kill)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)


def _saves(proc: subprocess.Popen) -> list[tuple[str, int]]:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0
    return [(line.split()[1], int(line.split()[2])) for line in out.splitlines() if line.startswith("saved")]


def _without_timing(record: dict) -> dict:
    record = dict(record)
    assert record.pop("train_seconds") >= 0
    assert record.pop("checksum").startswith("sha256:")  # a checksum covers the timings too
    if "round_metrics" in record:
        record["round_metrics"] = [{k: v for k, v in r.items() if k != "seconds"} for r in record["round_metrics"]]
    return record


CASES = {
    "dense": (make_config("dense", epochs=4, **SMALL), ("train", 2)),
    "edge-popup": (make_config("edge-popup", keep_fraction=0.3, epochs=4, **SMALL), ("train", 2)),
    "imp": (make_config("imp", rounds=2, epochs=2, rewind_step=3, validation=100, strategy="random", **SMALL),
            ("round-1", 1)),
    "slot-finetune": (make_config("slot", num_slots=4, epochs=2, finetune_epochs=2, **SMALL), ("finetune", 1)),
    "slot-scores": (make_config("slot", num_slots=4, selection="probabilistic", epochs=3, **SMALL), ("scores", 2)),
    "laperm": (make_config("laperm", sync_period=5, probe_every=4, probe_images=200, epochs=3, **SMALL), ("train", 2)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_killed_run_resumes_to_the_uninterrupted_record(name, tmp_path, mnist):
    cfg, (phase, epoch) = CASES[name]
    folder = tmp_path / "killed" / cfg.run_id
    proc = _child(cfg, tmp_path / "killed", kill=[phase, epoch])
    deadline = time.time() + 300
    state = None
    while time.time() < deadline and proc.poll() is None:  # poll the checkpoint file until it reaches the kill point
        if (folder / train.CHECKPOINT).is_file():
            try:
                state = train.read_checkpoint(folder / train.CHECKPOINT)
            except train.CheckpointDamaged:  # replaced while read
                continue
            if (state["phase"], state["epoch"]) == (phase, epoch):
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert state is not None and (state["phase"], state["epoch"]) == (phase, epoch)
    assert not (folder / store.RECORD).exists()

    resumed = _saves(_child(cfg, tmp_path / "killed"))
    assert resumed[0] == (phase, epoch + 1)  # continued after the kill point, did not start over
    assert not (folder / train.CHECKPOINT).exists()  # removed once the record is written

    whole = _saves(_child(cfg, tmp_path / "whole"))
    assert whole[-len(resumed):] == resumed and len(whole) > len(resumed)
    killed_record = json.loads((folder / store.RECORD).read_text())
    whole_record = json.loads((tmp_path / "whole" / cfg.run_id / store.RECORD).read_text())
    assert _without_timing(killed_record) == _without_timing(whole_record)


def test_checkpoints_are_kept_when_asked_and_others_settings_are_moved_aside(tmp_path, mnist, monkeypatch, caplog):
    cfg = make_config("edge-popup", epochs=2, **SMALL)
    monkeypatch.setenv("RANDWEIGHTS_KEEP_CHECKPOINTS", "1")
    runs.get_or_run(cfg, root=tmp_path)
    path = tmp_path / cfg.run_id / train.CHECKPOINT
    state = train.read_checkpoint(path)
    assert (state["phase"], state["epoch"], len(state["history"])) == ("train", 2, 2)
    assert state["config"] == cfg.to_dict()
    with caplog.at_level(logging.WARNING, logger="randweights"):
        assert train.Checkpointer(path, cfg.replace(seed=3).to_dict()).resumed is None
    assert [r.getMessage() for r in caplog.records if "other settings" in r.getMessage() and str(path) in r.getMessage()]
    assert not path.exists() and len(list(path.parent.glob("checkpoint.pt.corrupt-*"))) == 1


def test_rng_states_round_trip():
    import random

    import numpy as np

    states = train.rng_states()
    first = (torch.rand(3), np.random.rand(3), random.random())
    train.set_rng_states(states)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]
