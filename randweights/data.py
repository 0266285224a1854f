"""MNIST, Fashion-MNIST and CIFAR-10 from disk, as tensors, with fixed splits and class-balanced subsets.

Where the data is looked up, in order:

1. ``$RANDWEIGHTS_DATA`` (default ``data/``) in torchvision's layout: ``MNIST/raw/*-ubyte``,
   ``FashionMNIST/raw/*-ubyte`` (``.gz`` also read), ``cifar-10-batches-py/``, or the arrays ``cifar10.npz``
   (``x_train, y_train, x_test, y_test``; uint8, HWC).
2. Fashion-MNIST only: Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``).
3. ``RANDWEIGHTS_DOWNLOAD`` ``auto`` (default): when the files are missing and the dataset's server answers
   (Colab), torchvision downloads them into the root; ``1``: always try; ``0``: never.

Whole datasets are held as tensors and batched by index, which is several times faster on a CPU than a
``DataLoader`` over PIL images.
"""

from __future__ import annotations

import functools
import gzip
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import env, imagenet32
from .config import DataConfig
from .errors import ConfigError, DatasetDamaged, DatasetNotFound, check_choice

SPLIT_SEED = 20200  # fixed: validation split and subsets never depend on the run's seed
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")

STATS = {  # per-channel mean and std of the training images, pixels in [0, 1]
    "mnist": ((0.1307,), (0.3081,)),
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.491, 0.482, 0.447), (0.247, 0.243, 0.262)),
    **dict.fromkeys(imagenet32.DATASETS, ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))),  # ImageNet's usual
}
NUM_CLASSES = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10, **imagenet32.DATASETS}
SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32),
          **dict.fromkeys(imagenet32.DATASETS, (3, 32, 32))}
SIZES = {"mnist": (60000, 10000), "fashion-mnist": (60000, 10000), "cifar10": (50000, 10000),  # (train, test) images
         **dict.fromkeys(imagenet32.DATASETS, (1281167, 50000))}
IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def data_root() -> Path:
    return env.data_dir()


DOWNLOAD_HOSTS = {  # where torchvision downloads each dataset from
    "mnist": ("ossci-datasets.s3.amazonaws.com", 443),
    "fashion-mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com", 80),
    "cifar10": ("www.cs.toronto.edu", 443),
}


def download_setting() -> str:
    """``RANDWEIGHTS_DOWNLOAD``: ``"auto"`` (default; download missing files when the server is reachable),
    ``"1"`` (always try) or ``"0"`` (never)."""
    mode = env.download_mode()
    return "auto" if mode is None else ("1" if mode else "0")


def download_allowed() -> bool:
    """Whether downloading was asked for explicitly (``RANDWEIGHTS_DOWNLOAD=1``)."""
    return download_setting() == "1"


def reachable(dataset: str, timeout: float = 3.0) -> bool:
    """Whether the server ``dataset`` downloads from accepts a connection (so: online)."""
    import socket

    try:
        socket.create_connection(DOWNLOAD_HOSTS[dataset], timeout=timeout).close()
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------------------------- raw arrays
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or gzip), the format of MNIST and Fashion-MNIST. A file that is truncated or not
    IDX raises :class:`DatasetDamaged` naming it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = bytearray(f.read())  # writable, so the images can back a tensor without a copy
    except (OSError, EOFError) as err:  # gzip: truncated stream or not gzip at all
        raise DatasetDamaged(path, f"cannot be read: {err}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DatasetDamaged(path, "not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = 4 + 4 * ndim + int(np.prod(dims))
    if len(raw) != expected:
        raise DatasetDamaged(path, f"{len(raw)} bytes, its header says {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_candidates(dataset: str, root: Path) -> list[Path]:
    folders = [root / IDX_FOLDERS[dataset] / "raw"]
    if dataset == "fashion-mnist":
        folders.append(DEBIAN_FASHION)
    return folders


def _find_idx(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _load_idx(dataset: str, root: Path, tried: list[str]):
    for folder in _idx_candidates(dataset, root):
        tried.append(str(folder))
        found = {split: [_find_idx(folder, n) for n in names] for split, names in IDX_FILES.items()}
        paths = {split: [p for p in ps if p is not None] for split, ps in found.items()}
        if all(len(paths[split]) == len(names) for split, names in IDX_FILES.items()):
            return {split: (read_idx(x), read_idx(y).astype(np.int64)) for split, (x, y) in paths.items()}
    return None


def _load_cifar(root: Path, tried: list[str]):
    npz = root / "cifar10.npz"
    tried.append(str(npz))
    if npz.is_file():
        try:
            d = np.load(npz)
            return {
                "train": (d["x_train"], d["y_train"].astype(np.int64)),
                "test": (d["x_test"], d["y_test"].astype(np.int64)),
            }
        except Exception as err:  # noqa: BLE001 - zip, pickle or key errors all mean the same: a bad file
            raise DatasetDamaged(npz, f"{type(err).__name__}: {err}") from None
    folder = root / "cifar-10-batches-py"
    tried.append(str(folder))
    if (folder / "test_batch").is_file():
        parts = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        out = {}
        for split, names in parts.items():
            xs, ys = [], []
            for name in names:
                try:
                    with open(folder / name, "rb") as f:
                        batch = pickle.load(f, encoding="latin1")
                    xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
                    ys.append(np.asarray(batch["labels"], dtype=np.int64))
                except Exception as err:  # noqa: BLE001 - truncated pickle, wrong keys or shapes: a bad file
                    raise DatasetDamaged(folder / name, f"{type(err).__name__}: {err}") from None
            out[split] = (np.concatenate(xs), np.concatenate(ys))
        return out
    return None


def _download(dataset: str, root: Path) -> None:
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[dataset]
    for train in (True, False):
        cls(str(root), train=train, download=True)


def load_arrays(dataset: str, root: str | None = None, download: bool | None = None):
    """``{"train": (x, y), "test": (x, y)}`` as uint8 images (N, H, W[, C]) and int64 labels (cached per root)."""
    check_choice("dataset", dataset, NUM_CLASSES)
    root_path = Path(root) if root is not None else data_root()
    mode = download_setting() if download is None else ("1" if download else "0")
    return _load_arrays(dataset, str(root_path.resolve()), mode)


@functools.lru_cache(maxsize=4)
def _load_arrays(dataset: str, root: str, download: str):
    root_path = Path(root)
    if dataset in imagenet32.DATASETS:  # no download: ImageNet needs an account
        return imagenet32.load_arrays(dataset, root_path)
    tried: list[str] = []
    load = (lambda t: _load_cifar(root_path, t)) if dataset == "cifar10" else (lambda t: _load_idx(dataset, root_path, t))
    arrays = load(tried)
    online = download == "1" or (download == "auto" and dataset in DOWNLOAD_HOSTS and reachable(dataset))
    if arrays is None and online:
        _download(dataset, root_path)
        arrays = load([])
    if arrays is None:
        raise DatasetNotFound(
            f"dataset {dataset!r} not found (tried: {', '.join(tried)}) and {'not downloaded' if online else 'offline, so not downloaded'}: "
            f"copy it in torchvision's layout into a folder and set RANDWEIGHTS_DATA to that folder (see data/README.md)."
        )
    return arrays


def train_count(cfg: DataConfig) -> int:
    """Training images a run of ``cfg`` steps over, from the datasets' published sizes (no file read): ``subset``
    when set, else the training split less the ``validation`` images."""
    if cfg.subset is not None:
        return cfg.subset
    return SIZES[cfg.dataset][0] - cfg.validation


# ----------------------------------------------------------------------------------------------- splits
class Split:
    """Labels ``y`` (N,) int64 and the images, served as normalized float32 (N, C, H, W): ``images(idx)`` for a
    batch, ``x`` for all of them. This class holds them as one float tensor (tests, synthetic data); the
    datasets come as :class:`StoredSplit`, uint8 converted per batch."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self._x = x
        self.y = y

    @property
    def x(self) -> torch.Tensor:
        return self._x

    @property
    def device(self) -> torch.device:
        return self.y.device

    def __len__(self) -> int:
        return len(self.y)

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        return self._x[idx]

    def nbytes(self) -> int:
        return self._x.numel() * self._x.element_size() + self.y.numel() * self.y.element_size()

    def to(self, device: torch.device) -> Split:
        return Split(self._x.to(device), self.y.to(device))

    def with_labels(self, y: torch.Tensor) -> Split:
        return Split(self._x, y)

    def head(self, n: int) -> Split:
        """The first ``n`` images and labels."""
        return Split(self._x[:n], self.y[:n])

    def with_pixels_permuted(self, perm: torch.Tensor) -> Split:
        """Every image's pixel positions (h * w of them, the same for each channel) reordered by ``perm``."""
        return Split(permute_pixels(self._x, perm), self.y)


def permute_pixels(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, c, h * w)[..., perm.to(x.device)].reshape(n, c, h, w).contiguous()


class StoredSplit(Split):
    """A split of a dataset held as its uint8 images (M, H, W[, C]), shared by every split and label variant of the
    dataset (never copied), with the indices of this split's images: each batch is gathered, converted to float32
    and normalized on the device the images live on (the arithmetic the whole-set float32 conversion used, so bit for bit the same
    numbers). ImageNet32's 1.28 M training images take 3.9 GB this way instead of 15.7 GB as float32."""

    def __init__(self, raw: torch.Tensor, index: torch.Tensor, y: torch.Tensor, dataset: str,
                 pixel_perm: torch.Tensor | None = None, normalize: str = "standardize",
                 shift: torch.Tensor | None = None, scale: torch.Tensor | None = None):
        self.raw, self.index, self.y, self.dataset, self.pixel_perm = raw, index, y, dataset, pixel_perm
        self.normalize = normalize
        if shift is None or scale is None:
            shift, scale = normalization(dataset, normalize, raw, index)
        self._mean, self._std = shift.to(raw.device), scale.to(raw.device)

    def _like(self, raw: torch.Tensor, index: torch.Tensor, y: torch.Tensor, pixel_perm) -> StoredSplit:
        """A split over other images / labels with this one's normalization (the same shift and scale)."""
        return StoredSplit(raw, index, y, self.dataset, pixel_perm, self.normalize, self._mean.to(raw.device), self._std.to(raw.device))

    @property
    def x(self) -> torch.Tensor:  # every image as float32: for small splits (a test set, a probe)
        return self.images(torch.arange(len(self), device=self.index.device))

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        t = self.raw[self.index[idx.to(self.index.device)]].to(torch.float32).div_(255.0)
        t = t.permute(0, 3, 1, 2) if t.ndim == 4 else t.unsqueeze(1)
        t = ((t - self._mean) / self._std).contiguous()
        return t if self.pixel_perm is None else permute_pixels(t, self.pixel_perm)

    def nbytes(self) -> int:
        return self.raw.numel() + self.index.numel() * 8 + self.y.numel() * self.y.element_size()

    def to(self, device: torch.device) -> StoredSplit:
        if self.raw.device == device:
            return self
        compact = self.index.numel() < self.raw.shape[0]  # a subset: move only its images
        raw = self.raw[self.index] if compact else self.raw
        index = torch.arange(self.index.numel()) if compact else self.index
        perm = None if self.pixel_perm is None else self.pixel_perm.to(device)
        return self._like(raw.to(device), index.to(device), self.y.to(device), perm)

    def with_labels(self, y: torch.Tensor) -> StoredSplit:
        return self._like(self.raw, self.index, y, self.pixel_perm)

    def head(self, n: int) -> StoredSplit:
        return self._like(self.raw, self.index[:n], self.y[:n], self.pixel_perm)

    def with_pixels_permuted(self, perm: torch.Tensor) -> StoredSplit:
        if self.pixel_perm is not None:
            perm = self.pixel_perm[perm]
        return self._like(self.raw, self.index, self.y, perm)


def normalization(dataset: str, normalize: str, raw: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``(shift, scale)`` a batch of pixels in [0, 1] is normalized with, ``(x - shift) / scale``:
    ``standardize``: the dataset's per-channel mean and std (:data:`STATS`); ``unit``: none (pixels in [0, 1], as
    torchvision's ``ToTensor``); ``mean-image``: the mean image of the training images ``raw[index]`` (every pixel and
    channel its own mean, the FCN paper's code), scale 1."""
    if normalize == "unit":
        return torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    if normalize == "mean-image":
        total = torch.zeros(raw.shape[1:], dtype=torch.float64)
        for chunk in index.split(10000):  # in chunks: no float copy of the whole set
            total += raw[chunk].to(torch.float64).sum(0)
        mean = (total / max(1, len(index)) / 255.0).to(torch.float32)
        mean = mean.permute(2, 0, 1) if mean.ndim == 3 else mean.unsqueeze(0)
        return mean.unsqueeze(0), torch.ones(1, 1, 1, 1)
    means, stds = STATS[dataset]
    return torch.tensor(means).view(1, -1, 1, 1), torch.tensor(stds).view(1, -1, 1, 1)


@dataclass
class Splits:
    train: Split
    validation: Split | None
    test: Split
    num_classes: int
    input_shape: tuple[int, int, int]


def balanced_indices(labels: np.ndarray, count: int, rng: np.random.Generator, parameter: str = "subset") -> np.ndarray:
    """``count`` indices with the classes as equal as possible (the first classes get the remainder). More than
    the classes allow is a ConfigError naming ``parameter``."""
    classes, sizes = np.unique(labels, return_counts=True)
    per_class = [count // len(classes) + (i < count % len(classes)) for i in range(len(classes))]
    picked = []
    for c, n in zip(classes, per_class):
        members = np.flatnonzero(labels == c)
        if n > len(members):
            raise ConfigError(parameter, count, f"at most {len(classes) * int(sizes.min())} (class-balanced: class {c} has {len(members)} images)")
        picked.append(rng.permutation(members)[:n])
    return np.sort(np.concatenate(picked))


def load(cfg: DataConfig) -> Splits:
    """Fixed train / validation / test splits for ``cfg``. The validation images come out of the training split
    (``validation_from="train"``; ``subset`` then takes a class-balanced sample of what is left), or are the first
    ``validation`` test images (``"test"``, the FCN paper's code: its "validation set" is ImageNet32's validation
    batch, our test split). Neither depends on the run's seed."""
    arrays = load_arrays(cfg.dataset)
    x_train, y_train = arrays["train"]
    x_test, y_test = arrays["test"]
    rng = np.random.default_rng(SPLIT_SEED)
    order = np.arange(len(y_train))
    val_idx = np.array([], dtype=np.int64)
    if cfg.validation and cfg.validation_from == "test":  # the first test images; nothing held out of training
        if cfg.validation > len(y_test):
            raise ConfigError("validation", cfg.validation, f"at most the {len(y_test)} test images of {cfg.dataset} (validation_from=test)")
    elif cfg.validation:
        if cfg.validation >= len(y_train):
            raise ConfigError("validation", cfg.validation, f"fewer than the {len(y_train)} training images of {cfg.dataset}")
        val_idx = balanced_indices(y_train, cfg.validation, rng, "validation")
        order = np.setdiff1d(order, val_idx)
    if cfg.subset is not None:
        if cfg.subset > len(order):
            raise ConfigError("subset", cfg.subset, f"at most {len(order)} for {cfg.dataset}")
        order = order[balanced_indices(y_train[order], cfg.subset, rng)]

    raw_train, raw_test = torch.from_numpy(x_train), torch.from_numpy(x_test)  # shared, never copied
    # one shift and scale for every split, from the training images (the mean image of `mean-image`)
    shift, scale = normalization(cfg.dataset, cfg.normalize, raw_train, torch.from_numpy(order))

    def split(raw: torch.Tensor, labels: np.ndarray, index: np.ndarray) -> StoredSplit:
        return StoredSplit(raw, torch.from_numpy(np.asarray(index, dtype=np.int64)),
                           torch.from_numpy(np.asarray(labels[index], dtype=np.int64)), cfg.dataset,
                           normalize=cfg.normalize, shift=shift, scale=scale)

    return Splits(
        train=split(raw_train, y_train, order),
        validation=None if not cfg.validation else (split(raw_test, y_test, np.arange(cfg.validation)) if cfg.validation_from == "test"
                                                    else split(raw_train, y_train, val_idx)),
        test=split(raw_test, y_test, np.arange(len(y_test))),
        num_classes=NUM_CLASSES[cfg.dataset],
        input_shape=SHAPES[cfg.dataset],
    )


def to_device(splits: Splits, device: torch.device, max_fraction: float = 0.5) -> Splits:
    """Move every split onto ``device`` once (CUDA), where the tensors take at most ``max_fraction`` of its free
    memory, so batches are gathered there and no image crosses the bus again; otherwise ``splits`` unchanged."""
    if device.type != "cuda":
        return splits
    parts = [s for s in (splits.train, splits.validation, splits.test) if s is not None]
    size = sum(s.nbytes() for s in parts)
    free, _ = torch.cuda.mem_get_info(device)
    if size > max_fraction * free:
        return splits

    validation = None if splits.validation is None else splits.validation.to(device)
    return Splits(splits.train.to(device), validation, splits.test.to(device), splits.num_classes, splits.input_shape)


# ----------------------------------------------------------------------------------------------- batches
def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with ``pad`` zero padding, then a random horizontal flip, per image (the CIFAR recipe)."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)  # drawn on the CPU: same as before
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device).view(1, h)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device).view(1, w)).view(n, 1, 1, w)
    batch_idx = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan_idx = torch.arange(x.shape[1], device=x.device).view(1, -1, 1, 1)
    out = padded[batch_idx, chan_idx, rows, cols]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    out[flip] = out[flip].flip(-1)
    return out


def flip_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random horizontal flip per image, nothing else (Slot Machines' released CIFAR-10 code)."""
    flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
    out = x.clone()
    out[flip] = out[flip].flip(-1)
    return out


def random_affine_batch(x: torch.Tensor, generator: torch.Generator, rotation: float = 10.0, zoom: float = 0.1,
                        shift: float = 0.1) -> torch.Tensor:
    """Per image a random rotation in +-``rotation`` degrees, zoom in 1 +- ``zoom`` (each axis) and shift in
    +-``shift`` of the size (each axis), bilinear, edges repeated: Keras' ImageDataGenerator(rotation_range=10,
    zoom_range=0.1, width_shift_range=0.1, height_shift_range=0.1) of LaPerm's Conv7 notebook."""
    n = x.shape[0]
    draw = torch.rand(n, 5, generator=generator) * 2 - 1  # rotation, zoom x, zoom y, shift x, shift y in [-1, 1)
    angle = draw[:, 0] * math.radians(rotation)
    zx, zy = 1 + zoom * draw[:, 1], 1 + zoom * draw[:, 2]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) * zx, -torch.sin(angle) * zy
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) * zx, torch.cos(angle) * zy
    theta[:, :, 2] = draw[:, 3:] * 2 * shift  # grid units: the image spans [-1, 1]
    grid = torch.nn.functional.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augmentation(cfg: DataConfig) -> tuple[str, ...]:
    """The training-time augmentations of ``cfg``: ``"crop-flip"`` (CIFAR's ``augment``), ``"flip"`` (``augment``
    with ``crop=False``), ``"affine"``."""
    cifar = ("crop-flip" if cfg.crop else "flip",) if cfg.augment and cfg.dataset == "cifar10" else ()
    return cifar + (("affine",) if cfg.random_affine else ())


def sampled_batches(split: Split, batch_size: int, steps: int, generator: torch.Generator, augment: bool | tuple = False):
    """Yield ``steps`` batches, each of ``batch_size`` images drawn uniformly WITH replacement (the official IMP
    code's ``np.random.choice(n, batch_size)``), so the number of steps does not depend on the data size."""
    for _ in range(steps):
        idx = torch.randint(len(split), (batch_size,), generator=generator).to(split.device)
        yield _augmented(split.images(idx), split.y[idx], generator, augment)


def _augmented(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator, augment: bool | tuple):
    kinds = ("crop-flip",) if augment is True else (augment or ())
    if "crop-flip" in kinds:
        x = augment_batch(x, generator)
    if "flip" in kinds:
        x = flip_batch(x, generator)
    if "affine" in kinds:
        x = random_affine_batch(x, generator)
    return x, y


def batches(split: Split, batch_size: int, generator: torch.Generator | None = None, augment: bool | tuple = False):
    """Yield ``(x, y)`` batches; shuffled when a generator is given (training), in order otherwise. ``augment``:
    True (crop and flip) or the names of :func:`augmentation`."""
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order.to(split.device)  # gather on the device the split lives on
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x, y = split.images(idx), split.y[idx]
        yield _augmented(x, y, generator, augment) if generator is not None else (x, y)
