"""The book's figure and table helpers: files written, width capped, tables formatted for reading."""

from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

from randweights import plots, reproduce


def test_figure_saves_png_and_svg_under_the_chapter_and_fits_the_column(tmp_path, monkeypatch):
    monkeypatch.setenv("RANDWEIGHTS_FIGURES", str(tmp_path))
    fig, axes = plots.plt.subplots(1, 3, figsize=(12, 3))
    axes[0].plot([0, 1], [0, 1])
    assert plots.figure(fig, "wide_one", "some_chapter") is None  # a notebook cell ending with it shows nothing
    png = tmp_path / "some_chapter" / "wide_one.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "some_chapter" / "wide_one.svg").read_text().lstrip().startswith("<?xml")
    width, height = fig.get_size_inches()
    assert width == pytest.approx(plots.MAX_WIDTH_IN) and height == pytest.approx(3 * 7 / 12)
    assert not plots.plt.fignum_exists(fig.number)  # closed: the cell shows the displayed copy only


def test_panels_never_exceed_the_text_column():
    fig, axes = plots.panels(4, width=4.0)
    assert len(axes) == 4 and fig.get_size_inches()[0] == pytest.approx(plots.MAX_WIDTH_IN)
    fig2, _ = plots.panels(1, width=4.0)
    assert fig2.get_size_inches()[0] == pytest.approx(4.0)


def test_figures_dir_is_the_checkouts_book_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("RANDWEIGHTS_FIGURES", raising=False)
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "_config.yml").write_text("title: x\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert plots.figures_dir("edge_popup") == tmp_path / "book" / "figures" / "edge_popup"


def test_legend_outside_puts_one_legend_beside_the_axes():
    fig, axes = plots.panels(2)
    axes[0].plot([0, 1], label="a")
    axes[1].plot([0, 1], label="a")
    axes[1].plot([1, 0], label="b")
    axes[1].legend()
    legend = plots.legend_outside(fig, "below")
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b"]
    assert axes[1].get_legend() is None


def test_book_table_has_no_index_dashes_percentages_and_readable_names():
    df = pd.DataFrame({"arch": ["f1", "laperm-conv7"], "test_accuracy": [0.8546, math.nan], "epochs": [13.0, 4.0],
                       "paper": [85.46, None]}).set_index("arch")
    html = plots.book_table(df, percent=["test_accuracy"], points=["paper"]).to_html()
    cells = [c.split(">", 1)[1] for c in html.split("<td ")[1:]]
    cells = [c[: c.index("</td>")].strip() for c in cells]
    assert cells == ["F1 (784-10)", "85.5%", "13", "85.5%", "Conv-7 (LaPerm)", "-", "4", "-"]
    assert "test accuracy" in html and "test_accuracy" not in html
    assert "<th" in html and 'class="row_heading' not in html  # no index column


def test_run_note_names_preset_device_and_date(tmp_path, monkeypatch):
    monkeypatch.setenv("RANDWEIGHTS_RESULTS", str(tmp_path))
    (tmp_path / "dense-abc").mkdir()
    record = tmp_path / "dense-abc" / "record.json"
    record.write_text(json.dumps({}))
    os.utime(record, (1_780_000_000, 1_780_000_000))  # 2026-05-28 UTC
    frame = pd.DataFrame({"run_id": ["dense-abc"], "device": ["cpu"], "train_seconds": [90.0]})
    note = plots.run_note(frame, "quick")
    assert note == ("**The runs on this page:** preset `quick`, 1 runs (1.5 min of training) on cpu, "
                    "stored 2026-05-28.")


def test_executed_chapters_hide_the_parameters_cells(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("preset = 'quick'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("preset = 'smoke'", metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("print(preset)")]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    reproduce.hide_setup_cells(path)
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert tags == [["parameters", "remove-cell"], ["injected-parameters", "remove-cell"], []]


def test_executed_chapters_show_the_colab_badge_from_the_book_itself(tmp_path):
    import nbformat

    from randweights import colab

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(colab.badge_source("edge_popup"))]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    reproduce.hide_setup_cells(path)
    source = nbformat.read(path, as_version=4).cells[0].source
    assert colab.BADGE_IMAGE not in source and reproduce.LOCAL_BADGE in source
    assert colab.colab_url("edge_popup") in source  # the link still opens the notebook in Colab
    assert (reproduce.repo_root() / "book" / "chapters" / reproduce.LOCAL_BADGE).resolve().is_file()


def _figure_notebook(path, caption_after_figure: bool = True):
    import nbformat

    nb = nbformat.v4.new_notebook()
    figure = nbformat.v4.new_code_cell("plots.figure(fig, 'x', 'c')", metadata={"mystnb": {"figure": {"name": "fig-x"}}})
    caption = nbformat.v4.new_markdown_cell("Accuracy against $k$. Look for\nthe peak.\n",
                                            metadata={"tags": [reproduce.CAPTION_TAG]})
    prose = nbformat.v4.new_markdown_cell("As [Ramanujan et al. (2020)](#cite:t:ramanujan2020hidden) find "
                                          "([the figure below](#fig-x), right; [notes](../book/reconstruction.md)).")
    note = nbformat.v4.new_markdown_cell("> **What is reconstructed.** Our\n>\n> choices.", metadata={"tags": ["important"]})
    nb.cells = [figure, caption, prose, note] if caption_after_figure else [caption, figure, prose, note]
    nbformat.write(nb, path)
    return path


def test_book_time_turns_caption_cells_links_and_notes_into_the_books_own(tmp_path):
    import nbformat

    path = _figure_notebook(tmp_path / "chapter.ipynb")
    nb = nbformat.read(path, as_version=4)
    reproduce.book_page(nb)
    figure, caption, prose, note = nb.cells
    assert figure.metadata["mystnb"]["figure"] == {"name": "fig-x", "caption": "Accuracy against $k$. Look for\nthe peak."}
    assert "remove-cell" in caption.metadata["tags"]  # shown once, as the numbered figure's caption
    assert prose.source == ("As {cite:t}`ramanujan2020hidden` find ({numref}`fig-x`, right; "
                            "{doc}`notes <../reconstruction>`).")
    assert note.source == ":::{important}\n**What is reconstructed.** Our\n\nchoices.\n:::"
    again = nbformat.from_dict(json.loads(json.dumps(nb)))
    reproduce.book_page(again)
    assert again == nb  # a second pass changes nothing
    reproduce.hide_setup_cells(path)  # executing a chapter leaves all this as Jupyter shows it
    assert nbformat.read(path, as_version=4).cells[2].source.startswith("As [Ramanujan et al. (2020)](#cite:t:")


def test_a_caption_cell_must_follow_its_figure(tmp_path):
    import nbformat

    nb = nbformat.read(_figure_notebook(tmp_path / "chapter.ipynb", caption_after_figure=False), as_version=4)
    with pytest.raises(ValueError, match="chapter: a figure-caption cell must follow the cell of its figure"):
        reproduce.book_page(nb, "chapter")
