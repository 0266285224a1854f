"""`full` is each paper's recipe: the configurations the full presets plan (no training), and the settings that
offer both readings where a paper and its released code disagree."""

from __future__ import annotations

import hashlib
import math

import pandas as pd
import pytest
import torch

from randweights import make_config
from randweights.chapters import edge_popup as ep
from randweights.chapters import laperm as lp
from randweights.chapters import slot_machines as sm
from randweights.errors import ConfigError
from randweights.methods import edge_popup, laperm
from randweights.train import lr_at


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
    p = sm.preset("full")
    slots = [c for c in sm.slots_configs(p) + sm.finetune_configs(p) if c.method.name == "slot"]
    assert {(c.method.candidate_init, c.method.score_init, c.train.schedule, c.method.finetune_from) for c in slots} == {
        ("code", "code", "sgdr", "same-run")}
    dense = [c for c in sm.slots_configs(p) + sm.finetune_configs(p) if c.method.name == "dense"]
    assert {(c.train.schedule, c.method.init, c.lr) for c in dense} == {("sgdr", "glorot-uniform", 0.01)}
    everything = slots + dense
    assert {c.train.select_epoch for c in everything} == {"validation"}
    assert {(c.data.dataset, c.data.normalize, c.data.crop) for c in everything} == {
        ("mnist", "unit", True), ("cifar10", "standardize", False)}
    finetuned = [c for c in slots if c.method.finetune_epochs]
    assert {c.method.finetune_schedule for c in finetuned} == {"constant"}
    assert {c.model.arch for c in finetuned} == {"slot-conv2", "slot-conv4", "slot-conv6", "vgg19"}


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


def _notebook_resnet_lr(epoch):  # Train-by-Reconnect notebooks/ResNet50.ipynb, lr_scheduler (learning_rate = 0.001)
    lr = 0.001
    if epoch > 180:
        lr *= 0.5e-3
    elif epoch > 160:
        lr *= 1e-3
    elif epoch > 120:
        lr *= 1e-2
    elif epoch > 80:
        lr *= 1e-1
    return lr


def test_laperm_step_schedules_are_the_notebooks_at_every_epoch():
    for epoch, factor in ((0, 1), (80, 1), (81, 0.1), (120, 0.1), (121, 0.01), (160, 0.01), (161, 1e-3), (180, 1e-3),
                          (181, 0.5e-3), (199, 0.5e-3)):  # the bounds: the notebook's epoch > 80, > 120, > 160, > 180
        assert lr_at(epoch, 200, 1e-3, "resnet-step") == (1e-3 * factor if factor != 1 else 1e-3)
    assert [lr_at(e, 200, 1e-3, "resnet-step") for e in range(200)] == [_notebook_resnet_lr(e) for e in range(200)]
    vgg = [lr_at(e, 125, 1e-3, "step-0.6") for e in range(125)]
    assert vgg == [0.001 * (0.6 ** (e // 10)) for e in range(125)]  # Conv2/4/13: learning_rate * 0.6 ** (epoch // lr_drop)
    assert vgg[9] == 1e-3 and vgg[10] == 1e-3 * 0.6 and vgg[19] == vgg[10] and vgg[20] == 1e-3 * 0.6**2
    assert make_config("laperm", schedule="resnet-step").train.schedule == "resnet-step"
    with pytest.raises(ConfigError, match="schedule"):
        make_config("laperm", schedule="step")


def test_laperm_zero_biases_leave_every_kernel_as_drawn():
    for arch, shape in (("lenet-300-100", (1, 28, 28)), ("laperm-conv7", (1, 28, 28))):
        he = laperm.build_initialized(make_config("laperm", arch=arch, biases="free", seed=3), shape, 10)
        zero = laperm.build_initialized(make_config("laperm", arch=arch, biases="free", seed=3, bias_init="zeros"), shape, 10)
        layers = [(a, b) for a, b in zip(he.modules(), zero.modules()) if isinstance(a, laperm.WEIGHTED)]
        assert len(layers) >= 3
        for a, b in layers:
            assert torch.equal(a.weight, b.weight)  # the same kernels, the later layers' too
            assert a.bias.abs().max() > 0 and torch.equal(b.bias, torch.zeros_like(b.bias))
    assert make_config("laperm").run_id == make_config("laperm", bias_init="he-uniform", inputs="standardized").run_id
    with pytest.raises(ConfigError, match="bias_init"):
        make_config("laperm", bias_init="ones")


def test_laperm_raw_inputs_are_pixels_in_0_to_255():
    x = torch.randn(4, 3, 32, 32)
    unit = laperm.build_initialized(make_config("laperm", arch="laperm-conv2", dataset="cifar10", inputs="unit"), (3, 32, 32), 10)
    raw = laperm.build_initialized(make_config("laperm", arch="laperm-conv2", dataset="cifar10", inputs="raw"), (3, 32, 32), 10)
    assert torch.allclose(raw[0](x), 255 * unit[0](x))
    assert raw.state_dict().keys() == unit.state_dict().keys()


def test_full_laperm_cifar_recipes_are_the_notebooks():
    configs = {c.model.arch: c for c in lp.paper_configs(lp.preset("full")) if c.method.init_sparsity == 0}
    for arch in ("laperm-conv2", "laperm-conv4", "laperm-conv13"):
        c = configs[arch]
        assert (c.train.schedule, c.method.inputs, c.method.sync_period, c.train.epochs, c.method.biases) == (
            "step-0.6", "raw", 1000, 125, "free")
    r = configs["resnet50-cifar"]
    assert (r.train.schedule, r.method.bias_init, r.data.normalize, r.method.sync_period, r.train.epochs, r.method.biases) == (
        "resnet-step", "zeros", "mean-image", 800, 200, "free")
    assert all(c.lr == 1e-3 and c.train.batch_size == 50 for c in configs.values())


# Each row: its setting's value(s) in `full`, as the released code has them (the order of first use in the plan).
LAPERM_OFFICIAL = {
    "lr schedule, Conv7": "schedule = exponential",
    "lr schedule, Conv2/4/13": "schedule = step-0.6",
    "lr schedule, ResNet-50": "schedule = resnet-step",
    "lr schedule, F1 and F2": "schedule = exponential",
    "sync period k, Conv7 | Conv2/4/13 | ResNet-50": "sync_period = 20, 1000, 800",
    "sync period k, F1 and F2": "sync_period = 250",
    "epochs, Conv7 | Conv2/4/13 | ResNet-50": "epochs = 45, 125, 200",
    "biases, Conv7 | CIFAR nets": "biases = permute, free",
    "bias init, ResNet-50": "bias_init = zeros",
    "weight decay, Conv2/4/13 and ResNet-50": "weight_decay = 0.0002",
    "inputs, Conv2/4/13": "inputs = raw",
    "inputs, ResNet-50": "normalize = mean-image",
}
EDGE_POPUP_OFFICIAL = {
    "lr, Edge-Popup scores": "lr = 0.1",
    "lr, dense SGD, Conv-2 to Conv-8": "lr = 0.01",
    "lr, dense Adam, LeNet-300-100 | Conv-2 | Conv-4/6/8": "lr = 0.0012, 0.0002, 0.0003",
    "Zhou et al. supermask lr, Conv-2/4/6": "lr = 200",
    "Zhou et al. supermask lr, Conv-8": "lr = 800",
    "scaled inits' fan (the paper's Fig. 7)": "scaled_fan = code",
    "batch size, ResNet-18": "batch_size = 256",
}

SLOT_OFFICIAL = {
    "candidate values": "candidate_init = code",
    "lr, greedy selection": "lr = 0.2, 0.1",
    "lr, probabilistic sampling": "lr = 25",
    "lr schedule, slot machines": "schedule = sgdr",
    "reported network": "select_epoch = validation",
    "MNIST inputs": "normalize = unit",
    "CIFAR-10 augmentation: random crop": "crop = False",
    "learned baselines: lr": "lr = 0.01",
    "learned baselines: lr schedule": "schedule = sgdr",
    "learned baselines: initial weights": "init = glorot-uniform",
    "finetuning: lr and schedule": "finetune_schedule = constant",
    "finetuned networks": "arch = slot-conv2, slot-conv4, slot-conv6, vgg19",
}


@pytest.mark.parametrize("chapter, official", [("laperm", LAPERM_OFFICIAL), ("edge_popup", EDGE_POPUP_OFFICIAL),
                                               ("slot_machines", SLOT_OFFICIAL)])
def test_recipe_tables_select_full_runs_and_show_the_released_values(chapter, official):
    module = {"laperm": lp, "edge_popup": ep, "slot_machines": sm}[chapter]
    table = module.CHAPTER.recipe_table()
    configs = [item.config for item in module.CHAPTER.planned("full")]
    assert len(table) == len(module.CHAPTER.recipe) >= 15
    for row in module.CHAPTER.recipe:
        assert any(row.runs(c) for c in configs), row.what  # every row is about runs `full` makes
        assert row.note and row.code
    shown = dict(zip(table["setting"], table["full"]))
    assert {what: shown[what] for what in official} == official
    assert table["setting"].is_unique


def test_full_edge_popup_has_no_resnet18_adam_baseline():
    runs = [c for c in ep.keep_fraction_configs(ep.preset("full")) if c.model.arch == "resnet18" and c.method.name == "dense"]
    assert runs and {c.train.optimizer for c in runs} == {"sgd"}


def test_runs_being_trained_keep_their_ids():
    """Pinned: the full LeNet-300-100 Edge-Popup runs and the F1/F2 LaPerm runs keep the run ids under which the
    published paper-scale bundle (bundles/) stores them (the sha256 of their sorted run ids)."""

    lenet = sorted({i.config.run_id for i in ep.CHAPTER.planned("full") if i.config.model.arch == "lenet-300-100"})
    agnostic = sorted({i.config.run_id for i in lp.CHAPTER.planned("full") if i.config.model.arch in ("f1", "f2")})
    assert (len(lenet), hashlib.sha256(" ".join(lenet).encode()).hexdigest()) == (
        48, "284c79f53ae989e6c1d076b0d48b11f4af4b992e537cef42a165c9a19c930fac")
    assert (len(agnostic), hashlib.sha256(" ".join(agnostic).encode()).hexdigest()) == (
        19, "d509912f23db0ae7c6d264304a7b266850f32a2fb962fa41e28a910c9bfc3758")
