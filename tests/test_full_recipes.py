"""`full` is each paper's recipe: the configurations the full presets plan (no training), and the settings that
offer both readings where a paper and its released code disagree."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from randweights import make_config
from randweights.chapters import edge_popup as ep
from randweights.methods import edge_popup


def test_scaled_inits_offer_the_paper_and_the_code_fan():
    fan_in, k = 4000, 0.2
    for reading, fan in (("kept", k * fan_in), ("code", (1 - k) * fan_in)):
        w = edge_popup.init_weight_(torch.empty(300, fan_in), "scaled-signed-constant", k, scaled_fan=reading)
        assert torch.allclose(w.abs(), torch.full_like(w, math.sqrt(2 / fan)))
    assert make_config("edge-popup").run_id == make_config("edge-popup", scaled_fan="kept").run_id  # default = before


def test_full_edge_popup_runs_the_papers_networks_per_figure():
    p = ep.preset("full")
    inits = ep.init_configs(p)
    assert {c.model.arch for c in inits} == {"conv4", "conv6"} and {c.data.dataset for c in inits} == {"cifar10"}
    assert {"kaiming-uniform", "xavier-normal", "scaled-kaiming-normal"} <= {c.method.init for c in inits}
    assert {c.method.scaled_fan for c in inits if c.method.init.startswith("scaled-")} == {"code"}
    assert {c.model.arch for c in ep.bernoulli_configs(p)} == {"conv2", "conv4", "conv6", "conv8"}
    widths = ep.width_configs(p)
    assert {(c.model.arch, c.method.init) for c in widths if c.method.name == "edge-popup"} == {
        (a, i) for a in ("conv4", "conv6") for i in ("signed-constant", "kaiming-normal")}
    dense_resnet = [c for c in ep.keep_fraction_configs(p) if c.model.arch == "resnet18" and c.method.name == "dense"]
    assert dense_resnet and all(c.model.affine_bn for c in dense_resnet)


def test_fig5_keeps_the_same_number_of_weights_at_every_width():
    p = ep.preset("full")
    configs = ep.fixed_count_configs(p)
    assert {c.model.arch for c in configs} == {"conv4", "conv6"}
    for arch in ("conv4", "conv6"):
        base = ep.maskable_weights(arch, "cifar10", 1.0)
        for k1 in p.fixed_keep_fractions:
            kept = {round(c.method.keep_fraction * ep.maskable_weights(arch, "cifar10", c.model.width) / base, 4)
                    for c in configs if c.model.arch == arch and abs(c.method.keep_fraction * ep.maskable_weights(
                        arch, "cifar10", c.model.width) / base - k1) < 1e-3}
            assert kept == {k1}
        assert max(c.method.keep_fraction for c in configs) < 1


@pytest.mark.parametrize("plot", ["init", "width", "fixed", "bernoulli"])
def test_full_figures_draw_one_panel_per_network(plot):
    rows = []
    for arch in ("conv4", "conv6"):
        for w in (0.5, 1.0, 2.0):
            for method, init in (("edge-popup", "signed-constant"), ("edge-popup", "kaiming-normal"), ("dense", "kaiming-normal"),
                                 ("supermask-bernoulli", "signed-constant")):
                rows.append({"arch": arch, "width": w, "method": method, "init": init, "keep_fraction": w / 4,
                             "realized_keep_fraction": w / 4 + 0.01, "k1": 0.3, "test_accuracy": 0.5 + w / 10, "run_id": len(rows)})
    df = pd.DataFrame(rows)
    fig = {"init": lambda: ep.plot_inits(df[df["method"] == "edge-popup"], "full"),
           "width": lambda: ep.plot_widths(df[df["method"] != "supermask-bernoulli"], "full"),
           "fixed": lambda: ep.plot_fixed_count(df[df["method"] == "edge-popup"], "full"),
           "bernoulli": lambda: ep.plot_bernoulli(df[df["init"] == "signed-constant"], "full")}[plot]()
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert sum("Conv-4" in ax.get_title() for ax in titled) == 1 and sum("Conv-6" in ax.get_title() for ax in titled) == 1


def test_sgdr_restarts_at_epochs_25_and_75():
    from randweights.train import lr_at

    lrs = [lr_at(e, 200, 0.2, "sgdr") for e in range(200)]
    restarts = [e for e in range(1, 200) if lrs[e] > lrs[e - 1]]
    assert restarts == [25, 75] and lrs[0] == lrs[25] == lrs[75] == 0.2
    assert lrs[24] < 0.002 and lrs[74] < 0.001 and lrs[199] < 1e-4
    assert [lr_at(e, 10, 1.0, "sgdr") for e in range(10)] == [lr_at(e, 10, 1.0, "cosine") for e in range(10)]


def test_same_run_finetuning_starts_from_the_epoch_e1_state_of_the_full_run(tmp_path, mnist):
    from randweights import runs

    common = dict(num_slots=4, subset=400, batch_size=64, finetune_from="same-run")
    finetuned = runs.get_or_run(make_config("slot", epochs=2, finetune_epochs=2, **common), root=tmp_path)
    whole = runs.get_or_run(make_config("slot", epochs=4, **common), root=tmp_path)
    assert finetuned["history"] == whole["history"][:2]  # the same schedule and state up to E1 = 2
    separate = runs.get_or_run(make_config("slot", epochs=2, finetune_epochs=2, num_slots=4, subset=400, batch_size=64),
                               root=tmp_path)
    assert separate["history"][1]["lr"] < finetuned["history"][1]["lr"]  # a separate run has decayed already
    assert len(finetuned["finetune_history"]) == 2


def test_full_slot_machines_use_the_code_inits_warm_restarts_and_same_run_finetuning():
    from randweights.chapters import slot_machines as sm

    p = sm.preset("full")
    slots = [c for c in sm.slots_configs(p) + sm.finetune_configs(p) if c.method.name == "slot"]
    assert {(c.method.candidate_init, c.method.score_init, c.train.schedule, c.method.finetune_from) for c in slots} == {
        ("code", "code", "sgdr", "same-run")}
    assert all(c.train.schedule == "cosine" for c in sm.slots_configs(p) if c.method.name == "dense")


def test_laperm_keras_bias_fan_and_hidden_kernel_l2():
    from randweights import models
    from randweights.methods import laperm

    cfg = make_config("laperm", bias_fan="keras", l2_scope="hidden-kernels", weight_decay=2e-4)
    model = laperm.build_initialized(cfg, (1, 28, 28), 10)
    layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    for layer, units in zip(layers, (300, 100, 10)):  # bounds sqrt(6/len(bias)): 0.141, 0.245, 0.775
        assert layer.bias.abs().max() <= math.sqrt(6 / units) and layer.bias.abs().max() > 0.9 * math.sqrt(6 / units)
    kernel = laperm.build_initialized(make_config("laperm"), (1, 28, 28), 10)
    assert [m.bias.abs().max() <= math.sqrt(6 / m.in_features) for m in kernel.modules() if isinstance(m, torch.nn.Linear)] == [True] * 3
    opt = laperm.make_laperm(model, cfg, steps_per_epoch=10)
    decayed = [p for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]]
    assert [tuple(p.shape) for p in decayed] == [(300, 784), (100, 300)]  # hidden kernels, not the output layer
    assert sum(len(g["params"]) for g in opt.param_groups) == 6
    conv2 = [type(m).__name__ for m in models.build("laperm-conv2", (3, 32, 32), 10)][-9:]
    assert conv2 == ["Linear", "ReLU", "Dropout", "BatchNorm1d", "Linear", "ReLU", "BatchNorm1d", "Dropout", "Linear"]
    conv13 = [type(m).__name__ for m in models.build("laperm-conv13", (3, 32, 32), 10)]
    assert conv13[conv13.index("Flatten") - 2:conv13.index("Flatten")] == ["MaxPool2d", "Dropout"]


def test_random_affine_augmentation_is_seeded_and_moves_pixels():
    from randweights import data

    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:18, 12:16] = 1.0
    a = data.random_affine_batch(x, torch.Generator().manual_seed(0))
    b = data.random_affine_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and not torch.equal(a, x)
    assert ((a - x).abs().sum((1, 2, 3)) > 0).all()  # every image moved
    assert data.augmentation(make_config("laperm", random_affine=True).data) == ("affine",)
    assert data.augmentation(make_config("laperm", dataset="cifar10", augment=True).data) == ("crop-flip",)


def test_full_laperm_runs_the_conv7_notebook_recipe():
    from randweights.chapters import laperm as lp

    conv7 = [c for c in lp.paper_configs(lp.preset("full")) if c.model.arch == "laperm-conv7"][0]
    assert (conv7.method.sync_period, conv7.method.inputs, conv7.train.schedule, conv7.data.random_affine) == (
        20, "unit", "exponential", True)
    assert conv7.lr == 1e-3 and conv7.method.bias_fan == "keras" and conv7.method.l2_scope == "hidden-kernels"


def test_less_data_keeps_the_steps_when_batches_are_drawn_with_replacement(tmp_path, mnist):
    from randweights import runs
    from randweights.chapters import fcn_to_cnn
    from randweights.errors import ConfigError

    full = fcn_to_cnn.configs(fcn_to_cnn.preset("full"))
    steps = {label: c.train.epochs * c.train.steps_per_epoch for label, c in full.items()}
    assert set(steps.values()) == {100_000}  # the less-data control trains as long as the main run
    assert full["IMP"].data.subset is None and full["less data"].data.subset == 384_350  # int(0.3 * 1,281,167), as data_ratio 0.3
    common = dict(rounds=1, epochs=2, batch_size=50, sampling="replacement", steps_per_epoch=3, rewind_step=2)
    records = [runs.get_or_run(make_config("imp", subset=s, **common), root=tmp_path) for s in (300, 100)]
    assert [r["steps_per_round"] for r in records] == [6, 6]
    assert [len(r["history"]) for r in records] == [4, 4]
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        make_config("imp", steps_per_epoch=3)
