"""The IDX file format of MNIST, gzip-compressed or raw.

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one big-endian uint32 per dimension; the data follows.
"""
import struct
from pathlib import Path

import numpy as np

from .files import decompressed

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
          0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IdxError(ValueError):
    """The file is not a valid IDX file; the message says what is wrong."""


def parse_idx(data, name="<bytes>", expect_ndim=None):
    """IDX bytes -> ndarray, checking the magic number, dimensions and length."""
    if len(data) < 4:
        raise IdxError(f"{name}: too short to be an IDX file ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in _TYPES or ndim == 0:
        raise IdxError(f"{name}: bad IDX magic number 0x{data[:4].hex()} "
                       "(expected 0x0000 + type + dimensions, e.g. 0x00000803 for images)")
    if expect_ndim is not None and ndim != expect_ndim:
        raise IdxError(f"{name}: expected {expect_ndim} dimensions, the header says {ndim}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_TYPES[code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise IdxError(f"{name}: {'truncated' if len(data) < expected else 'trailing data'}: "
                       f"header says {shape} ({expected} bytes), file has {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="), copy=False)


def read_idx(path, expect_ndim=None):
    """The array in an IDX file, gzip-compressed or raw."""
    return parse_idx(decompressed(Path(path).read_bytes(), str(path)), str(path), expect_ndim)


def encode_idx(array):
    """ndarray (uint8) -> IDX bytes; the inverse of parse_idx, used by tests and tools."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape) + array.tobytes()
