"""The FCN-to-CNN chapter's verdicts and claims: constructed numbers on both sides of each threshold."""

from __future__ import annotations

import pandas as pd
import pytest

from randweights import verdicts
from randweights.chapters import fcn_to_cnn as fc


def _ablation(least: list[float], most: list[float], random: list[float] | None = None) -> pd.DataFrame:
    units = [0, 25, 50, 75, 100][: len(least)]
    rows = [{"order": "most", "units_ablated": k, "test_accuracy": a} for k, a in zip(units, most)]
    rows += [{"order": "least", "units_ablated": k, "test_accuracy": a} for k, a in zip(units, least)]
    if random is not None:
        rows += [{"order": "random", "units_ablated": k, "test_accuracy": a} for k, a in zip(units, random)]
    return pd.DataFrame(rows)


def test_ablation_area_is_the_mean_accuracy_over_the_removal_sweep():
    areas = fc.ablation_area(_ablation([0.4, 0.4, 0.4], [0.4, 0.1, 0.1], [0.4, 0.2, 0.1]))
    assert areas["least"] == pytest.approx(40.0)  # flat at 40 %
    assert areas["most"] == pytest.approx(0.5 * (40 + 10) / 2 + 0.5 * 10)  # trapezoids over fractions 0, 0.5, 1
    assert areas["random"] == pytest.approx(0.5 * 30 + 0.5 * 15)


def test_ablation_comparison_the_minimum_does_not_decide_it():
    # both orders reach chance (10 %) at the end: the old minimum-accuracy statistic called them level
    seeds = [_ablation([0.3, 0.3 - d, 0.1], [0.3, 0.12 + d, 0.1]) for d in (0.0, 0.01, 0.02)]
    c = fc.ablation_comparison(seeds)
    assert c.diff > 5 and c.verdict == "as in the paper"
    assert fc.ablation_finding(seeds).status == verdicts.REPRODUCED
    assert "least connected first" in fc.ablation_text(seeds)
    # one seed: the paper's direction, but only partly
    assert fc.ablation_finding(seeds[:1]).status == verdicts.PARTLY
    # reversed beyond the spread: not at this preset
    flipped = [_ablation([0.3, 0.12 + d, 0.1], [0.3, 0.3 - d, 0.1]) for d in (0.0, 0.01, 0.02)]
    assert fc.ablation_finding(flipped).status == verdicts.NOT_HERE
    # a difference inside the seed spread: partly, "cannot order them"
    noisy = [_ablation([0.3, 0.2 + d, 0.1], [0.3, 0.2 - d, 0.1]) for d in (0.1, -0.09, 0.0)]
    assert fc.ablation_comparison(noisy).verdict == "within the spread"


def test_below_random_is_higher_for_more_local_units():
    assert fc.below_random(1.0) == pytest.approx(0.0)
    assert fc.below_random(0.8) == pytest.approx(20.0)


def test_degree_comparison_needs_the_spread_to_call_it():
    # (least, most) locality ratios per seed: the most connected clearly more local
    clear = [(0.90, 0.70), (0.92, 0.71), (0.91, 0.69)]
    assert fc.degree_comparison(clear).verdict == "as in the paper"
    assert fc.degree_finding(clear).status == verdicts.REPRODUCED
    # 0.82 against 0.81, seen once: not told from noise
    once = fc.degree_finding([(0.82, 0.81)])
    assert once.status == verdicts.PARTLY and "seen once" in once.why
    # within the spread across seeds
    assert fc.degree_comparison([(0.82, 0.81), (0.80, 0.83), (0.81, 0.81)]).verdict == "within the spread"
    # the least connected the more local: not at this preset
    assert fc.degree_finding([(0.70, 0.90), (0.71, 0.91), (0.69, 0.92)]).status == verdicts.NOT_HERE


def test_locality_finding_names_the_weight_decay_and_the_run_without_it():
    found = fc.locality_finding([0.80, 0.81, 0.79], [1.0, 0.999, 1.001], [0.94], 0.02)
    assert found.status == verdicts.REPRODUCED
    assert "decay 0.02, not the paper's" in found.ours and "without: 0.94" in found.ours
    assert fc.locality_finding([0.8], [1.0]).status == verdicts.PARTLY  # one seed
    assert fc.locality_finding([1.0, 1.01, 0.99], [0.8, 0.81, 0.79]).status == verdicts.NOT_HERE
    assert "decay" not in fc.locality_finding([0.8], [1.0]).ours


def test_accuracy_finding_both_sides():
    assert fc.accuracy_finding([0.31, 0.32, 0.30], [0.27, 0.28, 0.27]).status == verdicts.REPRODUCED
    assert fc.accuracy_finding([0.27, 0.28, 0.27], [0.31, 0.32, 0.30]).status == verdicts.NOT_HERE
    assert fc.accuracy_finding([0.314], [0.275]).status == verdicts.PARTLY


def _rounds(best_round: int, rounds: int = 14, gain: float = 0.1) -> pd.DataFrame:
    return pd.DataFrame([{"round": r, "remaining_fraction": 0.7 ** r,
                          "best_validation_accuracy": 0.25 + (gain if r == best_round else 0.0)} for r in range(rounds)])


def test_peak_finding_checks_the_gain_and_where_the_peak_lies():
    near = fc.peak_finding([_rounds(13, gain=g) for g in (0.09, 0.1, 0.11)])  # u = 0.7**13 = 0.97 %
    assert near.status == verdicts.REPRODUCED and "u = 1.0%" in near.ours
    far = fc.peak_finding([_rounds(8, gain=g) for g in (0.09, 0.1, 0.11)])  # u = 5.8 %: more than 3x the paper's
    assert far.status == verdicts.PARTLY and "above the paper's 0.97%" in far.why
    assert fc.peak_finding([_rounds(13)]).status == verdicts.PARTLY  # one seed
    dense_best = [_rounds(0, gain=g) for g in (0.09, 0.1, 0.11)]
    assert fc.peak_finding(dense_best).status == verdicts.NOT_HERE


def _one_shot_frame(imp_ratio: float, one_ratio: float) -> pd.DataFrame:
    rows = [{"run": "IMP", "round": r, "remaining_fraction": 0.7 ** r, "locality_ratio": 1.0 if r < 13 else imp_ratio,
             "best_validation_accuracy": 0.3} for r in range(14)]
    rows += [{"run": "one-shot", "round": r, "remaining_fraction": 0.7 ** (13 * r), "locality_ratio": 1.0 if r == 0 else one_ratio,
              "best_validation_accuracy": 0.24} for r in range(2)]
    return pd.DataFrame(rows)


def test_one_shot_comparison_matches_the_final_u_and_says_when_reversed():
    agrees = [_one_shot_frame(0.80 - d, 0.95 + d) for d in (0.0, 0.01, 0.02)]
    assert fc.one_shot_finding(agrees).status == verdicts.REPRODUCED
    reversed_ = _one_shot_frame(0.805, 0.502)
    assert fc.one_shot_finding([reversed_]).status == verdicts.NOT_HERE
    records = {"one-shot": {"weight_decay": 0.02, "epochs": 3, "lr": 0.5}}
    text = fc.one_shot_summary(reversed_, records)
    assert "reverse of the paper" in text and "weight decay 0.02" in text and "3 epochs at lr 0.5" in text
    assert "weight decay" not in fc.one_shot_summary(_one_shot_frame(0.5, 0.8), records)


def test_controls_table_says_which_task_each_run_learns():
    frame = pd.DataFrame([{"run": run, "round": 13, "remaining_fraction": 0.01, "best_validation_accuracy": 0.3,
                           "test_accuracy": 0.3, "locality_ratio": 0.8} for run in ("IMP", "meaningful labels", "CNN (IMP)")])
    records = {"IMP": {"label_grouping": "none", "dataset": "cifar10"},
               "meaningful labels": {"label_grouping": "meaningful", "dataset": "cifar10"},
               "CNN (IMP)": {"label_grouping": None, "dataset": "cifar10"}}
    table = fc.controls_table(frame, records)
    assert table.loc["IMP", "task"] == "10 classes"
    assert table.loc["meaningful labels", "task"] == "2 groups (meaningful)"
    assert "CNN (IMP)" not in table.index
    assert "round" not in table and "remaining_fraction" not in table  # one schedule for every run: not a column
    frame.loc[frame["run"] == "IMP", "round"] = 12
    assert "round" in fc.controls_table(frame, records)  # runs that stopped at different rounds keep it


def test_controls_text_compares_data_and_labels():
    rows = [("IMP", 0.80), ("less data", 0.93), ("meaningful labels", 0.79), ("random labels", 0.86)]
    frame = pd.DataFrame([{"run": r, "round": 13, "locality_ratio": v} for r, v in rows])
    text = fc.controls_text(frame)
    assert "more data 20.0% against less data 7.0%" in text
    assert "the meaningful grouping 21.0% against the random grouping 14.0%" in text


def test_claims_find_the_preset_of_their_runs():
    run_id = fc.configs(fc.preset("quick"))["IMP"].run_id
    assert fc._preset_of(run_id) == "quick"
    with pytest.raises(ValueError, match="not the IMP run"):
        fc._preset_of("imp-000000000000")
    assert 3 <= len(fc.CHAPTER.claims) <= 6
    for claim in fc.CHAPTER.claims:
        assert len(claim.what.split()) <= 10 and set(claim.figures) <= {f.name for f in fc.CHAPTER.figures}
