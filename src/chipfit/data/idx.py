"""The idx file format of (Fashion-)MNIST, parsed by hand: a magic number, dimension sizes, raw data.

Magic: two zero bytes, a type code (0x08 = unsigned byte, 0x09 signed byte, 0x0B short, 0x0C int,
0x0D float, 0x0E double), the number of dimensions; then one big-endian uint32 per dimension.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class IdxError(ValueError):
    """A missing, truncated or corrupt idx file (the message names the file and the problem)."""


def read_idx(path: str | Path, expect_ndim: int | None = None) -> np.ndarray:
    """Read an idx file (optionally gzip-compressed) into an array, checking the magic number and sizes."""
    path = Path(path)
    if not path.is_file():
        raise IdxError(f"{path}: no such file")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise IdxError(f"{path}: cannot decompress ({e}); the file is truncated or corrupt") from None
    if len(raw) < 4:
        raise IdxError(f"{path}: {len(raw)} bytes, too short for an idx header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code not in _TYPES or ndim == 0:
        raise IdxError(f"{path}: bad magic number {raw[:4].hex()} (expected 0000 08 0n for an idx file)")
    if expect_ndim is not None and ndim != expect_ndim:
        raise IdxError(f"{path}: {ndim} dimensions, expected {expect_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: truncated header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_TYPES[dtype_code])
    need = math.prod(dims) * dtype.itemsize  # Python ints: numpy's int64 product would wrap round
    have = len(raw) - header
    if have != need:
        shape = " x ".join(map(str, dims)) if ndim <= 6 else f"{ndim} dimensions"
        raise IdxError(f"{path}: header says {shape} ({need} data bytes) but the file holds {have}: "
                       f"{'truncated' if have < need else 'trailing bytes'}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write an array as idx (gzip when the name ends in .gz); used by tests and for exporting data."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
             np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}
    arr = np.asarray(array)
    if arr.dtype not in codes:
        arr = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.kind in "if" else arr
    code = codes.get(arr.dtype)
    if code is None:
        raise ValueError(f"idx cannot hold dtype {array.dtype}")
    data = struct.pack(">HBB", 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path
