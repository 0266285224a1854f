"""The Random transformers chapter: its plan, its helpers on constructed frames and on real compact files, and
the chapter run end to end at the smoke preset."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import check_smoke_notebook

from randweights import compact, models, plan, verdicts
from randweights.chapters import CHAPTERS, synthesis
from randweights.chapters import transformers as tf
from randweights.methods import edge_popup as ep
from randweights.methods import supermask_bernoulli as zb


def test_full_plan_lists_the_chapter_and_every_figure_has_runs():
    entries = plan.plan("full", CHAPTERS, ["transformers"])
    figures = {f.split(": ", 1)[1] for e in entries for f in e.figures}
    assert figures == {f.name for f in tf.CHAPTER.figures}
    archs = {e.config.model.arch for e in entries}
    assert archs == {"vit-p4-d4", "vit-p4-d6"} and {e.config.data.dataset for e in entries} == {"mnist", "cifar10"}
    shared = [e for e in entries if getattr(e.config.method, "shared_blocks", False)]
    assert len(shared) == len(tf.preset("full").seeds) and all(e.config.model.arch == "vit-p4-d6" for e in shared)


def test_synthesis_reads_the_chapters_own_vit_runs():
    for name in ("smoke", "quick", "full"):
        ours = {c.run_id for f in tf.CHAPTER.figures for c in f.configs(name)}
        theirs = [cfg for _, _, _, cfg in synthesis.vit_configs(name)]
        assert theirs and {c.run_id for c in theirs} <= ours, name
        assert {c.method.name for c in theirs} == {"dense", "edge-popup", "supermask-bernoulli", "slot", "laperm"}


def test_distinct_random_values_count_one_block_once_when_shared():
    net = models.build("vit-p4-d4", (1, 28, 28), 10)
    block = models.count_weights(net.blocks[0])
    assert block == 3 * 64 * 64 + 64 * 64 + 2 * 64 * 128  # q/k/v, attention out, the MLP
    total = models.count_weights(net)
    assert tf.distinct_weights("vit-p4-d4", "mnist") == total
    assert tf.distinct_weights("vit-p4-d4", "mnist", shared=True) == total - 3 * block


@pytest.mark.parametrize("method", ["edge-popup", "supermask-bernoulli"])
def test_kept_parts_split_the_packed_projection_and_add_up_to_the_mask(method, tmp_path):
    torch.manual_seed(0)
    model = models.build("vit-p4-d2", (1, 28, 28), 10)
    g = torch.Generator().manual_seed(1)
    if method == "edge-popup":
        ep.apply(model, 0.3, generator=g)
    else:
        zb.apply(model, 0.5, eval_mask="threshold", generator=g)
    with torch.no_grad():  # q rows scored highest, k rows lowest, in block 1's attention
        scores = model.blocks[0].attn.parametrizations.in_proj_weight[0].scores
        scores[:64] = 10.0
        scores[64:128] = -10.0 if method == "supermask-bernoulli" else 0.0
    compact.save(model, tmp_path / "m.rwc")
    parts = tf.kept_parts(tmp_path / "m.rwc")
    assert list(dict.fromkeys(parts["part"])) == list(tf.PARTS)
    assert len(parts) == 2 + 2 * 6 and set(parts["block"]) == {"", "block 1", "block 2"}
    q = parts[(parts["block"] == "block 1") & (parts["part"] == "q")].iloc[0]
    k = parts[(parts["block"] == "block 1") & (parts["part"] == "k")].iloc[0]
    # Edge-Popup keeps round(0.3 n) of the projection, all in the q rows (the largest |S|); the Bernoulli
    # supermask (threshold p > 1/2) every q weight and no k weight
    assert q["weights"] == k["weights"] == 64 * 64 and k["kept"] == 0
    assert q["kept"] == (ep.kept_count(3 * 64 * 64, 0.3) if method == "edge-popup" else 64 * 64)
    total = parts["weights"].sum()
    assert total == models.count_weights(model)
    header, arrays = compact.read(tmp_path / "m.rwc")
    bits = sum(int(np.unpackbits(arrays[f"mask/{n}"]).sum()) for n in header["layers"])
    assert parts["kept"].sum() == bits
    if method == "edge-popup":  # every layer keeps exactly round(k n), whatever the split inside the projection
        per_layer = parts.assign(layer=parts["block"] + parts["part"].replace({"q": "attn", "k": "attn", "v": "attn"}))
        for (_, layer), g_ in per_layer.groupby(["block", "layer"]):
            assert g_["kept"].sum() == ep.kept_count(int(g_["weights"].sum()), 0.3), layer


def _rows(method, values, **extra):
    return [{"method": method, "family": "MNIST", "seed": s, "test_accuracy": v, "arch": "vit-p4-d2", **extra}
            for s, v in enumerate(values)]


def test_inverted_u_and_the_best_k_against_dense():
    rows = []
    for k, acc in ((0.1, (0.60, 0.62)), (0.5, (0.90, 0.91)), (0.9, (0.70, 0.71))):
        rows += _rows("edge-popup", acc, keep_fraction=k)
    rows += _rows("dense", (0.91, 0.92), keep_fraction=np.nan)
    df = pd.DataFrame(rows)
    assert tf.best_k(df) == 0.5
    assert tf.inverted_u(df).startswith("an inverted U") and "k = 0.5 (90.5%)" in tf.inverted_u(df)
    c = tf.best_against_dense(df)
    assert (c.first, c.second) == ("Edge-Popup at k = 0.5", "dense") and round(c.diff, 6) == -1.0
    flat = df.assign(test_accuracy=np.where(df["keep_fraction"] == 0.9, 0.99, df["test_accuracy"]))
    assert tf.inverted_u(flat).startswith("no inverted U on this grid: it peaks at its largest k")
    frames = {"accuracy vs k": df.assign(dataset="mnist", shared_blocks=np.nan)}
    assert tf._inverted_u_claim(frames.__getitem__).status == verdicts.REPRODUCED
    assert tf._near_dense_claim(frames.__getitem__).status == verdicts.REPRODUCED
    far = {"accuracy vs k": frames["accuracy vs k"].assign(test_accuracy=lambda d: np.where(d["method"] == "dense", 0.99, d["test_accuracy"]))}
    assert tf._near_dense_claim(far.__getitem__).status == verdicts.NOT_HERE


def test_width_gaps_per_width_and_whether_they_narrow():
    rows = []
    for w, (e, d) in {0.5: (0.80, 0.90), 1.0: (0.86, 0.90), 2.0: (0.89, 0.90)}.items():
        rows += _rows("edge-popup", (e, e + 0.01), width=w) + _rows("dense", (d, d + 0.01), width=w)
    gaps = tf.width_gaps(pd.DataFrame(rows))
    assert list(gaps["features"]) == [32, 64, 128] and np.allclose(gaps["gap"], [10.0, 4.0, 1.0])
    text = tf.width_sentence(pd.DataFrame(rows))
    assert "32 features: +10.0 points" in text and "falls by 9.0 points" in text and "dense is ahead at every width" in text
    ahead = pd.DataFrame(rows).assign(test_accuracy=lambda d: np.where(d["method"] == "dense", d["test_accuracy"] - 0.2, d["test_accuracy"]))
    assert "Edge-Popup is ahead of dense at every width" in tf.width_sentence(ahead)


def test_shared_claim_and_table_say_what_was_measured():
    rows = _rows("edge-popup", (0.80, 0.82), shared_blocks=True) + _rows("edge-popup", (0.81, 0.82), shared_blocks=False)
    df = tf.annotate(pd.DataFrame(rows).assign(dataset="mnist", keep_fraction=0.5, width=1.0, weight_count=1000,
                                               compact_bits_per_weight=1.5, arch="vit-p4-d4"))
    c = tf.shared_comparison(df)
    assert c.first == "one shared random layer" and round(c.diff, 6) == -0.5
    assert tf._shared_claim(lambda _: df).status == verdicts.REPRODUCED
    table = tf.shared_table(df)
    distinct = dict(zip(table["blocks"], table["distinct random values"]))
    assert distinct["independent random blocks"] - distinct["one shared random layer"] == 3 * models.count_weights(
        models.build("vit-p4-d4", (1, 28, 28), 10).blocks[0])


@pytest.mark.slow  # executes the notebook
def test_transformers_notebook_smoke(smoke_chapters, mnist):
    path = smoke_chapters("transformers")
    outputs = check_smoke_notebook(path, 5)  # k, width, slot machines and LaPerm, shared layer, masks kept
    text = json.dumps(outputs)
    for words in ("inverted U", "dense minus Edge-Popup", "one shared random layer", "Bernoulli supermask: attention"):
        assert words in text, words
