"""Every method on someone else's model (torchvision's ResNet-18): init=None keeps the model's weights,
include/exclude pick layers, generators replace the global RNG, export leaves its source alone, IMP's output
layer can be named, LaPerm is a torch optimizer."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from randweights.errors import ConfigError
from randweights.methods import edge_popup as ep
from randweights.methods import laperm as lp
from randweights.methods import pruning
from randweights.methods import slot_machines as sm
from randweights.methods import supermask_bernoulli as zb

torchvision = pytest.importorskip("torchvision")


def resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


def images(n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def conv_names(model) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def parametrized(model) -> list[str]:
    return [n for n, m in model.named_modules() if hasattr(m, "parametrizations")]


def test_export_leaves_its_source_working_and_unchanged():
    model = ep.apply(resnet(), keep_fraction=0.3, generator=torch.Generator().manual_seed(0)).eval()
    x = images()
    with torch.no_grad():
        before = model(x)
        plain = ep.export(model)
        assert not parametrized(plain) and parametrized(model) == conv_names(model)
        assert torch.equal(plain.eval()(x), before)
        assert torch.equal(model(x), before)  # the source still runs (it raised AttributeError before)
        assert torch.equal(ep.export(model).eval()(x), before)  # and exports again


@pytest.mark.parametrize("method", ["edge-popup", "supermask-bernoulli"])
def test_init_none_masks_the_models_own_weights(method):
    model = resnet()
    own = {n: m.weight.detach().clone() for n, m in model.named_modules() if n in conv_names(model)}
    apply = ep.apply if method == "edge-popup" else zb.apply
    apply(model, keep_fraction=0.5, init=None)
    for name, weight in own.items():
        assert torch.equal(model.get_submodule(name).parametrizations.weight.original, weight)
    redrawn = apply(resnet(), keep_fraction=0.5)  # the default init draws new weights
    assert not torch.equal(redrawn.conv1.parametrizations.weight.original, own["conv1"])


def test_slot_init_none_draws_candidates_at_the_weights_scale():
    model = resnet()
    stds = {n: float(m.weight.detach().std()) for n, m in model.named_modules() if n in ("conv1", "fc")}
    sm.apply(model, num_slots=2, candidate_init=None, include=["conv1", "fc"], generator=torch.Generator().manual_seed(0))
    assert parametrized(model) == ["conv1", "fc"]
    for name, std in stds.items():
        slot = model.get_submodule(name).parametrizations.weight[0]
        assert slot.bound == pytest.approx(3**0.5 * std, rel=1e-6)
        assert float(slot.candidates().abs().max()) <= slot.bound * (1 + 1e-6)


def test_laperm_init_none_keeps_the_weights_as_the_initial_multisets():
    model = resnet()
    before = [t.detach().clone() for t in lp.permutable_tensors(model, include="layer1.*")]
    permutable = lp.permutable_of(lp.apply(model, init=None, include="layer1.*"))
    assert len(permutable) == len(before) == 4  # the four 3x3 convs of layer1 (no biases)
    assert all(torch.equal(a, b) for a, b in zip(permutable, before))
    opt = lp.LaPerm(torch.optim.Adam(model.parameters(), lr=1e-2), permutable, sync_period=1)
    nn.functional.cross_entropy(model(images()), torch.tensor([1, 2])).backward()
    opt.step()
    assert opt.multisets_kept() and not all(torch.equal(a, b) for a, b in zip(permutable, before))


def test_imp_init_none_keeps_weights_and_output_layer_is_fc():
    model = resnet()
    fc = model.fc.weight.detach().clone()
    conv = model.conv1.weight.detach().clone()
    pruning.apply(model, init=None)
    assert pruning.output_layer(model) is model.fc and not hasattr(model.fc, "weight_mask")
    assert len(pruning.prunable_layers(model)) == len(conv_names(model)) - 1
    assert torch.equal(model.fc.weight, fc) and torch.equal(model.conv1.weight, conv)


def test_include_exclude_by_name_glob_and_predicate():
    g = torch.Generator().manual_seed(0)
    a = ep.apply(resnet(), exclude=["conv1", "fc"], generator=g)
    assert "conv1" not in parametrized(a) and "fc" not in parametrized(a) and len(parametrized(a)) == len(conv_names(a)) - 2
    assert a.conv1.weight.requires_grad is False  # frozen all the same: only scores learn
    b = zb.apply(resnet(), include="layer4.*")
    assert parametrized(b) and all(n.startswith("layer4.") for n in parametrized(b))
    c = sm.apply(resnet(), num_slots=2, include=lambda name, m: isinstance(m, nn.Linear), generator=g)
    assert parametrized(c) == ["fc"]
    d = pruning.attach_masks(resnet(), include="layer2.*", exclude="*downsample*")
    masked = [n for n, m in d.named_modules() if hasattr(m, "weight_mask")]
    assert masked == ["layer2.0.conv1", "layer2.0.conv2", "layer2.1.conv1", "layer2.1.conv2"]
    with pytest.raises(ConfigError, match="include"):
        ep.apply(resnet(), include="no_such_layer")


def test_imp_output_layer_can_be_named_when_the_head_comes_first():
    class HeadFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 3)
            self.body = nn.Linear(5, 8)

        def forward(self, x):
            return self.head(self.body(x).relu())

    default = pruning.attach_masks(HeadFirst())
    assert hasattr(default.head, "weight_mask") and not hasattr(default.body, "weight_mask")  # the old pitfall
    model = pruning.attach_masks(HeadFirst(), output_layer="head")
    assert pruning.output_layer(model) is model.head
    assert pruning.prunable_layers(model) == [model.body]
    with pytest.raises(ConfigError, match="output_layer"):
        pruning.attach_masks(HeadFirst(), output_layer="tail")


def test_generators_replace_the_global_rng():
    a = ep.apply(resnet(), generator=torch.Generator().manual_seed(5))
    b = resnet()
    torch.manual_seed(123)  # a different global state must not matter
    state = torch.get_rng_state()
    ep.apply(b, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn from the global generator
    for x, y in zip(a.parameters(), b.parameters()):
        assert torch.equal(x, y)
    # the Bernoulli supermask samples its training masks from its generator too
    outs = []
    for _ in range(2):
        torch.manual_seed(len(outs))
        model = zb.apply(resnet(), generator=torch.Generator().manual_seed(7)).train()
        outs.append(model(images()))
    assert torch.equal(outs[0], outs[1])


def test_laperm_is_a_torch_optimizer_with_schedulers_and_state():
    model = resnet()
    permutable = lp.permutable_of(lp.apply(model, generator=torch.Generator().manual_seed(0), include="layer1.0.*"))
    opt = lp.LaPerm(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), permutable, sync_period=2)
    assert isinstance(opt, torch.optim.Optimizer)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    x, y = images(), torch.tensor([3, 4])

    def step():
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()

    step()
    assert opt.inner.param_groups[0]["lr"] == pytest.approx(0.05 * (1 + torch.cos(torch.tensor(torch.pi / 4)).item()))
    saved_opt, saved_model, saved_sched = copy.deepcopy(opt.state_dict()), copy.deepcopy(model.state_dict()), sched.state_dict()
    step()
    step()
    reference = [p.detach().clone() for p in model.parameters()]
    model.load_state_dict(saved_model)  # resume from the saved point in a fresh optimizer
    opt = lp.LaPerm(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), lp.permutable_tensors(model, include="layer1.0.*"), 2)
    opt.load_state_dict(saved_opt)
    assert opt.step_count == 1 and len(opt.state) > 0
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
    sched.load_state_dict(saved_sched)
    step()
    step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference))
    assert opt.syncs == 1
