"""Provenance under every figure: the rows a figure plots written beside it as CSV, the line the book shows under its
caption (preset, runs and seeds, the code that trained them, the command that draws it again, the CSV link),
``randweights reproduce --figure`` drawing one figure again, and the execution status page's table. With real tiny
runs, real kernels and a real chapter at the smoke preset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from randweights import make_config, plots, reproduce, runs, store
from randweights.chapters import CHAPTERS

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1)


def tiny_configs():
    return [make_config("dense", subset=100, epochs=1, batch_size=50, seed=seed) for seed in SEEDS]


@pytest.fixture
def results(tmp_path, monkeypatch, mnist):
    """Two tiny real runs (seeds 0 and 1) stored in a fresh results folder."""
    folder = tmp_path / "results"
    monkeypatch.setenv("RANDWEIGHTS_RESULTS", str(folder))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for cfg in tiny_configs():
        runs.get_or_run(cfg)
    return folder


def test_the_csv_holds_the_rows_plotted_and_the_line_names_runs_seeds_code_and_command(results, tmp_path, monkeypatch):
    monkeypatch.setenv("RANDWEIGHTS_FIGURES", str(tmp_path / "figures"))
    records = [runs.get_or_run(cfg) for cfg in tiny_configs()]
    frame = runs.frame(records * 2)  # a run plotted twice (two panels) still counts once
    fig, axes = plots.panels(1)
    axes[0].plot(frame["seed"], frame["test_accuracy"])
    plots.figure(fig, "tiny_accuracy", "some_chapter", frame, "smoke")
    written = pd.read_csv(tmp_path / "figures" / "some_chapter" / "tiny_accuracy.csv")
    assert list(written["run_id"]) == list(frame["run_id"]) and len(written) == 4
    assert written["test_accuracy"].tolist() == pytest.approx(frame["test_accuracy"].tolist())
    assert "config" not in written  # the settings are the flat columns

    line = plots.provenance(frame, "tiny_accuracy", "some_chapter", "smoke").markdown()
    code = store.code_label(store.provenance())
    assert line.startswith("Preset `smoke` · 2 runs, seeds 0, 1 · code: randweights " + code + " · ")
    assert "reproduce --only some_chapter --figure tiny_accuracy --preset smoke`" in line
    assert line.endswith("[rows plotted (CSV)](../book/figures/some_chapter/tiny_accuracy.csv)")
    # in the book, the link is relative to the chapter's page (book/chapters/) and the CSV becomes a download
    assert reproduce.book_links(line).endswith("](../figures/some_chapter/tiny_accuracy.csv)")


def test_a_computed_figure_writes_its_tables_and_says_no_run_stands_behind_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RANDWEIGHTS_FIGURES", str(tmp_path))
    computed = {"net": {"rows": [{"step": 0, "mse": 1.5}, {"step": 10, "mse": 0.5}]}, "x": [0.0, 1.0, 2.0],
                "y": [1.0, 2.0, 3.0], "neurons": 8}
    rows = plots.plot_rows(computed)
    assert list(rows.columns) == ["part", "step", "mse", "x", "y"]  # its tables, named by their keys; no single value
    assert rows[rows["part"] == "net.rows"][["step", "mse"]].values.tolist() == [[0, 1.5], [10, 0.5]]
    assert rows[rows["part"] == "values"][["x", "y"]].values.tolist() == [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    line = plots.provenance(rows, "es_demo", "empirical_size", "smoke").markdown()
    assert line.startswith("Preset `smoke` · no stored run (computed on this page) · redraw: `")


CAPTIONED = [
    ("code", "preset = 'quick'", {"tags": ["parameters"]}),
    ("code", "from randweights import make_config, plots, runs\n"
             "records = [runs.get_or_run(make_config('dense', subset=100, epochs=1, batch_size=50, seed=s)) for s in (0, 1)]\n"
             "frame = runs.frame(records)", {}),
    ("code", "fig, axes = plots.panels(1)\naxes[0].plot(frame['seed'], frame['test_accuracy'])\n"
             "plots.figure(fig, 'tiny_accuracy', 'tiny', frame, preset)", {"mystnb": {"figure": {"name": "fig-tiny-accuracy"}}}),
    ("markdown", "Test accuracy of the two tiny runs, one per seed.", {"tags": ["figure-caption"]}),
]


def test_the_book_shows_the_provenance_under_the_caption_of_an_executed_figure(results, tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("RANDWEIGHTS_FIGURES", str(tmp_path / "figures"))
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(src, metadata=md) if kind == "code" else nbformat.v4.new_markdown_cell(src, metadata=md)
                for kind, src, md in CAPTIONED]
    source, out = tmp_path / "tiny.ipynb", tmp_path / "tiny.out.ipynb"
    nbformat.write(nb, str(source))
    papermill.execute_notebook(str(source), str(out), parameters={"preset": "smoke"}, kernel_name="python3",
                               cwd=str(tmp_path), progress_bar=False)
    executed = nbformat.read(str(out), as_version=4)
    figure_cell = next(c for c in executed.cells if "mystnb" in c.metadata)
    shown = [o for o in figure_cell.outputs if o.output_type == "display_data"]
    assert len(shown) == 1 and "image/png" in shown[0].data  # one output: the figure (myst-nb numbers it once)
    assert reproduce.figure_provenance(figure_cell)[0].startswith("Preset `smoke` · 2 runs, seeds 0, 1 · code: ")
    reproduce.book_page(executed, "chapters/tiny")
    caption = figure_cell.metadata["mystnb"]["figure"]["caption"]
    first, legend = caption.split("\n\n")
    assert first == "Test accuracy of the two tiny runs, one per seed."
    assert legend.startswith("Preset `smoke` · 2 runs") and "--figure tiny_accuracy --preset smoke`" in legend
    assert legend.endswith("[rows plotted (CSV)](../figures/tiny/tiny_accuracy.csv)")


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A scratch copy of the notebooks and the book sources (no executed page, no figure yet)."""
    root = tmp_path / "repo"
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("_build", "chapters", "figures"))
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    monkeypatch.setenv("RANDWEIGHTS_RESULTS", str(root / "results"))  # reproduce's own default, restored after the test
    monkeypatch.setenv("RANDWEIGHTS_TRAIN", "1")
    monkeypatch.delenv("RANDWEIGHTS_FIGURES", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return root


def test_every_chapters_figures_are_known_by_name_and_unique():
    names = [name for c in CHAPTERS for name in reproduce.book_figures(ROOT, c.name)]
    assert len(names) == len(set(names)) and "sm_slots" in names and "ep_keep_sweep" in names
    for chapter in CHAPTERS:  # one name per figure cell of the notebook
        cells = json.loads((ROOT / chapter.notebook).read_text())["cells"]
        assert len(reproduce.book_figures(ROOT, chapter.name)) == sum("figure" in c["metadata"].get("mystnb", {}) for c in cells)


def test_an_unknown_figure_is_one_line_naming_the_allowed_ones_exit_2_nothing_written(checkout):
    before = sorted(p.relative_to(checkout) for p in checkout.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "randweights.cli", "reproduce", "--only", "slot_machines", "--figure",
                           "sm_nope", "--preset", "smoke"], cwd=checkout, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--figure: got 'sm_nope'" in lines[0]
    assert "sm_slots, sm_selection, sm_changes, sm_finetune, sm_histograms" in lines[0]
    assert sorted(p.relative_to(checkout) for p in checkout.rglob("*")) == before  # nothing written


def test_display_only_cells_are_skipped_and_the_cells_up_to_the_figure_kept():
    nb = reproduce.figure_notebook(ROOT, "slot_machines", "sm_slots")
    sources = [c.source for c in nb.cells]
    assert "sm_slots" in sources[-1] and any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert not [s for s in sources if "claims_table" in s or "recipe_table" in s]  # shown only: skipped
    assert reproduce.display_only("plots.book_table(sm.CHAPTER.recipe_table())")
    assert not reproduce.display_only("numbers.update(sm.lenet_numbers(slots))")
    assert not reproduce.display_only("table = sm.comparison_table(slots)\nplots.book_table(table)")


@pytest.mark.slow  # trains the figure's smoke runs and executes a kernel
def test_reproduce_figure_draws_that_figure_again_and_nothing_else(checkout, mnist):
    figure = "sm_slots"
    code = reproduce.reproduce(preset="smoke", only=["slot_machines"], root=checkout, figure=figure)
    assert code == 0
    folder = checkout / "book" / "figures" / "slot_machines"
    assert sorted(p.name for p in folder.iterdir()) == [f"{figure}.csv", f"{figure}.png", f"{figure}.svg"]
    rows = pd.read_csv(folder / f"{figure}.csv")
    planned = {cfg.run_id for cfg in CHAPTERS[[c.name for c in CHAPTERS].index("slot_machines")].figure("accuracy vs K").configs("smoke")}
    assert len(planned) == len(rows.drop_duplicates("run_id"))
    assert set(rows["run_id"]) == planned  # the rows plotted are that figure's runs
    assert not (checkout / "book" / "chapters" / "slot_machines.ipynb").exists()  # no page replaced
    assert not list((checkout / "book" / "chapters").glob(".*"))  # no temporary notebook left
    chapter = CHAPTERS[[c.name for c in CHAPTERS].index("slot_machines")]
    status = reproduce.ChapterStatus.measure(chapter, "smoke", 1.0, True, True, 0, checkout / "results")
    assert (status.stored, status.new_runs) == (len(planned), len(planned))  # the figure's runs, trained, stored
    assert status.planned == len({p.config.run_id for p in chapter.planned("smoke")}) > len(planned)
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    for path in folder.iterdir():
        path.unlink()
    assert reproduce.reproduce(preset="smoke", only=["slot_machines"], root=checkout, figure=figure) == 0  # from the store
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first  # the same figure, byte for byte


def test_the_status_page_tabulates_each_executed_chapters_status(tmp_path):
    root = tmp_path
    (root / "book" / "chapters").mkdir(parents=True)
    assert "No chapter has been executed" in reproduce.status_markdown(root)
    done = reproduce.ChapterStatus("edge_popup", "smoke", 21, 21, 5, 42.4, "2026-12-07 05:00 UTC", "0.2.0 @ 1a2b3c4d5e",
                                   True, True)
    bundled = reproduce.ChapterStatus("laperm", "full", 30, 40, 0, 130.0, "2026-12-07 05:02 UTC", "0.2.0", False, False)
    for status in (bundled, done):
        reproduce.write_status(root, status)
    assert reproduce.read_statuses(root) == [done, bundled]  # book order
    table = reproduce.status_markdown(root).splitlines()
    assert table[0] == "| chapter | preset | runs stored | execution time | executed | code | runs from | status |"
    assert table[2] == "| edge_popup | smoke | 21 of 21 | 42 s | 2026-12-07 05:00 UTC | 0.2.0 @ 1a2b3c4d5e | trained where missing: 5 new runs | ok |"
    assert table[3] == ("| laperm | full | 30 of 40 | 2.2 min | 2026-12-07 05:02 UTC | 0.2.0 | stored runs only, no training (an "
                        "imported bundle or earlier runs) | failed (last good page kept) |")


@pytest.mark.slow  # executes the tiny chapter in a kernel
def test_reproduce_writes_the_status_of_each_chapter_it_executes(tmp_path, monkeypatch, mnist):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "book").mkdir()
    (root / "book" / "_config.yml").write_text("title: test\n")
    name = CHAPTERS[0].name
    shutil.copy(ROOT / "tests" / "fixtures" / "notebooks" / "tiny_chapter.ipynb", root / "notebooks" / f"{name}.ipynb")
    monkeypatch.setenv("RANDWEIGHTS_RESULTS", str(root / "results"))  # restored after the test
    monkeypatch.setenv("RANDWEIGHTS_TRAIN", "1")  # reproduce sets it: restored after the test
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TINY_CHAPTER_MODE", "ok")
    # training off: the tiny chapter's runs are missing, so it fails; its status says so
    assert reproduce.reproduce(preset="smoke", only=[name], build=False, root=root, train_missing=False) == 1
    (status,) = reproduce.read_statuses(root)
    planned = len({p.config.run_id for p in CHAPTERS[0].planned("smoke")})
    assert (status.chapter, status.preset, status.ok, status.trained) == (name, "smoke", False, False)
    assert (status.stored, status.planned, status.new_runs) == (0, planned, 0)
    assert status.seconds > 0 and status.code == store.code_label(store.provenance())
    assert status.row()["runs from"].startswith("stored runs only") and status.row()["status"].startswith("failed")
    assert reproduce.reproduce(preset="smoke", only=[name], build=False, root=root, train_missing=True) == 0  # a new status
    (status,) = reproduce.read_statuses(root)
    assert (status.ok, status.trained) == (True, True) and status.row()["runs from"] == "trained where missing: 0 new runs"


def test_notebooks_pass_each_figure_its_rows_and_preset():
    for chapter in CHAPTERS:
        nb = nbformat.read(str(ROOT / chapter.notebook), as_version=4)
        for cell in nb.cells:
            if "figure" in cell.metadata.get("mystnb", {}):
                call = cell.source[cell.source.index("plots.figure("):]
                assert ", preset" in call.split(f'"{chapter.name}"', 1)[1], (chapter.name, call)
