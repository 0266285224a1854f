"""benchmarks/steps.py (``make bench``): every row builds and steps, and the floors hold what they claim."""

from __future__ import annotations

import pytest
import torch
from conftest import benchmark_module

from randweights.methods import edge_popup as ep
from randweights.methods import slot_machines as sm


@pytest.fixture(scope="module")
def steps():
    with benchmark_module("steps") as module:
        yield module


def _layers(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


def _train(model, optimizer, steps: int) -> None:
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_every_row_takes_steps_on_lenet(steps, precision):
    for method in steps.METHODS:
        step = steps.step_fn(method, "lenet-300-100", precision)
        step()
        step()


def test_the_edge_popup_floor_keeps_its_first_mask_while_the_scores_move(steps):
    model, optimizer = steps.build("edge-popup, mask given", "lenet-300-100")
    maskers = _layers(model, ep.TopKMask)
    assert len(maskers) == 3 and all(type(m) is steps.GivenMask for m in maskers)
    _train(model, optimizer, 3)
    for m in maskers:
        assert int(m.given.sum()) == m.count  # the exact top-k count of the first step
        assert not torch.equal(m.given.bool(), m.mask())  # lr 0.1 moved the scores across the threshold
    fresh, _ = steps.build("edge-popup", "lenet-300-100")  # same seed: the same draws, so the same first mask
    assert all(torch.equal(m.given.bool(), f.mask()) for m, f in zip(maskers, _layers(fresh, ep.TopKMask)))


def test_the_slot_floor_keeps_its_first_selection(steps):
    model, optimizer = steps.build("slot K=8, index given", "lenet-300-100")
    slots = _layers(model, sm.SlotSelect)
    assert len(slots) == 3 and all(type(s) is steps.GivenIndex for s in slots)
    _train(model, optimizer, 5)
    fresh, _ = steps.build("slot K=8", "lenet-300-100")  # same seed: the same first selection
    assert all(torch.equal(s.given, f.index()) for s, f in zip(slots, _layers(fresh, sm.SlotSelect)))
    assert any(not torch.equal(s.given, s.index()) for s in slots)  # the trained scores select elsewhere now


def test_the_profile_names_operators_and_page_faults(steps, capsys):
    steps.profile("edge-popup", steps=2)
    out = capsys.readouterr().out
    assert "minor page faults per step" in out and "aten::mm" in out
