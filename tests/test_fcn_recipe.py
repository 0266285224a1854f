"""The FCN chapter's `full` recipe against the released code (phiandark/SiftingFeatures): the settings that carry it
(validation images and cadence, BatchNorm momentum and its first-batch start, mean-image inputs, no round cap) each
have their effect, and the chapter's recipe table reads them from the full plan."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from randweights import config, data, models, plan, train
from randweights.chapters import fcn_to_cnn as fc
from randweights.data import Split, Splits
from randweights.errors import ConfigError
from randweights.methods import pruning


def batchnorms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def tiny_model_cfg(**kw) -> config.ModelConfig:
    return config.ModelConfig(arch="fcn", width=10 / 1024, bias=True, affine_bn=True, **kw)


# ---------------------------------------------------------------------------------------------- BatchNorm
def test_bn_momentum_reaches_every_batchnorm_and_the_running_average_uses_it():
    torch.manual_seed(0)
    net = models.build_for(tiny_model_cfg(bn_momentum=0.01), (1, 4, 4), 3)
    assert len(batchnorms(net)) == 4 and all(m.momentum == 0.01 for m in batchnorms(net))
    default = models.build_for(tiny_model_cfg(), (1, 4, 4), 3)
    assert all(m.momentum == 0.1 for m in batchnorms(default))  # PyTorch's, as before
    x = torch.randn(32, 1, 4, 4)
    net.train()
    net(x)
    first = batchnorms(net)[0]  # BatchNorm on the input pixels
    torch.testing.assert_close(first.running_mean, 0.01 * x.flatten(1).mean(0))  # from mean 0: no first-batch start


def test_bn_first_batch_seeds_the_statistics_each_round_and_not_after_a_restore():
    torch.manual_seed(0)
    net = models.build_for(tiny_model_cfg(bn_momentum=0.01, bn_first_batch=True), (1, 4, 4), 3)
    first = batchnorms(net)[0]
    x1, x2, x3 = (torch.randn(32, 1, 4, 4) for _ in range(3))
    net.train()
    net(x1)
    torch.testing.assert_close(first.running_mean, x1.flatten(1).mean(0))  # the first batch's moments outright
    torch.testing.assert_close(first.running_var, x1.flatten(1).var(0))
    net(x2)
    torch.testing.assert_close(first.running_mean, 0.99 * x1.flatten(1).mean(0) + 0.01 * x2.flatten(1).mean(0))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    key = next(n for n, m in net.named_modules() if m is first) + ".running_mean"

    net.eval()
    net(x3)  # evaluation neither seeds nor updates
    torch.testing.assert_close(first.running_mean, state[key])

    pruning.attach_masks(net)
    pruning.rewind(net, pruning.snapshot(net))  # IMP's rewind resets the statistics: the next batch seeds again
    net.train()
    net(x3)
    torch.testing.assert_close(first.running_mean, x3.flatten(1).mean(0))

    restored = models.build_for(tiny_model_cfg(bn_momentum=0.01, bn_first_batch=True), (1, 4, 4), 3)
    restored.load_state_dict(state)  # a checkpoint's statistics (2 batches tracked) are averaged into, not replaced
    restored.train()
    restored(x3)
    torch.testing.assert_close(batchnorms(restored)[0].running_mean,
                               0.99 * state[key] + 0.01 * x3.flatten(1).mean(0))


def test_bn_momentum_is_checked():
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ConfigError, match="bn_momentum"):
            tiny_model_cfg(bn_momentum=bad)
    with pytest.raises(ConfigError, match="bn_first_batch"):
        tiny_model_cfg(bn_first_batch=1)


# ---------------------------------------------------------------------------------------------- validation
def tiny_splits(n: int = 64) -> Splits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 4, 4, generator=g)
    y = (x[:, 0, 0, 0] > 0).long() + (x[:, 0, 3, 3] > 0).long()
    return Splits(Split(x, y), Split(x[:24], y[:24]), Split(x[:16], y[:16]), 3, (1, 4, 4))


class CountingTrainer(train.Trainer):
    """The real trainer, counting its evaluations of the validation split."""

    def __init__(self, validation):
        super().__init__()
        self.validation, self.checks = validation, 0

    def evaluate(self, model, split, device, batch_size=1000, precision="fp32"):
        self.checks += split is self.validation
        return super().evaluate(model, split, device, batch_size, precision)


def imp_cfg(**kw) -> config.RunConfig:
    base = dict(arch="fcn", width=10 / 1024, bias=True, affine_bn=True, epochs=2, batch_size=16, momentum=0.0,
                schedule="constant", rounds=2, rewind_step=1, sampling="replacement", steps_per_epoch=3)
    return config.make_config("imp", **{**base, **kw})


def test_validation_every_n_steps_from_step_0_gives_the_best_of_those_checks():
    splits = tiny_splits()
    trainer = CountingTrainer(splits.validation)
    torch.manual_seed(0)
    _, metrics = pruning.run(imp_cfg(validate_every=2), splits, torch.device("cpu"), trainer)
    assert metrics["rounds_trained"] == 3
    assert trainer.checks == 3 * 4  # steps 0, 2, 4, 6 of each 6-step round, nothing else
    for r in metrics["round_metrics"]:
        rows = [row for row in metrics["history"] if row["round"] == r["round"]]
        assert [row["validation_steps"] for row in rows] == [[0, 2], [4, 6]]  # epochs of 3 steps
        checks = [a for row in rows for a in row["validation_accuracies"]]
        assert r["best_validation_accuracy"] == max(checks)
        assert [row["validation_accuracy"] for row in rows] == [row["validation_accuracies"][-1] for row in rows]


def test_validation_after_every_epoch_by_default():
    splits = tiny_splits()
    trainer = CountingTrainer(splits.validation)
    torch.manual_seed(0)
    _, metrics = pruning.run(imp_cfg(), splits, torch.device("cpu"), trainer)
    assert trainer.checks == 3 * 2
    assert all("validation_steps" not in row and "validation_accuracy" in row for row in metrics["history"])
    with pytest.raises(ConfigError, match="validate_every"):
        imp_cfg(validate_every=0)


def test_validation_from_test_takes_the_first_test_images_and_holds_nothing_out(mnist):
    held = data.load(config.DataConfig(dataset="mnist", validation=500))
    first = data.load(config.DataConfig(dataset="mnist", validation=500, validation_from="test"))
    assert len(held.train) == 60_000 - 500 and len(first.train) == 60_000
    torch.testing.assert_close(first.validation.x, first.test.x[:500])
    assert torch.equal(first.validation.y, first.test.y[:500])
    with pytest.raises(ConfigError, match="validation"):
        data.load(config.DataConfig(dataset="mnist", validation=10_001, validation_from="test"))
    with pytest.raises(ConfigError, match="validation_from"):
        config.DataConfig(validation_from="val")


# ---------------------------------------------------------------------------------------------- rounds
def test_rounds_run_until_the_stop_rule_when_the_cap_is_the_official_1000():
    torch.manual_seed(0)
    cfg = imp_cfg(rounds=1000, prune_fraction=0.5, epochs=1, steps_per_epoch=2)
    _, metrics = pruning.run(cfg, tiny_splits(), torch.device("cpu"), train.Trainer())
    assert metrics["stopped_early"] and metrics["rounds_trained"] < 30
    assert min(metrics["round_metrics"][-1]["alive_units_per_layer"]) > cfg.method.stop_unit_fraction


# ---------------------------------------------------------------------------------------------- the presets
def test_full_presets_carry_the_released_codes_recipe_and_the_cpu_presets_keep_their_run_ids():
    for name in ("full", "full-cifar10"):
        runs = fc.configs(fc.preset(name))
        for label, cfg in runs.items():
            assert (cfg.data.validation, cfg.data.validation_from, cfg.method.validate_every) == (10_000, "test", 100)
            assert (cfg.data.normalize, cfg.model.bn_momentum, cfg.model.bn_first_batch) == ("mean-image", 0.01, True)
            assert cfg.method.stop_unit_fraction == 0.2
            assert cfg.method.rounds == (13 if label == "one-shot" else 1000)  # the official max_iterations
    assert fc.configs(fc.preset("full"))["less data"].data.subset == int(0.3 * 1_281_167)
    for name in ("smoke", "quick"):
        for cfg in fc.configs(fc.preset(name)).values():
            changed = {k for section in cfg.non_default().values() for k in section}
            assert not changed & {"validation_from", "validate_every", "normalize", "bn_momentum", "bn_first_batch"}


def test_dry_config_validates_after_every_step():
    small = plan.dry_config(fc.configs(fc.preset("full"))["IMP"])
    assert small.method.validate_every == 1 and small.data.validation_from == "test"


# ---------------------------------------------------------------------------------------------- recipe table
def test_recipe_table_reads_the_official_values_from_the_full_plan():
    table = fc.CHAPTER.recipe_table()
    assert list(table.columns) == ["setting", "paper", "released code", "full", "note"]
    assert len(table) == len(fc.CHAPTER.recipe) and table["note"].str.len().min() > 0
    full = dict(zip(table["setting"], table["full"]))
    expected = {
        "dataset": "dataset = imagenet32",
        "labels (label controls)": "dataset = imagenet32-10, imagenet32-mod10",
        "training images (less-data control)": "subset = 384350",
        "input pixels": "normalize = mean-image",
        "optimizer": "optimizer = sgd",
        "SGD momentum": "momentum = 0",
        "weight decay": "weight_decay = 0",
        "learning rate": "lr = 0.1",
        "learning-rate schedule": "schedule = constant",
        "batch size": "batch_size = 1000",
        "batches": "sampling = replacement",
        "steps per round (epochs of steps_per_epoch)": "epochs = 100",
        "steps per epoch": "steps_per_epoch = 1000",
        "pruned per round": "prune_fraction = 0.3",
        "rewinding": "rewind_step = 1000",
        "rounds": "rounds = 1000",
        "stop rule": "stop_unit_fraction = 0.2",
        "validation images": "validation = 10000",
        "validation images from": "validation_from = test",
        "validation every": "validate_every = 100",
        "BatchNorm running-statistics momentum": "bn_momentum = 0.01",
        "BatchNorm running statistics start": "bn_first_batch = True",
    }
    assert {k: full[k] for k in expected} == expected


@pytest.mark.parametrize("preset", list(fc.PRESETS))
def test_every_recipe_row_selects_runs_at_every_preset(preset):
    configs = [item.config for item in fc.CHAPTER.planned(preset)]
    for row in fc.CHAPTER.recipe:
        assert row.values(configs)  # raises when the row selects no run
    assert len(fc.CHAPTER.recipe_table(preset)) == len(fc.CHAPTER.recipe)
