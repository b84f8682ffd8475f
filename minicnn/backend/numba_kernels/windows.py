"""Index maps of a sliding window: which input pixel each tap of each window reads.

Computed once per geometry with NumPy, they turn im2col, col2im and pooling
into flat gathers over whole planes (no per-row loops, no bounds checks in the
kernels), for any kernel size, stride and padding.
"""
import functools
from typing import Any, NamedTuple

import numpy as np


class WindowMaps(NamedTuple):
    reads: Any          # int32 (KH*KW, OH*OW): input pixel y * W + x of tap k of window q, -1: padding
    window_reads: Any   # the same, transposed (OH*OW, KH*KW): the pixels of each window
    read_by: Any        # int32 (KH*KW, H*W): the window whose tap k reads input pixel p, -1: none


@functools.lru_cache(maxsize=128)
def window_maps(g, h, w):
    """The WindowMaps of geometry g over (h, w) planes (each tap reads a pixel for at most one
    window, so ``read_by`` is well defined)."""
    ky, kx, oh, ow = np.meshgrid(range(g.kh), range(g.kw), range(g.oh), range(g.ow),
                                 indexing="ij")
    y, x = oh * g.sh - g.pad_top + ky, ow * g.sw - g.pad_left + kx
    inside = (0 <= y) & (y < h) & (0 <= x) & (x < w)
    reads = np.where(inside, y * w + x, -1).reshape(g.kh * g.kw, g.oh * g.ow).astype(np.int32)
    read_by = np.full((g.kh * g.kw, h * w), -1, np.int32)
    for k in range(g.kh * g.kw):
        hit = reads[k] >= 0
        read_by[k, reads[k, hit]] = np.flatnonzero(hit)
    return WindowMaps(reads, np.ascontiguousarray(reads.T), read_by)
