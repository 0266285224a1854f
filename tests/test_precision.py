"""bf16 autocast: every method's invariants hold after real (short) training runs at ``precision="bf16"``, the
forward pass really runs in bf16 (channels-last for conv nets), and the setting is part of the run key."""

from __future__ import annotations

import pytest
import torch

from randweights import cli, data, train
from randweights.config import make_config
from randweights.errors import ConfigError
from randweights.methods import edge_popup as ep
from randweights.methods import laperm as lp
from randweights.methods import pruning
from randweights.methods import slot_machines as sm

SHAPES = {"lenet-300-100": (1, 28, 28), "conv2": (3, 16, 16)}


def fake_splits(shape, n: int = 96, classes: int = 4) -> data.Splits:
    """A learnable synthetic split (class = sign pattern of a few pixels), shaped like the real datasets."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=g)
    y = ((x.reshape(n, -1)[:, :2] > 0).long() * torch.tensor([1, 2])).sum(1) % classes
    split = data.Split(x, y)
    return data.Splits(split, split, split, classes, shape)


def run_bf16(monkeypatch, method: str, arch: str, **settings):
    splits = fake_splits(SHAPES[arch])
    monkeypatch.setattr(data, "load", lambda cfg: splits)
    cfg = make_config(method, arch=arch, width=0.25, epochs=2, batch_size=32, precision="bf16", **settings)
    model, record = train.run(cfg, "cpu")
    return cfg, model, record, splits


# ---------------------------------------------------------------------------------------------- the setting
def test_precision_is_in_the_run_key_and_fp32_keeps_old_ids():
    base = make_config("edge-popup")
    assert base.train.precision == "fp32"
    assert "precision" not in base.non_default().get("train", {})
    assert make_config("edge-popup", precision="fp32").run_id == base.run_id
    assert make_config("edge-popup", precision="bf16").run_id != base.run_id


def test_bad_precision_is_one_named_error(capsys, tmp_path):
    with pytest.raises(ConfigError, match="precision"):
        make_config("dense", precision="fp16")
    code = cli.main(["train", "--method", "dense", "--precision", "fp16", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "precision" in err and "bf16" in err
    assert not any(tmp_path.iterdir())


def test_cli_flag_reaches_the_config():
    args = cli.build_parser().parse_args(["train", "--method", "slot", "--precision", "bf16"])
    assert cli.config_from_args(args).train.precision == "bf16"


@pytest.mark.parametrize("arch", ["lenet-300-100", "conv2"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_forward_runs_at_the_precision_and_layout_asked(monkeypatch, arch, precision):
    """Training and evaluation forwards: bf16 layer outputs and channels-last images (conv) under bf16; fp32 and
    contiguous under fp32. Parameters stay fp32 either way."""
    splits = fake_splits(SHAPES[arch])
    cfg = make_config("edge-popup", arch=arch, width=0.25, epochs=1, batch_size=32, precision=precision)
    model = train.build_model(cfg, splits)
    params = ep.prepare(model, cfg)
    seen = []
    first = next(m for m in model.modules() if isinstance(m, ep.MASKABLE))
    first.register_forward_hook(lambda m, inp, out: seen.append((out.dtype, inp[0].is_contiguous(), m.training)))
    train.fit(model, train.make_optimizer(params, cfg), cfg, splits, torch.device("cpu"))
    train.evaluate(model, splits.test, torch.device("cpu"), precision=precision)
    want = torch.bfloat16 if precision == "bf16" else torch.float32
    assert {dtype for dtype, _, _ in seen} == {want}
    assert {training for _, _, training in seen} == {True, False}
    channels_last = precision == "bf16" and arch == "conv2"
    assert {contiguous for _, contiguous, _ in seen} == {not channels_last}
    assert all(p.dtype == torch.float32 for p in model.parameters())


# ---------------------------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("arch", ["lenet-300-100", "conv2"])
def test_edge_popup_keeps_the_exact_count_under_bf16(monkeypatch, arch):
    cfg, model, record, _ = run_bf16(monkeypatch, "edge-popup", arch, keep_fraction=0.3)
    maskers = [m for m in model.modules() if isinstance(m, ep.TopKMask)]
    assert maskers and all(m.scores.dtype == torch.float32 for m in maskers)
    for m in maskers:
        mask = m.mask()
        assert int(mask.sum()) == ep.kept_count(m.scores.numel(), 0.3)
        assert torch.equal(mask, ep.sort_mask(m.scores.detach().abs(), m.count))  # the exact top-k of |S|
    for layer in ep.maskable_layers(model):
        original = layer.parametrizations.weight.original
        assert torch.equal(layer.weight, original * layer.parametrizations.weight[0].mask())
    assert record["precision"] == "bf16" and 0 <= record["test_accuracy"] <= 1


@pytest.mark.parametrize("arch", ["lenet-300-100", "conv2"])
def test_slot_machines_select_only_candidates_under_bf16(monkeypatch, arch):
    cfg, model, record, _ = run_bf16(monkeypatch, "slot", arch, num_slots=4)
    layers = sm.slot_layers(model)
    assert layers
    for _, layer, slot in layers:
        assert slot.scores.dtype == torch.float32
        weight = layer.weight
        candidates = slot.candidates()
        assert weight.dtype == torch.float32
        assert bool((candidates == weight.unsqueeze(0)).any(0).all())  # every weight is one of its K candidates
        assert torch.equal(weight, candidates.gather(0, slot.scores.detach().argmax(0, keepdim=True)).squeeze(0))
    assert 0 <= record["selected_test_accuracy"] <= 1


@pytest.mark.parametrize("arch", ["lenet-300-100", "conv2"])
def test_laperm_keeps_every_row_multiset_under_bf16(monkeypatch, arch):
    cfg, model, record, splits = run_bf16(monkeypatch, "laperm", arch, sync_period=2)
    assert record["multisets_kept"] and record["syncs"] > 0
    fresh = lp.build_initialized(cfg, splits.input_shape, splits.num_classes)
    trained = lp.permutable_tensors(model)
    initial = lp.permutable_tensors(fresh)
    assert len(trained) == len(initial)
    moved = 0
    for t, i in zip(trained, initial):
        assert t.dtype == torch.float32
        assert torch.equal(lp.sorted_rows(t), lp.sorted_rows(i))  # bitwise the same values in every row
        moved += int((t != i).sum())
    assert moved > 0  # training did permute something


@pytest.mark.parametrize("arch", ["lenet-300-100", "conv2"])
def test_imp_masks_are_exact_under_bf16(monkeypatch, arch):
    cfg, model, record, _ = run_bf16(monkeypatch, "imp", arch, rounds=2, prune_fraction=0.5, rewind_step=0,
                                     stop_unit_fraction=0.0)
    assert record["rounds_trained"] == 3
    for layer, (w, b) in zip(pruning.prunable_layers(model), pruning.get_masks(model)):
        numel = w.numel() + (b.numel() if b is not None else 0)
        kept = int(w.sum()) + (int(b.sum()) if b is not None else 0)
        assert kept == pruning.kept_count(numel, 2, 0.5)
        assert layer.weight_mask.dtype == torch.float32 and set(layer.weight_mask.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(layer.weight, layer.weight_orig * layer.weight_mask)
        assert bool((layer.weight[~w] == 0).all())
