"""Property tests (Hypothesis) of the invariants that are exact: bit and integer packing, Edge-Popup's top-k,
LaPerm's sync, settings normalization, run ids under new defaulted fields, and plan completeness."""

from __future__ import annotations

import dataclasses
import fractions
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from randweights import make_config, methods
from randweights.bits import index_bits, pack_bits, pack_uint, unpack_bits, unpack_uint
from randweights.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from randweights.errors import ConfigError
from randweights.methods.edge_popup import ThresholdHint, kept_count, sort_mask, topk_mask
from randweights.methods.laperm import LaPerm, sorted_rows, sync_

FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)  # 0-d and empty included


# ---------------------------------------------------------------------------------------------- bits
@FEW
@given(hnp.arrays(np.bool_, SHAPES))
def test_pack_bits_round_trip(mask):
    packed = pack_bits(mask)
    assert packed.dtype == np.uint8 and packed.size == math.ceil(mask.size / 8)
    back = unpack_bits(packed, mask.shape)
    assert back.dtype == torch.bool and tuple(back.shape) == mask.shape
    assert torch.equal(back, torch.from_numpy(mask.copy()))
    assert torch.equal(unpack_bits(pack_bits(torch.from_numpy(mask.copy())), mask.shape), back)  # from a tensor too


@st.composite
def uints(draw):
    bits = draw(st.integers(0, 16))
    values = draw(hnp.arrays(np.int64, SHAPES, elements=st.integers(0, 2**bits - 1)))
    return values, bits


@FEW
@given(uints())
def test_pack_uint_round_trip(case):
    values, bits = case
    packed = pack_uint(values, bits)
    assert packed.dtype == np.uint8 and packed.size == math.ceil(values.size * bits / 8)
    back = unpack_uint(packed, bits, values.shape)
    assert back.dtype == torch.int64 and tuple(back.shape) == values.shape
    assert torch.equal(back, torch.from_numpy(values.copy()))


@FEW
@given(st.integers(1, 16), st.integers(0, 20))
def test_pack_uint_refuses_values_that_do_not_fit(bits, size):
    values = np.zeros(size + 1, dtype=np.int64)
    values[size] = 2**bits
    with pytest.raises(ValueError):
        pack_uint(values, bits)
    values[size] = -1
    with pytest.raises(ValueError):
        pack_uint(values, bits)


@FEW
@given(st.one_of(st.integers(1, 2**40), st.integers(0, 40).map(lambda b: 2**b), st.integers(1, 40).map(lambda b: 2**b + 1)))
def test_index_bits_is_the_least_width_that_indexes_count(count):
    b = index_bits(count)
    assert b >= 0 and 2**b >= count
    assert b == 0 or 2 ** (b - 1) < count


# ---------------------------------------------------------------------------------------------- Edge-Popup top-k
@st.composite
def scores_and_count(draw):
    """Scores with many ties (a few distinct values) or none, and a count from 1 to past the number of scores."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=12))
    tied = draw(st.booleans())
    elements = (st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]) if tied
                else st.floats(0, 10, width=32, allow_nan=False, allow_infinity=False))
    scores = draw(hnp.arrays(np.float32, shape, elements=elements))
    n = scores.size
    return torch.from_numpy(scores), draw(st.integers(1, n + 2))


def check_topk(scores: torch.Tensor, count: int, mask: torch.Tensor) -> None:
    """The exact rule: ``min(count, n)`` entries kept; every kept score >= every dropped one; among the scores
    equal to the smallest kept one, the lowest (flat) indices are the kept ones."""
    flat, kept = scores.reshape(-1), mask.reshape(-1)
    assert mask.dtype == torch.bool and mask.shape == scores.shape
    assert int(kept.sum()) == min(count, flat.numel())
    if kept.all():
        return
    threshold = flat[kept].min()
    assert threshold >= flat[~kept].max()
    tied = (flat == threshold).nonzero().squeeze(1)
    tied_kept = kept[tied]
    assert not (tied_kept[1:] & ~tied_kept[:-1]).any(), "a tied score kept after a dropped one (higher index)"


@FEW
@given(scores_and_count())
def test_topk_keeps_exactly_count_largest_and_breaks_ties_by_index(case):
    scores, count = case
    mask = topk_mask(scores, count)
    check_topk(scores, count, mask)
    assert torch.equal(mask, sort_mask(scores, count))  # the reference: a stable descending sort


@settings(max_examples=25, deadline=None)
@given(st.integers(ThresholdHint.MIN_SIZE, 3 * ThresholdHint.MIN_SIZE), st.floats(0.05, 0.95),
       st.sampled_from([0, 2, 3]), st.integers(0, 2**31 - 1))
def test_topk_with_the_threshold_hint_gives_the_same_mask(n, keep_fraction, decimals, seed):
    """The hint (last step's threshold, large layers) changes the cost only: same mask, same tie rule, over a
    few steps of slowly moving scores (rounded to ``decimals`` for ties; 0: no rounding)."""
    g = torch.Generator().manual_seed(seed)
    count = kept_count(n, keep_fraction)
    hint = ThresholdHint()
    scores = torch.randn(n, generator=g)
    for _ in range(4):
        magnitudes = scores.abs() if not decimals else scores.abs().round(decimals=decimals)
        mask = topk_mask(magnitudes, count, hint)
        check_topk(magnitudes, count, mask)
        assert torch.equal(mask, sort_mask(magnitudes, count))
        scores = scores + 0.005 * torch.randn(n, generator=g)


@FEW
@given(st.integers(1, 10**7), st.floats(0, 1, exclude_min=True))
def test_kept_count_is_round_k_n_within_one_and_n(numel, keep_fraction):
    kept = kept_count(numel, keep_fraction)
    assert 1 <= kept <= numel
    assert kept == min(numel, max(1, round(keep_fraction * numel)))


# ---------------------------------------------------------------------------------------------- LaPerm
# values with ties, both zeros (-0.0 == 0.0) and plain floats
VALUES = st.one_of(st.sampled_from([-1.0, -0.5, -0.0, 0.0, 0.5, 1.0]),
                   st.floats(-3, 3, width=32, allow_nan=False, allow_infinity=False))


@st.composite
def weight_shapes(draw):
    """1-D (one row), dense (out, in) and conv (out, in, k, k); some large enough for the fast numpy sort."""
    out = draw(st.integers(1, 6))
    fan = draw(st.one_of(st.integers(1, 40), st.integers(4096, 5000)))
    kind = draw(st.sampled_from(["1d", "dense", "conv"]))
    if kind == "1d":
        return (fan,)
    if kind == "dense":
        return (out, fan)
    k = draw(st.integers(1, 3))
    return (out, max(1, fan // (k * k)), k, k)


@st.composite
def weights(draw):
    shape = draw(weight_shapes())
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    if draw(st.booleans()):  # random values with some ties
        init = torch.randn(shape, generator=g).round(decimals=draw(st.sampled_from([1, 3, 6])))
    else:  # drawn by Hypothesis (zeros of both signs, repeats), small shapes only
        shape = shape if math.prod(shape) <= 400 else shape[:1] + (1,) * (len(shape) - 1)
        init = torch.from_numpy(draw(hnp.arrays(np.float32, shape, elements=VALUES)))
    return init.float().contiguous(), seed


@FEW
@given(weights())
def test_laperm_sync_keeps_every_rows_multiset(case):
    init, seed = case
    g = torch.Generator().manual_seed(seed + 1)
    sorted_init = sorted_rows(init)
    moved = init + 0.3 * torch.randn(init.shape, generator=g)
    synced = {}
    for fast in (True, False):
        tensor = moved.clone()
        sync_(tensor, sorted_init, fast=fast)
        assert torch.equal(sorted_rows(tensor), sorted_init)
        synced[fast] = tensor
    assert torch.equal(synced[True], synced[False])  # the numpy sort and torch's stable argsort agree bit for bit
    # the rank order of the moved weights is kept: the j-th smallest of a row gets the row's j-th smallest value
    rows = moved.reshape(1, -1) if moved.dim() == 1 else moved.reshape(moved.shape[0], -1)
    expected = torch.empty_like(rows).scatter_(1, rows.argsort(dim=1, stable=True), sorted_init)
    assert torch.equal(synced[False].reshape(rows.shape), expected)


@FEW
@given(weights(), st.integers(1, 3), st.sampled_from(["sgd", "adam"]))
def test_laperm_optimizer_steps_keep_every_rows_multiset(case, period, inner_name):
    init, seed = case
    g = torch.Generator().manual_seed(seed + 2)
    param = torch.nn.Parameter(init.clone())
    inner = (torch.optim.SGD([param], lr=0.1, momentum=0.9) if inner_name == "sgd"
             else torch.optim.Adam([param], lr=0.01))
    opt = LaPerm(inner, [param], sync_period=period)
    for _ in range(period):
        param.grad = torch.randn(init.shape, generator=g)
        opt.step()
    assert opt.syncs == 1
    assert opt.multisets_kept()
    assert torch.equal(sorted_rows(param), sorted_rows(init))


# ---------------------------------------------------------------------------------------------- settings
def numpy_ints(low: int, high: int):
    """``(numpy integer, the same int)`` for every numpy integer type that holds it."""
    types = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
    return st.tuples(st.integers(low, high), st.sampled_from(types)).filter(
        lambda c: np.iinfo(c[1]).min <= c[0] <= np.iinfo(c[1]).max).map(lambda c: (c[1](c[0]), c[0]))


def real_numbers(low: float, high: float):
    """``(a real number of some type, the plain float it stands for)``: Python and numpy floats, fractions, and
    Python and numpy ints where the range holds one."""
    options = [
        st.floats(low, high).map(lambda x: (x, x)),
        st.floats(low, high).flatmap(lambda x: st.sampled_from([np.float16, np.float32, np.float64]).map(
            lambda t: (t(x), float(t(x))))),
        st.fractions(fractions.Fraction(str(low)), fractions.Fraction(str(high)), max_denominator=1000).map(lambda q: (q, float(q))),
    ]
    if math.ceil(low) <= math.floor(high):
        ints = st.integers(math.ceil(low), math.floor(high))
        options += [ints.map(lambda i: (i, float(i))), ints.map(lambda i: (np.int32(i), float(i)))]
    return st.one_of(*options).filter(lambda c: low <= c[1] <= high)


NORMALIZED = st.one_of(
    st.tuples(st.sampled_from(["epochs"]), numpy_ints(0, 1000)),
    st.tuples(st.sampled_from(["batch_size"]), numpy_ints(1, 4096)),
    st.tuples(st.sampled_from(["seed"]), numpy_ints(0, 2**32 - 1)),
    st.tuples(st.sampled_from(["subset"]), numpy_ints(10, 60000)),
    st.tuples(st.sampled_from(["keep_fraction"]), real_numbers(1e-3, 1.0)),
    st.tuples(st.sampled_from(["width"]), real_numbers(0.1, 8.0)),
    st.tuples(st.sampled_from(["lr", "momentum"]), real_numbers(0.01, 0.99)),
    st.tuples(st.sampled_from(["augment", "bias", "affine_bn", "random_affine"]),
              st.booleans().flatmap(lambda b: st.sampled_from([(b, b), (np.bool_(b), b)]))),
)


@FEW
@given(NORMALIZED)
def test_settings_normalize_numbers_to_plain_python_values(case):
    name, (given_value, plain) = case
    cfg = make_config("edge-popup", **{name: given_value})
    reference = make_config("edge-popup", **{name: plain})
    assert cfg == reference
    assert cfg.run_id == reference.run_id
    stored = cfg.flat()[name]
    assert type(stored) is type(plain) and stored == plain


INVALID = {
    "epochs": [True, 1.5, 500.0, "3", None, b"3", np.float64(2.0), np.bool_(True)],  # int
    "seed": [-1, 2**32, True, 0.0],  # int, named *seed: [0, 2**32)
    "keep_fraction": [True, "0.5", math.nan, math.inf, -math.inf, None, np.bool_(False), np.float64("nan"), 1j],  # float
    "lr": [False, "0.1", math.nan],  # float or None
    "augment": [1, 0, "true", None, 1.0, np.int64(1)],  # bool
    "init": [1, None, b"signed-constant", True],  # str
    "dataset": [0, None],  # str
}


@FEW
@given(st.sampled_from(sorted(INVALID)).flatmap(lambda name: st.tuples(st.just(name), st.sampled_from(INVALID[name]))))
def test_invalid_types_raise_a_config_error_naming_the_field(case):
    name, value = case
    with pytest.raises(ConfigError) as err:
        make_config("edge-popup", **{name: value})
    assert err.value.parameter == name
    assert str(err.value).startswith(f"{name}: ")


# ---------------------------------------------------------------------------------------------- run ids
SETTINGS = st.fixed_dictionaries({}, optional={
    "epochs": st.integers(0, 50),
    "seed": st.integers(0, 2**32 - 1),
    "batch_size": st.integers(1, 512),
    "lr": st.floats(1e-4, 1.0),
    "subset": st.integers(10, 5000),
    "width": st.sampled_from([0.5, 1.0, 2.0]),
    "augment": st.booleans(),
})


def with_extra_field(section, value=dataclasses.MISSING):
    """``section`` as an instance of a copy of its class with one more field, ``extra_setting`` (default 0.25;
    ``value`` if given), as a release that adds a setting would make it."""
    cls = type(section)
    extended = dataclasses.make_dataclass(
        f"{cls.__name__}WithExtra", [("extra_setting", float, dataclasses.field(default=0.25))], bases=(cls,), frozen=True
    )
    extended.__module__ = cls.__module__
    current = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}
    return extended(**current) if value is dataclasses.MISSING else extended(**current, extra_setting=value)


@FEW
@given(st.sampled_from(methods.NAMES), st.sampled_from(["method", "data", "model", "train"]), SETTINGS)
def test_a_new_defaulted_field_leaves_the_run_id_unchanged(method, section, flat):
    cfg = make_config(method, **flat)
    assert type(cfg.method) is methods.get(method).config
    sections = cfg.sections()
    extended = RunConfig(**{**sections, section: with_extra_field(sections[section])})
    assert isinstance(extended.sections()[section], {"method": type(cfg.method), "data": DataConfig,
                                                      "model": ModelConfig, "train": TrainConfig}[section])
    assert extended.non_default() == cfg.non_default()
    assert extended.run_id == cfg.run_id
    # the same field away from its default is part of the key
    changed = RunConfig(**{**sections, section: with_extra_field(sections[section], 0.75)})
    assert changed.non_default()[section]["extra_setting"] == 0.75
    assert changed.run_id != cfg.run_id


# ---------------------------------------------------------------------------------------------- plans
def test_every_chapters_plan_is_the_union_of_its_figures():
    """For every chapter and every preset it declares, the runs of ``randweights plan`` are exactly the runs of
    its figures: a figure whose runs are missing from the plan (never swept, never bundled) cannot exist."""
    from randweights import plan
    from randweights.chapters import CHAPTERS

    assert CHAPTERS
    problems = []
    for chapter in CHAPTERS:
        names = [f.name for f in chapter.figures]
        assert len(names) == len(set(names)), f"{chapter.name}: a figure declared twice"
        for preset in chapter.presets:
            figures = {cfg.run_id: cfg for f in chapter.figures for cfg in f.configs(preset)}
            entries = plan.plan(preset, CHAPTERS, only=[chapter.name])
            planned = {e.run_id: e.config for e in entries}
            if figures.keys() != planned.keys():
                missing, extra = figures.keys() - planned.keys(), planned.keys() - figures.keys()
                problems.append(f"{chapter.name} @ {preset}: {len(missing)} figure runs not in the plan, "
                                f"{len(extra)} planned runs in no figure")
            assert len(entries) == len(planned), f"{chapter.name} @ {preset}: a run planned twice"
            kept = {cfg.run_id for f in chapter.figures if f.needs_model for cfg in f.configs(preset)}
            for e in entries:
                assert e.run_id not in figures or e.config == figures[e.run_id]
                assert e.keep_model == (e.run_id in kept), f"{chapter.name} @ {preset}: {e.run_id} keep_model"
    assert not problems, "\n".join(problems)
