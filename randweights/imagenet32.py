"""ImageNet32 (Chrabaszcz, Loshchilov & Hutter 2017): the downsampled ImageNet the FCN-to-CNN paper trains on.

Read from ``$RANDWEIGHTS_DATA/imagenet32/`` (or its ``Imagenet32_train/`` and ``Imagenet32_val/`` folders, as the
official zips unpack) in the official batch format: pickled dicts ``train_data_batch_1`` .. ``_10`` and
``val_data`` with ``data`` (N, 3072) uint8, each row the red, green and blue 32x32 planes, and ``labels`` 1..1000.
The validation batch (50,000 images) is our test split. Three label sets, one dataset name each:

* ``imagenet32``: the 1000 classes;
* ``imagenet32-10``: the paper's 10 "meaningful" super-classes (official ``reclass = f,10,classes.dat``), mapped by
  ``classes.dat`` (1000 comma-separated super-class ids, from phiandark/SiftingFeatures ``inputs/classes.dat``)
  placed beside the batches;
* ``imagenet32-mod10``: label modulo 10, the paper's meaningless 10-way grouping (``reclass = m,10``).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np

from .errors import DatasetNotFound

DATASETS = {"imagenet32": 1000, "imagenet32-10": 10, "imagenet32-mod10": 10}
WHERE = ("download Imagenet32_train.zip and Imagenet32_val.zip (Downsampled ImageNet 32x32) from "
         "https://image-net.org/download-images and unpack both into $RANDWEIGHTS_DATA/imagenet32/")
CLASSES_FILE = "classes.dat"


def folders(root: Path) -> list[Path]:
    base = root / "imagenet32"
    return [base, base / "Imagenet32_train", base / "Imagenet32_val"]


def _find(root: Path, name: str) -> Path | None:
    for folder in folders(root):
        if (folder / name).is_file():
            return folder / name
    return None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One official batch file as images (N, 32, 32, 3) uint8 and labels (N,) int64 from 0."""
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="latin1")
    data = np.asarray(batch["data"], dtype=np.uint8)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch["labels"], dtype=np.int64) - 1


def super_classes(root: Path) -> np.ndarray:
    path = _find(root, CLASSES_FILE)
    if path is None:
        raise DatasetNotFound(
            f"dataset 'imagenet32-10' needs {CLASSES_FILE} (1000 comma-separated super-class ids; "
            f"phiandark/SiftingFeatures, inputs/classes.dat) in {root / 'imagenet32'}")
    table = np.array([int(v) for v in path.read_text().replace("\n", ",").split(",") if v.strip()], dtype=np.int64)
    if table.shape != (1000,) or table.min() < 0 or table.max() > 9:
        raise DatasetNotFound(f"{path}: expected 1000 super-class ids in 0..9, got {table.size} values")
    return table


def load_arrays(dataset: str, root: Path) -> dict:
    """``{"train": (x, y), "test": (x, y)}`` of ``dataset`` (one of :data:`DATASETS`): the images are the same
    arrays for the three label sets (read once per folder, see :func:`images_and_classes`)."""
    x_train, y_train, x_test, y_test = images_and_classes(str(root))
    if dataset == "imagenet32-10":
        table = super_classes(root)
        y_train, y_test = table[y_train], table[y_test]
    elif dataset == "imagenet32-mod10":
        y_train, y_test = y_train % 10, y_test % 10
    return {"train": (x_train, y_train), "test": (x_test, y_test)}


@functools.lru_cache(maxsize=1)
def images_and_classes(root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The training and validation images (N, 32, 32, 3) uint8 and their classes 0..999, read batch by batch
    into one preallocated array: the peak is the images once plus one batch file (3.9 GB + ~0.4 GB at full size),
    where concatenating the ten batches would hold them twice."""
    paths = []
    for i in range(1, 11):
        path = _find(Path(root), f"train_data_batch_{i}")
        if path is None:
            break
        paths.append(path)
    val = _find(Path(root), "val_data")
    if not paths or val is None:
        tried = ", ".join(str(f) for f in folders(Path(root)))
        raise DatasetNotFound(f"dataset 'imagenet32' not found (tried: {tried}): {WHERE}, or set RANDWEIGHTS_DATA")
    x_train, y_train = _read_into(paths)
    x_test, y_test = read_batch(val)
    return x_train, y_train, x_test, y_test


def _read_into(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """The batches of ``paths`` one after the other into one array, grown (rarely: the official batches are all
    about the same size) when the first batch's size times the file count is not enough."""
    images, labels, filled = None, [], 0
    for path in paths:
        x, y = read_batch(path)
        if images is None:
            images = np.empty((len(x) * len(paths) + 1024, *x.shape[1:]), dtype=np.uint8)
        if filled + len(x) > len(images):
            grown = np.empty((2 * (filled + len(x)), *x.shape[1:]), dtype=np.uint8)
            grown[:filled] = images[:filled]
            images = grown
        images[filled : filled + len(x)] = x
        labels.append(y)
        filled += len(x)
        del x
    assert images is not None
    return images[:filled], np.concatenate(labels)
