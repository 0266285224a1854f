"""Golden tests: our methods against what the official implementations computed on the same small inputs.

The fixtures (tests/golden/<method>.npz and .json) were written by tests/golden/generate.py, which ran the official
code (hidden-networks, slot-machines, Train-by-Reconnect in TensorFlow, SiftingFeatures) at the commits the .json
files record. The comparisons themselves live in randweights.equivalence, which the book's appendix "Equivalence
with the official code" renders: the page shows what these tests check. Exact where the operation is exact
(masks, selections, permutations), to a stated tolerance otherwise (gradients, sampling frequencies).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest

from randweights import equivalence
from randweights.equivalence import Comparison
from randweights.errors import ConfigError

GOLDEN = Path(__file__).resolve().parent / "golden"
BOOK = Path(__file__).resolve().parents[1] / "book"


@functools.cache
def results(method: str) -> tuple[Comparison, ...]:
    return tuple(equivalence.compare(method, GOLDEN))


def agrees(method: str, key: str) -> Comparison:
    """The comparison ``key`` of ``method``, asserted to agree with the official code within its tolerance."""
    found = [c for c in results(method) if c.key == key]
    assert len(found) == 1, f"{method}: no single comparison {key!r} among {[c.key for c in results(method)]}"
    c = found[0]
    assert c.passed, (f"{method}, {c.compared}: {c.measure} = {c.difference:g}, allowed {c.limit:g} "
                      f"(official: {c.repository} at {c.commit[:7]})")
    return c


# ---------------------------------------------------------------------------------------------- Edge-Popup
def test_edge_popup_masks_match_official():
    assert agrees("edge_popup", "masks").difference == 0


def test_edge_popup_score_gradients_match_official():
    agrees("edge_popup", "gradients")


def test_edge_popup_scaled_fan_init_matches_official_code():
    agrees("edge_popup", "init")


@pytest.mark.xfail(strict=True, reason="hidden-networks' GetSubnet keeps n - int((1 - k) n) weights, ours round(k n): "
                                        "one weight more or fewer on some layer sizes; shown in the equivalence appendix")
def test_edge_popup_kept_count_matches_official():
    agrees("edge_popup", "kept-count")


# ---------------------------------------------------------------------------------------------- Bernoulli supermask
def test_bernoulli_masks_match_official():
    assert agrees("supermask_bernoulli", "masks").difference == 0


def test_bernoulli_score_gradients_match_official():
    agrees("supermask_bernoulli", "gradients")


# ---------------------------------------------------------------------------------------------- Slot Machines
def test_slot_machines_init_matches_official_code():
    agrees("slot_machines", "candidate-bound")
    agrees("slot_machines", "score-init")


def test_slot_machines_greedy_selection_matches_official():
    assert agrees("slot_machines", "greedy").difference == 0


def test_slot_machines_score_gradients_match_official():
    agrees("slot_machines", "gradients")


def test_slot_machines_probabilistic_selection_frequencies_match_official():
    agrees("slot_machines", "probabilistic")


# ---------------------------------------------------------------------------------------------- LaPerm, IMP
def test_laperm_sync_matches_official():
    assert agrees("laperm", "sync").difference == 0


def test_imp_masks_match_official():
    assert agrees("pruning", "masks").difference == 0


# ---------------------------------------------------------------------------------------------- provenance, page
@pytest.mark.parametrize("method", equivalence.METHODS)
def test_fixtures_record_the_official_repository_and_commit(method):
    meta = json.loads((GOLDEN / f"{method}.json").read_text())
    assert meta["repository"].startswith("https://github.com/")
    assert re.fullmatch(r"[0-9a-f]{40}", meta["commit"])
    assert meta["sources"] and meta["versions"]["torch"]
    records = [c.record() for c in results(method)]
    assert records and all(r["commit"] == meta["commit"] and r["repository"] == meta["repository"] for r in records)
    json.dumps(records)  # the structured results are plain data


def test_fixtures_are_found_from_the_book_folder_and_the_page_lists_every_comparison():
    assert equivalence.fixtures_folder(BOOK) == GOLDEN
    everything = [c for method in equivalence.METHODS for c in results(method)]
    page = equivalence.markdown(everything)
    for method in equivalence.METHODS:
        assert f"**{equivalence.TITLES[method]}.**" in page
    for c in everything:
        assert c.compared.replace("|", "\\|") in page and c.commit[:7] in page
    assert page.count("| ") >= len(everything)
    assert "differs" not in equivalence.summary([c for c in everything if c.passed])


def test_fixtures_folder_outside_the_source_tree_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="start"):
        equivalence.fixtures_folder(tmp_path)


def test_unknown_method_is_an_error():
    with pytest.raises(ConfigError, match="method"):
        equivalence.load("dense", GOLDEN)


def test_golden_fixtures_stay_small():
    total = sum(p.stat().st_size for p in GOLDEN.iterdir() if p.suffix in (".npz", ".json"))
    assert total < 300_000, f"tests/golden holds {total:,} bytes of fixtures"
