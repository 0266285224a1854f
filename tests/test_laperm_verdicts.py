"""The LaPerm chapter's verdict helpers and its comparison table, fed constructed frames on both sides of each
threshold."""

import pandas as pd
import torch

from randweights import plots, verdicts
from randweights.chapters import laperm as lp


def _agnostic(arch, seed, best, zeros, logit_scale=1.0):
    return {"run_id": f"laperm-{arch}-{logit_scale}-{seed}", "arch": arch, "seed": seed, "init": "weight-agnostic",
            "init_sparsity": 3 / 7 if arch == "f1" else 0.0, "sync_period": 250, "best_test_accuracy": best,
            "test_accuracy": best - 0.01, "epochs": 10, "train_images": 60000, "logit_scale": logit_scale,
            "init_zero_fraction": zeros}


def test_comparison_table_gives_f1_and_f2_their_measured_zeros():
    """F1 and F2 draw their zeros through their own settings: the table must show the runs' fraction, not the
    paper table's sparsity key (0)."""
    df = pd.DataFrame([_agnostic("f1", 0, 0.83, 0.42), _agnostic("f1", 1, 0.84, 0.44),
                       _agnostic("f2", 0, 0.76, 0.926, 30.0), _agnostic("f2", 0, 0.42, 0.925)])
    table = lp.comparison_table("quick", [df])
    zeros = dict(zip(table["network"].str.split(" ").str[0] + " " + table["method"], table["p (zeros at init)"]))
    assert abs(zeros["F1 LaPerm"] - 0.43) < 1e-9
    assert abs(zeros["F2 LaPerm, our recipe"] - 0.926) < 1e-9 and abs(zeros["F2 LaPerm, official recipe"] - 0.925) < 1e-9
    # rows with no runs: the paper table's sparsity where it sets it (ResNet-50), unknown for F1 / F2
    resnet = table[table["network"].str.startswith("ResNet-50")]["p (zeros at init)"].round(2).tolist()
    assert resnet == [0.0, 0.3, 0.5, 0.7]
    assert lp.comparison_table("quick", [df[df["arch"] == "f1"]])["p (zeros at init)"].iloc[1:3].isna().all()


def test_agnostic_level_on_both_sides_of_the_tolerance():
    far = pd.DataFrame([_agnostic("f2", s, a, 0.92) for s, a in enumerate((0.35, 0.50))])
    # a wide seed spread does not widen the band: 42.5% is not the paper's 78.14%
    assert lp.agnostic_level(far, "F2, official recipe").status == verdicts.NOT_HERE
    near = pd.DataFrame([_agnostic("f2", s, a, 0.92, 30.0) for s, a in enumerate((0.775, 0.785))])
    assert lp.agnostic_level(near, "F2, our recipe").status == verdicts.REPRODUCED
    close = pd.DataFrame([_agnostic("f1", s, a, 0.43) for s, a in enumerate((0.83, 0.832))])
    assert lp.agnostic_level(close, "F1").status == verdicts.PARTLY
    assert "F1 83.1% ± 0.1 best" in lp.agnostic_levels(pd.concat([close, near, far]))


def _periods(adam, by_k):
    rows = [{"sync_period": 0, "seed": s, "test_accuracy": a} for s, a in enumerate(adam)]
    rows += [{"sync_period": k, "seed": s, "test_accuracy": a} for k, accs in by_k.items() for s, a in enumerate(accs)]
    return pd.DataFrame(rows)


def test_laperm_matches_adam_on_both_sides():
    close = _periods([0.962, 0.963], {1: [0.91, 0.92], 100: [0.960, 0.958]})
    versus_adam, versus_worst = lp.period_comparisons(close)
    assert versus_adam.first == "LaPerm at k = 100" and lp.matches(versus_adam).status == verdicts.REPRODUCED
    assert versus_worst.status == verdicts.REPRODUCED and "as the paper reports" in lp.match_sentence(versus_adam)
    behind = _periods([0.96, 0.962], {1: [0.91, 0.92], 100: [0.94, 0.942]})
    assert lp.matches(lp.period_comparisons(behind)[0]).status == verdicts.PARTLY
    far = _periods([0.96, 0.962], {1: [0.85, 0.86], 100: [0.90, 0.902]})
    assert lp.matches(lp.period_comparisons(far)[0]).status == verdicts.NOT_HERE
    flat = _periods([0.96, 0.962], {1: [0.95, 0.97], 100: [0.96, 0.961]})
    assert lp.period_comparisons(flat)[1].verdict == "within the spread"


def _probes(synced, shuffled):
    return [{"step": 0, "synced": 0.1, "shuffled": 0.1}, {"step": 100, "synced": synced, "shuffled": shuffled}]


def test_rank_comparison_over_seeds():
    runs = pd.DataFrame([{"sync_period": 0, "seed": s, "probes": _probes(sy, sh)}
                         for s, (sy, sh) in enumerate(((0.90, 0.10), (0.91, 0.11)))]
                        + [{"sync_period": 10, "seed": 0, "probes": _probes(0.0, 0.9)}])
    c = lp.rank_comparison(runs)
    assert abs(c.mean_first - 90.5) < 1e-9 and c.status == verdicts.REPRODUCED
    flipped = pd.DataFrame([{"sync_period": 0, "seed": s, "probes": _probes(sh, sy)}
                            for s, (sy, sh) in enumerate(((0.90, 0.10), (0.91, 0.11)))])
    assert lp.rank_comparison(flipped).status == verdicts.NOT_HERE


def test_sparse_sentence_gives_a_reason_only_when_laperm_trails():
    def frame(lap, fixed):
        return pd.DataFrame([{"init_sparsity": 0.9, "hold_zeros": h, "seed": s, "test_accuracy": a, "epochs": 3}
                             for s in (0, 1) for h, a in ((False, lap + 0.001 * s), (True, fixed))])
    assert "We expected" in lp.sparse_sentence(frame(0.85, 0.93))
    assert "We expected" not in lp.sparse_sentence(frame(0.95, 0.93))


def test_ks_table_has_one_row_per_layer_and_weights_column_and_no_index_column():
    torch.manual_seed(0)
    kernels = [torch.randn(20, 12), torch.randn(12, 8)]
    ks = lp.ks_table(kernels, [k.flip(1) for k in kernels])
    assert list(ks.columns[:3]) == ["weights", "layer", "units"] and list(ks["weights"]) == ["init", "init", "trained", "trained"]
    html = plots.book_table(ks, decimals=3).to_html()
    assert "level_1" not in html and "level 1" not in html and ">index<" not in html
    numbers = lp.ks_numbers(ks)
    assert numbers["ks_verdict"] in ("smaller than", "not smaller than") and float(numbers["ks_within_trained"]) >= 0
