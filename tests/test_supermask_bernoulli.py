"""The Bernoulli supermask baseline (Zhou et al., 2019): sampling rate and straight-through gradient."""

from __future__ import annotations

import math

import torch
from torch import nn

from randweights import compact
from randweights.methods import supermask_bernoulli as zb


def test_masks_are_sampled_at_sigmoid_of_the_scores():
    torch.manual_seed(0)
    layer = nn.Linear(100, 100, bias=False)
    zb.apply(nn.Sequential(layer), keep_fraction=0.3)
    masker = layer.parametrizations.weight[0]
    with torch.no_grad():
        masker.scores.copy_(torch.linspace(-3, 3, 10_000).view(100, 100))
    p = torch.sigmoid(masker.scores.detach())
    draws = 400
    rate = sum((layer.weight != 0).float() for _ in range(draws)) / draws
    # per weight: binomial(400, p); the mean over 10,000 weights is within 4 standard errors of mean(p)
    se = math.sqrt(float((p * (1 - p)).sum()) / draws) / p.numel()
    assert abs(float(rate.mean() - p.mean())) < 4 * se
    # and per bucket of 1,000 weights with similar p
    for chunk_rate, chunk_p in zip(rate.view(10, -1), p.view(10, -1)):
        se_chunk = math.sqrt(float((chunk_p * (1 - chunk_p)).sum()) / draws) / chunk_p.numel()
        assert abs(float(chunk_rate.mean() - chunk_p.mean())) < 4 * se_chunk + 1e-9


def test_initial_keep_probability_is_keep_fraction():
    layer = nn.Linear(10, 10, bias=False)
    zb.apply(nn.Sequential(layer), keep_fraction=0.2)
    torch.testing.assert_close(layer.parametrizations.weight[0].probabilities(), torch.full((10, 10), 0.2))


def test_straight_through_gradient_reaches_scores_through_the_sigmoid():
    torch.manual_seed(0)
    layer = nn.Linear(5, 3, bias=False)
    model = zb.apply(nn.Sequential(layer), keep_fraction=0.5)
    masker = layer.parametrizations.weight[0]
    x = torch.randn(4, 5)
    torch.manual_seed(1)
    out = model(x)
    out.sum().backward()
    weight = layer.parametrizations.weight.original
    p = masker.probabilities().detach()
    grad_w_eff = torch.ones(4, 3).T @ x
    torch.testing.assert_close(masker.scores.grad, grad_w_eff * weight * p * (1 - p))
    assert weight.grad is None


def test_threshold_evaluation_is_deterministic():
    torch.manual_seed(0)
    layer = nn.Linear(50, 50, bias=False)
    model = zb.apply(nn.Sequential(layer), keep_fraction=0.5, eval_mask="threshold")
    with torch.no_grad():
        layer.parametrizations.weight[0].scores.normal_()
    model.eval()
    x = torch.randn(2, 50)
    assert torch.equal(model(x), model(x))


def _model(eval_mask: str) -> nn.Sequential:
    model = zb.apply(nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 5)), keep_fraction=0.5,
                     eval_mask=eval_mask, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for s in zb.scores(model):
            s.normal_(generator=torch.Generator().manual_seed(s.numel()))
    return model


def test_scores_are_what_the_optimizer_trains_in_model_order():
    model = _model("sample")
    got = zb.scores(model)
    assert [id(s) for s in got] == [id(m.scores) for m in zb.masks(model)]
    assert [tuple(s.shape) for s in got] == [(20, 30), (5, 20)]
    assert all(s.requires_grad for s in got)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(s) for s in got}


def test_default_evaluation_samples_per_call_until_the_mask_is_fixed(tmp_path):
    """The default ``eval_mask="sample"``: a new mask per call, so a file could not hold "the" model; once the
    sample is fixed (compact.save fixes it), the model is repeatable and equals its compact file."""
    model = _model("sample").eval()
    x = torch.randn(64, 30, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
        compact.save(model, tmp_path / "s.rwc", eval_seed=5)
        fixed = model(x)
        assert torch.equal(model(x), fixed)
        loaded = compact.load(tmp_path / "s.rwc", nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 5)))
        assert torch.equal(loaded(x), fixed)


def test_threshold_evaluation_round_trips_exactly_through_the_compact_file(tmp_path):
    model = _model("threshold").eval()
    x = torch.randn(64, 30, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before = model(x)
        compact.save(model, tmp_path / "t.rwc", eval_seed=5)
        loaded = compact.load(tmp_path / "t.rwc", nn.Sequential(nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 5)))
        assert torch.equal(model(x), before)  # saving fixed nothing: the threshold needs no seed
        assert torch.equal(loaded(x), before)
        probabilities = [m.probabilities() for m in zb.masks(model)]
        assert torch.equal(loaded[0].weight != 0, probabilities[0] > 0.5)
