"""Plans: every run of a preset listed once without training, derived from the chapters' figures, and a dry run
that steps every recipe."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from randweights import data, methods, plan, train
from randweights.chapters import CHAPTERS, edge_popup, fcn_to_cnn, slot_machines
from randweights.config import from_dict, make_config
from randweights.errors import ConfigError

# sha256 of the sorted run ids of each chapter's figures per preset, as planned before the chapters declared their
# figures (the run ids of every figure but Edge-Popup's Fig. 5, which was missing from the plan, are unchanged);
# the `full` digests follow the recipes made exact since (issue 20: the CHANGELOG lists the run ids that changed)
BEFORE = Path(__file__).parent / "fixtures" / "plan_before.json"


def _digest(run_ids) -> str:
    return hashlib.sha256("\n".join(sorted(run_ids)).encode()).hexdigest()


def test_every_chapter_and_preset_plans_exactly_the_union_of_its_figures():
    for chapter in CHAPTERS:
        for preset in chapter.presets:
            figures = {c.run_id for f in chapter.figures for c in f.configs(preset)}
            assert figures, (chapter.name, preset)
            assert {e.run_id for e in plan.plan(preset, [chapter])} == figures, (chapter.name, preset)


def test_figures_keep_the_run_ids_they_had_and_edge_popup_plans_fig_5():
    before = json.loads(BEFORE.read_text())
    for chapter in CHAPTERS:
        for preset in chapter.presets:
            for figure, digest in before[chapter.name][preset].items():
                assert _digest(c.run_id for c in chapter.figure(figure).configs(preset)) == digest, (chapter.name, preset, figure)
    counts = {}
    for preset in ("quick", "full"):
        entries = plan.plan(preset, CHAPTERS, ["edge_popup"])
        fig5 = {c.run_id for c in edge_popup.fixed_count_configs(edge_popup.preset(preset))}
        assert fig5 <= {e.run_id for e in entries}
        counts[preset] = sum("edge_popup: Fig. 5" in e.figures for e in entries)
    assert counts == {"quick": 4, "full": 72}


def test_the_notebooks_train_only_declared_figures():
    """Every figure a notebook asks its chapter for (``CHAPTER.frame("...")`` / ``records``) is declared."""
    for chapter in CHAPTERS:
        module = Path(plan.__file__).parent / "chapters" / f"{chapter.name}.py"
        names = {f.name for f in chapter.figures}
        for text in (module.read_text(), Path(chapter.notebook).read_text() if Path(chapter.notebook).is_file() else ""):
            for call in ("CHAPTER.frame(\"", "CHAPTER.records(\""):
                for part in text.split(call)[1:]:
                    assert part.split("\"")[0] in names, (chapter.name, part[:40])


def test_plan_lists_each_run_once_with_every_figure_that_uses_it():
    entries = plan.plan("smoke", CHAPTERS)
    ids = [e.run_id for e in entries]
    assert len(ids) == len(set(ids))
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
    full = plan.plan("full", CHAPTERS)
    per_chapter = Counter(c for e in full for c in e.chapters)
    assert set(per_chapter) == {c.name for c in CHAPTERS}
    assert len(full) > 5 * len(plan.plan("smoke", CHAPTERS))
    rows = [e.row() for e in full]
    assert {"run_id", "method", "arch", "dataset", "epochs", "figures"} <= set(rows[0])
    assert max(r["epochs"] for r in rows if r["method"] == "slot") == 220  # VGG-19


def test_plan_json_carries_each_runs_whole_recipe():
    """``plan --json``: every setting of every run (lr, batch, schedule, weight decay included), enough to rebuild
    the run: ``from_dict`` of the printed config gives the same run id."""
    done = _cli("plan", "--preset", "full", "--only", "slot_machines", "--json")
    rows = json.loads(done.stdout)
    assert done.returncode == 0 and rows
    for row in rows:
        cfg = from_dict(row["config"])
        assert cfg.run_id == row["run_id"] and row["lr"] == cfg.lr and row["weight_decay"] == cfg.weight_decay
        assert {"batch_size", "schedule", "weight_decay", "lr", "momentum"} <= set(row["config"]["train"])


def test_presets_are_those_the_chosen_chapters_declare():
    assert plan.presets(CHAPTERS) == ("smoke", "quick", "full")
    fcn = [c for c in CHAPTERS if c.name == "fcn_to_cnn"]
    assert "full-cifar10" in plan.presets(fcn)
    entries = plan.plan("full-cifar10", CHAPTERS, ["fcn_to_cnn"])
    assert {e.config.data.dataset for e in entries} == {"cifar10"} and len(entries) == 8
    with pytest.raises(ConfigError, match="--preset.*--only"):
        plan.plan("full-cifar10", CHAPTERS)
    with pytest.raises(ConfigError, match="--only"):
        plan.plan("smoke", CHAPTERS, ["nope"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "randweights.cli", *args], capture_output=True, text=True)


def test_plan_cli_json_and_bad_input():
    done = _cli("plan", "--preset", "smoke", "--only", "fcn_to_cnn", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["run_id"] for r in rows] == [c.run_id for c in fcn_to_cnn.configs(fcn_to_cnn.preset("smoke")).values()]
    assert all(r["method"] == "imp" and r["dataset"] == "cifar10" for r in rows)
    done = _cli("plan", "--preset", "full-cifar10", "--only", "fcn_to_cnn")
    assert done.returncode == 0 and "8 distinct runs (fcn_to_cnn 8)" in done.stdout, done.stderr
    done = _cli("plan", "--preset", "quick", "--only", "edge_popup")
    assert done.returncode == 0 and sum("Fig. 5" in line for line in done.stdout.splitlines()) == 4, done.stderr
    for bad, name in ((("--preset", "huge"), "--preset"), (("--preset", "full-cifar10"), "--preset"),
                      (("--preset", "smoke", "--only", "nope"), "--only")):
        done = _cli("plan", *bad)
        assert done.returncode == 2
        assert done.stderr.count("\n") == 1 and name in done.stderr


def test_dry_config_keeps_every_code_path_and_cuts_the_rest():
    cfgs = fcn_to_cnn.configs(fcn_to_cnn.preset("full"))
    small = plan.dry_config(cfgs["one-shot"])
    assert (small.train.epochs, small.method.rounds, small.method.rewind_step, small.train.batch_size) == (1, 2, 1, 4)
    assert small.method.pruning_schedule == "one-shot" and small.model.width == 1.0
    assert cfgs["IMP"].train.steps_per_epoch == 1000 and plan.dry_config(cfgs["IMP"]).train.steps_per_epoch == 1  # one step
    assert plan.recipe_key(cfgs["IMP"]) != plan.recipe_key(cfgs["one-shot"])
    keeps = [c for c in edge_popup.keep_fraction_configs(edge_popup.preset("full")) if c.model.arch == "conv4" and c.method.name == "edge-popup"]
    assert len({plan.recipe_key(c) for c in keeps}) == 2  # two inits; keep fractions and seeds share a recipe


def test_dry_run_reports_a_failure_and_goes_on(monkeypatch):
    def broken(cfg, splits, device, trainer):
        raise RuntimeError("shape mismatch in layer 3")

    monkeypatch.setitem(methods.registry.METHODS, "laperm", dataclasses.replace(methods.get("laperm"), run=broken))
    entries = plan.plan("smoke", CHAPTERS, ["laperm", "empirical_size"])
    results = plan.dry_run(entries)
    failed = [r for r in results if not r.ok]
    assert failed and all(r.config.method.name == "laperm" for r in failed)
    assert "RuntimeError: shape mismatch in layer 3" in failed[0].error
    assert any(r.ok and r.config.method.name == "dense" for r in results)


def test_a_real_data_dry_run_steps_on_the_datasets_present_and_says_which(mnist, tmp_path, monkeypatch):
    """``--real-data``: the real loaders (files, splits, per-batch conversion) for datasets on this machine, and
    synthetic images, said so, for one that is not (ImageNet32 here). ``--device`` is checked before any step."""
    entries = plan.plan("smoke", CHAPTERS, ["laperm", "fcn_to_cnn"])
    results = plan.dry_run(entries, real_data=True)
    assert [r.error for r in results if not r.ok] == []
    sources = {r.config.data.dataset: r.facts["data"] for r in results}
    assert sources["mnist"] == "real"
    monkeypatch.setenv("RANDWEIGHTS_DATA", str(tmp_path))  # no dataset here
    missing = plan.dry_run(entries[:1], real_data=True)
    assert missing[0].ok and missing[0].facts["data"] == "synthetic (data not present)"
    assert "[synthetic (data not present) data]" in missing[0].line()
    with pytest.raises(ConfigError, match="device"):
        plan.dry_run(entries, device="tpu")
    done = _cli("plan", "--preset", "smoke", "--only", "laperm", "--real-data")
    assert done.returncode == 2 and "only with --dry-run" in done.stderr


@pytest.mark.slow
def test_dry_run_of_every_full_preset_steps_each_recipe():
    """One optimizer step of each distinct (method, architecture, recipe) of all five `full` presets on the CPU,
    through each method's own flow: IMP prunes and retrains, finetuning runs, LaPerm syncs."""
    entries = plan.plan("full", CHAPTERS)
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


# ---------------------------------------------------------------------------------------------- step counts and timing
class _CountingTrainer(train.Trainer):
    """The real trainer, counting the optimizer steps of every phase a method's flow trains."""

    def __init__(self):
        super().__init__(None)
        self.steps = 0

    def fit(self, model, optimizer, cfg, splits, device, on_step=None, **options):
        def count(step):
            self.steps += 1
            if on_step is not None:
                on_step(step)

        return super().fit(model, optimizer, cfg, splits, device, on_step=count, **options)


@pytest.mark.parametrize("method, settings", [
    ("dense", {"epochs": 2}),
    ("edge-popup", {"epochs": 2}),
    ("slot", {"epochs": 2, "num_slots": 4, "finetune_epochs": 3}),
    ("laperm", {"epochs": 2, "sync_period": 2}),
    ("imp", {"epochs": 1, "rounds": 2, "rewind_step": 1}),
    ("imp", {"epochs": 2, "rounds": 3, "rewind_step": 1, "pruning_schedule": "one-shot"}),
])
def test_planned_steps_are_the_steps_the_methods_flow_trains(method, settings):
    cfg = make_config(method, arch="lenet-300-100", batch_size=16, **settings)
    images = 40  # 3 steps an epoch, the last one short
    splits = data.Splits(data.Split(torch.randn(images, 1, 28, 28), torch.arange(images) % 10), None,
                         data.Split(torch.randn(20, 1, 28, 28), torch.arange(20) % 10), 10, (1, 28, 28))
    trainer = _CountingTrainer()
    train.method_flow(cfg)(cfg, splits, torch.device("cpu"), trainer)
    assert trainer.steps > 0
    assert plan.planned_steps(cfg, train_images=images) == trainer.steps


def test_planned_steps_read_the_training_images_from_the_published_sizes():
    full = make_config("dense", dataset="mnist", validation=9000, epochs=200, batch_size=128)
    assert data.train_count(full.data) == 51000
    assert plan.planned_steps(full) == 200 * math.ceil(51000 / 128)
    assert data.train_count(make_config("dense", dataset="cifar10", subset=500).data) == 500
    sampled = make_config("dense", dataset="imagenet32", epochs=3, sampling="replacement", steps_per_epoch=1000)
    assert plan.planned_steps(sampled) == 3000


def test_time_steps_times_the_steps_asked_after_the_warm_up_and_stores_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = make_config("slot", arch="lenet-300-100", num_slots=4, epochs=200, batch_size=32)
    t = plan.time_steps(cfg, "cpu", steps=4, warmup=2)
    assert (t.steps, t.warmup) == (4, 2) and t.seconds > 0 and t.seconds_per_step == t.seconds / 4 and t.setup_seconds > 0
    assert not any(tmp_path.iterdir())
    capped = plan.time_steps(cfg, "cpu", steps=10_000, warmup=1, max_seconds=1e-9)
    assert capped.steps == 1  # the cap reached at the first timed step
    untrained = plan.time_steps(make_config("slot", arch="lenet-300-100", num_slots=1, epochs=0), "cpu", steps=3)
    assert untrained.steps == 0 and untrained.seconds_per_step is None


@pytest.mark.parametrize("name, value", [("steps", 0), ("warmup", 0), ("steps", 2.5), ("max_seconds", 0), ("max_seconds", "1")])
def test_time_steps_bad_input_names_the_parameter(name, value):
    cfg = make_config("dense", arch="lenet-300-100")
    with pytest.raises(ConfigError, match=name):
        plan.time_steps(cfg, "cpu", **{name: value})
