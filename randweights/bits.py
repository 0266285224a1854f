"""Bit packing for compact files: booleans at 1 bit each, small unsigned integers at ``bits`` bits each."""

from __future__ import annotations

import numpy as np
import torch


def index_bits(count: int) -> int:
    """Bits that index ``count`` things: ``ceil(log2 count)`` (0 for a single one), in exact integer arithmetic."""
    return (int(count) - 1).bit_length() if count > 1 else 0


def pack_bits(mask: torch.Tensor | np.ndarray) -> np.ndarray:
    """A boolean array as bits, 8 a byte (``np.packbits``, flat, big-endian bit order)."""
    return np.packbits(np.asarray(torch.as_tensor(mask).cpu(), dtype=bool).reshape(-1))


def unpack_bits(data: np.ndarray, shape) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: a boolean tensor of ``shape``."""
    n = int(np.prod(shape))
    return torch.from_numpy(np.unpackbits(data, count=n).astype(bool).reshape(tuple(shape)))


def pack_uint(values: torch.Tensor | np.ndarray, bits: int) -> np.ndarray:
    """Non-negative integers ``< 2**bits`` as a stream of ``bits`` bits each (least significant first)."""
    flat = np.asarray(torch.as_tensor(values).cpu(), dtype=np.int64).reshape(-1)
    if bits == 0 or not flat.size:
        return np.zeros(0, dtype=np.uint8)
    if flat.min() < 0 or flat.max() >= 2**bits:
        raise ValueError(f"pack_uint: values outside [0, 2**{bits})")
    words = flat.astype(_word(bits)).view(np.uint8).reshape(flat.size, -1)  # little-endian bytes of each value
    return np.packbits(np.unpackbits(words, axis=1, count=bits, bitorder="little").reshape(-1))


def unpack_uint(data: np.ndarray, bits: int, shape) -> torch.Tensor:
    """Inverse of :func:`pack_uint`: an int64 tensor of ``shape``."""
    n = int(np.prod(shape))
    if bits == 0 or n == 0:
        return torch.zeros(tuple(shape), dtype=torch.int64)
    word = _word(bits)
    planes = np.zeros((n, 8 * word.itemsize), dtype=np.uint8)
    planes[:, :bits] = np.unpackbits(data, count=n * bits).reshape(n, bits)
    values = np.packbits(planes.reshape(-1), bitorder="little").view(word).astype(np.int64)  # rows of whole bytes
    return torch.from_numpy(values.reshape(tuple(shape)))


def _word(bits: int) -> np.dtype:
    """The smallest little-endian unsigned integer type holding ``bits`` bits (at most 63: values are int64)."""
    return np.dtype(next(f"<u{size}" for size in (1, 2, 4, 8) if bits <= 8 * size))
