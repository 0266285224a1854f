"""Slot Machines (Aladago & Torresani 2021): selection, gradients, finetuning conversion, export, config, CLI."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from randweights import cli, models, train
from randweights.config import make_config
from randweights.errors import ConfigError
from randweights.methods import slot_machines as sm


def tiny_mlp() -> nn.Sequential:
    return models.mlp((1, 4, 4), 3, (6,))


def tiny_conv() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2, bias=False))


def slot_model(k: int = 4, selection: str = "greedy", seed: int = 0, make=tiny_mlp) -> nn.Module:
    torch.manual_seed(seed)
    model = make()
    return sm.apply(model, k, selection, generator=torch.Generator().manual_seed(seed))


def x_of(model: nn.Module, n: int = 5) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(n, 2, 6, 6) if isinstance(model[0], nn.Conv2d) else torch.randn(n, 1, 4, 4)


def train_steps(model: nn.Module, steps: int = 5, lr: float = 1.0) -> None:
    opt = torch.optim.SGD(sm.scores(model), lr=lr, momentum=0.9)
    x = x_of(model, 16)
    y = torch.arange(16) % model[-1].out_features
    model.train()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


# ---------------------------------------------------------------------------------------------- selection
@pytest.mark.parametrize("make", [tiny_mlp, tiny_conv])
@pytest.mark.parametrize("selection", ["greedy", "probabilistic"])
def test_only_candidate_values_appear(make, selection):
    model = slot_model(5, selection, make=make)
    train_steps(model, 3)
    model.train()
    for _, layer, slot in sm.slot_layers(model):
        w = layer.weight  # a training-mode forward (a sample under PS)
        cands = slot.candidates()
        assert w.shape == cands.shape[1:]
        assert ((cands == w.unsqueeze(0)).any(0)).all()


def test_greedy_is_argmax():
    model = slot_model(7)
    train_steps(model, 4)
    for _, layer, slot in sm.slot_layers(model):
        expected = slot.candidates().gather(0, slot.scores.argmax(0, keepdim=True)).squeeze(0)
        model.train()
        assert torch.equal(layer.weight, expected)
        model.eval()
        with torch.no_grad():
            assert torch.equal(layer.weight, expected)


def test_greedy_index_matches_argmax_and_breaks_ties_low():
    for k in (1, 2, 3, 8, 64, 300):
        s = torch.randn(k, 7, 5)
        assert torch.equal(sm.greedy_index(s), s.argmax(0, keepdim=True))
    s = torch.zeros(4, 9)
    s[1] = s[3] = 1.0
    assert (sm.greedy_index(s) == 1).all()


def test_probabilistic_sampling_follows_softmax():
    torch.manual_seed(0)
    n, logits = 200_000, torch.tensor([0.0, 1.0, -0.5, 2.0])
    scores = logits.view(4, 1).expand(4, n).contiguous()
    idx = sm.sample_index(scores, torch.Generator().manual_seed(0)).flatten()
    counts = torch.bincount(idx, minlength=4).double()
    expected = torch.softmax(logits.double(), 0) * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.27  # chi-square, 3 degrees of freedom, p = 0.001


def test_probabilistic_training_samples_but_evaluation_is_greedy():
    model = slot_model(8, "probabilistic")
    _, layer, slot = sm.slot_layers(model)[0]
    model.train()
    draws = [layer.weight for _ in range(3)]
    assert not torch.equal(draws[0], draws[1]) or not torch.equal(draws[1], draws[2])
    model.eval()
    with torch.no_grad():
        assert torch.equal(layer.weight, slot.selected())


# ---------------------------------------------------------------------------------------------- gradients, training
def test_score_gradient_is_straight_through():
    """dL/ds_k = dL/dw * W_k for every candidate k (the paper's Eq.), checked against autograd on w."""
    model = slot_model(3)
    x, y = x_of(model), torch.tensor([0, 1, 2, 0, 1])
    model.train()
    with parametrize.cached():  # the forward below uses exactly these weight tensors
        weights = {name: layer.weight for name, layer, _ in sm.slot_layers(model)}
        for w in weights.values():
            w.retain_grad()
        F.cross_entropy(model(x), y).backward()
    for name, layer, slot in sm.slot_layers(model):
        expected = weights[name].grad.unsqueeze(0) * slot.candidates()
        torch.testing.assert_close(slot.scores.grad, expected, rtol=0, atol=1e-7)


def test_candidates_never_change_and_scores_do():
    model = slot_model(4)
    codes = [s.codes.clone() for s in sm.slots(model)]
    scores = [s.scores.detach().clone() for s in sm.slots(model)]
    train_steps(model, 5)
    for s, c, before in zip(sm.slots(model), codes, scores):
        assert torch.equal(s.codes, c)
        assert not torch.equal(s.scores, before)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(s.scores) for s in sm.slots(model)}
    assert all(not s.codes.is_floating_point() for s in sm.slots(model))  # stored as integer codes


def test_k1_is_the_fixed_random_network():
    model = slot_model(1)
    plain = tiny_mlp()
    plain.load_state_dict(sm.selected_state_dict(model))
    x = x_of(model)
    before = model(x).detach()
    train_steps(model, 5)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), before)
        assert torch.equal(plain(x), before)


def test_initial_ranges_follow_the_paper_and_code():
    torch.manual_seed(0)
    layer = nn.Linear(30, 20, bias=False)
    paper = sm.SlotSelect(layer.weight.shape, (30, 20), 4)
    code = sm.SlotSelect(layer.weight.shape, (30, 20), 4, candidate_init="code", score_init="code")
    b = (2 / 50) ** 0.5
    assert paper.bound == pytest.approx(b) and code.bound == pytest.approx((6 / 50) ** 0.5)
    assert paper.candidates().abs().max() <= b + 1e-7
    assert 0 <= float(paper.scores.detach().min()) and float(paper.scores.detach().max()) <= 0.1 * b  # lambda = 0.1 for FC
    assert float(code.scores.detach().max()) > 0.1 * code.bound  # lambda = 1 in the code
    conv = sm.SlotSelect(torch.Size((4, 3, 3, 3)), (27, 36), 2, is_conv=True)
    assert float(conv.scores.detach().max()) > 0.1 * conv.bound  # lambda = 1 for conv layers in the paper


# ---------------------------------------------------------------------------------------------- finetune, export
@pytest.mark.parametrize("make", [tiny_mlp, tiny_conv])
def test_finetuning_starts_from_exactly_the_selected_network(make):
    model = slot_model(6, make=make)
    train_steps(model, 4)
    x = x_of(model)
    model.eval()
    with torch.no_grad():
        selected = model(x)
    sm.to_dense(model)
    assert not sm.slot_layers(model)
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        assert torch.equal(model(x), selected)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    F.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.long)).backward()
    opt.step()
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_selected_state_dict_is_plain_and_loads():
    model = slot_model(4, make=tiny_conv)
    train_steps(model, 2)
    state = sm.selected_state_dict(model)
    plain = tiny_conv()
    assert set(state) == set(plain.state_dict())
    plain.load_state_dict(state)
    model.eval()
    x = x_of(model)
    with torch.no_grad():
        assert torch.equal(plain(x), model(x))


def test_state_is_at_most_k_plus_one_times_dense():
    k = 8
    model = slot_model(k)
    opt = torch.optim.SGD(sm.scores(model), lr=0.1, momentum=0.9)
    train_steps_with(model, opt)
    dense = tiny_mlp()
    dopt = torch.optim.SGD(dense.parameters(), lr=0.1, momentum=0.9)
    train_steps_with(dense, dopt)
    assert sm.training_memory_bytes(model, opt) <= (k + 1) * sm.training_memory_bytes(dense, dopt)


def train_steps_with(model, opt):
    x = x_of(model, 8)
    for _ in range(2):
        loss = model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


# ---------------------------------------------------------------------------------------------- config, CLI
def test_config_defaults_and_lr():
    cfg = make_config("slot")
    assert (cfg.method.num_slots, cfg.method.selection, cfg.method.finetune_epochs) == (8, "greedy", 0)
    assert cfg.lr == 0.2 and cfg.weight_decay == 1e-4
    assert make_config("slot", num_slots=16).lr == 0.1
    assert make_config("slot", selection="probabilistic").lr == 25.0


@pytest.mark.parametrize("settings", [{"num_slots": 0}, {"selection": "softmax"}, {"finetune_epochs": -1},
                                      {"candidate_init": "glorot"}, {"candidate_bits": 4}])
def test_config_rejects(settings):
    with pytest.raises(ConfigError):
        make_config("slot", **settings)


def test_cli_parses_slot_flags():
    args = cli.build_parser().parse_args(
        ["train", "--method", "slot", "--slots", "16", "--selection", "probabilistic", "--finetune-epochs", "2"])
    cfg = cli.config_from_args(args)
    assert (cfg.method.num_slots, cfg.method.selection, cfg.method.finetune_epochs) == (16, "probabilistic", 2)


@pytest.mark.parametrize("flags,name", [(["--slots", "0"], "num_slots"), (["--selection", "best"], "selection"),
                                        (["--finetune-epochs", "-3"], "finetune_epochs")])
def test_cli_errors_are_one_line_exit_2(flags, name, capsys, tmp_path):
    code = cli.main(["train", "--method", "slot", "--results", str(tmp_path), *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("randweights: error:") and name in err
    assert not any(tmp_path.iterdir())


def test_run_records_selection_and_finetuning(monkeypatch):
    """The method's own flow on a tiny synthetic split: both accuracies and per-epoch change statistics."""
    from randweights import data, train

    g = torch.Generator().manual_seed(0)
    split = data.Split(torch.randn(64, 1, 4, 4, generator=g), torch.randint(0, 3, (64,), generator=g))
    splits = data.Splits(split, None, split, 3, (1, 4, 4))
    monkeypatch.setattr(data, "load", lambda cfg: splits)
    cfg = make_config("slot", num_slots=4, finetune_epochs=1, epochs=2, batch_size=16)
    model, record = train.run(cfg, "cpu")
    assert len(record["selection_changed_per_epoch"]) == 2 and len(record["finetune_history"]) == 1
    assert 0 <= record["selected_test_accuracy"] <= 1 and record["finetuned_test_accuracy"] == record["test_accuracy"]
    assert all(0 <= v <= 1 for v in record["selection_changed_per_epoch"] + record["step_swaps_per_epoch"])
    assert not sm.slot_layers(model)


def test_evaluation_follows_scores_updated_by_the_fused_optimizer():
    model = slot_model(4)
    cfg = make_config("slot", num_slots=4)
    opt = sm.make_optimizer(sm.scores(model), cfg, train.Trainer())
    x = x_of(model, 8)
    model.eval()
    with torch.no_grad():
        model(x)  # fills the evaluation cache
    for _ in range(10):
        model.train()
        loss = 100 * model(x).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        for _, layer, slot in sm.slot_layers(model):
            assert torch.equal(layer.weight, slot.selected())
