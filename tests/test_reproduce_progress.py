"""`reproduce`'s line per run inside a chapter, and the commands it prints working as printed."""

import io
import subprocess
import sys
import time

from randweights import env, plan, reproduce
from randweights.chapters import get


def test_progress_counts_the_chapters_stored_runs_and_estimates_the_rest(tmp_path):
    chapter = get("slot_machines")
    progress = reproduce.RunProgress(chapter, "smoke", tmp_path, every=0.02, out=io.StringIO())
    ids = [entry.run_id for entry in plan.plan("smoke", [chapter])]
    assert progress.ids == ids and len(ids) >= 3
    assert progress.stored() == 0
    (tmp_path / ids[0]).mkdir()
    (tmp_path / ids[0] / "record.json").write_text("{}")
    assert progress.stored() == 1
    total = len(ids)
    steps = {rid: max(1, plan.planned_steps(e.config)) for rid, e in zip(ids, plan.plan("smoke", [chapter]))}
    assert progress.steps == steps
    before, trained = {ids[0]}, {ids[1], ids[2]}
    left = sum(steps[r] for r in ids[3:])
    per_step = 60.0 / (steps[ids[1]] + steps[ids[2]])  # two runs trained in 60 s: the rest at the same pace per step
    expected = f"about {per_step * left / 60:.0f} min left"
    assert progress.line(before | trained, before, 60.0) == f"slot_machines: run 3 of {total} stored, 1.0 min, {expected}"
    assert progress.line(before, before, 60.0) == f"slot_machines: run 1 of {total} stored, 1.0 min"  # none trained
    assert "left" not in progress.line(set(ids), set(), 60.0)  # done: no estimate


def test_progress_prints_a_line_when_a_run_is_stored(tmp_path):
    chapter = get("slot_machines")
    out = io.StringIO()
    ids = [entry.run_id for entry in plan.plan("smoke", [chapter])]
    with reproduce.RunProgress(chapter, "smoke", tmp_path, every=0.02, out=out):
        time.sleep(0.1)
        assert out.getvalue() == ""  # nothing stored: silent
        for rid in ids[:2]:
            (tmp_path / rid).mkdir()
            (tmp_path / rid / "record.json").write_text("{}")
        deadline = time.time() + 5
        while "run 2 of" not in out.getvalue() and time.time() < deadline:
            time.sleep(0.02)
    assert f"slot_machines: run 2 of {len(ids)} stored" in out.getvalue()
    assert out.getvalue().count("\n") == 1  # one line per change, not one per poll


def test_command_runs_as_printed(tmp_path):
    """The retry command of a failure banner, printed from the checkout (as `make book` runs), runs from there."""
    line = env.command("--version")
    parts = line.split()
    result = subprocess.run(parts, capture_output=True, text=True, cwd=".", timeout=120)
    assert result.returncode == 0, (line, result.stderr)
    assert line.endswith("-m randweights --version") or line == "randweights --version"


def test_command_never_prints_a_path_outside_the_folder(tmp_path):
    line = env.command("reproduce --only edge_popup", root=tmp_path)
    assert line in ("randweights reproduce --only edge_popup", "python -m randweights reproduce --only edge_popup")
    assert sys.executable not in line


def test_workers_train_the_chapters_missing_runs_before_its_notebook(tmp_path, monkeypatch, capsys):
    """Two real worker processes train every smoke run of a chapter; the records are those a notebook then reads
    (the run ids of its plan), and a second call finds nothing missing and starts no process."""
    chapter = get("empirical_size")
    monkeypatch.setenv(env.RESULTS, str(tmp_path))
    entries = plan.plan("smoke", [chapter])
    assert len(reproduce.missing_entries(chapter, "smoke", tmp_path)) == len(entries) >= 2
    reproduce.train_missing_runs(chapter, "smoke", tmp_path, workers=2, device="cpu")
    assert f"training {len(entries)} runs in 2 processes" in capsys.readouterr().out
    assert reproduce.missing_entries(chapter, "smoke", tmp_path) == []
    for entry in entries:
        assert (tmp_path / entry.run_id / "record.json").is_file()
    reproduce.train_missing_runs(chapter, "smoke", tmp_path, workers=2, device="cpu")
    assert "training" not in capsys.readouterr().out


def test_workers_must_be_a_whole_number_of_processes(tmp_path):
    for bad in (0, -1, 1.5, True, "2"):
        try:
            reproduce.reproduce(preset="smoke", workers=bad, root=tmp_path)
        except reproduce.ConfigError as err:
            assert "workers" in str(err)
        else:
            raise AssertionError(f"workers={bad!r} accepted")
    done = subprocess.run([sys.executable, "-m", "randweights", "reproduce", "--workers", "0", "--root", str(tmp_path)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "workers" in done.stderr
    assert not (tmp_path / "results").exists()
