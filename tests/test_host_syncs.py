"""A training step reads nothing on the host (issue 23): no ``.item()``, ``int()``, ``float()`` or ``bool()`` of a
tensor, which on a GPU each wait until the queue has drained. Counted on the CPU as the calls of
``aten._local_scalar_dense`` (what all of them dispatch to) while each method trains through its real flow: a run
of 5 steps makes exactly as many as a run of 2 steps, so the steps make none; the per-epoch reads stay."""

from __future__ import annotations

import pytest
import torch

from randweights import train
from randweights.config import make_config
from randweights.methods import edge_popup as ep
from randweights.train import HostReads

METHODS = {
    "dense": {},
    "edge-popup": {"keep_fraction": 0.5},
    "supermask-bernoulli": {},
    "slot": {"num_slots": 8},
    "slot probabilistic": {"num_slots": 4, "selection": "probabilistic"},
    "laperm": {"sync_period": 2},
    "imp": {"rounds": 1, "rewind_step": 1},
}


def host_reads(name: str, steps: int) -> int:
    method = name.split()[0]
    cfg = make_config(method, dataset="mnist", subset=steps * 20, batch_size=20, epochs=1, **METHODS[name])
    with HostReads() as reads:
        train.run(cfg, "cpu")
    return reads.count


@pytest.mark.parametrize("name", list(METHODS))
def test_a_training_step_reads_nothing_on_the_host(mnist, monkeypatch, name):
    monkeypatch.setattr(ep, "SELECT_ON_DEVICE", True)  # the top-k selection a GPU makes
    two, five = host_reads(name, 2), host_reads(name, 5)
    assert five == two, f"{name}: {five - two} host reads in 3 more steps"


def test_the_counter_sees_host_reads():
    with HostReads() as reads:
        x = torch.ones(3)
        _ = x.sum().item(), int(x[0]), float(x.mean()), bool(x.any())
    assert reads.count == 4


def test_the_host_selection_reads_and_the_device_selection_does_not():
    torch.manual_seed(0)
    scores = torch.rand(50_000)
    count = ep.kept_count(scores.numel(), 0.3)
    with HostReads() as reads:
        on_device = ep.topk_mask_on_device(scores, count)
    assert reads.count == 0
    with HostReads() as reads:
        on_host = ep.topk_mask(scores, count)
    assert reads.count > 0
    assert torch.equal(on_device, on_host)
