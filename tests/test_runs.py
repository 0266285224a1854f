"""The run store: same seed same record, atomic records, resumable sweeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from randweights import fsutil, make_config, runs, store

TINY = dict(subset=300, epochs=1, batch_size=64)


def test_same_seed_gives_the_same_record_bit_for_bit(tmp_path, mnist):
    cfg = make_config("edge-popup", keep_fraction=0.3, **TINY)
    a = runs.get_or_run(cfg, root=tmp_path / "a")
    b = runs.get_or_run(cfg, root=tmp_path / "b")
    for key in ("test_accuracy", "test_loss", "history", "kept_fraction_per_layer"):
        assert a[key] == b[key], key
    c = runs.get_or_run(cfg.replace(seed=1), root=tmp_path / "a")
    assert c["test_loss"] != a["test_loss"]


def test_rerun_returns_the_stored_record_without_training(tmp_path, mnist, monkeypatch):
    cfg = make_config("dense", **TINY)
    first = runs.get_or_run(cfg, root=tmp_path)
    assert (tmp_path / cfg.run_id / "record.json").is_file()
    assert json.loads((tmp_path / cfg.run_id / "config.json").read_text()) == cfg.to_dict()

    import randweights.train

    monkeypatch.setattr(randweights.train, "run", lambda *a, **k: pytest.fail("trained again"))
    assert runs.get_or_run(cfg, root=tmp_path) == first


def test_a_failed_write_leaves_no_record(tmp_path, monkeypatch):
    target = tmp_path / "run" / "record.json"

    def broken_replace(src, dst):
        raise KeyboardInterrupt  # the process is interrupted at the worst moment

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        fsutil.write_json(target, {"a": 1})
    assert not target.exists()
    assert list((tmp_path / "run").iterdir()) == []  # no temporary file left behind either


def test_interrupted_sweep_resumes_and_recomputes_only_what_is_missing(tmp_path, monkeypatch):
    import randweights.train

    trained = []

    def fake_run(cfg, device=None, **kwargs):
        if len(trained) == 2 and not fake_run.resumed:
            raise KeyboardInterrupt
        trained.append(cfg.run_id)
        return None, {"run_id": cfg.run_id, "test_accuracy": cfg.method.keep_fraction, "config": cfg.to_dict()}

    fake_run.resumed = False
    monkeypatch.setattr(randweights.train, "run", fake_run)
    configs = [make_config("edge-popup", keep_fraction=k) for k in (0.1, 0.3, 0.5, 0.7)]
    with pytest.raises(KeyboardInterrupt):
        runs.get_or_run_all(configs, root=tmp_path)
    assert trained == [c.run_id for c in configs[:2]]
    fake_run.resumed = True
    records = runs.get_or_run_all(configs, root=tmp_path)
    assert trained == [c.run_id for c in configs]  # the first two were not trained again
    assert [r["test_accuracy"] for r in records] == [0.1, 0.3, 0.5, 0.7]


def test_a_killed_process_leaves_whole_records_and_the_sweep_resumes(tmp_path, mnist):
    """SIGKILL a real sweep after its first record lands; every record left is whole, and the rerun trains only
    the runs that were missing."""
    script = textwrap.dedent(
        f"""
        from randweights import make_config, runs
        cfgs = [make_config("edge-popup", keep_fraction=k, subset=2000, epochs=2) for k in (0.2, 0.4, 0.6, 0.8)]
        runs.get_or_run_all(cfgs, root={str(tmp_path)!r})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "RANDWEIGHTS_PROGRESS": "0"})
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob("*/record.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {p.parent.name for p in tmp_path.glob("*/record.json")}
    assert 1 <= len(done) < 4
    for path in tmp_path.glob("*/record.json"):
        json.loads(path.read_text())  # whole, parseable
    cfgs = [make_config("edge-popup", keep_fraction=k, subset=2000, epochs=2) for k in (0.2, 0.4, 0.6, 0.8)]
    stamps = {c.run_id: (tmp_path / c.run_id / "record.json").stat().st_mtime_ns for c in cfgs if c.run_id in done}
    records = runs.get_or_run_all(cfgs, root=tmp_path)
    assert [r["run_id"] for r in records] == [c.run_id for c in cfgs]
    for run_id, stamp in stamps.items():
        assert (tmp_path / run_id / "record.json").stat().st_mtime_ns == stamp  # untouched: not recomputed


def test_frame_has_one_row_per_record():
    df = runs.frame([{"run_id": "a", "test_accuracy": 0.5, "config": {}}, {"run_id": "b", "test_accuracy": 0.7, "config": {}}])
    assert list(df["run_id"]) == ["a", "b"] and "config" not in df


# ------------------------------------------------------------------------------------------ one run, one trainer
COUNTING_WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    import randweights.train as train
    from randweights import make_config, runs

    root, marker, gate, started, mode = sys.argv[1:6]
    real_run = train.run

    def counted_run(cfg, device=None, **kwargs):
        with open(marker, "a") as f:  # one line per training, appended by whichever process trains
            f.write(f"{cfg.run_id} {os.getpid()}\\n")
        while not os.path.exists(gate):  # hold the lock until the test has every worker waiting
            time.sleep(0.02)
        return real_run(cfg, device)

    train.run = counted_run
    cfgs = [make_config("edge-popup", keep_fraction=k, subset=200, epochs=1, batch_size=100) for k in (0.3, 0.5, 0.7)]
    Path(started, str(os.getpid())).touch()
    if mode == "one":
        print(json.dumps(runs.get_or_run(cfgs[0], root=root)))
    else:
        print(json.dumps(runs.get_or_run_all(cfgs, root=root)))
    """
)


def _start_workers(tmp_path, n, mode):
    started = tmp_path / "started"
    started.mkdir()
    args = [str(tmp_path / "results"), str(tmp_path / "trained.txt"), str(tmp_path / "gate"), str(started), mode]
    env = {**os.environ, "RANDWEIGHTS_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", COUNTING_WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    deadline = time.time() + 120
    while time.time() < deadline and (len(list(started.iterdir())) < n or not (tmp_path / "trained.txt").exists()):
        time.sleep(0.05)
    time.sleep(1.0)  # every worker is past its start marker: now in get_or_run, waiting or training
    (tmp_path / "gate").touch()
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    trained = (tmp_path / "trained.txt").read_text().split("\n")[:-1]
    return [json.loads(out) for out, _ in outs], [line.split()[0] for line in trained]


def test_three_processes_asking_for_one_run_train_it_once_and_return_the_stored_record(tmp_path, mnist):
    records, trained = _start_workers(tmp_path, 3, "one")
    assert len(trained) == 1
    stored = json.loads((tmp_path / "results" / trained[0] / "record.json").read_text())
    assert records == [stored, stored, stored]
    assert store.run_lock(tmp_path / "results" / trained[0]).lock_file == str(tmp_path / "results" / trained[0] / ".lock")


def test_three_workers_on_one_sweep_train_each_run_once(tmp_path, mnist):
    sweeps, trained = _start_workers(tmp_path, 3, "sweep")
    assert len(trained) == 3 and len(set(trained)) == 3  # three runs, each trained by exactly one worker
    assert sweeps[0] == sweeps[1] == sweeps[2]
    assert {r["run_id"] for r in sweeps[0]} == set(trained)


def test_a_lock_held_by_a_dead_process_is_free(tmp_path):
    """The lock is an OS file lock: it dies with its holder, so a killed trainer never blocks the run forever."""
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from pathlib import Path; from randweights import store; import time\n"
         f"lock = store.run_lock(Path({str(folder)!r})); lock.acquire(); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    from filelock import Timeout

    with pytest.raises(Timeout):
        store.run_lock(folder, blocking=False).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with store.run_lock(folder, blocking=False):
        pass
