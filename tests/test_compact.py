"""Compact subnetworks: every method's trained network saved in a few bits per weight, loaded in a new process,
same outputs bit for bit; files at least 10x smaller than the dense fp32 state dict for Edge-Popup (k = 0.5)
and Slot Machines (K = 8)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from randweights import bits, compact, data, runs, store, train
from randweights.config import make_config
from randweights.errors import ConfigError, DrawDiffers
from randweights.methods import edge_popup as ep
from randweights.methods import laperm as lp
from randweights.methods import pruning
from randweights.methods import slot_machines as sm
from randweights.methods import supermask_bernoulli as zb

SMOKE = {"dataset": "mnist", "subset": 300, "epochs": 1}
RUNS = {
    "dense": {},
    "edge-popup": {"keep_fraction": 0.5},
    "supermask-bernoulli": {},
    "slot": {"num_slots": 8},
    "laperm": {"sync_period": 5},
    "imp": {"rounds": 1, "rewind_step": 1},
}


@pytest.mark.parametrize("width", [0, 1, 3, 7, 10])
def test_uint_packing_round_trips_and_takes_bits_per_value(width):
    values = torch.randint(0, 2**width, (37, 5), generator=torch.Generator().manual_seed(width))
    packed = bits.pack_uint(values, width)
    assert packed.nbytes == -(-values.numel() * width // 8)
    assert torch.equal(bits.unpack_uint(packed, width, values.shape), values)
    assert bits.index_bits(8) == 3 and bits.index_bits(9) == 4 and bits.index_bits(784) == 10


@pytest.mark.parametrize("values, width, stream", [
    ([1, 2, 7, 0], 3, [0b10001011, 0b10000000]),  # 100 010 111 000, then padding
    ([0xABC], 12, [0b00111101, 0b01010000]),  # C, B, A each least significant bit first
    ([0x1ABCD], 17, [0b10110011, 0b11010101, 0b10000000]),  # over two bytes: a 32-bit word inside
])
def test_uint_stream_is_each_value_least_significant_bit_first_eight_bits_a_byte(values, width, stream):
    """The file format, pinned: files written before stay readable."""
    assert bits.pack_uint(torch.tensor(values), width).tolist() == stream
    assert bits.unpack_uint(np.array(stream, dtype=np.uint8), width, (len(values),)).tolist() == values


def test_every_method_loads_in_a_new_process_bit_for_bit(mnist, tmp_path):
    x = torch.randn(32, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    sizes = {}
    for method, settings in RUNS.items():
        model, record = train.run(make_config(method, **SMOKE, **settings), "cpu")
        sizes[method] = compact.save(model, tmp_path / f"{method}.rwc")
        with torch.no_grad():
            torch.save(model.eval()(x), tmp_path / f"{method}.expected.pt")
        assert compact.read_header(tmp_path / f"{method}.rwc")["method"] == method
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys, torch; from pathlib import Path; from randweights import compact\n"
        "d = Path(sys.argv[1]); x = torch.load(d / 'x.pt')\n"
        "for m in sys.argv[2:]:\n"
        "    with torch.no_grad(): torch.save(compact.load(d / f'{m}.rwc')(x), d / f'{m}.got.pt')\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path), *RUNS], check=True, timeout=300)
    for method in RUNS:
        expected, got = torch.load(tmp_path / f"{method}.expected.pt"), torch.load(tmp_path / f"{method}.got.pt")
        assert torch.equal(expected, got), method
    for method in ("edge-popup", "slot"):
        assert sizes[method]["dense_bytes"] >= 10 * sizes[method]["compact_bytes"], (method, sizes[method])
    weights = 784 * 300 + 300 * 100 + 100 * 10
    assert sizes["edge-popup"]["weight_count"] == weights
    assert 1.0 <= sizes["edge-popup"]["bits_per_weight"] < 1.2  # 1 bit a weight + the 5 kB generator state
    assert 3.0 <= sizes["slot"]["bits_per_weight"] < 3.1  # 3 bits for K = 8, the seed is a number
    assert 9.0 <= sizes["laperm"]["bits_per_weight"] < 10.1  # ceil(log2 784) = 10 bits in the first layer
    assert sizes["dense"]["bits_per_weight"] > 28  # fp32 values, deflated a little


def test_settings_travel_with_the_masks(tmp_path):
    model = ep.apply(nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4)), keep_fraction=0.3,
                     generator=torch.Generator().manual_seed(2))
    compact.save(model, tmp_path / "m.rwc")
    header, arrays = compact.read(tmp_path / "m.rwc")
    assert header["settings"]["keep_fraction"] == 0.3 and header["frozen_weights"] == {"init": "signed-constant", "seed": 2}
    assert sorted(arrays) == ["mask/0", "mask/2", "rest/0.bias", "rest/2.bias"]
    plain = compact.load(tmp_path / "m.rwc", nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4)))
    kept = [float((m.weight != 0).float().mean()) for m in (plain[0], plain[2])]
    assert kept == pytest.approx([0.3, 0.3], abs=0.01)
    with zipfile.ZipFile(tmp_path / "m.rwc") as zf:
        assert json.loads(zf.read("header.json"))["format"] == "randweights-compact"


def _resnet():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10)


def _train_step(model, params, x, y):
    opt = torch.optim.SGD(params, lr=0.1)
    nn.functional.cross_entropy(model.train()(x), y).backward()
    opt.step()


@pytest.mark.parametrize("method", ["edge-popup", "supermask-bernoulli", "slot", "laperm", "imp"])
def test_resnet18_round_trip_into_a_users_model(method, tmp_path):
    """No config: the file fills a plain ResNet-18 the user passes (for init=None: the one holding the weights)."""
    x, y = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([1, 2])
    model = _resnet()
    g = torch.Generator().manual_seed(3)
    if method == "edge-popup":
        ep.apply(model, keep_fraction=0.5, init=None, exclude="fc")
        _train_step(model, ep.scores(model), x, y)
    elif method == "supermask-bernoulli":
        zb.apply(model, keep_fraction=0.5, include="layer3.*", generator=g)
        _train_step(model, zb.masks(model)[0].parameters(), x, y)
    elif method == "slot":
        sm.apply(model, num_slots=4, include=["layer4.*", "fc"], generator=g)
        _train_step(model, sm.scores(model), x, y)
    elif method == "laperm":
        permutable = lp.permutable_of(lp.apply(model, generator=g, include="layer2.*"))
        opt = lp.LaPerm(torch.optim.Adam(model.parameters(), lr=1e-2), permutable, sync_period=1)
        nn.functional.cross_entropy(model.train()(x), y).backward()
        opt.step()
    else:
        pruning.apply(model, init=None)
        _train_step(model, model.parameters(), x, y)
        pruning.set_masks(model, pruning.imp_step(model, pruning.get_masks(model), 1, 0.5))
    summary = compact.save(model, tmp_path / "r.rwc")
    target = _resnet()  # same architecture; the same own weights for init=None
    loaded = compact.load(tmp_path / "r.rwc", target)
    assert loaded is target
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert summary["compact_bytes"] < summary["dense_bytes"]


def test_init_none_needs_the_model_with_those_weights(tmp_path):
    model = ep.apply(_resnet(), keep_fraction=0.5, init=None)
    compact.save(model, tmp_path / "r.rwc")
    other = _resnet()
    with torch.no_grad():
        other.conv1.weight.mul_(2)
    with pytest.raises(ConfigError, match="model"):
        compact.load(tmp_path / "r.rwc", other)
    with pytest.raises(ConfigError, match="model"):
        compact.load(tmp_path / "r.rwc")  # no config stored: a model is needed


def test_bernoulli_file_holds_the_mask_the_model_evaluates_with(tmp_path):
    model = zb.apply(nn.Sequential(nn.Linear(50, 40)), keep_fraction=0.5, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 50)
    compact.save(model, tmp_path / "b.rwc", eval_seed=11)
    with torch.no_grad():
        first, second = model.eval()(x), model(x)
        loaded = compact.load(tmp_path / "b.rwc", nn.Sequential(nn.Linear(50, 40)))
        assert torch.equal(first, second) and torch.equal(loaded(x), first)
    header, arrays = compact.read(tmp_path / "b.rwc")
    assert header["settings"]["eval_seed"] == 11
    mask = np.unpackbits(arrays["mask/0"], count=2000).reshape(40, 50)
    assert np.array_equal(mask.astype(bool), (loaded[0].weight != 0).numpy())


def test_each_record_of_the_store_points_to_its_compact_file(mnist, tmp_path):
    cfg = make_config("edge-popup", **SMOKE)
    record = runs.get_or_run(cfg, root=tmp_path)
    folder = store.run_dir(cfg, tmp_path)
    path = folder / record["compact_file"]
    assert path.is_file() and record["compact_bytes"] == path.stat().st_size
    assert record["dense_bytes"] >= 10 * record["compact_bytes"]
    assert record["compact_bits_per_weight"] == pytest.approx(8 * path.stat().st_size / record["weight_count"])
    splits = data.load(cfg.data)
    test = train.evaluate(compact.load(path), splits.test, torch.device("cpu"))
    assert test["accuracy"] == record["test_accuracy"] and test["loss"] == record["test_loss"]
    assert compact.read_header(path)["config"] == cfg.to_dict()


def _rewrite(path, edit_header=None, edit_arrays=None, target=None):
    """A copy of the compact file ``path`` with its header (and arrays) edited, as another writer would leave it."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    header = json.loads(members["header.json"])
    if edit_header is not None:
        edit_header(header)
    members["header.json"] = json.dumps(header).encode()
    if edit_arrays is not None:
        edit_arrays(members)
    target = target or path
    with zipfile.ZipFile(target, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return target


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))


DRAWN = {  # every method whose compact file draws its random tensors again from a stored seed
    "edge-popup": lambda m, g: ep.apply(m, keep_fraction=0.5, generator=g),
    "supermask-bernoulli": lambda m, g: zb.apply(m, keep_fraction=0.5, generator=g),
    "slot": lambda m, g: sm.apply(m, num_slots=4, generator=g),
    "laperm": lambda m, g: lp.apply(m, generator=g),
}


@pytest.mark.parametrize("method", list(DRAWN))
def test_a_file_whose_seed_draws_other_weights_does_not_load(method, tmp_path):
    """What a changed draw looks like (another torch, another platform): the stored seed no longer gives the weights
    the file was written with. Loading names the file, the layer and both torch versions and platforms."""
    model = DRAWN[method](_tiny(), torch.Generator().manual_seed(5))
    compact.save(model, tmp_path / "m.rwc")
    header = compact.read_header(tmp_path / "m.rwc")
    assert header["version"] == 3 and header["torch"] == torch.__version__ and header["platform"]
    assert sorted(header["drawn"]) == sorted(header["layers"]) and all(len(v) == 16 for v in header["drawn"].values())
    x = torch.randn(4, 12)
    with torch.no_grad():
        assert torch.equal(compact.load(tmp_path / "m.rwc", _tiny())(x), model.eval()(x))

    def other_writer(h):
        h["frozen_weights"]["seed"] += 1
        h["torch"], h["platform"] = "2.0.0", "Darwin arm64"

    bad = _rewrite(tmp_path / "m.rwc", other_writer, target=tmp_path / "other.rwc")
    with pytest.raises(DrawDiffers) as err:
        compact.load(bad, _tiny())
    message = str(err.value)
    assert "\n" not in message and str(bad) in message and f"layer {header['layers'][0]!r}" in message
    assert "torch 2.0.0 on Darwin arm64" in message and f"torch {torch.__version__}" in message
    assert isinstance(err.value, ConfigError)


def test_a_changed_generator_state_is_caught_too(tmp_path):
    """Without a generator the draw comes from (a copy of) the global one: the file holds its 5 kB state."""
    torch.manual_seed(1)
    torch.rand(3)  # not a fresh manual_seed state: stored as a state, not a seed
    model = ep.apply(_tiny(), keep_fraction=0.5)
    compact.save(model, tmp_path / "m.rwc")
    header, arrays = compact.read(tmp_path / "m.rwc")
    assert header["frozen_weights"]["state"] == "generator_state"

    def flip(members):  # another generator's state where the file's was
        other = torch.Generator().manual_seed(9)
        torch.rand(3, generator=other)
        blob = io.BytesIO()
        np.save(blob, other.get_state().numpy(), allow_pickle=False)
        members["generator_state.npy"] = blob.getvalue()

    with pytest.raises(DrawDiffers, match="layer '0'"):
        compact.load(_rewrite(tmp_path / "m.rwc", edit_arrays=flip), _tiny())


@pytest.mark.parametrize("version", [1, 2])
def test_files_written_before_fingerprints_still_load(version, tmp_path):
    model = ep.apply(_tiny(), keep_fraction=0.5, generator=torch.Generator().manual_seed(5))
    compact.save(model, tmp_path / "m.rwc")

    def older(h):
        h["version"] = version
        del h["drawn"], h["platform"]
        if version == 1:
            h["weights"] = h.pop("frozen_weights")
            del h["shapes"]

    old = _rewrite(tmp_path / "m.rwc", older)
    x = torch.randn(4, 12)
    with torch.no_grad():
        assert torch.equal(compact.load(old, _tiny())(x), model.eval()(x))


def test_weights_of_ones_own_are_not_fingerprinted_as_drawn(tmp_path):
    model = ep.apply(_tiny(), keep_fraction=0.5, init=None)
    compact.save(model, tmp_path / "m.rwc")
    assert compact.read_header(tmp_path / "m.rwc")["drawn"] == {}


def test_a_laperm_run_whose_config_draws_other_weights_does_not_load(tmp_path):
    """A LaPerm run's file draws its initial weights from the run's config (its seed): checked the same way."""
    cfg = make_config("laperm", dataset="mnist", arch="lenet-300-100", width=0.1)
    model = lp.build_initialized(cfg, (1, 28, 28), 10)
    lp.make_laperm(model, cfg, steps_per_epoch=1)
    compact.save(model, tmp_path / "run.rwc", config=cfg, input_shape=(1, 28, 28), num_classes=10)
    assert compact.read_header(tmp_path / "run.rwc")["frozen_weights"] == {"config": True}
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(compact.load(tmp_path / "run.rwc")(x), model.eval()(x))

    def other_seed(h):
        h["config"]["train"]["seed"] += 1

    with pytest.raises(DrawDiffers, match=r"run\.rwc: layer '.*weight'"):
        compact.load(_rewrite(tmp_path / "run.rwc", other_seed))
