"""The verdict helpers on constructed cases, on both sides of each threshold: a verdict says "as in the paper" only
when the direction agrees and the difference exceeds the seed spread, and says how our size compares."""

import math

import pytest

from randweights import verdicts
from randweights.verdicts import NOT_HERE, NOT_RUN, PARTLY, REPRODUCED, Finding, compare, level, trend


def test_spread_unpaired_is_root_sum_of_squares():
    c = compare("A", "B", [10, 12], [5, 5, 5])
    assert c.diff == pytest.approx(6.0)
    assert c.spread == pytest.approx(math.sqrt(2.0))  # sd of [10, 12] is sqrt(2); of [5, 5, 5] zero


def test_spread_paired_is_sd_of_differences():
    c = compare("A", "B", [10, 12, 14], [9, 11, 13], paired=True, paper_first=True)  # a 1-point lead on every seed
    assert c.spread == 0.0 and c.diff == pytest.approx(1.0)
    assert c.verdict == "as in the paper"
    assert compare("A", "B", [10, 12, 14], [9, 11, 13], paper_first=True).verdict == "within the spread"  # unpaired


def test_as_in_the_paper_needs_the_difference_beyond_the_spread():
    beyond = compare("A", "B", [11.0, 11.2], [10.0, 10.2], paper_first=True)  # diff 1.0, spread 0.2
    within = compare("A", "B", [11.0, 13.0], [10.0, 12.0], paper_first=True)  # diff 1.0, spread 2.0
    assert beyond.verdict == "as in the paper" and beyond.status == REPRODUCED
    assert within.verdict == "within the spread" and within.status == PARTLY
    assert "cannot order" in within.sentence() and "as in the paper" not in within.sentence()


def test_reversed_beyond_the_spread_is_the_reverse_of_the_paper():
    c = compare("Edge-Popup", "dense", [55.5, 56.5], [54.5, 55.5], paper_first=False)  # diff 1.0 beyond 0.0 + sd
    assert c.verdict == "within the spread"  # spread sqrt(0.5 + 0.5) = 1.0: not beyond
    c = compare("Edge-Popup", "dense", [55.75, 55.85], [54.65, 54.75], paper_first=False)
    assert c.verdict == "reverse of the paper" and c.status == NOT_HERE
    assert c.sentence().startswith("Edge-Popup 55.8% against dense 54.7% (+1.1 points, seed spread 0.1)")
    assert "the reverse of the paper, which has dense ahead" in c.sentence()


def test_reversed_within_the_spread_is_not_partly():
    c = compare("A", "B", [10.0, 12.0], [11.0, 13.0], paper_first=True)  # B ahead by 1, spread 2
    assert c.verdict == "within the spread" and c.direction == "reversed" and c.status == NOT_HERE


def test_one_seed_is_never_reproduced():
    agrees = compare("A", "B", [80.0], [60.0], paper_first=True)
    reverse = compare("A", "B", [60.0], [80.0], paper_first=True)
    assert agrees.spread is None and agrees.verdict == "one seed" and agrees.status == PARTLY
    assert reverse.status == NOT_HERE
    assert "seen once" in agrees.sentence() and "as in the paper" not in agrees.sentence()


def test_size_against_the_paper_larger_smaller_or_about():
    # greedy vs probabilistic slot selection: ours 23.8 points apart against the paper's 0.2
    big = compare("greedy", "probabilistic", [97.0, 97.2], [73.2, 73.4], paper_diff=0.2)
    assert big.verdict == "as in the paper"
    assert big.size_text().startswith("23.6 points larger than in the paper (0.2 points)")
    small = compare("A", "B", [61.0, 61.2], [60.0, 60.2], paper_diff=6.0)  # 1.0 against 6.0, spread 0.2
    assert small.size_text().startswith("5.0 points smaller than in the paper")
    about = compare("A", "B", [66.0, 64.0], [60.0, 58.0], paper_diff=5.0)  # 6.0 against 5.0, spread 2.0
    assert about.size_text().startswith("about the paper's size")
    assert compare("A", "B", [60.0, 60.2], [61.0, 61.2], paper_diff=5.0).size_text() == ""  # reversed: no size


def test_sentence_states_both_numbers_the_difference_and_the_spread():
    text = compare("Edge-Popup", "the Bernoulli supermask", [70.0, 70.4], [60.0, 60.4], paper_diff=4.0).sentence()
    assert "Edge-Popup 70.2% against the Bernoulli supermask 60.2% (+10.0 points, seed spread 0.4)" in text
    assert "6.0 points larger than in the paper (4.0 points)" in text


def test_no_paper_direction_gives_the_numbers_only():
    c = compare("A", "B", [1.0, 1.1], [0.0, 0.1])
    assert c.verdict == "no paper direction" and c.sentence().endswith("seed spread 0.1)")


def test_trend_compares_the_ends_of_a_sweep():
    rising = trend("accuracy", [4, 1, 2], [[90.0, 90.2], [80.0, 80.2], [85.0, 85.2]], paper_rising=True)
    assert rising.diff == pytest.approx(10.0) and rising.verdict == "as in the paper"
    falling = trend("accuracy", [1, 4], [[92.0, 92.1], [90.1, 90.0]], paper_rising=True)  # Fig. 5 reversed
    assert falling.verdict == "reverse of the paper"
    with pytest.raises(ValueError, match="two points"):
        trend("x", [1], [[1.0]], True)


def test_level_tolerance_bands():
    assert level([98.1, 98.3], 98.2, tolerance=0.5).status == REPRODUCED
    assert level([97.2], 98.2, tolerance=0.5).status == PARTLY  # 1.0 off: within 3x the band
    assert level([90.0], 98.2, tolerance=0.5).status == NOT_HERE
    wide = level([96.0, 98.0], 98.2, tolerance=0.5)  # sd 1.41: the band is 2 sd = 2.83
    assert wide.status == REPRODUCED and "tolerance 2.8" in wide.why


def test_combine_all_some_none():
    r, p, n = Finding("", REPRODUCED), Finding("", PARTLY), Finding("", NOT_HERE)
    assert verdicts.combine([r, r], "x").status == REPRODUCED
    assert verdicts.combine([r, n], "x").status == PARTLY
    assert verdicts.combine([p, p], "x").status == PARTLY
    assert verdicts.combine([n, n], "x").status == NOT_HERE
    assert verdicts.combine([Finding("", NOT_RUN)], "x").status == NOT_RUN
    assert verdicts.combine([r, n], "x").why == "1 reproduced, 1 not at this preset"


def test_finding_rejects_an_unknown_status():
    with pytest.raises(ValueError, match="one of reproduced"):
        Finding("1%", "as in the paper")


def test_paired_lengths_must_match():
    with pytest.raises(ValueError, match="different lengths"):
        compare("A", "B", [1.0, 2.0], [1.0], paired=True)


def test_an_effect_far_larger_or_smaller_than_the_papers_is_partly_not_reproduced():
    """GS - PS on LeNet: +23.6 points against the paper's +0.2 is the paper's direction, far beyond the spread, and
    100 times the paper's size: partly. Within 3x (or 2 points) of the paper's size: reproduced."""
    huge = compare("GS", "PS", [95.0, 95.2], [71.4, 71.6], paper_diff=0.2, paired=True)
    assert huge.verdict == "as in the paper" and not huge.size_matches and huge.status == PARTLY
    assert "23.4 points larger than in the paper (0.2 points)" in huge.sentence()
    tiny = compare("K = 8", "K = 2", [80.3, 80.4], [80.0, 80.1], paper_diff=4.2, paired=True)
    assert tiny.verdict == "as in the paper" and tiny.status == PARTLY  # 0.3 against 4.2: 14x smaller, 3.9 points
    for ours in (1.5, 3.0, 12.0):  # 4.2 / 3 = 1.4 <= ours <= 12.6: of the paper's size
        c = compare("a", "b", [50.0 + ours, 50.1 + ours], [50.0, 50.1], paper_diff=4.2, paired=True)
        assert c.size_matches and c.status == REPRODUCED, ours
    near = compare("a", "b", [51.0, 51.1], [50.0, 50.1], paper_diff=0.2, paired=True)  # 1.0 vs 0.2: within 2 points
    assert near.size_matches and near.status == REPRODUCED
    far = compare("a", "b", [63.0, 63.1], [50.0, 50.1], paper_diff=4.2, paired=True)  # 13.0 vs 4.2: over 3x, 8.8 points
    assert not far.size_matches and far.status == PARTLY
    assert compare("a", "b", [60.0, 60.1], [50.0, 50.1], paper_first=True, paired=True).status == REPRODUCED  # no size
