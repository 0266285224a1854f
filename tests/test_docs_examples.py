"""The code the book shows is code that runs: the IMP round loop of book/own_model.md, executed as the page
writes it (with the page's own set-up cell), on the page's CIFAR-10 sample."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch
from conftest import require_dataset

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "own_model.md"


def code_cells(page: Path) -> list[str]:
    """The ``{code-cell}`` blocks of a MyST notebook page, in order."""
    return re.findall(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", page.read_text(), flags=re.S | re.M)


@pytest.mark.slow  # trains a ResNet-18 for four short rounds on the CPU
def test_the_imp_round_loop_of_the_own_model_page_runs_and_prunes_by_the_schedule():
    require_dataset("cifar10")
    cells = code_cells(PAGE)
    setup = cells[0]
    (loop,) = [c for c in cells if "pruning.imp_step" in c]
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(setup, f"{PAGE}:setup", "exec"), namespace)
        exec(compile(loop, f"{PAGE}:imp", "exec"), namespace)
    lines = [line for line in printed.getvalue().splitlines() if line.startswith("round ")]
    assert [line.split(":")[0] for line in lines] == ["round 0", "round 1", "round 2", "round 3"]
    pruning, model, masks = namespace["pruning"], namespace["model"], namespace["masks"]
    # every prunable layer keeps ceil(0.5**3 * (|W| + |b|)) entries; the output layer (fc) has no mask
    for (w, b), layer in zip(masks, pruning.prunable_layers(model)):
        total = w.numel() + (b.numel() if b is not None else 0)
        kept = int(w.sum()) + (int(b.sum()) if b is not None else 0)
        assert kept == pruning.kept_count(total, 3, 0.5)
        assert torch.equal(layer.weight_mask.bool(), w)
        assert torch.equal(layer.weight, layer.weight_orig * w)
    assert not hasattr(model.fc, "weight_mask")
    assert f"{pruning.remaining(masks)[0]:.1%} of the prunable weights kept" in lines[-1]
