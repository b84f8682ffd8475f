"""Max pooling over (C, N, H, W) planes, any window, stride and padding (the 2x2 pool after a
convolution is fused into the convolution instead: planes.py).

A pooled row is a dozen outputs, and in Numba a loop of a dozen costs as much as its set-up,
so the work runs over whole planes: each plane is copied into sh x sw stride phases of its
-inf-bordered padding, P[a][b][i, j] = padded[i * sh + a, j * sw + b], flat with row
stride WW.  Tap (ky, kx) of window (r, s) is then P[ky % sh][kx % sw] at
(r + ky // sh, s + kx // sw): for every window q = r * WW + s at once, one contiguous view
of one phase, shifted.  Columns s >= OW of a row are computed and dropped.

A window's running maximum starts at -inf with its argmax at the window's first real pixel
(row-major): a tap takes over only where it is larger, or the first NaN (``first_max``),
so padding never wins, an all -inf window points at its first real pixel, ties go to the
first maximum and NaN wins, as numpy.argmax does.
"""
import functools
from typing import Any, NamedTuple

import numpy as np

from . import first_max, kernel


class PoolPlanes(NamedTuple):
    hh: int         # phase plane rows
    ww: int         # phase plane columns: the flat row stride
    length: int     # windows computed per plane: (OH - 1) * WW + OW
    target: Any     # int32 (H*W,): where input pixel y * W + x goes in the phases, -1: in no
                    # window (the last rows or columns a 'valid' pool drops)
    first: Any      # int32 (length,): the first real pixel of window q, its argmax at start
    origin: Any     # int32 (length,): r * SH * W + s * SW, so tap (ky, kx) is at
                    # origin + (ky - PT) * W + (kx - PL)


@functools.lru_cache(maxsize=64)
def pool_planes(g, h, w):
    hh, ww = g.oh + (g.kh - 1) // g.sh, g.ow + (g.kw - 1) // g.sw
    i, j = np.meshgrid(np.arange(h) + g.pad_top, np.arange(w) + g.pad_left, indexing="ij")
    target = (((i % g.sh) * g.sw + j % g.sw) * hh + i // g.sh) * ww + j // g.sw
    target[(i // g.sh >= hh) | (j // g.sw >= ww)] = -1
    r, s = np.divmod(np.arange((g.oh - 1) * ww + g.ow), ww)
    first = np.maximum(r * g.sh - g.pad_top, 0) * w + np.minimum(
        np.maximum(s * g.sw - g.pad_left, 0), w - 1)
    return PoolPlanes(hh, ww, len(r), target.astype(np.int32).ravel(),
                      first.astype(np.int32), (r * g.sh * w + s * g.sw).astype(np.int32))


@kernel
def _maxpool_forward(x, kh, kw, sh, sw, pt, pl, target, first, origin, phases, best, arg,
                     y, argmax):
    """y[c, n] = the max of each window of x[c, n]; argmax its flat input pixel."""
    c_, n_ = x.shape[:2]
    oh, ow = y.shape[2], y.shape[3]
    hh, ww = phases.shape[2], phases.shape[3]
    w = x.shape[3]
    low = x.dtype.type(-np.inf)
    flat = phases.reshape(phases.size)
    length = best.size
    for c in range(c_):
        for n in range(n_):
            flat[:] = low
            src = x[c, n].reshape(x.shape[2] * w)
            for p in range(src.size):
                if target[p] >= 0:
                    flat[target[p]] = src[p]
            for q in range(length):
                best[q] = low
                arg[q] = first[q]
            for ky in range(kh):
                for kx in range(kw):
                    plane = phases[ky % sh, kx % sw].reshape(hh * ww)
                    view = plane[(ky // sh) * ww + kx // sw:]
                    shift = np.int32((ky - pt) * w + kx - pl)
                    for q in range(length):
                        best[q], arg[q] = first_max(best[q], arg[q], view[q], origin[q] + shift)
            out, at = y[c, n], argmax[c, n]
            for r in range(oh):
                for s in range(ow):
                    out[r, s] = best[r * ww + s]
                    at[r, s] = arg[r * ww + s]


@kernel
def _maxpool_backward(dy, argmax, dx):
    """dx = 0, then dy[c, n, q] added at argmax[c, n, q] of its plane (windows may overlap,
    so this scatter is sequential)."""
    c_, n_ = dx.shape[:2]
    for c in range(c_):
        for n in range(n_):
            plane = dx[c, n].reshape(dx.shape[2] * dx.shape[3])
            plane[:] = 0
            d, a = dy[c, n].ravel(), argmax[c, n].ravel()
            for q in range(d.size):
                plane[a[q]] += d[q]


def maxpool_forward(x, g, y, argmax):
    p = pool_planes(g, *x.shape[2:])
    phases = np.empty((g.sh, g.sw, p.hh, p.ww), x.dtype)
    best, arg = np.empty(p.length, x.dtype), np.empty(p.length, np.int32)
    _maxpool_forward(x, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, p.target, p.first,
                     p.origin, phases, best, arg, y, argmax)
    return y, argmax


def maxpool_backward(dy, argmax, out):
    _maxpool_backward(dy, argmax, out)
    return out
