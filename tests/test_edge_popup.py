"""Exact properties of the Edge-Popup supermask (in the style of torch.nn.utils.prune's tests)."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch
from torch import nn

from randweights.errors import ConfigError
from randweights.methods import edge_popup as ep


def tiny_mlp(bias=False):
    return nn.Sequential(nn.Flatten(), nn.Linear(20, 30, bias=bias), nn.ReLU(), nn.Linear(30, 5, bias=bias))


def masked_layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@pytest.mark.parametrize("n", [1, 7, 100, 1000, 50_000])
@pytest.mark.parametrize("k", [0.01, 0.1, 0.3, 0.5, 0.77, 0.99, 1.0])
def test_topk_keeps_exactly_round_kn_and_matches_sort(n, k):
    torch.manual_seed(n)
    scores = torch.rand(n)
    count = ep.kept_count(n, k)
    assert count == min(n, max(1, round(k * n)))
    mask = ep.topk_mask(scores, count)
    assert int(mask.sum()) == count
    assert torch.equal(mask, ep.sort_mask(scores, count))  # continuous scores: same set as a full sort


@pytest.mark.parametrize("k", [0.1, 0.5, 0.9])
def test_topk_exact_with_ties(k):
    scores = torch.zeros(10_000)
    scores[:3000] = torch.rand(3000) + 1.0  # 3000 distinct large, 7000 tied at exactly zero
    count = ep.kept_count(scores.numel(), k)
    mask = ep.topk_mask(scores, count)
    assert int(mask.sum()) == count
    threshold = scores[mask].min()
    assert bool(mask[scores > threshold].all())  # everything strictly above the threshold is kept
    ties = (scores == threshold).nonzero().squeeze(1)
    kept_ties = ties[mask[ties]]
    assert torch.equal(kept_ties, ties[: kept_ties.numel()])  # ties broken by index: the lowest are kept


def test_threshold_hint_gives_the_same_mask():
    torch.manual_seed(0)
    scores = torch.rand(200_000)
    count = ep.kept_count(scores.numel(), 0.3)
    hint = ep.ThresholdHint()
    assert torch.equal(ep.topk_mask(scores, count, hint), ep.topk_mask(scores, count))
    for step in range(30):  # scores drift as in training; sometimes jump so the band misses
        scores = (scores + (0.2 if step % 10 == 9 else 1e-3) * torch.randn_like(scores)).abs()
        assert torch.equal(ep.topk_mask(scores, count, hint), ep.topk_mask(scores, count))
    assert hint.value is not None


@pytest.mark.parametrize("size", [50_000, 50_003])
def test_kept_weights_are_the_masked_weights_bit_for_bit(size):
    """The product on bit patterns after a hinted search equals ``weight * mask`` bit for bit, signed zeros
    included, as the scores drift step by step."""
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(size, generator=g)
    scores = torch.rand(size, generator=g)
    count = ep.kept_count(size, 0.5)
    hint = ep.ThresholdHint()
    for step in range(12):
        kept = ep.kept_weights(weight, scores, count, hint)
        expected = weight * ep.sort_mask(scores, count)
        assert torch.equal(kept.view(torch.int32), expected.view(torch.int32))
        assert int((kept.view(torch.int32) == -(2**31)).sum()) == int(((weight < 0) & ~ep.sort_mask(scores, count)).sum())  # -0.0
        scores = (scores + 1e-3 * torch.randn(size, generator=g)).abs()
    assert hint.value is not None and hint.band < 0.02  # the hinted search ran and hit


@pytest.mark.parametrize("dtype, size", [(torch.float32, 50_000), (torch.float32, 50_003), (torch.float64, 50_000)])
def test_threshold_hint_with_ties_gives_the_reference_mask(dtype, size):
    """Scores on a coarse grid (many ties at every threshold) drifting step by step: the hinted selection keeps
    exactly the same entries as a stable full sort (ties by lowest index). float32 is searched on its bit patterns,
    other dtypes by comparisons; a size that is not a multiple of 8 takes the plain ``masked_select``."""
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(1, 400, (size,), generator=g).to(dtype) / 64
    count = ep.kept_count(scores.numel(), 0.4)
    hint = ep.ThresholdHint()
    for step in range(20):
        mask = ep.topk_mask(scores, count, hint)
        assert int(mask.sum()) == count
        assert torch.equal(mask, ep.sort_mask(scores, count))
        scores = scores + (torch.randint(-1, 2, scores.shape, generator=g).to(dtype) / 64) * (step % 3 == 0)
        scores = scores.abs()
    assert hint.at_or_above > count  # the hinted path ran, and with ties at its threshold


@pytest.mark.parametrize("k", [0.05, 0.5, 0.9])
def test_each_layer_keeps_exactly_k_of_its_weights(k):
    torch.manual_seed(0)
    model = ep.apply(tiny_mlp(), keep_fraction=k)
    for layer in masked_layers(model):
        n = layer.parametrizations.weight.original.numel()
        assert int((layer.weight != 0).sum()) == ep.kept_count(n, k)


def test_conv_layers_are_masked_per_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4, bias=False))
    ep.apply(model, keep_fraction=0.3)
    assert [int((m.weight != 0).sum()) for m in masked_layers(model)] == [round(0.3 * 216), round(0.3 * 1152)]


def test_scores_get_the_straight_through_gradient_and_weights_none():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4, bias=False)
    model = ep.apply(nn.Sequential(layer), keep_fraction=0.5)
    x = torch.randn(3, 6)
    out = model(x)
    w_eff = layer.weight
    w_eff.retain_grad()
    model(x).pow(2).sum().backward()
    masker = layer.parametrizations.weight[0]
    weight = layer.parametrizations.weight.original
    assert weight.grad is None and not weight.requires_grad
    grad_w_eff = (2 * model(x).detach()).T @ x  # dL/dW_eff for L = sum(out^2)
    expected = torch.sign(masker.scores.detach()) * grad_w_eff * weight.detach()
    torch.testing.assert_close(masker.scores.grad, expected)
    assert masker.scores.grad.ne(0).sum() > int(masker.mask().sum())  # pruned edges get gradient too
    assert out.shape == (3, 4)


def test_frozen_weights_never_change_and_scores_do():
    torch.manual_seed(0)
    model = ep.apply(tiny_mlp(bias=True), keep_fraction=0.5)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not n.endswith("scores")}
    before = [s.detach().clone() for s in ep.scores(model)]
    opt = torch.optim.SGD(ep.scores(model), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(20):
        opt.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(16, 20)), torch.randint(0, 5, (16,))).backward()
        opt.step()
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
    assert all(not torch.equal(a, b) for a, b in zip(before, ep.scores(model)))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {n for n, _ in model.named_parameters() if n.endswith("scores")}


@pytest.mark.parametrize("k", [0.1, 0.3, 0.5, 0.8])
def test_initializations_have_the_intended_scale(k):
    torch.manual_seed(0)
    fan_in = 500
    w = torch.empty(400, fan_in)
    sigma = math.sqrt(2 / fan_in)
    scaled = math.sqrt(2 / (k * fan_in))
    assert torch.allclose(ep.init_weight_(w, "signed-constant", k).abs(), torch.tensor(sigma))
    assert abs(float((w > 0).float().mean()) - 0.5) < 0.01
    assert torch.allclose(ep.init_weight_(w, "scaled-signed-constant", k).abs(), torch.tensor(scaled))
    assert abs(float(ep.init_weight_(w, "kaiming-normal", k).std()) / sigma - 1) < 0.01
    assert abs(float(ep.init_weight_(w, "scaled-kaiming-normal", k).std()) / scaled - 1) < 0.01
    assert torch.allclose(ep.init_weight_(w, "unsigned-constant", k), torch.tensor(sigma))


def test_eval_mask_is_cached_until_scores_change():
    torch.manual_seed(0)
    model = ep.apply(tiny_mlp(), keep_fraction=0.4)
    x = torch.randn(8, 20)
    train_out = model(x).detach()
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), train_out)
        masker = masked_layers(model)[0].parametrizations.weight[0]
        cached = masker._cache[1].clone()
        masker.scores.mul_(-1).add_(torch.randn_like(masker.scores))  # a real change of the ranking
        model(x)
        assert not torch.equal(masker._cache[1], cached)


def test_works_on_a_torchvision_model_and_copies():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    ep.apply(model, keep_fraction=0.3)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith("scores") for n in trainable)
    assert model.fc.bias.requires_grad is False and model.bn1.weight.requires_grad is False
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
        assert torch.equal(copy.deepcopy(model)(x), y)
        plain = ep.export(model)  # parametrized modules only serialize through state_dict; export is plain
        assert not any(n.endswith("scores") for n, _ in plain.named_parameters())
        assert torch.equal(pickle.loads(pickle.dumps(plain))(x), y)
        fresh = ep.apply(torchvision.models.resnet18(num_classes=10), keep_fraction=0.3)
        fresh.load_state_dict(model.state_dict())
        assert torch.equal(fresh.eval()(x), y)


def test_bad_keep_fraction_and_init_are_named():
    with pytest.raises(ConfigError, match="keep_fraction"):
        ep.apply(tiny_mlp(), keep_fraction=0.0)
    with pytest.raises(ConfigError, match="keep_fraction"):
        ep.EdgePopupConfig(keep_fraction=1.2)
    with pytest.raises(ConfigError, match="init"):
        ep.EdgePopupConfig(init="gaussian")


@pytest.mark.parametrize("preset", ["smoke", "quick", "full"])
def test_every_preset_builds_valid_distinct_runs(preset):
    from randweights.chapters import edge_popup as chapter

    p = chapter.preset(preset)
    configs = chapter.keep_fraction_configs(p) + chapter.init_configs(p) + chapter.width_configs(p) + chapter.bernoulli_configs(p)
    assert configs
    ids = [c.run_id for c in chapter.keep_fraction_configs(p)]
    assert len(ids) == len(set(ids))  # no sweep trains the same run twice
    if preset == "full":  # the paper's recipe: all of the data, 100 epochs, cosine, augmentation on CIFAR
        cifar = [c for c in configs if c.data.dataset == "cifar10"]
        assert all(c.data.subset is None and c.train.epochs == 100 and c.data.augment for c in cifar)
        assert {"conv2", "conv4", "conv6", "conv8", "resnet18"} <= {c.model.arch for c in cifar}
