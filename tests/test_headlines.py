"""Recipe tables and headline tables: read from the plan and from stored runs, never trained."""

from __future__ import annotations

import statistics

import pytest

from randweights import make_config, runs
from randweights.chapters import CHAPTERS, headline_table
from randweights.plan import Chapter, Figure, Headline, RecipeRow


def configs(preset: str):
    epochs = 1 if preset == "smoke" else 2
    out = [make_config("edge-popup", keep_fraction=k, subset=100, epochs=epochs, seed=s) for k in (0.3, 0.5) for s in (0, 1, 2)]
    return out + [make_config("dense", subset=100, epochs=epochs, seed=s, lr=0.05) for s in (0, 1)]


def chapter(**kw) -> Chapter:
    return Chapter("toy", "Toy: a chapter", "notebooks/toy.ipynb", ("smoke", "full"), (Figure("Fig. 1", configs),), **kw)


def test_the_recipe_table_reads_full_from_the_plan():
    rows = (RecipeRow("lr, dense", "0.1", "0.01", "lr", lambda c: c.method.name == "dense", "the code"),
            RecipeRow("epochs", "100", "90", "epochs", note="ours"),
            RecipeRow("kept fraction", "-", "-", "keep_fraction", lambda c: c.method.name == "edge-popup"))
    table = chapter(recipe=rows).recipe_table()
    assert list(table["full"]) == ["lr = 0.05", "epochs = 2", "keep_fraction = 0.3, 0.5"]
    assert list(chapter(recipe=rows).recipe_table("smoke")["smoke"])[1] == "epochs = 1"
    empty = RecipeRow("nothing", "-", "-", "lr", lambda c: False)
    with pytest.raises(ValueError, match="nothing"):
        chapter(recipe=(empty,)).recipe_table()


def test_headlines_average_the_stored_seeds_and_never_train(tmp_path, mnist, monkeypatch):
    monkeypatch.setenv("RANDWEIGHTS_TRAIN", "1")
    heads = (Headline("dense", 97.0, "Fig. 1", lambda c: c.method.name == "dense"),
             Headline("edge-popup, best k", None, "Fig. 1", lambda c: c.method.name == "edge-popup", best_of="keep_fraction"))
    toy = chapter(headlines=heads)
    table = toy.headline_table(("full", "smoke"), root=tmp_path)
    assert list(table["ours, full"]) == ["not run", "not run"] and list(table["runs, full"]) == ["0 of 2", "0 of 6"]
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written
    full = configs("full")
    stored = [runs.get_or_run(c, root=tmp_path) for c in (full[0], full[1], full[3], full[6])]  # k=0.3 s0,s1; k=0.5 s0; dense s0
    table = toy.headline_table(("full",), root=tmp_path)
    dense_acc = 100 * stored[3]["test_accuracy"]
    assert table.loc[0, "ours, full"] == f"{dense_acc:.2f}" and table.loc[0, "runs, full"] == "1 of 2"
    assert table.loc[0, "paper"] == "97.00" and table.loc[1, "paper"] == "not reported"
    k3 = [100 * r["test_accuracy"] for r in stored[:2]]
    k5 = 100 * stored[2]["test_accuracy"]
    if statistics.mean(k3) >= k5:
        expected = f"{statistics.mean(k3):.2f} ± {statistics.stdev(k3):.2f} (keep_fraction = 0.3)", "2 of 3"
    else:
        expected = f"{k5:.2f} (keep_fraction = 0.5)", "1 of 3"
    assert (table.loc[1, "ours, full"], table.loc[1, "runs, full"]) == expected
    assert len(list(tmp_path.glob("*-*"))) == 4  # the table trained nothing more


def test_stored_frame_holds_only_stored_runs(tmp_path, mnist):
    toy = chapter()
    assert toy.stored_frame("Fig. 1", "smoke", root=tmp_path).empty
    record = runs.get_or_run(configs("smoke")[-1], root=tmp_path)
    frame = toy.stored_frame("Fig. 1", "smoke", root=tmp_path)
    assert list(frame["run_id"]) == [record["run_id"]]


def test_every_chapter_declares_headlines_whose_runs_are_planned():
    for c in CHAPTERS:
        for h in c.headlines:
            assert any(h.runs(cfg) for cfg in c.figure(h.figure).configs("full")), (c.name, h.what)
    assert {"Edge-Popup", "Slot Machines", "LaPerm"} <= set(headline_table()["chapter"])
