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
