"""What the ``full`` preset costs (book/scale.md): computed from the plan, with the assumptions stated."""

from __future__ import annotations

import math

import pytest

from randweights import chapters, plan
from randweights.config import make_config


def test_forward_flops_count_lenet_multiply_adds_exactly():
    cfg = make_config("dense", arch="lenet-300-100", dataset="mnist")
    assert plan.forward_flops(cfg) == 2 * (784 * 300 + 300 * 100 + 100 * 10)


def test_step_seconds_are_the_fixed_cost_plus_three_forward_passes_per_image():
    model = plan.CostModel(fixed_seconds=0.001, flops_per_second=1e12)
    cfg = make_config("dense", arch="lenet-300-100", dataset="mnist", batch_size=100)
    assert model.step_seconds(cfg) == pytest.approx(0.001 + 3 * 532_400 * 100 / 1e12)


def test_iterative_imp_counts_rounds_up_to_the_stated_remaining_fraction():
    cfg = make_config("imp", dataset="mnist", rounds=1000, prune_fraction=0.3, epochs=2, subset=200, batch_size=100)
    counted = math.ceil(math.log(1e-5) / math.log(0.7))  # 33 rounds leave 0.7 ** 33 < 1e-5 of the weights
    assert counted == 33
    assert plan.planned_steps(cfg) == 1001 * 2 * 2  # every round: 2 epochs of 2 steps
    assert plan.CostModel(imp_remaining=1e-5).steps(cfg) == (counted + 1) * 2 * 2
    few = cfg.replace(rounds=5)
    assert plan.CostModel().steps(few) == plan.planned_steps(few)  # fewer rounds than the cap: all of them


def test_cost_table_covers_every_planned_run_once():
    entries = plan.plan("full", chapters.CHAPTERS)
    model = plan.CostModel()
    rows = plan.cost_table(entries, model)
    *per_chapter, total = rows
    assert total["chapter"] == "all" and total["runs"] == len(entries)
    assert sum(r["runs"] for r in per_chapter) == len(entries)
    assert sum(r["steps"] for r in per_chapter) == total["steps"] == sum(model.steps(e.config) for e in entries)
    assert sum(r["gpu_hours"] for r in per_chapter) == pytest.approx(total["gpu_hours"])
    assert [r["chapter"] for r in per_chapter] == [c.name for c in chapters.CHAPTERS if any(r["chapter"] == c.name for r in per_chapter)]


def test_the_book_table_has_shares_that_add_up_and_says_what_it_assumes():
    table = chapters.cost_table("full")
    assert table["share"].iloc[:-1].sum() == pytest.approx(1.0)
    assert table["chapter"].iloc[-1] == "all chapters"
    text = chapters.cost_assumptions()
    assert "2 ms" in text and "100 TFLOP/s" in text and "gpu_check.sh" in text
