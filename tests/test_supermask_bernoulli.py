"""The Bernoulli supermask baseline (Zhou et al., 2019): sampling rate and straight-through gradient."""

from __future__ import annotations

import math

import torch
from torch import nn

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
