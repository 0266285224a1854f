"""Peak host memory of loading ImageNet32 at full size, on synthetic batch files of the real shapes.

Writes ten ``train_data_batch_*`` files (1,281,167 images in all, as the official ones) and ``val_data`` (50,000)
of random pixels in the official format into a scratch folder (about 4 GB of disk; ``--folder`` to choose it,
``--scale`` for a fraction of the size), then, in a fresh process, loads the three label sets with the FCN
chapter's split (10,000 validation images) and draws a batch of each, and prints the rise of the peak resident
memory against the images' uint8 size.

    python benchmarks/imagenet32_memory.py [--scale 1.0] [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TRAIN_IMAGES, VAL_IMAGES = 1_281_167, 50_000

MEASURE = r"""
import json, resource, time
from randweights import data, make_config
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
for name in ("imagenet32", "imagenet32-10", "imagenet32-mod10"):
    splits = data.load(make_config("imp", dataset=name, validation=10000).data)
    x, y = next(data.batches(splits.train, 512))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_rise_gib": (after - before) / 2**20, "seconds": time.perf_counter() - start,
                  "train_images": len(splits.train) + len(splits.validation), "batch": list(x.shape)}))
"""


def write_batches(folder: Path, scale: float) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = np.diff(np.linspace(0, int(TRAIN_IMAGES * scale), 11).astype(int))
    for i, n in enumerate(sizes, 1):
        _write(folder / f"train_data_batch_{i}", rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(1, 1001, n))
    _write(folder / "val_data", rng.integers(0, 256, (int(VAL_IMAGES * scale), 3072), dtype=np.uint8),
           rng.integers(1, 1001, int(VAL_IMAGES * scale)))
    (folder / "classes.dat").write_text(",".join(str(c % 10) for c in range(1000)))
    return int(sizes.sum()) + int(VAL_IMAGES * scale)


def _write(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    with open(path, "wb") as f:
        pickle.dump({"data": data, "labels": labels.tolist(), "mean": np.zeros(3072)}, f, protocol=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full size (default 1)")
    parser.add_argument("--folder", default=None, help="scratch folder for the files (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as scratch:
        start = time.perf_counter()
        images = write_batches(Path(scratch) / "imagenet32", args.scale)
        written = time.perf_counter() - start
        done = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, check=True,
                              env={**os.environ, "RANDWEIGHTS_DATA": scratch})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    uint8_gib = images * 3072 / 2**30
    print(f"ImageNet32 at scale {args.scale}: {images:,} images, {uint8_gib:.2f} GiB as uint8 (files written in {written:.0f} s)")
    print(f"loading the three label sets, splitting and one batch each: peak rises by {result['peak_rise_gib']:.2f} GiB "
          f"({result['peak_rise_gib'] / uint8_gib:.2f}x the uint8 images) in {result['seconds']:.0f} s")
    print(f"this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB peak (writing the files)")


if __name__ == "__main__":
    main()
