"""Sweeps on executors, training off, chapter coverage and bundle safety, on tiny real runs."""

from __future__ import annotations

import concurrent.futures as cf
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import torch

from randweights import bundles, chapters, env, make_config, plan, runs, store, stored, sweeps, train
from randweights.chapters import CHAPTERS
from randweights.errors import ConfigError

TINY = dict(subset=100, epochs=1, batch_size=50)


def test_a_failing_run_is_retried_once_reported_and_the_others_finish(tmp_path, mnist):
    good = [make_config("dense", seed=s, **TINY) for s in (0, 1)]
    bad = make_config("imp", rewind_step=50, rounds=1, **TINY)  # 2 steps per round: rewinding at step 50 is refused
    lines: list[str] = []
    with cf.ThreadPoolExecutor(max_workers=2) as executor:
        summary = sweeps.run_plan([good[0], bad, good[1], good[0]], executor, root=tmp_path, log=lines.append)
    assert list(summary.outcomes) == [good[0].run_id, bad.run_id, good[1].run_id]  # duplicates run once
    failed = summary.failed
    assert [o.run_id for o in failed] == [bad.run_id] and failed[0].attempts == 2
    assert "ConfigError" in failed[0].error and "rewind_step" in failed[0].error
    assert summary.count("trained") == 2 and all(store.load(c, tmp_path) for c in good)
    assert any(line.startswith(f"[sweep] retrying {bad.run_id}") for line in lines)
    assert summary.lines()[0] == "[sweep] 3 runs: 2 trained, 0 reused, 1 failed"
    with cf.ThreadPoolExecutor(max_workers=2) as executor:
        again = sweeps.run_plan(good, executor, root=tmp_path)
    assert again.count("reused") == 2 and again.count("trained") == 0


def test_an_executor_that_refuses_work_fails_its_runs_without_raising(tmp_path):
    executor = cf.ThreadPoolExecutor(max_workers=1)
    executor.shutdown()  # like a broken process pool or a lost cluster: submit raises
    cfgs = [make_config("dense", seed=s, **TINY) for s in (0, 1)]
    summary = sweeps.run_plan(cfgs, executor, root=tmp_path, retries=1)
    assert [o.run_id for o in summary.failed] == [c.run_id for c in cfgs]
    assert all(o.attempts == 2 and o.error.startswith("RuntimeError: cannot schedule new futures") for o in summary.failed)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "randweights.cli", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_sweep_cli_on_local_worker_processes_keeps_the_models_a_chapter_reads(tmp_path, mnist):
    done = _cli("sweep", "--preset", "smoke", "--only", "empirical_size", "--workers", "2", "--results", str(tmp_path))
    entries = plan.plan("smoke", CHAPTERS, ["empirical_size"])
    assert done.returncode == 0, done.stderr
    assert f"[sweep] {len(entries)} runs: {len(entries)} trained, 0 reused, 0 failed" in done.stdout
    assert all(e.keep_model and (tmp_path / e.run_id / "model.pt").is_file() for e in entries)
    again = _cli("sweep", "--preset", "smoke", "--only", "empirical_size", "--results", str(tmp_path))
    assert f"{len(entries)} reused" in again.stdout


def test_sweep_cli_bad_input_is_one_line_and_starts_nothing(tmp_path):
    for args, name in ((("--executor", "ray"), "--executor"), (("--workers", "0"), "--workers"), (("--only", "nope"), "--only")):
        done = _cli("sweep", "--preset", "smoke", "--results", str(tmp_path / "r"), *args)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and name in done.stderr
    assert not (tmp_path / "r").exists()


def test_training_off_returns_stored_records_only(tmp_path, mnist, monkeypatch):
    kept, missing = (make_config("dense", seed=s, **TINY) for s in (0, 1))
    runs.get_or_run(kept, root=tmp_path)
    monkeypatch.setenv(stored.TRAIN_ENV, "0")
    assert not env.training_allowed()
    with pytest.raises(runs.RunMissing, match=missing.run_id):
        runs.get_or_run(missing, root=tmp_path)
    assert [r["run_id"] for r in runs.get_or_run_all([kept, missing], root=tmp_path)] == [kept.run_id]
    folder = tmp_path / kept.run_id
    before = (folder / "record.json").read_bytes()
    # a figure that reads the network gets it from the compact file: no model.pt needed, nothing trained
    assert runs.get_or_run(kept, root=tmp_path, keep_model=True)["run_id"] == kept.run_id
    assert not (folder / "model.pt").exists() and (folder / "record.json").read_bytes() == before
    assert not (tmp_path / missing.run_id).exists()


# (a Bernoulli supermask that samples its evaluation mask keeps the fixed sample in its compact file, not in
# model.pt: the threshold mask makes the kept state dict alone deterministic)
@pytest.mark.parametrize("method, settings", [("dense", {}), ("edge-popup", {}), ("supermask-bernoulli", {"eval_mask": "threshold"})])
def test_the_network_rebuilt_from_the_compact_file_is_the_kept_model_bit_for_bit(tmp_path, mnist, method, settings):
    cfg = make_config(method, **TINY, **settings)
    runs.get_or_run(cfg, root=tmp_path, keep_model=True)
    folder = tmp_path / cfg.run_id
    kept = train.model_from_state(cfg, torch.load(folder / "model.pt", weights_only=True)).eval()
    (folder / "model.pt").unlink()  # what a bundle carries: the compact file only
    rebuilt = runs.load_network(cfg, root=tmp_path)
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(kept(x), rebuilt(x))


OLD = Path(__file__).parent / "fixtures" / "records" / "format2-87282a7"  # a record from before compact files


def test_a_record_whose_network_is_stored_in_neither_form_is_named_not_retrained(tmp_path, monkeypatch):
    cfg = make_config("slot", num_slots=4, subset=200, epochs=1, batch_size=100, seed=7)
    shutil.copytree(OLD, tmp_path, dirs_exist_ok=True)
    folder = tmp_path / cfg.run_id
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setenv(stored.TRAIN_ENV, "0")
    assert runs.get_or_run(cfg, root=tmp_path)["run_id"] == cfg.run_id  # the record alone is there
    for read in (lambda: runs.get_or_run(cfg, root=tmp_path, keep_model=True), lambda: runs.load_network(cfg, root=tmp_path)):
        with pytest.raises(runs.RunMissing) as err:
            read()
        assert cfg.run_id in str(err.value) and "compact file or model.pt" in str(err.value) and "\n" not in str(err.value)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # nothing trained, nothing written
    assert not (tmp_path / store.TRAININGS_LOG).exists()


def test_reproduce_trains_except_full_without_cuda(monkeypatch):
    monkeypatch.delenv(stored.TRAIN_ENV, raising=False)
    assert stored.should_train("smoke", "cpu") and stored.should_train("quick", "cpu")
    assert not stored.should_train("full", "cpu")
    assert stored.should_train("full", "cuda")
    assert stored.should_train("full", "cpu", train_missing=True)
    assert not stored.should_train("smoke", "cuda", train_missing=False)
    monkeypatch.setenv(stored.TRAIN_ENV, "0")
    assert not stored.should_train("smoke", "cpu")


def test_coverage_counts_stored_runs_and_the_page_says_so(tmp_path):
    entries = plan.plan("smoke", CHAPTERS, ["fcn_to_cnn"])
    assert stored.chapter_coverage(chapters.get("fcn_to_cnn"), "smoke", tmp_path).present == 0
    page = tmp_path / "page.ipynb"
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Title\n"]}, {"cell_type": "code", "metadata": {}, "source": ["1"], "outputs": []}]
    page.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert stored.note_page(page, stored.Coverage("fcn_to_cnn", "smoke", 3, len(entries)))
    nb = json.loads(page.read_text())
    assert [c["cell_type"] for c in nb["cells"]] == ["markdown", "markdown", "code"]
    assert f"3 of {len(entries)} runs of preset `smoke` are stored" in nb["cells"][1]["source"][0]
    assert not stored.note_page(page, stored.Coverage("fcn_to_cnn", "smoke", len(entries), len(entries)))
    assert len(json.loads(page.read_text())["cells"]) == 2  # complete again: the note is gone


def test_bundle_import_never_replaces_a_stored_record(tmp_path, mnist):
    cfg = plan.plan("smoke", CHAPTERS, ["empirical_size"])[0].config
    runs.get_or_run(cfg, root=tmp_path / "a")
    bundles.export("smoke", tmp_path / "b.zip", CHAPTERS, root=tmp_path / "a", only=["empirical_size"])
    other = tmp_path / "other"
    runs.get_or_run(cfg.replace(lr=0.01), root=other)  # a different run ...
    (other / cfg.run_id).mkdir()
    (other / cfg.run_id / "record.json").write_text("{}")  # ... and something already stored under this run's key
    report = bundles.import_bundle(tmp_path / "b.zip", root=other)
    assert report.kept == [cfg.run_id] and report.merged == []
    assert (other / cfg.run_id / "record.json").read_text() == "{}"


def test_a_bundle_carries_compact_files_unless_they_hold_dense_weights(tmp_path, mnist):
    dense, popup = (make_config(m, arch="mlp-256-256", width=0.25, **TINY) for m in ("dense", "edge-popup"))
    for cfg in (dense, popup):
        runs.get_or_run(cfg, root=tmp_path / "r")
    folders = {cfg.run_id: tmp_path / "r" / cfg.run_id for cfg in (dense, popup)}
    assert all((f / "compact.rwc").is_file() for f in folders.values())
    for bits, carried in ((None, {dense.run_id, popup.run_id}), (16, {popup.run_id})):
        files = {run_id: bundles.run_files(folder, json.loads((folder / "record.json").read_text()), max_compact_bits=bits)
                 for run_id, folder in folders.items()}
        assert {run_id for run_id, paths in files.items() if any(p.name == "compact.rwc" for p in paths)} == carried
        assert all(paths[-1].name == "record.json" for paths in files.values())


def test_bundles_that_are_not_bundles_or_leave_the_folder_are_refused(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as t:
        data = b"x"
        info = tarfile.TarInfo("../outside.json")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    with pytest.raises(ConfigError, match=r"\.\."):
        bundles.import_bundle(evil, root=tmp_path / "r")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ConfigError, match="FILE"):
        bundles.import_bundle(tmp_path / "notes.txt", root=tmp_path / "r")
    assert not (tmp_path / "r").exists() and not (tmp_path.parent / "outside.json").exists()
    done = _cli("bundle", "export", "--preset", "smoke", str(tmp_path / "out.rar"))
    assert done.returncode == 2 and "OUT" in done.stderr and not (tmp_path / "out.rar").exists()


def test_importing_sweeps_does_not_start_cuda():
    """A local worker process imports this module to run its initializer, which picks the worker's GPU
    (``CUDA_VISIBLE_DEVICES``): CUDA must not have started by then."""
    code = "import torch, randweights.sweeps; print(torch.cuda.is_initialized())"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (Linux /proc)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                kids = {int(k) for k in (task / "children").read_text().split()}
            except OSError:
                continue
            todo += list(kids - found)
            found |= kids
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_local_sweep_workers_end_when_the_sweep_is_killed(tmp_path, mnist):
    sweep = subprocess.Popen([sys.executable, "-m", "randweights.cli", "sweep", "--preset", "smoke", "--only", "empirical_size",
                              "--workers", "2", "--results", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(workers) < 2:
            workers = {p for p in _children(sweep.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="ignore")}
            time.sleep(0.5)
        assert len(workers) >= 2, "the sweep did not start its workers"
        time.sleep(3)  # the workers are importing or training
        sweep.kill()  # SIGKILL: no chance to shut its pool down
        sweep.wait()
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.2)
        assert not [p for p in workers if _alive(p)], "workers outlived the killed sweep"
    finally:
        if sweep.poll() is None:
            sweep.kill()
        for pid in workers:  # only the processes this test started (the sweep's workers)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
