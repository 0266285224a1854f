"""Plans: every run of a preset listed once without training, and a dry run that steps every recipe."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest

from randweights import plan
from randweights.experiments import edge_popup, fcn_to_cnn, slot_machines


def test_plan_lists_each_run_once_with_every_figure_that_uses_it():
    entries = plan.plan("smoke")
    ids = [e.run_id for e in entries]
    assert len(ids) == len(set(ids))
    # the union of the figures' own config functions, nothing more, nothing less
    p = edge_popup.preset("smoke")
    figure_ids = {c.run_id for f in (edge_popup.keep_sweep_configs, edge_popup.init_configs, edge_popup.width_configs,
                                     edge_popup.bernoulli_configs) for c in f(p)}
    assert {e.run_id for e in plan.plan("smoke", ["edge_popup"])} == figure_ids
    # the LeNet dense baseline serves Edge-Popup's Figs. 3 and 4 and two Slot Machines figures
    dense = slot_machines.preset("smoke").families[0].dense(seed=0)
    shared = next(e for e in entries if e.run_id == dense.run_id)
    assert shared.chapters == ["edge_popup", "slot_machines"]
    assert shared.figures == ["edge_popup: Fig. 3", "edge_popup: Fig. 4", "slot_machines: accuracy vs K", "slot_machines: finetuning"]
    # runs whose trained model a figure reads are planned with keep_model
    imp = fcn_to_cnn.configs(fcn_to_cnn.preset("smoke"))
    by_id = {e.run_id: e for e in entries}
    assert by_id[imp["IMP"].run_id].keep_model and not by_id[imp["random pruning"].run_id].keep_model


def test_plan_covers_every_chapter_and_the_full_presets_are_paper_sized():
    full = plan.plan("full")
    per_chapter = Counter(c for e in full for c in e.chapters)
    assert set(per_chapter) == set(plan.available_chapters()) >= {"edge_popup", "slot_machines", "laperm", "fcn_to_cnn", "empirical_size"}
    assert len(full) > 5 * len(plan.plan("smoke"))
    rows = [e.row() for e in full]
    assert {"run_id", "method", "arch", "dataset", "epochs", "figures"} <= set(rows[0])
    assert max(r["epochs"] for r in rows if r["method"] == "slot") == 220  # VGG-19


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "randweights.cli", *args], capture_output=True, text=True)


def test_plan_cli_json_and_bad_input():
    done = _cli("plan", "--preset", "smoke", "--only", "fcn_to_cnn", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["run_id"] for r in rows] == [c.run_id for c in fcn_to_cnn.configs(fcn_to_cnn.preset("smoke")).values()]
    assert all(r["method"] == "imp" and r["dataset"] == "cifar10" for r in rows)
    for bad, name in ((("--preset", "huge"), "--preset"), (("--preset", "smoke", "--only", "nope"), "--only")):
        done = _cli("plan", *bad)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and name in done.stderr


def test_dry_config_keeps_every_code_path_and_cuts_the_rest():
    cfgs = fcn_to_cnn.configs(fcn_to_cnn.preset("full"))
    small = plan.dry_config(cfgs["one-shot"])
    assert (small.train.epochs, small.method.rounds, small.method.rewind_step, small.train.batch_size) == (1, 2, 1, 4)
    assert small.method.pruning_schedule == "one-shot" and small.model.width == 1.0
    assert plan.recipe_key(cfgs["IMP"]) != plan.recipe_key(cfgs["one-shot"])
    keeps = [c for c in edge_popup.keep_sweep_configs(edge_popup.preset("full")) if c.model.arch == "conv4" and c.method.name == "edge-popup"]
    assert len({plan.recipe_key(c) for c in keeps}) == 2  # two inits; keep fractions and seeds share a recipe


def test_dry_run_reports_a_failure_and_goes_on(monkeypatch):
    from randweights.methods import laperm

    def broken(cfg, splits, device):
        raise RuntimeError("shape mismatch in layer 3")

    monkeypatch.setattr(laperm, "run", broken)
    entries = plan.plan("smoke", ["laperm", "empirical_size"])
    results = plan.dry_run(entries)
    failed = [r for r in results if not r.ok]
    assert failed and all(r.config.method.name == "laperm" for r in failed)
    assert "RuntimeError: shape mismatch in layer 3" in failed[0].error
    assert any(r.ok and r.config.method.name == "dense" for r in results)


@pytest.mark.slow
def test_dry_run_of_every_full_preset_steps_each_recipe():
    """One optimizer step of each distinct (method, architecture, recipe) of all five `full` presets on the CPU,
    through each method's own flow: IMP prunes and retrains, finetuning runs, LaPerm syncs."""
    entries = plan.plan("full")
    results = plan.dry_run(entries)
    assert [r.error for r in results if not r.ok] == []
    assert len(results) == len({plan.recipe_key(e.config) for e in entries})
    assert sum(r.runs for r in results) == len(entries)
    assert {(e.config.method.name, e.config.model.arch) for e in entries} == {(r.config.method.name, r.config.model.arch) for r in results}
    facts = [(r.config, r.facts) for r in results]
    assert all(f["rounds_trained"] >= 2 for c, f in facts if c.method.name == "imp")
    assert any(f.get("finetune_epochs") == 1 for c, f in facts if c.method.name == "slot")
    assert all(f["syncs"] >= 1 for c, f in facts if c.method.name == "laperm" and c.method.sync_period)
    assert all(f["epochs"] == min(c.train.epochs, 1) for c, f in facts if c.method.name in ("edge-popup", "dense", "slot"))
