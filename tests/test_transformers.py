"""Every method on transformer weights: attention's packed input projection and output projection, the MLP
blocks, patch and token embeddings, on our small ViTs and on torchvision's ViT-B/16 (built with weights=None).

Each method is applied, trained a few steps (the scores move, the frozen weights do not, the gradient reaches
the scores and never the weights; LaPerm keeps every row's multiset; IMP's pruned entries get no gradient) and
round-tripped through a compact file bit for bit (same outputs, same effective weights)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torchvision
from torch import nn

from randweights import compact, models, train
from randweights.config import make_config
from randweights.errors import ConfigError
from randweights.methods import dense, pruning, transform
from randweights.methods import edge_popup as ep
from randweights.methods import laperm as lp
from randweights.methods import slot_machines as sm
from randweights.methods import supermask_bernoulli as zb

SUPERMASKS = ("edge-popup", "supermask-bernoulli", "slot")
METHODS = (*SUPERMASKS, "laperm", "imp")
ATTN = "blocks.0.attn"


def _vit(depth: int = 2, shape=(1, 28, 28)) -> nn.Module:
    torch.manual_seed(0)
    return models.build(f"vit-p4-d{depth}", shape, 10)


class TokenNet(nn.Module):
    """A token classifier: Embedding, torch's own TransformerEncoderLayer, a cross-attention whose key/value size
    differs from the embedding size (separate q/k/v projections), mean pooling, a Linear head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.memory = nn.Parameter(torch.randn(1, 3, 8))
        self.cross = nn.MultiheadAttention(16, 2, kdim=8, vdim=8, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.layer(self.embed(tokens))
        memory = self.memory.expand(len(tokens), -1, -1)
        return self.head((h + self.cross(h, memory, memory, need_weights=False)[0]).mean(1))


def _tokens() -> TokenNet:
    torch.manual_seed(1)
    return TokenNet()


def _images(n: int = 8, shape=(1, 28, 28), seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


def _apply(method: str, model: nn.Module, **kw) -> nn.Module:
    g = torch.Generator().manual_seed(3)
    if method == "edge-popup":
        return ep.apply(model, 0.3, generator=g, **kw)
    if method == "supermask-bernoulli":
        return zb.apply(model, 0.5, eval_mask="threshold", generator=g, **kw)
    if method == "slot":
        return sm.apply(model, kw.pop("num_slots", 4), generator=g, **kw)
    if method == "laperm":
        return lp.apply(model, generator=g, **kw)
    return pruning.apply(model, **kw)


def _scores(method: str, model: nn.Module) -> list[nn.Parameter]:
    return {"edge-popup": ep.scores, "supermask-bernoulli": zb.scores, "slot": sm.scores}[method](model)


def _frozen(method: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a supermask method never changes: the frozen weights (slot machines: the candidate codes)."""
    if method == "slot":
        return {n: s.codes.clone() for n, _, s in sm.slot_layers(model)}
    return {n: w.detach().clone() for n, w in transform.originals(model).items()}


def _effective(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in compact.plain_copy(model).eval().state_dict().items()}


# ---------------------------------------------------------------------------------------------- the tensors
def test_small_vits_have_attention_mlp_and_patch_weights_and_count_them():
    mnist, cifar = _vit(4), _vit(4, (3, 32, 32))
    assert sum(p.numel() for p in mnist.parameters()) == 136000
    assert sum(p.numel() for p in cifar.parameters()) == 139008
    assert mnist.pos_embedding.shape == (1, 50, 64) and cifar.pos_embedding.shape == (1, 65, 64)
    assert models.count_weights(mnist) == 16 * 64 + 4 * (3 * 64 * 64 + 64 * 64 + 2 * 64 * 128) + 64 * 10
    assert [p.numel() for n, p in mnist.named_parameters() if "norm" in n] == []  # no affine LayerNorm by default
    assert len([n for n, _ in models.build("vit-p4-d1", (1, 28, 28), 10, affine_bn=True).named_parameters() if "norm" in n]) == 6
    assert models.build("vit-p4-d1", (1, 28, 28), 10, width=0.5).head.in_features == 32
    with pytest.raises(ConfigError, match="input_shape"):
        models.build("vit-p4-d1", (1, 30, 30), 10)


def test_maskable_tensors_of_attention_embedding_and_linear():
    model = _tokens()
    chosen = transform.select_tensors(model, transform.MATRICES)
    assert [(n, p) for n, _, p in chosen] == [
        ("embed", "weight"), ("layer.self_attn", "in_proj_weight"), ("layer.self_attn.out_proj", "weight"),
        ("layer.linear1", "weight"), ("layer.linear2", "weight"),
        ("cross.q_proj_weight", "q_proj_weight"), ("cross.k_proj_weight", "k_proj_weight"), ("cross.v_proj_weight", "v_proj_weight"),
        ("cross.out_proj", "weight"), ("head", "weight")]
    assert transform.tensor_key(model, "layer.self_attn") == "layer.self_attn.in_proj_weight"
    assert transform.tensor_key(model, "cross.k_proj_weight") == "cross.k_proj_weight"
    assert transform.tensor_key(model, "head") == transform.weight_key("head") == "head.weight"
    # the fans: in_proj_weight (3E, E) has fan_in E; an Embedding (num, dim) has fan_in dim
    assert ep.fans(model.layer.self_attn.in_proj_weight) == (16, 48)
    assert ep.fans(model.embed.weight) == (16, 20)


def test_attention_names_select_the_input_projection_and_out_proj_is_its_own_layer():
    model = ep.apply(_vit(), 0.5, include=[ATTN, "blocks.*.mlp.0"], generator=torch.Generator().manual_seed(0))
    assert transform.tag_of(model)["layers"] == [ATTN, "blocks.0.mlp.0", "blocks.1.mlp.0"]
    assert isinstance(transform.parametrization(model.blocks[0].attn, ep.TopKMask, "in_proj_weight"), ep.TopKMask)
    assert not transform.parametrize.is_parametrized(model.blocks[0].attn.out_proj)
    model = ep.apply(_vit(), 0.5, exclude=["blocks.*.attn", "patch"], generator=torch.Generator().manual_seed(0))
    layers = transform.tag_of(model)["layers"]
    assert "blocks.0.attn.out_proj" in layers and ATTN not in layers and "patch" not in layers and "head" in layers
    model = sm.apply(_tokens(), 2, include="cross.k_proj_weight", generator=torch.Generator().manual_seed(0))
    assert transform.tag_of(model)["layers"] == ["cross.k_proj_weight"]
    model = zb.apply(_tokens(), 0.5, include="cross", generator=torch.Generator().manual_seed(0))
    assert transform.tag_of(model)["layers"] == ["cross.q_proj_weight", "cross.k_proj_weight", "cross.v_proj_weight"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("selector", [{"include": "blocks.0.atn"}, {"exclude": ["blocks.9.attn"]}, {"include": [3]}])
def test_bad_selectors_are_one_line_config_errors(method, selector):
    with pytest.raises(ConfigError) as err:
        _apply(method, _vit(1), **selector)
    assert "\n" not in str(err.value) and next(iter(selector)) in str(err.value)


@pytest.mark.parametrize("method", SUPERMASKS)
def test_learn_keeps_the_named_parameters_trainable_and_nothing_else(method):
    model = _apply(method, _vit(1), learn=["class_token", "pos_embedding"])
    assert transform.tag_of(model)["learn"] == ["class_token", "pos_embedding"]
    assert transform.learned(model) == [model.class_token, model.pos_embedding]
    trainable = {id(p) for p in _scores(method, model)} | {id(model.class_token), id(model.pos_embedding)}
    assert all(p.requires_grad == (id(p) in trainable) for p in model.parameters())
    assert not _apply(method, _vit(1)).pos_embedding.requires_grad  # default: random and frozen, as every weight
    with pytest.raises(ConfigError, match="learn") as err:
        _apply(method, _vit(1), learn="cls_token")
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------- exact properties
def test_edge_popup_keeps_exactly_round_k_n_of_the_input_projection():
    model = ep.apply(_tokens(), 0.3, generator=torch.Generator().manual_seed(0))
    for name in ("layer.self_attn", "cross.v_proj_weight", "embed", "layer.self_attn.out_proj"):
        _, module, tensor = transform.locate(model, name)
        mask = transform.parametrization(module, ep.TopKMask, tensor).mask()
        assert int(mask.sum()) == round(0.3 * mask.numel())
        weight = transform.tensor(module, tensor)
        assert torch.equal(weight, transform.original(module, tensor) * mask)
    in_proj = transform.original(model.layer.self_attn, "in_proj_weight")
    fan_16 = torch.tensor([math.sqrt(2 / 16)])  # signed constant +-sqrt(2 / fan_in), fan_in 16 for both
    assert in_proj.shape == (48, 16) and torch.equal(in_proj.abs().unique(), fan_16)
    assert torch.equal(transform.original(model.embed).abs().unique(), fan_16)


def test_imp_prunes_the_input_projection_with_its_bias():
    model = pruning.apply(_tokens())
    attn = model.layer.self_attn
    assert hasattr(attn, "in_proj_weight_mask") and hasattr(attn, "in_proj_bias_mask")
    assert not hasattr(model.head, "weight_mask")  # the output layer is never pruned
    pruning.set_masks(model, pruning.imp_step(model, pruning.get_masks(model), 1, 0.3))
    kept = int(attn.in_proj_weight_mask.sum()) + int(attn.in_proj_bias_mask.sum())
    assert kept == pruning.kept_count(48 * 16 + 48, 1, 0.3)
    cross = pruning.get_masks(model)[5:8]  # q (E x E), k and v (E x kdim); they share in_proj_bias, pruned with none
    assert [tuple(w.shape) for w, _ in cross] == [(16, 16), (16, 8), (16, 8)] and all(b is None for _, b in cross)


# ---------------------------------------------------------------------------------------------- train + compact
def _train_supermask(method: str, model: nn.Module, x, y, steps: int = 3):
    opt = torch.optim.SGD(_scores(method, model), lr=50.0 if method == "supermask-bernoulli" else 0.5)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("method", SUPERMASKS)
@pytest.mark.parametrize("net", ["vit", "tokens"])
def test_supermask_trains_scores_only_and_round_trips_bit_for_bit(method, net, tmp_path):
    build = _vit if net == "vit" else _tokens
    x, y = _images() if net == "vit" else (torch.randint(0, 20, (8, 5), generator=torch.Generator().manual_seed(0)), torch.arange(8) % 4)
    model = _apply(method, build())
    layers = transform.tag_of(model)["layers"]
    assert (ATTN if net == "vit" else "layer.self_attn") in layers and ("patch" if net == "vit" else "embed") in layers
    frozen, scores = _frozen(method, model), [s.detach().clone() for s in _scores(method, model)]
    _train_supermask(method, model, x, y, steps=1)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert grads and all(n.endswith(".scores") for n in grads)
    attn = model.blocks[0].attn if net == "vit" else model.layer.self_attn
    assert attn.parametrizations.in_proj_weight[0].scores.grad.abs().sum() > 0
    _train_supermask(method, model, x, y, steps=2)
    assert all(torch.equal(frozen[n], w) for n, w in _frozen(method, model).items())
    assert any(not torch.equal(a, b.detach()) for a, b in zip(scores, _scores(method, model)))
    compact.save(model, tmp_path / "m.rwc")
    loaded = compact.load(tmp_path / "m.rwc", build())
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    expected = _effective(model)
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize("net", ["vit", "tokens"])
def test_laperm_permutes_attention_rows_and_round_trips_bit_for_bit(net, tmp_path):
    build = _vit if net == "vit" else _tokens
    x, y = _images() if net == "vit" else (torch.randint(0, 20, (8, 5), generator=torch.Generator().manual_seed(0)), torch.arange(8) % 4)
    model = _apply("laperm", build())
    key = f"{ATTN}.in_proj_weight" if net == "vit" else "layer.self_attn.in_proj_weight"
    assert key in transform.tag_of(model)["layers"] and ("patch.weight" if net == "vit" else "embed.weight") in transform.tag_of(model)["layers"]
    permutable = lp.permutable_of(model)
    initial = [lp.sorted_rows(p) for p in permutable]
    before = dict(model.named_parameters())[key].detach().clone()
    opt = lp.LaPerm(torch.optim.Adam(model.parameters(), lr=1e-2), permutable, sync_period=2)
    for _ in range(4):
        opt.zero_grad()
        nn.functional.cross_entropy(model.train()(x), y).backward()
        opt.step()
    assert all(torch.equal(a, lp.sorted_rows(p)) for a, p in zip(initial, permutable))
    assert not torch.equal(before, dict(model.named_parameters())[key])
    compact.save(model, tmp_path / "m.rwc")
    loaded = compact.load(tmp_path / "m.rwc", build())
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    expected = model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


@pytest.mark.parametrize("net", ["vit", "tokens"])
def test_imp_gives_pruned_attention_entries_no_gradient_and_round_trips_bit_for_bit(net, tmp_path):
    build = _vit if net == "vit" else _tokens
    x, y = _images() if net == "vit" else (torch.randint(0, 20, (8, 5), generator=torch.Generator().manual_seed(0)), torch.arange(8) % 4)
    model = _apply("imp", build())
    attn = model.blocks[0].attn if net == "vit" else model.layer.self_attn
    pruning.set_masks(model, pruning.imp_step(model, pruning.get_masks(model), 1, 0.5))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    nn.functional.cross_entropy(model.train()(x), y).backward()
    pruned = ~attn.in_proj_weight_mask.bool()
    assert pruned.any() and attn.in_proj_weight_orig.grad[pruned].abs().sum() == 0
    assert attn.in_proj_weight_orig.grad[~pruned].abs().sum() > 0
    out_proj = attn.out_proj  # read by the attention without its own forward: pruned all the same
    pruned = ~out_proj.weight_mask.bool()
    assert pruned.any() and out_proj.weight_orig.grad[pruned].abs().sum() == 0 and out_proj.weight_orig.grad[~pruned].abs().sum() > 0
    opt.step()
    compact.save(model, tmp_path / "m.rwc")
    loaded = compact.load(tmp_path / "m.rwc", build())
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
        assert torch.equal(loaded.state_dict()[transform.tensor_key(loaded, ATTN if net == "vit" else "layer.self_attn")],
                           attn.in_proj_weight_orig * attn.in_proj_weight_mask)


def test_dense_baseline_initializes_every_weight_matrix_and_zeroes_its_bias():
    model = _tokens()
    params = dense.prepare(model, make_config("dense"))
    attn = model.layer.self_attn
    assert torch.equal(attn.in_proj_bias, torch.zeros(48)) and torch.equal(model.head.bias, torch.zeros(4))
    std = float(attn.in_proj_weight.detach().std())  # kaiming-normal: N(0, 2 / fan_in), fan_in 16
    assert abs(std - math.sqrt(2 / 16)) < 0.05 and len(params) == len(list(model.parameters()))


def test_the_small_vit_computes_each_attention_mask_once_per_forward():
    model = sm.apply(_vit(1), 4, generator=torch.Generator().manual_seed(0))
    slot = transform.masker(model, ATTN, sm.SlotSelect)
    slot.track = True
    x, _ = _images(2)
    model.train()
    for _ in range(3):
        model(x)
    assert slot.steps == 2  # a plain nn.MultiheadAttention reads in_proj_weight 3 times per forward


def test_extras_are_the_parameters_outside_the_weight_matrices_and_their_biases():
    model = models.build("vit-p4-d1", (1, 28, 28), 10, bias=True, affine_bn=True)
    assert transform.extras(model) == ["class_token", "pos_embedding", "blocks.0.norm1.weight", "blocks.0.norm1.bias",
                                       "blocks.0.norm2.weight", "blocks.0.norm2.bias", "norm.weight", "norm.bias"]
    assert transform.extras(_vit(1)) == ["class_token", "pos_embedding"]
    assert transform.extras(models.build("conv2", (1, 28, 28), 10)) == []


@pytest.mark.parametrize("method", SUPERMASKS)
@pytest.mark.parametrize("learn_extras", [False, True])
def test_a_vit_run_trains_through_the_store_path_and_loads_from_its_config(method, learn_extras, mnist, tmp_path):
    cfg = make_config(method, arch="vit-p4-d1", width=0.5, dataset="mnist", subset=200, epochs=1, batch_size=50,
                      learn_extras=learn_extras)
    torch.manual_seed(cfg.train.seed)
    initial = models.build_for(cfg.model, (1, 28, 28), 10).pos_embedding.detach().clone()
    model, record = train.run(cfg, "cpu")
    assert ATTN in transform.tag_of(model)["layers"]
    assert torch.equal(model.pos_embedding, initial) != learn_extras  # learned with learn_extras, else random and frozen
    assert transform.tag_of(model).get("learn") == (["class_token", "pos_embedding"] if learn_extras else None)
    compact.save(model, tmp_path / "r.rwc", config=cfg, input_shape=(1, 28, 28), num_classes=10)
    x, _ = _images(4)
    with torch.no_grad():
        assert torch.equal(compact.load(tmp_path / "r.rwc")(x), model.eval()(x))


# ---------------------------------------------------------------------------------------------- ViT-B/16
@pytest.fixture(scope="module")
def vit_b_16():
    torch.manual_seed(0)
    return torchvision.models.vit_b_16(weights=None)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_transforms_torchvision_vit_b_16(method, vit_b_16):
    model = _apply(method, copy.deepcopy(vit_b_16), **({"num_slots": 2} if method == "slot" else {}))
    layer = "encoder.layers.encoder_layer_0"
    names = transform.tag_of(model)["layers"]
    suffix = ".weight" if method == "laperm" else ""
    wanted = [f"{layer}.self_attention" + (".in_proj_weight" if method == "laperm" else ""), f"{layer}.self_attention.out_proj{suffix}",
              f"{layer}.mlp.0{suffix}", f"{layer}.mlp.3{suffix}", f"conv_proj{suffix}"]
    assert all(n in names for n in wanted)
    assert len([n for n in names if n.endswith("self_attention") or n.endswith("in_proj_weight")]) == 12
    attn = model.encoder.layers[0].self_attention
    if method in SUPERMASKS:
        assert transform.parametrize.is_parametrized(attn, "in_proj_weight")
        assert not model.class_token.requires_grad and not model.encoder.pos_embedding.requires_grad
    elif method == "imp":
        assert hasattr(attn, "in_proj_weight_mask") and not hasattr(model.heads.head, "weight_mask")
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (1, 1000) and torch.isfinite(out).all()


def _vit_b_16() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.vit_b_16(weights=None)


@pytest.mark.slow  # ViT-B/16 (86 M weights) trained a step and stored, per method: a few seconds each
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_torchvision_vit_b_16_a_step_and_round_trips_bit_for_bit(method, tmp_path):
    model = _apply(method, _vit_b_16(), **({"num_slots": 2} if method == "slot" else {}))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([3, 997])
    if method in SUPERMASKS:
        frozen = _frozen(method, model)
        _train_supermask(method, model, x, y, steps=1)
        assert all(torch.equal(frozen[n], w) for n, w in _frozen(method, model).items())
    elif method == "laperm":
        permutable = lp.permutable_of(model)
        initial = [lp.sorted_rows(p) for p in permutable]
        opt = lp.LaPerm(torch.optim.Adam(model.parameters(), lr=1e-2), permutable, sync_period=1)
        opt.zero_grad()
        nn.functional.cross_entropy(model.train()(x), y).backward()
        opt.step()
        assert all(torch.equal(a, lp.sorted_rows(p)) for a, p in zip(initial, permutable))
    else:
        pruning.set_masks(model, pruning.imp_step(model, pruning.get_masks(model), 1, 0.5))
    compact.save(model, tmp_path / "m.rwc")
    loaded = compact.load(tmp_path / "m.rwc", _vit_b_16())
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model.eval()(x))
    expected = _effective(model) if method != "laperm" else model.state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


# ---------------------------------------------------------------------------------------------- one shared layer
BLOCK_LAYERS = ("attn", "attn.out_proj", "mlp.0", "mlp.2")


def test_shared_blocks_mask_one_random_layer_with_scores_of_their_own(tmp_path):
    g = torch.Generator().manual_seed(3)
    shared = ep.apply(_vit(depth=4), 0.3, generator=g, share="blocks")
    independent = ep.apply(_vit(depth=4), 0.3, generator=torch.Generator().manual_seed(3))
    weights, alone = transform.originals(shared), transform.originals(independent)
    for layer in BLOCK_LAYERS:
        first = weights[f"blocks.0.{layer}"]
        assert torch.equal(first, alone[f"blocks.0.{layer}"])  # block 0 as drawn without sharing
        for block in (1, 2, 3):
            assert torch.equal(weights[f"blocks.{block}.{layer}"], first)
            assert not torch.equal(alone[f"blocks.{block}.{layer}"], first)
    assert torch.equal(weights["patch"], alone["patch"]) and torch.equal(weights["head"], alone["head"])
    # the scores are the draws of share=None, so every block has its own
    assert all(torch.equal(a, b) for a, b in zip(ep.scores(shared), ep.scores(independent)))
    masks = [transform.masker(shared, f"blocks.{b}.mlp.0", ep.TopKMask).mask() for b in range(4)]
    assert not torch.equal(masks[0], masks[1]) and all(int(m.sum()) == ep.kept_count(m.numel(), 0.3) for m in masks)
    x, y = _images()
    _train_supermask("edge-popup", shared, x, y, steps=2)
    after = transform.originals(shared)
    assert all(torch.equal(after[f"blocks.{b}.{layer}"], after[f"blocks.0.{layer}"]) for b in (1, 2, 3) for layer in BLOCK_LAYERS)
    compact.save(shared, tmp_path / "m.rwc")
    assert compact.read_header(tmp_path / "m.rwc")["frozen_weights"]["share"] == "blocks"
    loaded = compact.load(tmp_path / "m.rwc", _vit(depth=4))
    with torch.no_grad():
        assert torch.equal(loaded(x), shared.eval()(x))
    expected = _effective(shared)
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


def test_shared_blocks_apply_to_torchvision_encoder_layers(vit_b_16):
    model = ep.apply(copy.deepcopy(vit_b_16), 0.5, generator=torch.Generator().manual_seed(0), share="encoder.layers")
    weights = transform.originals(model)
    first = weights["encoder.layers.encoder_layer_0.mlp.0"]
    assert torch.equal(weights["encoder.layers.encoder_layer_11.mlp.0"], first)


@pytest.mark.parametrize("kwargs, parameter", [({"share": "head"}, "share"), ({"share": "nope"}, "share"),
                                               ({"share": "blocks", "init": None}, "share")])
def test_bad_share_is_a_config_error_naming_it(kwargs, parameter):
    with pytest.raises(ConfigError, match=f"^{parameter}: "):
        ep.apply(_vit(), 0.5, **kwargs)


def test_shared_blocks_setting_needs_a_transformer_and_changes_the_run_id():
    with pytest.raises(ConfigError, match="^shared_blocks: "):
        make_config("edge-popup", arch="lenet-300-100", shared_blocks=True)
    plain = make_config("edge-popup", arch="vit-p4-d2")
    shared = make_config("edge-popup", arch="vit-p4-d2", shared_blocks=True)
    assert plain.run_id != shared.run_id and plain.non_default() == make_config("edge-popup", arch="vit-p4-d2").non_default()
    model = models.build("vit-p4-d2", (1, 28, 28), 10)
    ep.prepare(model, shared)
    weights = transform.originals(model)
    assert torch.equal(weights["blocks.1.mlp.2"], weights["blocks.0.mlp.2"])
