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
    """``{"train": (x, y), "test": (x, y)}`` of ``dataset`` (one of :data:`DATASETS`)."""
    trains = []
    for i in range(1, 11):
        path = _find(root, f"train_data_batch_{i}")
        if path is None:
            break
        trains.append(read_batch(path))
    val = _find(root, "val_data")
    if not trains or val is None:
        tried = ", ".join(str(f) for f in folders(root))
        raise DatasetNotFound(f"dataset {dataset!r} not found (tried: {tried}): {WHERE}, or set RANDWEIGHTS_DATA")
    x_train = np.concatenate([x for x, _ in trains])
    y_train = np.concatenate([y for _, y in trains])
    x_test, y_test = read_batch(val)
    if dataset == "imagenet32-10":
        table = super_classes(root)
        y_train, y_test = table[y_train], table[y_test]
    elif dataset == "imagenet32-mod10":
        y_train, y_test = y_train % 10, y_test % 10
    return {"train": (x_train, y_train), "test": (x_test, y_test)}
