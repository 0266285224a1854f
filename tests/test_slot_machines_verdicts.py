"""The Slot Machines chapter's verdict helpers, fed constructed frames on both sides of each threshold."""

import dataclasses

import pandas as pd

from randweights import plots, verdicts
from randweights.chapters import slot_machines as sm


def _slot(arch, k, seed, acc, selection="greedy", **extra):
    return {"arch": arch, "method": "slot", "num_slots": k, "seed": seed, "test_accuracy": acc, "selection": selection,
            "finetune_epochs": 0, "epochs": 3, **extra}


def _dense(arch, seed, acc):
    return {"arch": arch, "method": "dense", "num_slots": float("nan"), "seed": seed, "test_accuracy": acc,
            "selection": None, "finetune_epochs": 0, "epochs": 3}


def _selection(gs, ps):
    rows = []
    for seed, (g, p) in enumerate(zip(gs, ps)):
        rows += [_slot("lenet-300-100", k, seed, g + 0.001 * k) for k in (2, 8)]
        rows += [_slot("lenet-300-100", k, seed, p + 0.001 * k, "probabilistic") for k in (2, 8)]
    return pd.DataFrame(rows)


def test_selection_gap_says_how_much_larger_than_the_paper():
    family, ks, c = sm.selection_comparisons(_selection([0.94, 0.95], [0.70, 0.71]))[0]
    assert (family, ks) == ("LeNet-300-100", [2, 8])
    paper = ((98.2 - 97.84) + (97.15 - 97.07)) / 2
    assert abs(c.paper_diff - paper) < 1e-9 and c.verdict == "as in the paper"
    assert c.status == verdicts.PARTLY  # 24 points against the paper's 0.2: the direction, not the size
    assert "larger than in the paper" in sm.selection_gap(_selection([0.94, 0.95], [0.70, 0.71]))
    _, _, sized = sm.selection_comparisons(_selection([0.945, 0.950], [0.940, 0.946]))[0]
    assert sized.verdict == "as in the paper" and sized.status == verdicts.REPRODUCED


def test_selection_gap_within_the_spread_and_reversed():
    _, _, within = sm.selection_comparisons(_selection([0.94, 0.90], [0.93, 0.92]))[0]
    assert within.verdict == "within the spread"
    _, _, reverse = sm.selection_comparisons(_selection([0.80, 0.81], [0.90, 0.91]))[0]
    assert reverse.status == verdicts.NOT_HERE and "reverse of the paper" in reverse.sentence()


def _finetune(fine, learned):
    rows = []
    for seed, (f, d) in enumerate(zip(fine, learned)):
        rows.append(_slot("slot-conv4", 8, seed, f, finetune_epochs=2, finetuned_test_accuracy=f, finetune_lr=0.01, epochs=4))
        rows.append(_slot("slot-conv4", 8, seed, f - 0.01, epochs=6))
        rows.append(_dense("slot-conv4", seed, d))
    return pd.DataFrame(rows)


def test_finetune_ahead_needs_no_reason_and_behind_gets_the_budget():
    ahead = _finetune([0.50, 0.51], [0.40, 0.41])
    (family, learned, plain), = sm.finetune_comparisons(ahead)
    assert family == "Conv-4" and learned.status == verdicts.REPRODUCED and plain.direction == "agrees"
    assert sm.finetune_reason(ahead) == ""
    behind = _finetune([0.35, 0.36], [0.40, 0.41])
    reason = sm.finetune_reason(behind)
    assert "Conv-4 switches after 4 of 6 epochs" in reason and "lr 0.01" in reason


def _sweep(conv4, conv2):
    rows = []
    for seed in (0, 1):
        rows += [_slot("slot-conv4", 8, seed, conv4 + 0.002 * seed), _slot("slot-conv2", 8, seed, conv2 + 0.001 * seed),
                 _dense("slot-conv4", seed, conv4), _dense("slot-conv2", seed, conv2)]
    return pd.DataFrame(rows)


def test_depth_sentence_gives_the_budget_only_when_reversed():
    assert sm.depth_sentence(_sweep(0.38, 0.49), sm.preset("quick")) == ""  # quick leaves Conv-4 to full
    conv4 = sm.Family("slot-conv4", sm.CIFAR_QUICK, (1, 2, 4, 8), dense_epochs=sm.QUICK_DENSE_EPOCHS)
    quick = dataclasses.replace(sm.preset("quick"), families=sm.preset("quick").families + (conv4,))
    reversed_ = sm.depth_sentence(_sweep(0.38, 0.49), quick)
    settings = quick.families[2].settings
    assert "reverse of the paper" in reversed_ and f"{settings['epochs']} epochs" in reversed_
    assert f"{settings['subset']:,} images" in reversed_
    agrees = sm.depth_sentence(_sweep(0.60, 0.49), quick)
    assert "ahead as in the paper" in agrees and "trails here" not in agrees


def test_k_claim_and_headline_claim_on_both_sides():
    rising = pd.DataFrame([_slot("lenet-300-100", k, s, 0.90 + 0.01 * k / 8 + 0.001 * s) for k in (2, 8) for s in (0, 1)])
    claim = next(c for c in sm.CLAIMS if "rises" in c.what)
    assert claim.test(lambda name: rising).status == verdicts.REPRODUCED
    falling = pd.DataFrame([_slot("lenet-300-100", k, s, 0.95 - 0.02 * k / 8 + 0.001 * s) for k in (2, 8) for s in (0, 1)])
    assert claim.test(lambda name: falling).status == verdicts.NOT_HERE
    headline = sm.CLAIMS[0]
    at_paper = pd.DataFrame([_slot("lenet-300-100", 8, s, a) for s, a in enumerate((0.981, 0.982, 0.983))])
    assert headline.test(lambda name: at_paper).status == verdicts.REPRODUCED
    short = pd.DataFrame([_slot("lenet-300-100", 8, s, a) for s, a in enumerate((0.945, 0.947))])
    assert headline.test(lambda name: short).status == verdicts.NOT_HERE


def test_the_headline_figure_holds_runs_of_the_accuracy_vs_k_figure():
    for name in ("smoke", "quick", "full"):
        sweep = {c.run_id for c in sm.slots_configs(sm.preset(name))}
        assert {c.run_id for c in sm.headline_configs(sm.preset(name))} <= sweep


def test_comparison_table_shows_images_and_epochs_as_whole_numbers_not_percentages():
    rows = [_slot("lenet-300-100", 8, s, 0.946, run_id=f"r{s}", train_images=10000) for s in (0, 1)]
    rows += [{**_dense("lenet-300-100", s, 0.957), "run_id": f"d{s}", "train_images": 10000} for s in (0, 1)]
    table = sm.comparison_table(pd.DataFrame(rows), pd.DataFrame(columns=["run_id"]))
    assert list(table.columns) == ["network", "K", "GS, ours", "GS, paper", "PS, ours", "PS, paper", "learned, ours",
                                   "learned, paper", "images", "epochs"]
    html = plots.book_table(table, points=[c for c in table.columns if "ours" in c or "paper" in c]).to_html()
    assert ">10,000<" in html and ">3<" in html and "10000.0%" not in html and ">94.6%<" in html
