"""Run keys: a hash of the non-default settings, stable across versions that only add defaulted fields."""

from __future__ import annotations

import pytest

from randweights import ConfigError, make_config
from randweights.config import DataConfig, ModelConfig, TrainConfig, from_dict


def test_defaults_hash_to_the_method_alone():
    cfg = make_config("edge-popup")
    assert cfg.non_default() == {"method": {"name": "edge-popup"}}


def test_run_id_regression():
    # If this fails, stored results would silently stop matching: change the hashing only with a migration.
    assert make_config("edge-popup").run_id == "edge-popup-6fc493dd761b"
    cfg = make_config("edge-popup", keep_fraction=0.3, arch="conv4", dataset="cifar10", epochs=5, subset=5000)
    assert cfg.run_id == "edge-popup-74eada63c888"


def test_only_non_default_settings_enter_the_key():
    a = make_config("edge-popup", keep_fraction=0.3, epochs=5)
    assert a.non_default() == {"method": {"name": "edge-popup", "keep_fraction": 0.3}, "train": {"epochs": 5}}
    assert a.run_id == make_config("edge-popup", epochs=5, keep_fraction=0.3).run_id
    assert a.run_id != make_config("edge-popup", keep_fraction=0.3, epochs=5, seed=1).run_id
    assert a.run_id != make_config("dense", epochs=5).run_id
    # setting a value to its default is the same run
    assert make_config("edge-popup", keep_fraction=0.5).run_id == make_config("edge-popup").run_id


def test_round_trip_through_dict():
    cfg = make_config("supermask-bernoulli", keep_fraction=0.2, dataset="cifar10", arch="conv4", width=0.5, subset=500)
    assert from_dict(cfg.to_dict()) == cfg
    assert from_dict(cfg.to_dict()).run_id == cfg.run_id


def test_flat_names_route_to_their_section():
    cfg = make_config("edge-popup", keep_fraction=0.1, arch="conv2", dataset="cifar10", lr=0.05)
    assert cfg.method.keep_fraction == 0.1 and cfg.model.arch == "conv2" and cfg.data.dataset == "cifar10"
    assert cfg.lr == 0.05 and make_config("edge-popup").lr == 0.1
    assert make_config("dense", arch="conv4").lr == 0.01  # the paper's SGD baseline for conv nets
    with pytest.raises(ConfigError, match="setting"):
        make_config("dense", keep_fraction=0.5)  # not a dense setting


@pytest.mark.parametrize(
    "build, parameter",
    [
        (lambda: DataConfig(dataset="imagenet"), "dataset"),
        (lambda: DataConfig(subset=3), "subset"),
        (lambda: ModelConfig(arch="vgg1000"), "arch"),
        (lambda: ModelConfig(width=0), "width"),
        (lambda: TrainConfig(epochs=-1), "epochs"),
        (lambda: TrainConfig(optimizer="lbfgs"), "optimizer"),
        (lambda: TrainConfig(lr=0), "lr"),
        (lambda: make_config("nope"), "method"),
    ],
)
def test_bad_settings_name_the_parameter(build, parameter):
    with pytest.raises(ConfigError) as err:
        build()
    assert err.value.parameter == parameter
    assert str(err.value).startswith(parameter + ":") and "allowed" in str(err.value)


def test_learning_rate_schedules():
    from randweights.train import lr_at

    assert [lr_at(e, 4, 1.0, "constant") for e in range(4)] == [1.0] * 4
    assert [round(lr_at(e, 4, 1.0, "cosine"), 6) for e in range(4)] == [1.0, 0.853553, 0.5, 0.146447]
    assert [round(lr_at(e, 25, 1e-3, "exponential"), 9) for e in (0, 1, 24)] == [1e-3, 9.5e-4, round(1e-3 * 0.95**24, 9)]
