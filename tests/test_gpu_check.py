"""benchmarks/gpu_check.sh, the prepared check for a short GPU loan: its run selection and projection, and the whole
check in its --tiny setting on the CPU (a temporary output folder; the bundle it writes imports elsewhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import benchmark_module

from randweights import plan
from randweights.chapters import CHAPTERS
from randweights.chapters import laperm as laperm_chapter
from randweights.config import make_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def check():
    with benchmark_module("gpu_check") as module:
        yield module


def test_step_3_takes_the_mnist_runs_of_both_chapters_headline_ones_included(check):
    for preset in ("smoke", "full"):
        chosen, headline = check.figure_runs(preset)
        ids = {e.run_id for e in chosen}
        assert len(headline) == 4 and set(headline) <= ids
        assert {e.config.data.dataset for e in chosen} == {"mnist"}
        assert not {e.config.model.arch for e in chosen} & set(laperm_chapter.preset(preset).paper_nets)
        every = plan.plan(preset, CHAPTERS, check.FIGURE_CHAPTERS)
        lenet = {e.run_id for e in every if "slot_machines" in e.chapters and e.config.model.arch == "lenet-300-100"}
        assert lenet <= ids  # the whole LeNet-300-100 family of Slot Machines
    full = {e.run_id: e.config for e in check.figure_runs("full")[0]}
    k8, learned = (full[run_id] for run_id in check.figure_runs("full")[1][:2])
    assert (k8.method.name, k8.method.num_slots, k8.method.finetune_epochs, k8.train.epochs) == ("slot", 8, 0, 200)
    assert (learned.method.name, learned.model.arch) == ("dense", "lenet-300-100")


def test_the_projection_is_steps_times_seconds_per_step_with_the_recipe_as_fallback(check):
    entries = plan.plan("smoke", CHAPTERS, ["slot_machines"])
    steps = {e.run_id: plan.planned_steps(e.config) for e in entries}
    timed = [e for e in entries if steps[e.run_id]][:2]
    rows = [{"cost_key": check.cost_key(e.config), "recipe": check.recipe_name(e.config), "seconds_per_step": 0.5 * (i + 1)}
            for i, e in enumerate(timed)]
    result = check.project(entries, rows, steps)
    expected, fallback, projected = 0.0, 0, 0
    for e in entries:
        own = [r["seconds_per_step"] for r in rows if r["cost_key"] == check.cost_key(e.config)]
        same = [r["seconds_per_step"] for r in rows if r["recipe"] == check.recipe_name(e.config)]
        if own or same or not steps[e.run_id]:
            projected += 1
            fallback += bool(not own and same)
            expected += steps[e.run_id] * (own[0] if own else sum(same) / len(same) if same else 0.0) / 3600
    total = result["total"]
    assert total["runs"] == len(entries) and total["runs_projected"] == projected and total["runs_from_recipe"] == fallback
    assert total["gpu_hours"] == pytest.approx(expected, abs=1e-3) and expected > 0
    assert sum(r["gpu_hours"] for r in result["methods"].values()) == pytest.approx(total["gpu_hours"], abs=1e-3)
    # two runs of one recipe whose K differs cost differently per step: they are timed apart
    k2, k8 = (make_config("slot", arch="lenet-300-100", num_slots=k) for k in (2, 8))
    assert plan.recipe_key(k2) == plan.recipe_key(k8) and check.cost_key(k2) != check.cost_key(k8)
    assert check.cost_key(k2) == check.cost_key(k2.replace(seed=3, epochs=7, lr=0.5))


@pytest.mark.slow
def test_the_tiny_check_writes_every_output_and_its_bundle_imports(check, mnist, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "RANDWEIGHTS_PROGRESS": "0"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "out", "--tiny"], cwd=tmp_path, env=env,  # relative
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "summary.txt").read_text() in done.stdout

    dry = json.loads((out / "dry_run.json").read_text())
    assert len(dry) == 2 and all(r["ok"] for r in dry)

    timing = json.loads((out / "timing.json").read_text())
    assert len(timing["recipes"]) == 3
    for row in timing["recipes"]:
        assert row["steps"] == 3 and row["seconds"] > 0 and row["seconds_per_step"] > 0
    assert timing["total"]["gpu_hours"] > 0 and timing["total"]["runs"] == len(plan.plan("full", CHAPTERS))
    assert "| **all** |" in (out / "timing.md").read_text()

    figures = json.loads((out / "figures.json").read_text())
    trained = [r["run_id"] for r in figures["runs"] if r["status"] == "trained"]
    chosen, headline = check.figure_runs("smoke")
    assert [r["run_id"] for r in figures["runs"][:4]] == headline  # headline runs first
    assert trained and set(figures["missing"]) == {e.run_id for e in chosen} - set(trained)
    bundle = out / figures["bundle"]
    fresh = tmp_path / "fresh"
    imported = subprocess.run([sys.executable, "-m", "randweights", "bundle", "import", str(bundle), "--results", str(fresh)],
                              env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert imported.returncode == 0, imported.stderr
    assert {p.parent.name for p in fresh.glob("*/record.json")} == set(trained)

