"""The throughput work (issue 23) changed how every method computes its step, not what it computes: each method's
selections (Edge-Popup's masks, slot machines' chosen candidates, LaPerm's permutations), losses and trained
tensors, step by step, and whole smoke runs equal, bit for bit, what the implementation before it computed on the
same inputs (``fixtures/step_reference.json``, written by ``step_reference.py`` with the code of commit 29ccd14,
one reference per kind of CPU; on a kind it lacks, written now by that code)."""

from __future__ import annotations

import pytest
import step_reference as ref

from randweights.methods import edge_popup as ep


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """This CPU's reference (:func:`step_reference.reference`: committed, or written now by the code before)."""
    found = ref.reference(tmp_path_factory.mktemp("step_reference"))
    if found is None:
        pytest.skip(f"no reference for this CPU kind and no git history to write one with the code of {ref.WRITER}")
    return found


@pytest.mark.parametrize("case", list(ref.STEP_CASES))
def test_steps_equal_the_reference_bit_for_bit(reference, case):
    got = ref.step_case(*ref.STEP_CASES[case])
    want = reference["steps"][case]
    for step, (loss, selected) in enumerate(zip(want["loss"], want["selected"])):
        assert (got["loss"][step], got["selected"][step]) == (loss, selected), f"{case}: step {step + 1} differs"
    assert got["trained"] == want["trained"]


@pytest.mark.parametrize("case", list(ref.RUN_CASES))
def test_smoke_runs_equal_the_reference_bit_for_bit(reference, mnist, case):
    assert ref.run_case(*ref.RUN_CASES[case]) == reference["runs"][case]


@pytest.mark.parametrize("case", [c for c in ref.STEP_CASES if c.startswith("edge-popup")])
def test_selecting_on_the_device_gives_the_reference_steps(reference, monkeypatch, case):
    monkeypatch.setattr(ep, "SELECT_ON_DEVICE", True)  # what a GPU runs: no host reads
    assert ref.step_case(*ref.STEP_CASES[case]) == reference["steps"][case]
