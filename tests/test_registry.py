"""The one method registry and the one chapter list: complete declarations, read by everything else."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from randweights import compact, config, methods
from randweights.chapters import CHAPTERS
from randweights.config import MethodConfig
from randweights.methods import registry
from randweights.methods.registry import PLAIN, Codec, Method


@dataclasses.dataclass(frozen=True)
class ToyConfig(MethodConfig):
    name = "toy-for-registry-test"


def _prepare(model, cfg):
    return list(model.parameters())


@pytest.fixture
def clean_registry():
    before = dict(registry.METHODS)
    yield
    registry.METHODS.clear()
    registry.METHODS.update(before)


def test_every_method_is_declared_once_with_config_label_and_codec():
    assert methods.NAMES == ("dense", "edge-popup", "supermask-bernoulli", "slot", "laperm", "imp")
    for name in methods.NAMES:
        method = methods.get(name)
        assert method.name == name and method.config.name == name and config.method_config_class(name) is method.config
        assert isinstance(method.codec, Codec) and method.label
        assert (method.prepare is None) != (method.run is None)
    assert [methods.label(n) for n in ("edge-popup", "slot", "imp")] == ["Edge-Popup", "Slot Machines", "IMP"]


def test_a_method_without_a_codec_is_an_error_at_registration(clean_registry):
    with pytest.raises(TypeError, match="needs a Codec"):
        registry.register(Method("toy-for-registry-test", ToyConfig, "Toy", None, prepare=_prepare))  # type: ignore[arg-type]
    assert "toy-for-registry-test" not in registry.METHODS


def test_a_method_needs_exactly_one_way_to_train_and_a_matching_config(clean_registry):
    with pytest.raises(TypeError, match="exactly one of prepare and run"):
        registry.register(Method("toy-for-registry-test", ToyConfig, "Toy", PLAIN))
    with pytest.raises(TypeError, match="config class named"):
        registry.register(Method("another-name", ToyConfig, "Toy", PLAIN, prepare=_prepare))
    registry.register(Method("toy-for-registry-test", ToyConfig, "Toy", PLAIN, prepare=_prepare))
    with pytest.raises(TypeError, match="a name no other method has"):
        registry.register(Method("toy-for-registry-test", ToyConfig, "Toy 2", PLAIN, prepare=_prepare))


def test_compact_reads_the_codec_from_the_registry(clean_registry, tmp_path):
    calls = []

    def pack(model, **_):
        calls.append("pack")
        return {}, {}, []

    def unpack(model, header, arrays):
        calls.append("unpack")

    registry.register(Method("toy-for-registry-test", ToyConfig, "Toy", Codec(pack, unpack), prepare=_prepare))
    model = nn.Linear(3, 2)
    model.randweights_method = {"method": "toy-for-registry-test", "layers": []}
    compact.save(model, tmp_path / "toy.rwc")
    loaded = compact.load(tmp_path / "toy.rwc", nn.Linear(3, 2))
    assert calls == ["pack", "unpack", "unpack"]  # the save checks a round trip before it writes
    assert torch.equal(loaded.weight, model.weight)


def test_an_unknown_method_is_one_line_naming_the_parameter():
    with pytest.raises(config.ConfigError, match="^method: got 'nope', allowed: one of dense, edge-popup"):
        methods.get("nope")


def test_the_chapter_list_is_in_book_order_and_matches_the_modules():
    assert [c.name for c in CHAPTERS] == ["edge_popup", "slot_machines", "laperm", "fcn_to_cnn", "empirical_size", "transformers", "synthesis"]
    assert [c.order for c in CHAPTERS] == sorted(c.order for c in CHAPTERS)
    for chapter in CHAPTERS:
        assert chapter.notebook == f"notebooks/{chapter.name}.ipynb"
