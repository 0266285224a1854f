"""The settings that make `full` follow the papers' recipes: the reported epoch chosen on validation, input
normalization, flip-only augmentation, the Glorot-uniform learned baseline and the finetuning schedule."""

from __future__ import annotations

import math

import pytest
import torch

from randweights import data, make_config, train
from randweights.data import Split, Splits
from randweights.errors import ConfigError
from randweights.methods import dense, edge_popup


def noisy_splits(seed: int = 0) -> Splits:
    """A small problem whose validation accuracy moves from epoch to epoch (few, noisy validation images)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(96, 1, 4, 4, generator=g)
    y = ((x[:, 0, 0, 0] + 0.8 * torch.randn(96, generator=g)) > 0).long()
    return Splits(Split(x[:64], y[:64]), Split(x[64:80], y[64:80]), Split(x[80:], y[80:]), 2, (1, 4, 4))


def cfg(**kw):
    base = dict(arch="lenet-300-100", width=0.1, epochs=6, batch_size=8, lr=0.1, schedule="constant", validation=16,
                select_epoch="validation")
    return make_config("dense", **{**base, **kw})


def fitted(config, splits, checkpoint=None, on_epoch=None):
    torch.manual_seed(0)
    model = train.build_model(config, splits)
    params = dense.prepare(model, config)
    optimizer = train.make_optimizer(params, config)
    history = train.fit(model, optimizer, config, splits, torch.device("cpu"), checkpoint=checkpoint, on_epoch=on_epoch)
    return model, history


def test_select_epoch_needs_validation_images():
    with pytest.raises(ConfigError, match="select_epoch"):
        make_config("dense", select_epoch="validation")
    with pytest.raises(ConfigError, match="select_epoch"):
        make_config("dense", select_epoch="best", validation=10)


def test_the_model_ends_at_the_first_epoch_with_the_best_validation_accuracy():
    splits = noisy_splits()
    model, history = fitted(cfg(), splits)
    accuracies = [row["validation_accuracy"] for row in history]
    best = accuracies.index(max(accuracies))
    assert len(set(accuracies)) > 1 and best != len(history) - 1  # the check means something: not the last epoch
    assert [row["selected"] for row in history] == [i == best for i in range(len(history))]
    again = train.evaluate(model, splits.validation, torch.device("cpu"))["accuracy"]
    assert again == max(accuracies)
    last_model, last_history = fitted(cfg(select_epoch="last"), splits)
    assert "validation_accuracy" not in last_history[0]
    assert [r["train_loss"] for r in last_history] == [r["train_loss"] for r in history]  # same training
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), last_model.state_dict().values()))


def test_an_interrupted_run_resumes_with_its_best_epoch(tmp_path):
    splits = noisy_splits()
    config = cfg()
    whole, _ = fitted(config, splits)

    class Stop(Exception):
        pass

    def stop_at_4(epoch, row):
        if epoch == 4:
            raise Stop

    with pytest.raises(Stop):
        fitted(config, splits, train.Checkpointer(tmp_path / "c.pt", config.to_dict()), on_epoch=stop_at_4)
    resumed, history = fitted(config, splits, train.Checkpointer(tmp_path / "c.pt", config.to_dict()))
    assert len(history) == 6
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_run_records_the_selected_epoch(tmp_path, mnist):
    config = make_config("dense", subset=200, validation=100, epochs=3, select_epoch="validation")
    _, record = train.run(config)
    chosen = [r["epoch"] for r in record["history"] if r["selected"]]
    assert record["selected_epoch"] == chosen[0] and len(chosen) == 1
    assert record["validation_accuracy"] == max(r["validation_accuracy"] for r in record["history"])


def test_normalizations(mnist):
    unit = data.load(make_config("dense", normalize="unit", validation=100).data)
    standard = data.load(make_config("dense", validation=100).data)
    idx = torch.arange(50)
    raw = unit.train.raw[unit.train.index[idx]].to(torch.float32).unsqueeze(1) / 255.0
    assert torch.equal(unit.train.images(idx), raw)
    mean, std = data.STATS["mnist"]
    assert torch.allclose(standard.train.images(idx), (raw - mean[0]) / std[0], atol=1e-6)
    centred = data.load(make_config("dense", normalize="mean-image", subset=500).data)
    assert centred.train.x.mean(0).abs().max() < 1e-5  # every pixel's mean over the training images is 0
    shift = centred.train.x[0] - centred.train.raw[centred.train.index[0]].to(torch.float32) / 255.0
    test_shift = centred.test.x[0] - centred.test.raw[centred.test.index[0]].to(torch.float32) / 255.0
    assert torch.allclose(shift, test_shift)  # the test images get the training images' mean image
    assert shift.std() > 0  # a mean image, not one number


def test_flip_only_augmentation_flips_and_never_shifts():
    assert data.augmentation(make_config("dense", dataset="cifar10", augment=True, crop=False).data) == ("flip",)
    assert data.augmentation(make_config("dense", dataset="cifar10", augment=True).data) == ("crop-flip",)
    x = torch.randn(64, 3, 8, 8)
    out = data.flip_batch(x, torch.Generator().manual_seed(0))
    flipped = [bool(torch.equal(o, i.flip(-1))) for o, i in zip(out, x)]
    kept = [bool(torch.equal(o, i)) for o, i in zip(out, x)]
    assert all(f != k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54


def test_glorot_uniform_is_the_slot_machines_candidate_pool():
    w = torch.empty(300, 784)
    edge_popup.init_weight_(w, "glorot-uniform", generator=torch.Generator().manual_seed(0))
    bound = math.sqrt(6 / (784 + 300))
    assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound
    assert abs(w.var().item() - bound**2 / 3) < 0.02 * bound**2 / 3


def test_finetune_schedule_constant_keeps_the_lr(mnist):
    config = make_config("slot", num_slots=2, subset=200, epochs=1, finetune_epochs=3, schedule="sgdr",
                         finetune_schedule="constant", finetune_lr=0.03)
    _, record = train.run(config)
    assert [r["lr"] for r in record["finetune_history"]] == [0.03] * 3
    cosine = make_config("slot", num_slots=2, subset=200, epochs=1, finetune_epochs=3, schedule="sgdr", finetune_lr=0.03)
    _, record = train.run(cosine)
    assert record["finetune_history"][1]["lr"] < 0.03


def test_flip_only_reaches_the_training_batches():
    x = torch.randn(32, 3, 8, 8)
    split = Split(x, torch.zeros(32, dtype=torch.long))
    batches = list(data.batches(split, 32, torch.Generator().manual_seed(0), ("flip",)))
    plain = list(data.batches(split, 32, torch.Generator().manual_seed(0)))
    (got, _), (same_order, _) = batches[0], plain[0]
    flipped = [bool(torch.equal(g, s.flip(-1))) and not torch.equal(g, s) for g, s in zip(got, same_order)]
    assert 4 < sum(flipped) < 28
