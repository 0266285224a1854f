"""ImageNet32 in the official downsampled-ImageNet batch format, from small synthetic files written here."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from randweights import data, make_config
from randweights.errors import DatasetNotFound


def _write_batch(path, images: np.ndarray, labels: np.ndarray) -> None:
    """The official layout: 'data' (N, 3072) uint8 (R, G, B planes), 'labels' 1-based, 'mean' (3072,)."""
    flat = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    with open(path, "wb") as f:
        pickle.dump({"data": flat, "labels": list(labels + 1), "mean": flat.mean(0)}, f)


@pytest.fixture
def imagenet32(tmp_path, monkeypatch):
    folder = tmp_path / "imagenet32"
    folder.mkdir()
    rng = np.random.default_rng(0)
    labels = np.arange(3000) % 1000
    for i in (1, 2):
        _write_batch(folder / f"train_data_batch_{i}", rng.integers(0, 256, (3000, 32, 32, 3), dtype=np.uint8), labels)
    test_images = rng.integers(0, 256, (2000, 32, 32, 3), dtype=np.uint8)
    test_images[0, 1, 2] = (7, 8, 9)  # row 1, column 2: red 7, green 8, blue 9
    _write_batch(folder / "val_data", test_images, np.arange(2000) % 1000)
    monkeypatch.setenv("RANDWEIGHTS_DATA", str(tmp_path))
    data._load_arrays.cache_clear()
    yield folder
    data._load_arrays.cache_clear()


def test_the_official_batches_load_as_1000_classes(imagenet32):
    arrays = data.load_arrays("imagenet32")
    x, y = arrays["train"]
    assert x.shape == (6000, 32, 32, 3) and y.min() == 0 and y.max() == 999
    xt, yt = arrays["test"]
    assert tuple(xt[0, 1, 2]) == (7, 8, 9) and yt[1] == 1  # labels from 0; pixels in HWC order
    splits = data.load(make_config("imp", dataset="imagenet32", validation=1000, subset=2000).data)
    assert (splits.num_classes, splits.input_shape) == (1000, (3, 32, 32))
    assert len(splits.train) == 2000 and len(splits.validation) == 1000 and len(splits.test) == 2000
    assert np.bincount(splits.validation.y.numpy(), minlength=1000).tolist() == [1] * 1000


def test_the_papers_10_class_labels(imagenet32):
    with pytest.raises(DatasetNotFound, match="classes.dat"):
        data.load_arrays("imagenet32-10")
    table = np.arange(1000) // 100
    (imagenet32 / "classes.dat").write_text(",".join(map(str, table)))
    y = data.load_arrays("imagenet32-10")["train"][1]
    assert y.max() == 9 and (y == np.arange(6000) % 1000 // 100).all()
    assert (data.load_arrays("imagenet32-mod10")["test"][1] == np.arange(2000) % 10).all()


def test_missing_imagenet32_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RANDWEIGHTS_DATA", str(tmp_path))
    monkeypatch.setattr(data, "reachable", lambda *a, **k: pytest.fail("ImageNet is never downloaded"))
    with pytest.raises(DatasetNotFound) as err:
        data.load_arrays("imagenet32")
    message = str(err.value)
    assert "\n" not in message and "image-net.org" in message and "imagenet32" in message


def test_the_full_fcn_preset_runs_imagenet32_and_cifar10_stays_available():
    from randweights.chapters import fcn_to_cnn

    full = fcn_to_cnn.configs(fcn_to_cnn.preset("full"))
    assert {c.data.dataset for c in full.values()} == {"imagenet32", "imagenet32-10", "imagenet32-mod10"}
    assert full["meaningful labels"].data.dataset == "imagenet32-10"
    cifar = fcn_to_cnn.configs(fcn_to_cnn.preset("full-cifar10"))
    assert {c.data.dataset for c in cifar.values()} == {"cifar10"}


def test_the_three_label_sets_share_one_copy_of_the_images(imagenet32):
    (imagenet32 / "classes.dat").write_text(",".join(map(str, np.arange(1000) // 100)))
    images = [data.load_arrays(name)["train"][0] for name in ("imagenet32", "imagenet32-10", "imagenet32-mod10")]
    assert all(np.shares_memory(images[0], other) for other in images[1:])
    splits = [data.load(make_config("imp", dataset=name, validation=1000).data) for name in ("imagenet32", "imagenet32-mod10")]
    assert all(np.shares_memory(images[0], s.train.raw.numpy()) and np.shares_memory(images[0], s.validation.raw.numpy())
               for s in splits)  # the splits index into it: no copy, no float32 copy


PEAK_SCRIPT = r"""
import json, resource, sys
from randweights import data, make_config
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name in ("imagenet32", "imagenet32-10", "imagenet32-mod10"):
    splits = data.load(make_config("imp", dataset=name, validation=1000).data)
    batch = next(data.batches(splits.train, 256))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": (after - before) / 1024}))
"""


def test_the_peak_memory_of_loading_is_about_the_uint8_images_once(tmp_path):
    """Ten batch files of 6,000 images (184 MB of uint8): loading all three label sets, with their splits and a
    batch each, raises the peak by about the images once (the old loader: ~5x, float32 and concatenated copies)."""
    import json
    import os
    import subprocess
    import sys

    folder = tmp_path / "imagenet32"
    folder.mkdir()
    rng = np.random.default_rng(1)
    per_batch = 6000
    for i in range(1, 11):
        _write_batch(folder / f"train_data_batch_{i}", rng.integers(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8),
                     rng.integers(0, 1000, per_batch))
    _write_batch(folder / "val_data", rng.integers(0, 256, (2000, 32, 32, 3), dtype=np.uint8), np.arange(2000) % 1000)
    (folder / "classes.dat").write_text(",".join(map(str, np.arange(1000) // 100)))
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT], capture_output=True, text=True, check=True,
                          env={**os.environ, "RANDWEIGHTS_DATA": str(tmp_path)})
    peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_mib"]
    uint8_mib = (10 * per_batch + 2000) * 3072 / 2**20
    assert peak < 1.6 * uint8_mib, (peak, uint8_mib)
