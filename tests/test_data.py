"""Offline datasets: lookup, clear errors, fixed splits, balanced subsets, augmentation."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from randweights import data, make_config
from randweights.config import DataConfig
from randweights.errors import DatasetNotFound


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)


def fake_mnist(root, folder="MNIST", gz=False, n_train=200, n_test=50):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 10)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_files_plain_or_gzip(tmp_path, monkeypatch, gz):
    fake_mnist(tmp_path, gz=gz)
    monkeypatch.setenv("RANDWEIGHTS_DATA", str(tmp_path))
    data._load_arrays.cache_clear()
    arrays = data.load_arrays("mnist")
    assert arrays["train"][0].shape == (200, 28, 28) and arrays["test"][1].tolist()[:3] == [0, 1, 2]


def test_missing_dataset_names_every_path_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("RANDWEIGHTS_DATA", str(tmp_path))
    monkeypatch.setenv("RANDWEIGHTS_DOWNLOAD", "0")
    data._load_arrays.cache_clear()
    with pytest.raises(DatasetNotFound) as err:
        data.load_arrays("cifar10")
    assert str(tmp_path / "cifar10.npz") in str(err.value) and "cifar-10-batches-py" in str(err.value)
    assert "RANDWEIGHTS_DATA" in str(err.value)


def test_splits_are_fixed_and_subsets_balanced(tmp_path, monkeypatch):
    fake_mnist(tmp_path, n_train=1000)
    monkeypatch.setenv("RANDWEIGHTS_DATA", str(tmp_path))
    data._load_arrays.cache_clear()
    a = data.load(DataConfig(dataset="mnist", subset=100, validation=200))
    b = data.load(DataConfig(dataset="mnist", subset=100, validation=200))
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.validation.y, b.validation.y)
    assert torch.bincount(a.train.y, minlength=10).tolist() == [10] * 10
    assert torch.bincount(a.validation.y, minlength=10).tolist() == [20] * 10
    # validation images never appear in training
    train_rows = {row.numpy().tobytes() for row in a.train.x.flatten(1)}
    assert not any(row.numpy().tobytes() in train_rows for row in a.validation.x.flatten(1))
    assert a.train.x.shape[1:] == (1, 28, 28) and a.train.x.dtype == torch.float32
    c = data.load(DataConfig(dataset="mnist", subset=15))
    assert torch.bincount(c.train.y, minlength=10).tolist() == [2] * 5 + [1] * 5


def test_real_mnist_matches_its_provenance(mnist):
    arrays = data.load_arrays("mnist")
    x, y = arrays["train"]
    assert x.shape == (60000, 28, 28) and np.bincount(y).tolist()[:3] == [5923, 6742, 5958]
    assert y[:5].tolist() == [5, 0, 4, 1, 9]
    assert abs(x.mean() / 255 - 0.1307) < 1e-3


def test_augmentation_crops_and_flips():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = data.augment_batch(x, g, pad=0)  # no padding: each image is itself or its mirror
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    padded = data.augment_batch(x, torch.Generator().manual_seed(1), pad=2)
    assert padded.shape == x.shape


def test_batches_cover_the_split_once():
    split = data.Split(torch.arange(10).float().view(10, 1, 1, 1), torch.arange(10))
    seen = torch.cat([y for _, y in data.batches(split, 3, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))


def _whole_set_float32(x: np.ndarray, dataset: str) -> torch.Tensor:
    """How splits were converted before they kept uint8: the whole set to normalized float32 at once."""
    t = torch.from_numpy(np.array(x, dtype=np.float32)).div_(255.0)
    t = t.permute(0, 3, 1, 2) if t.ndim == 4 else t.unsqueeze(1)
    mean, std = data.STATS[dataset]
    return ((t - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)).contiguous()


def test_stored_splits_convert_each_batch_to_the_same_numbers_as_the_whole_set(mnist):
    """uint8 kept, converted per batch: bit for bit the whole-set float32 conversion of before, pixel shuffle too."""
    cfg = make_config("dense", subset=500, validation=100).data
    splits = data.load(cfg)
    x_train = data.load_arrays("mnist")["train"][0]
    for split in (splits.train, splits.validation, splits.test):
        whole = _whole_set_float32(split.raw.numpy()[split.index.numpy()], "mnist")
        idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:64]
        assert torch.equal(split.images(idx), whole[idx]) and torch.equal(split.x, whole)
    assert np.shares_memory(splits.train.raw.numpy(), x_train)  # no copy of the images
    perm = torch.randperm(28 * 28, generator=torch.Generator().manual_seed(1))
    shuffled = splits.test.with_pixels_permuted(perm)
    assert torch.equal(shuffled.x, data.permute_pixels(splits.test.x, perm))
    twice = shuffled.with_pixels_permuted(perm)
    assert torch.equal(twice.x, data.permute_pixels(data.permute_pixels(splits.test.x, perm), perm))
