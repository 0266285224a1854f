"""IMP (Pellegrini & Biroli 2021): schedule, monotone masks, rewinding, masking semantics, stop rule, CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from randweights import config, models, train
from randweights.cli import main
from randweights.data import Split, Splits
from randweights.errors import ConfigError
from randweights.methods import pruning


def tiny_fcn(seed: int = 0, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    model = models.build("fcn", (1, 4, 4), 3, width=10 / 1024, bias=True, affine_bn=True).to(dtype)
    pruning.init_paper_(model)
    return pruning.attach_masks(model)


def perturb_(model: nn.Module, seed: int) -> None:
    """Stand-in for training: move every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype))


def kept(masks) -> list[int]:
    return [int(w.sum()) + int(b.sum()) for w, b in masks]


def sizes(masks) -> list[int]:
    return [w.numel() + b.numel() for w, b in masks]


@pytest.mark.parametrize("strategy", ["magnitude", "random"])
def test_schedule_counts_and_monotone_masks(strategy):
    model = tiny_fcn()
    masks = pruning.get_masks(model)
    g = torch.Generator().manual_seed(1)
    for n in range(1, 9):
        perturb_(model, n)
        new = pruning.imp_step(model, masks, n, 0.3, strategy, g)
        assert kept(new) == [math.ceil(0.7**n * s - 1e-9) for s in sizes(masks)]
        for (w0, b0), (w1, b1) in zip(masks, new):
            assert not (w1 & ~w0).any() and not (b1 & ~b0).any()  # masks only shrink
        masks = new
    assert pruning.output_layer(model) not in pruning.prunable_layers(model)
    assert not hasattr(pruning.output_layer(model), "weight_mask")  # the output layer is never pruned


def test_imp_step_is_pure_and_ranks_weights_and_biases_together():
    model = tiny_fcn()
    layer = pruning.prunable_layers(model)[0]
    with torch.no_grad():
        layer.bias_orig.fill_(100.0)  # the biases outrank every weight
    masks = pruning.get_masks(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new = pruning.imp_step(model, masks, 1, 0.3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(w.all() and b.all() for w, b in masks)
    assert new[0][1].all()
    w = layer.weight_orig.detach().abs()
    kept_w = w[new[0][0]]
    assert kept_w.min() >= w[~new[0][0]].max()  # magnitude: every kept weight >= every pruned one


def test_pruned_entries_rank_below_survivors_even_when_larger():
    model = tiny_fcn()
    layer = pruning.prunable_layers(model)[0]
    masks = pruning.imp_step(model, pruning.get_masks(model), 1, 0.3)
    with torch.no_grad():  # stale values of pruned entries grow huge: they must still not revive
        layer.weight_orig[~masks[0][0]] = 1e6
    new = pruning.imp_step(model, masks, 2, 0.3)
    assert not (new[0][0] & ~masks[0][0]).any()


def test_masking_semantics_zero_gradient_and_dense_equivalence():
    model = tiny_fcn()
    masks = pruning.imp_step(model, pruning.get_masks(model), 3, 0.3)
    pruning.set_masks(model, masks)
    dense = models.build("fcn", (1, 4, 4), 3, width=10 / 1024, bias=True, affine_bn=True).to(torch.float64)
    state = {}
    for name, value in model.state_dict().items():
        if name.endswith("_mask"):
            continue
        key = name.replace("_orig", "")
        mask_name = name.replace("_orig", "_mask")
        state[key] = value * model.state_dict()[mask_name] if name.endswith("_orig") else value
    dense.load_state_dict(state)
    x = torch.randn(7, 1, 4, 4, dtype=torch.float64)
    model.train()
    dense.train()
    assert torch.equal(model(x), dense(x))
    model(x).square().sum().backward()
    for layer, (w, b) in zip(pruning.prunable_layers(model), masks):
        assert (layer.weight_orig.grad[~w] == 0).all()
        assert (layer.bias_orig.grad[~b] == 0).all()


def tiny_splits(n: int = 64, seed: int = 0) -> Splits:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, generator=g)
    y = (x[:, 0, 0, 0] > 0).long() + (x[:, 0, 3, 3] > 0).long()
    return Splits(Split(x, y), None, Split(x[:16], y[:16]), 3, (1, 4, 4))


def tiny_cfg(**kw):
    base = dict(arch="fcn", width=10 / 1024, bias=True, affine_bn=True, epochs=2, batch_size=16, momentum=0.0, schedule="constant", rounds=3, rewind_step=3)
    base.update(kw)
    return config.make_config("imp", **base)


def test_rewind_restores_every_parameter_bitwise(monkeypatch):
    """At the start of every round n >= 1 all parameters equal the step-``rewind_step`` snapshot of round 0 and
    the BatchNorm statistics are reset."""
    from randweights import train

    cfg = tiny_cfg()
    seen: list[dict] = []
    saved: list[dict] = []
    real_snapshot, real_fit = pruning.snapshot, train.fit

    def spy_snapshot(model):
        out = real_snapshot(model)
        saved.append({k: v.clone() for k, v in out.items()})
        return out

    def spy_fit(model, *args, **kwargs):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(pruning, "snapshot", spy_snapshot)
    monkeypatch.setattr(train, "fit", spy_fit)
    torch.manual_seed(0)
    model, metrics = pruning.run(cfg, tiny_splits(), torch.device("cpu"), train.Trainer())
    assert len(saved) == 1 and len(seen) == 4
    names = [n for n, _ in model.named_parameters()]
    assert {n.split(".")[0] for n in names} >= {"1", "2", "5", "10", "11"}  # BN, hidden and output layers
    for start in seen[1:]:
        for name in names:
            assert torch.equal(start[name], saved[0][name]), name
        for key, value in start.items():
            if key.endswith("running_mean"):
                assert (value == 0).all()
            if key.endswith("running_var"):
                assert (value == 1).all()
    assert not torch.equal(seen[0][names[0]], saved[0][names[0]]) or cfg.method.rewind_step == 0
    fractions = [r["remaining_fraction"] for r in metrics["round_metrics"]]
    assert fractions == sorted(fractions, reverse=True) and fractions[0] == 1.0
    masks = pruning.first_layer_masks(metrics)
    assert len(masks) == 4 and masks[0].shape == (10, 1, 4, 4)
    for a, b in zip(masks, masks[1:]):
        assert not (b & ~a).any()


def test_pruned_entries_never_revive_during_training():
    cfg = tiny_cfg(rounds=2)
    torch.manual_seed(0)
    model, metrics = pruning.run(cfg, tiny_splits(), torch.device("cpu"), train.Trainer())
    layer = pruning.prunable_layers(model)[0]
    mask = layer.weight_mask.bool()
    effective = layer.weight.detach()
    assert (effective[~mask] == 0).all()
    assert metrics["rounds_trained"] == 3


def test_stop_rule():
    w = torch.zeros(10, 5, dtype=torch.bool)
    w[:2, 0] = True  # 2 of 10 units connected
    other = torch.ones(4, 10, dtype=torch.bool)
    assert pruning.alive_unit_fraction(w) == 0.2
    assert pruning.should_stop([(other, None), (w, None)], 0.2)
    assert not pruning.should_stop([(other, None), (w, None)], 0.19)
    w[2, 1] = True
    assert not pruning.should_stop([(other, None), (w, None)], 0.2)


def test_run_stops_when_a_layer_disconnects():
    cfg = tiny_cfg(rounds=30, prune_fraction=0.5, stop_unit_fraction=0.5, epochs=1)
    torch.manual_seed(0)
    _, metrics = pruning.run(cfg, tiny_splits(), torch.device("cpu"), train.Trainer())
    assert metrics["stopped_early"]
    last = metrics["round_metrics"][-1]
    assert min(last["alive_units_per_layer"]) > 0.5  # the violating round is not trained
    assert metrics["rounds_trained"] < 31


def test_one_shot_prunes_straight_to_the_final_fraction():
    cfg = tiny_cfg(pruning_schedule="one-shot", rounds=4)
    torch.manual_seed(0)
    _, metrics = pruning.run(cfg, tiny_splits(), torch.device("cpu"), train.Trainer())
    assert [r["round"] for r in metrics["round_metrics"]] == [0, 4]
    model = tiny_fcn()
    expected = sum(math.ceil(0.7**4 * s - 1e-9) for s in sizes(pruning.get_masks(model))) / sum(sizes(pruning.get_masks(model)))
    assert metrics["round_metrics"][-1]["remaining_fraction"] == pytest.approx(expected)


def test_mask_encoding_roundtrip():
    m = np.random.default_rng(0).random((5, 3, 7, 9)) < 0.3
    assert np.array_equal(pruning.decode_mask(pruning.encode_mask(m), m.shape), m)


def test_pixel_shuffle_maps_back():
    seed = 3
    rng = np.random.default_rng(1)
    masks = rng.random((4, 2, 5, 6)) < 0.4
    perm = pruning.pixel_permutation(seed, 5, 6)
    shuffled = masks.reshape(4, 2, 30)[..., perm].reshape(masks.shape)  # a mask on shuffled inputs
    assert np.array_equal(pruning.unshuffle_masks(shuffled, seed), masks)
    x = torch.arange(2 * 30.0).reshape(1, 2, 5, 6)
    splits = Splits(Split(x, torch.tensor([3])), None, Split(x.clone(), torch.tensor([8])), 10, (2, 5, 6))
    cfg = config.make_config("imp", pixel_shuffle_seed=seed, label_grouping="meaningful", dataset="cifar10")
    pruning.apply_controls(cfg, splits)
    assert torch.equal(splits.train.x.reshape(2, 30), x.reshape(2, 30)[:, perm])
    assert splits.num_classes == 2 and splits.train.y.tolist() == [0] and splits.test.y.tolist() == [1]


@pytest.mark.parametrize(
    "args, parameter",
    [
        (["--rounds", "-1"], "rounds"),
        (["--prune-fraction", "1.0"], "prune_fraction"),
        (["--prune-fraction", "0"], "prune_fraction"),
        (["--rewind-step", "-5"], "rewind_step"),
        (["--strategy", "largest"], "strategy"),
        (["--pruning-schedule", "twice"], "pruning_schedule"),
    ],
)
def test_cli_rejects_bad_values(args, parameter, capsys, tmp_path):
    code = main(["train", "--method", "imp", "--results", str(tmp_path), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"randweights: error: {parameter}:") and "\n" not in err
    assert not any(tmp_path.iterdir())


def test_cli_rejects_non_numbers(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--method", "imp", "--rounds", "many"])
    assert exc.value.code == 2 and "--rounds" in capsys.readouterr().err


def test_config_rejects_bad_types_and_too_late_rewind():
    with pytest.raises(ConfigError):
        config.make_config("imp", rounds=2.5)
    cfg = tiny_cfg(rewind_step=10_000)
    with pytest.raises(ConfigError, match="rewind_step"):
        pruning.run(cfg, tiny_splits(), torch.device("cpu"), train.Trainer())
