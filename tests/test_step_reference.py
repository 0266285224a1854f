"""The throughput work (issue 23) changed how every method computes its step, not what it computes: each method's
selections (Edge-Popup's masks, slot machines' chosen candidates, LaPerm's permutations), losses and trained
tensors, step by step, and whole smoke runs equal, bit for bit, what the implementation before it computed on the
same inputs (``fixtures/step_reference.json``, written by ``step_reference.py`` at commit 29ccd14)."""

from __future__ import annotations

import json

import pytest
import step_reference as ref

from randweights.methods import edge_popup as ep

REFERENCE = json.loads(ref.PATH.read_text())


@pytest.mark.parametrize("case", list(ref.STEP_CASES))
def test_steps_equal_the_reference_bit_for_bit(case):
    got = ref.step_case(*ref.STEP_CASES[case])
    want = REFERENCE["steps"][case]
    for step, (loss, selected) in enumerate(zip(want["loss"], want["selected"])):
        assert (got["loss"][step], got["selected"][step]) == (loss, selected), f"{case}: step {step + 1} differs"
    assert got["trained"] == want["trained"]


@pytest.mark.parametrize("case", list(ref.RUN_CASES))
def test_smoke_runs_equal_the_reference_bit_for_bit(mnist, case):
    assert ref.run_case(*ref.RUN_CASES[case]) == REFERENCE["runs"][case]


@pytest.mark.parametrize("case", [c for c in ref.STEP_CASES if c.startswith("edge-popup")])
def test_selecting_on_the_device_gives_the_reference_steps(monkeypatch, case):
    monkeypatch.setattr(ep, "SELECT_ON_DEVICE", True)  # what a GPU runs: no host reads
    assert ref.step_case(*ref.STEP_CASES[case]) == REFERENCE["steps"][case]
