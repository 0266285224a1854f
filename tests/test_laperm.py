"""LaPerm (Qiu & Suda 2020): the sync is a per-unit projection onto the permutations of the initial weights.

Tiny synthetic nets in float64 and exact (bitwise) comparisons: each row keeps its multiset and its rank order,
the sync is the nearest permutation and idempotent, skipped tensors and the optimizer state are untouched, conv
filters keep their values within their output channel, sparse inits keep their zero counts, and the sync schedule
is read at every step."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from randweights import cli, compact
from randweights.config import make_config
from randweights.errors import ConfigError
from randweights.methods import laperm
from randweights.methods.laperm import LaPerm, LaPermConfig, permutable_tensors, sorted_rows, sync_


def _net(seed: int = 0, bias: bool = True, bn: bool = False) -> nn.Sequential:
    torch.manual_seed(seed)
    layers = [nn.Conv2d(2, 3, 3, bias=bias), nn.ReLU()]
    if bn:
        layers.append(nn.BatchNorm2d(3))
    layers += [nn.Flatten(), nn.Linear(3 * 4 * 4, 8, bias=bias), nn.ReLU(), nn.Linear(8, 4, bias=bias)]
    return nn.Sequential(*layers).double()


def _data(seed: int = 1, n: int = 64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 6, 6, generator=g, dtype=torch.float64)
    return x, (x[:, 0, :3].sum((1, 2)) > 0).long() + 2 * (x[:, 1, 3:].sum((1, 2)) > 0).long()


def _train(model, opt, steps: int, on_sync=None):
    x, y = _data()
    for t in range(steps):
        xb, yb = x[(t * 16) % 64:(t * 16) % 64 + 16], y[(t * 16) % 64:(t * 16) % 64 + 16]
        loss = nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        syncs = getattr(opt, "syncs", 0)
        opt.step()
        if on_sync is not None and opt.syncs > syncs:
            on_sync(t + 1)


def _laperm(model, k, lr=1e-2, **kw) -> LaPerm:
    return LaPerm(torch.optim.Adam(model.parameters(), lr=lr), permutable_tensors(model), k, **kw)


def test_multiset_of_every_row_is_kept_bitwise_after_every_sync():
    model = _net()
    opt = _laperm(model, 7)
    initial = [sorted_rows(p) for p in opt.permutable]
    fired = []

    def check(step):
        fired.append(step)
        for p, s in zip(opt.permutable, initial):
            assert torch.equal(sorted_rows(p), s)
            assert torch.equal(laperm.rows(p).amax(1), s[:, -1]) and torch.equal(laperm.rows(p).amin(1), s[:, 0])

    _train(model, opt, 200, check)
    assert fired == list(range(7, 201, 7))  # sync fires exactly at t = k, 2k, ...
    assert not opt.multisets_kept()  # 4 plain steps since the last sync
    opt.sync()
    assert opt.multisets_kept()
    assert not all(torch.equal(a, b) for a, b in zip(opt.permutable, initial))  # it did learn something


def test_sync_keeps_the_rank_order_of_the_current_row():
    g = torch.Generator().manual_seed(3)
    w, w0 = torch.randn(5, 9, generator=g, dtype=torch.float64), torch.randn(5, 9, generator=g, dtype=torch.float64)
    before = w.argsort(dim=1, stable=True)
    sync_(w, sorted_rows(w0))
    assert torch.equal(w.argsort(dim=1, stable=True), before)


def test_sync_is_the_nearest_permutation_by_brute_force():
    g = torch.Generator().manual_seed(4)
    for n in range(2, 7):
        for _ in range(10):
            a = torch.randn(n, generator=g, dtype=torch.float64)  # the row's initial values
            theta = torch.randn(n, generator=g, dtype=torch.float64)  # the current row
            best = min(itertools.permutations(range(n)), key=lambda s: float((a[list(s)] - theta).pow(2).sum()))
            got = sync_(theta.clone().view(1, n), sorted_rows(a.view(1, n))).view(n)
            assert torch.equal(got, a[list(best)])


def test_sync_is_idempotent_and_fixes_the_init():
    g = torch.Generator().manual_seed(5)
    w0 = torch.randn(6, 2, 3, 3, generator=g, dtype=torch.float64)
    s = sorted_rows(w0)
    assert torch.equal(sync_(w0.clone(), s), w0)
    w = w0 + 0.5 * torch.randn(w0.shape, generator=g, dtype=torch.float64)
    once = sync_(w, s).clone()
    assert torch.equal(sync_(w, s), once)


@pytest.mark.parametrize("shape", [(64, 80), (1, 5000), (300, 784)])  # all take the fast path
def test_fast_float32_sync_equals_torch_stable_argsort_sync_bitwise(shape):
    assert shape[0] * shape[1] >= laperm.FAST_MIN
    g = torch.Generator().manual_seed(6)
    w0 = torch.randn(shape, generator=g)
    w0[w0.abs() < 0.5] = 0.0  # sparse init: many equal initial values
    w = torch.randn(shape, generator=g).round(decimals=1)  # many equal current values
    w[:, ::3] = -0.0  # and -0.0 beside +0.0, equal as floats
    w[0, :2] = torch.tensor([-math.inf, math.inf])
    s = sorted_rows(w0)
    fast, reference = sync_(w.clone(), s), sync_(w.clone(), s, fast=False)
    assert torch.equal(fast, reference)
    assert torch.equal(sorted_rows(fast), s)


def test_row_order_is_a_stable_argsort_of_float32_rows():
    g = torch.Generator().manual_seed(7)
    w = torch.randn(20, 33, generator=g).round(decimals=1)
    w[w == 0] = -0.0
    assert torch.equal(laperm.row_order(w), w.argsort(dim=1, stable=True))


def test_conv_filters_keep_their_values_within_their_own_output_channel():
    model = _net()
    conv = model[0]
    before = conv.weight.detach().clone()
    opt = _laperm(model, 5)
    _train(model, opt, 40)
    for c in range(conv.weight.shape[0]):
        assert torch.equal(conv.weight[c].flatten().sort().values, before[c].flatten().sort().values)
    assert not torch.equal(conv.weight, before)


def test_bias_vector_is_one_row_permuted_across_units():
    model = _net()
    bias0 = model[3].bias.detach().clone()
    opt = _laperm(model, 3)
    _train(model, opt, 30)
    assert torch.equal(model[3].bias.detach().sort().values, bias0.sort().values)


def test_skipped_tensors_untouched_and_never_sync_equals_plain_adam_bitwise():
    plain, wrapped, huge = _net(bn=True), _net(bn=True), _net(bn=True)
    adam = torch.optim.Adam(plain.parameters(), lr=1e-2)
    never = LaPerm(torch.optim.Adam(wrapped.parameters(), lr=1e-2), permutable_tensors(wrapped), math.inf)
    longer = LaPerm(torch.optim.Adam(huge.parameters(), lr=1e-2), permutable_tensors(huge), 10**6)
    for m, o in ((plain, adam), (wrapped, never), (huge, longer)):
        _train(m, o, 50)
    for a, b, c in zip(plain.state_dict().values(), wrapped.state_dict().values(), huge.state_dict().values()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert never.syncs == 0

    # with syncs: BatchNorm scale/shift (skipped by default) and skipped biases are never overwritten by a sync
    model = _net(bn=True)
    perm = permutable_tensors(model, skip_bias=True, skip_bn=True)
    skipped = [p for p in model.parameters() if all(p is not q for q in perm)]
    assert len(skipped) == 5  # 3 biases + BN weight and bias
    opt = LaPerm(torch.optim.Adam(model.parameters(), lr=1e-2), perm, 4)
    x, y = _data()
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(x[:16]), y[:16])
        opt.zero_grad()
        loss.backward()
        opt.inner.step()  # the inner step alone ...
        opt.step_count += 1
        before = [p.detach().clone() for p in skipped]
        if opt.step_count % 4 == 0:
            opt.sync()  # ... and the sync, which must leave the skipped tensors as they are
        assert all(torch.equal(p, b) for p, b in zip(skipped, before))


def test_sync_leaves_the_inner_optimizer_state_alone():
    model = _net()
    opt = _laperm(model, 10**6)
    _train(model, opt, 5)
    before = {k: {n: v.clone() for n, v in s.items()} for k, s in opt.inner.state.items()}
    opt.sync()
    for k, s in opt.inner.state.items():
        assert all(torch.equal(v, before[k][n]) for n, v in s.items())


def test_sparse_and_agnostic_inits_keep_zero_counts_per_row():
    cfg = LaPermConfig(init="weight-agnostic", shared_value=0.03, layer_sparsity="14/15,6/7,2/3", biases="none")
    model = laperm.init_model_(_net(bias=False).float(), cfg, seed=0)
    opt = _laperm(model, 5)
    zeros0 = [(laperm.rows(p) == 0).sum(1) for p in opt.permutable]
    _train_float(model, opt, 60)
    for p, z in zip(opt.permutable, zeros0):
        assert torch.equal((laperm.rows(p) == 0).sum(1), z)
        assert set(p.detach().unique().tolist()) <= {0.0, torch.tensor(0.03).item()}  # still two-valued
    assert opt.syncs == 12

    sparse = LaPermConfig(init="random-sparse", init_sparsity=0.7)
    model = laperm.init_model_(_net().float(), sparse, seed=1)
    first = model[0].weight
    assert (first != 0).float().mean() >= 0.8 - 0.15  # input layer keeps >= 80 % in expectation (54 weights)
    opt = _laperm(model, 5)
    zeros0 = [(laperm.rows(p) == 0).sum(1) for p in opt.permutable]
    mask0 = [p.detach() != 0 for p in opt.permutable]
    _train_float(model, opt, 60)
    assert all(torch.equal((laperm.rows(p) == 0).sum(1), z) for p, z in zip(opt.permutable, zeros0))
    assert laperm.connectivity_change(mask0, [p.detach() != 0 for p in opt.permutable]) > 0  # it rewired


def _train_float(model, opt, steps):
    x, y = _data()
    x = x.float()
    for t in range(steps):
        loss = nn.functional.cross_entropy(model(x[(t % 4) * 16:(t % 4) * 16 + 16]), y[(t % 4) * 16:(t % 4) * 16 + 16])
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_hold_zeros_is_a_fixed_mask():
    model = laperm.init_model_(_net().float(), LaPermConfig(init="random-sparse", init_sparsity=0.5), seed=2)
    opt = _laperm(model, 0, hold_zeros=True)
    masks = [p.detach() != 0 for p in opt.permutable]
    _train_float(model, opt, 20)
    assert all(torch.equal(p.detach() != 0, m) for p, m in zip(opt.permutable, masks))


def test_sync_schedule_is_read_every_step():
    assert laperm.parse_sync_schedule("3:10,1:5") == [(1, 5), (3, 10)]
    assert [laperm.sync_period_at(e, 2, [(1, 5), (3, 10)]) for e in range(5)] == [2, 5, 5, 10, 10]
    model = _net()
    opt = _laperm(model, lambda epoch: [2, 3][min(epoch, 1)], steps_per_epoch=4)
    fired = []
    _train(model, opt, 12, fired.append)
    assert fired == [2, 4, 6, 9, 12]


def test_config_validation_and_registry():
    cfg = make_config("laperm", sync_period=250, init="weight-agnostic", arch="f1")
    assert cfg.lr == 1e-3 and cfg.weight_decay == 0.0 and cfg.run_id.startswith("laperm-")
    for bad in ({"sync_period": -1}, {"inner": "rmsprop"}, {"init": "zeros"}, {"init_sparsity": 1.0},
                {"shared_value": 0.0}, {"sync_schedule": "5"}, {"layer_sparsity": "1/0"}, {"biases": "all"},
                {"in_degree": "exact"}, {"logit_scale": 0.0}):
        with pytest.raises(ConfigError):
            LaPermConfig(**bad)
    with pytest.raises(ConfigError):
        laperm.init_model_(_net(), LaPermConfig(init="random-sparse", layer_sparsity="0.5,0.5"), 0)


@pytest.mark.parametrize("args", [["--sync-period", "-3"], ["--inner", "lbfgs"], ["--init-sparsity", "1.5"],
                                  ["--shared-value", "-0.1"], ["--sync-period", "abc"], ["--keep-fraction", "0.5"]])
def test_cli_bad_values_are_one_line_errors(args, capsys, tmp_path):
    try:
        code = cli.main(["train", "--method", "laperm", "--results", str(tmp_path), *args])
    except SystemExit as exit_:  # argparse type errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("randweights: error:")
    assert not any(tmp_path.iterdir())


def test_unit_inputs_undo_the_standardization():
    from randweights.data import STATS

    cfg = make_config("laperm", arch="f1", biases="none", inputs="unit")
    model = laperm.build_initialized(cfg, (1, 28, 28), 10)
    (mean,), (std,) = STATS["mnist"]
    pixels = torch.rand(3, 1, 28, 28)
    assert torch.allclose(model[0]((pixels - mean) / std), pixels, atol=1e-6)
    assert len(laperm.permutable_tensors(model)) == 1  # the rescaling has no parameters to permute


def test_fixed_in_degree_gives_every_unit_the_same_number_of_zeros():
    cfg = make_config("laperm", arch="f2", biases="none", init="weight-agnostic", shared_value=0.03,
                      layer_sparsity="14/15,6/7,2/3", in_degree="fixed")
    model = laperm.build_initialized(cfg, (1, 28, 28), 10)
    kernels = [m.weight.detach() for m in model.modules() if isinstance(m, nn.Linear)]
    for w, zeros in zip(kernels, (round(14 / 15 * 784), round(6 / 7 * 128), round(2 / 3 * 64))):
        assert torch.equal((w == 0).sum(1), torch.full((w.shape[0],), zeros))
        assert torch.equal(w.unique(), torch.tensor([0.0, 0.03]))
    binomial = laperm.build_initialized(cfg.replace(in_degree="binomial"), (1, 28, 28), 10)
    counts = (next(m for m in binomial.modules() if isinstance(m, nn.Linear)).weight == 0).sum(1)
    assert counts.min() < counts.max()  # the official init: a binomial number of zeros per unit


def test_logit_scale_changes_the_loss_not_the_predictions():
    base = make_config("laperm", arch="f2", biases="none", init="weight-agnostic", shared_value=0.03,
                       layer_sparsity="14/15,6/7,2/3")
    a = laperm.build_initialized(base, (1, 28, 28), 10)
    b = laperm.build_initialized(base.replace(logit_scale=30.0), (1, 28, 28), 10)
    x = torch.randn(64, 1, 28, 28)
    assert torch.allclose(b(x), 30.0 * a(x))
    assert torch.equal(b(x).argmax(1), a(x).argmax(1))
    assert len(laperm.permutable_tensors(b)) == len(laperm.permutable_tensors(a)) == 3


def test_agnostic_labels_name_only_the_weight_agnostic_nets():
    from randweights.chapters.laperm import agnostic_label

    assert agnostic_label({"arch": "f2", "logit_scale": 30.0}) == "F2, our recipe"
    assert agnostic_label({"arch": "f2", "logit_scale": 1.0}) == "F2, official recipe"
    assert agnostic_label({"arch": "f1", "logit_scale": 1.0}) == "F1"
    assert agnostic_label({"arch": "lenet-300-100", "logit_scale": 1.0}) == "lenet-300-100"


def test_saving_before_the_last_sync_is_an_error_naming_sync_and_writes_nothing(tmp_path):
    """Weights that moved since the last sync are no permutation of the initial ones: the compact file could not
    be loaded, so saving says to call opt.sync() (it used to fail blaming the model), and then works."""
    model = laperm.apply(_net(bias=False), generator=torch.Generator().manual_seed(0))
    opt = LaPerm(torch.optim.Adam(model.parameters(), lr=1e-2), laperm.permutable_of(model), sync_period=1000)
    _train(model, opt, 3)
    assert opt.syncs == 0 and not opt.multisets_kept()
    target = tmp_path / "l.rwc"
    with pytest.raises(ConfigError, match=r"opt\.sync\(\)") as err:
        compact.save(model, target)
    assert err.value.parameter == "model" and "\n" not in str(err.value)
    assert not target.exists()
    opt.sync()
    compact.save(model, target)
    x = _data()[0][:8]
    with torch.no_grad():
        assert torch.equal(compact.load(target, _net(bias=False))(x), model(x))
