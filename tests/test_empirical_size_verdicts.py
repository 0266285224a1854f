"""The empirical-size chapter's verdicts and claims: constructed numbers on both sides of each threshold."""

from __future__ import annotations

import pandas as pd
import pytest

from randweights import verdicts
from randweights.chapters import empirical_size as es


def test_plane_regions_bound_is_the_arrangement_bound_per_layer():
    assert es.plane_regions_bound((64,)) == 1 + 64 + 64 * 63 // 2 == 2081
    assert es.plane_regions_bound((64, 64)) == 2081 ** 2
    assert es.plane_regions_bound((3,)) == 7  # three lines in general position cut a plane into 7
    assert es.plane_regions_bound((1, 5)) == 2 * 6  # one unit: a line; after it the regions are 1-D: 1 + n pieces


def _init(per_arch: dict[str, tuple[int, list[float]]]) -> pd.DataFrame:
    rows = []
    for arch, (neurons, knots) in per_arch.items():
        rows += [{"arch": arch, "depth": arch.count("-") - 1, "neurons": neurons, "bound": 10.0 * neurons ** 2,
                  "seed": s, "knots": k} for s, k in enumerate(knots)]
    return pd.DataFrame(rows)


def test_init_finding_one_knot_per_neuron_within_the_tolerance():
    near = _init({"1-16-1": (16, [15, 16, 17, 16]), "1-8-8-1": (16, [16, 17, 15, 16])})
    assert es.init_finding(near).status == verdicts.REPRODUCED
    far = _init({"1-16-1": (16, [32, 33, 31, 32]), "1-8-8-1": (16, [30, 31, 32, 33])})
    assert es.init_finding(far).status == verdicts.NOT_HERE
    mixed = _init({"1-16-1": (16, [15, 16, 17, 16]), "1-8-8-1": (16, [30, 31, 32, 33])})
    assert es.init_finding(mixed).status == verdicts.PARTLY
    assert es.init_finding(far).ours == "1.97 to 2.00 knots per neuron"
    text = es.init_text(far)
    assert "unlike the companion paper" in text and "0 of 2 architectures" in text


def test_bound_finding_far_below_means_at_most_ten_percent():
    assert es.bound_finding([0.03, 0.001], seeds=1).status == verdicts.PARTLY
    assert es.bound_finding([0.03, 0.001], seeds=3).status == verdicts.REPRODUCED
    assert es.bound_finding([0.03, 0.2], seeds=3).status == verdicts.NOT_HERE
    assert es.bound_finding([0.03], seeds=1).ours == "at most 3% of it"


def test_order_finding_at_most_two_knots_per_neuron():
    assert es.order_finding([0.4, 1.0], seeds=1).status == verdicts.PARTLY
    assert es.order_finding([0.4, 1.9], seeds=2).status == verdicts.REPRODUCED
    assert es.order_finding([0.4, 2.5], seeds=2).status == verdicts.NOT_HERE


def test_spline_finding_the_net_spending_more_knots():
    assert es.spline_finding([121], [14]).status == verdicts.PARTLY  # one run
    assert es.spline_finding([121, 100], [14, 20]).status == verdicts.REPRODUCED
    assert es.spline_finding([10], [14]).status == verdicts.NOT_HERE
    assert es.spline_finding([10], [None]).status == verdicts.NOT_HERE  # no spline reaches the net's error
    assert es.spline_finding([121, 10], [14, 20]).status == verdicts.PARTLY


def test_spline_text_follows_the_finding():
    def curves(net, uniform):
        return {"equivalent": [{"step": 3000, "net_knots": net, "net_test_mse": 0.07, "uniform_knots": uniform, "free_knots": 8}]}

    assert "spends more knots than the spline" in es.spline_text(curves(121, 14))
    assert "not unlike a spline" in es.spline_text(curves(10, 14))
    assert "no uniform spline" in es.spline_text(curves(10, None))


def test_regions_summary_compares_with_the_whole_net_bound():
    rows = [{"step": 0, "regions": 4015, "first_layer_regions": 1058}, {"step": 2000, "regions": 3977, "first_layer_regions": 1124}]
    text = es.regions_summary({"rows": rows}, "quick")  # quick: a 2-64-64-1 net
    assert "4,330,561" in text and "0.092%" in text and "fewer after training" in text
    assert "1,124 regions" in text and "at most 2,081 for its 64 lines" in text and "by 3.5" in text
    more = es.regions_summary({"rows": [rows[1], {**rows[0], "step": 2000}]}, "quick")
    assert "more after training" in more


def test_claims_find_the_preset_of_their_runs():
    frame = pd.DataFrame({"run_id": [cfg.run_id for cfg in es.mnist_configs(es.preset("quick"))]})
    assert es._preset_of(frame) == "quick"
    with pytest.raises(ValueError, match="not the MNIST runs"):
        es._preset_of(pd.DataFrame({"run_id": ["dense-000000000000"]}))
    assert 3 <= len(es.CHAPTER.claims) <= 6
    for claim in es.CHAPTER.claims:
        assert len(claim.what.split()) <= 10
