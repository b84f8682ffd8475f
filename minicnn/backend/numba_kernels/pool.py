"""Max pooling over (C, N, H, W) planes, any window, stride and padding (the 2x2 pool after a
convolution is fused into the convolution instead: planes.py).

A pooled row is a dozen outputs, and in Numba a loop of a dozen costs as much as its set-up,
so the work runs over whole channels: each plane is copied into sh x sw stride phases of its
-inf-bordered padding, phase a * sw + b holding padded[i * sh + a, j * sw + b] at
(i, j), flat with row stride WW, and the N images of a channel lie one after another in
each phase (HH * WW entries each).  Tap (ky, kx) of window (r, s) is then phase
(ky % sh) * sw + kx % sw at (r + ky // sh, s + kx // sw): for every window
q = n * HH * WW + r * WW + s of the channel at once, one contiguous view of one phase,
shifted.  HH = OH + (KH - 1) // SH and WW = OW + (KW - 1) // SW, so a real window's taps
stay inside its own image's entries.  Entries with r >= OH or s >= OW are computed and
dropped: they may read the next image's entries, or the -inf slack after the last one
(as long as the largest shift), never outside the array, and never change a real
window.  Plane by plane, the CIFAR-10 model's two 3x3/2 pools (batch 128, 64 channels)
took 12.4 and 5.6 ms, channel by channel 7.4 and 2.5 (docs/results.md, section 2,
"Max-pool channel by channel").

A window's running maximum starts at -inf with its argmax at the window's first real pixel
(row-major): a tap takes over only where it is larger, or the first NaN (``first_max``),
so padding never wins, an all -inf window points at its first real pixel, ties go to the
first maximum and NaN wins, as numpy.argmax does.  (A window of padding alone, which the
layers reject, points at the nearest pixel: every argmax is inside its plane.)
"""
import functools
from typing import Any, NamedTuple

import numpy as np

from ...ops.workspace import Workspace
from . import first_max, kernel


class PoolPlanes(NamedTuple):
    hh: int         # phase plane rows
    ww: int         # phase plane columns: the flat row stride
    phase_size: int  # entries of one phase: N planes of HH * WW, then the -inf slack
    target: Any     # int32 (H*W,): where input pixel p goes in the phases (sh*sw,
                    # phase_size) flat, for image 0 (image n: + n * HH * WW), -1: in no
                    # window (the last rows or columns a 'valid' pool drops)
    first: Any      # int32 (N*HH*WW,): the first real pixel of window q, its argmax at start
    origin: Any     # int32 (N*HH*WW,): r * SH * W + s * SW, so tap (ky, kx) is at
                    # origin + (ky - PT) * W + (kx - PL)


def _read_only(a):
    a.setflags(write=False)     # cached and read by every thread's kernels
    return a


@functools.lru_cache(maxsize=64)
def pool_planes(g, n, h, w):
    """The PoolPlanes of pool geometry g over n (h, w) images."""
    hh, ww = g.oh + (g.kh - 1) // g.sh, g.ow + (g.kw - 1) // g.sw
    plane = hh * ww
    largest_shift = ((g.kh - 1) // g.sh) * ww + (g.kw - 1) // g.sw
    i, j = np.meshgrid(np.arange(h) + g.pad_top, np.arange(w) + g.pad_left, indexing="ij")
    target = ((i % g.sh) * g.sw + j % g.sw) * (n * plane + largest_shift) \
        + (i // g.sh) * ww + j // g.sw
    target[(i // g.sh >= hh) | (j // g.sw >= ww)] = -1
    r, s = np.divmod(np.arange(plane), ww)
    first = np.minimum(np.maximum(r * g.sh - g.pad_top, 0), h - 1) * w + np.minimum(
        np.maximum(s * g.sw - g.pad_left, 0), w - 1)
    origin = r * g.sh * w + s * g.sw
    return PoolPlanes(hh, ww, n * plane + largest_shift,
                      _read_only(target.astype(np.int32).ravel()),
                      _read_only(np.tile(first, n).astype(np.int32)),
                      _read_only(np.tile(origin, n).astype(np.int32)))


@kernel
def _maxpool_forward(x, kh, kw, sh, sw, pt, pl, hh, ww, target, first, origin, phases, best,
                     arg, y, argmax):
    """y[c, n] = the max of each window of x[c, n]; argmax its flat input pixel.  phases:
    (sh*sw, phase_size) scratch; best, arg: (N*HH*WW,) scratches."""
    c_, n_, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    low = x.dtype.type(-np.inf)
    flat = phases.reshape(phases.size)
    plane = hh * ww
    for c in range(c_):
        flat[:] = low
        for n in range(n_):
            src, offset = x[c, n].reshape(h * w), n * plane
            for p in range(src.size):
                if target[p] >= 0:
                    flat[target[p] + offset] = src[p]
        for q in range(best.size):
            best[q] = low
            arg[q] = first[q]
        for ky in range(kh):
            for kx in range(kw):
                view = phases[(ky % sh) * sw + kx % sw, (ky // sh) * ww + kx // sw:]
                shift = np.int32((ky - pt) * w + kx - pl)
                for q in range(best.size):
                    best[q], arg[q] = first_max(best[q], arg[q], view[q], origin[q] + shift)
        for n in range(n_):
            out, at = y[c, n], argmax[c, n]
            image_best, image_arg = best[n * plane:], arg[n * plane:]
            for r in range(oh):
                for s in range(ow):
                    out[r, s] = image_best[r * ww + s]
                    at[r, s] = image_arg[r * ww + s]


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


def maxpool_forward(x, g, y, argmax, ws=None):
    """y, argmax = the maxima of x's windows and their flat pixels; the scratch (a channel's
    phases, its running maxima and argmaxes) from workspace ws."""
    p = pool_planes(g, *x.shape[1:])
    ws = ws or Workspace(np)
    phases = ws.empty("phases", (g.sh * g.sw, p.phase_size), x.dtype)
    best, arg = ws.empty("best", p.first.shape, x.dtype), ws.empty("arg", p.first.shape, np.int32)
    _maxpool_forward(x, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, p.hh, p.ww, p.target,
                     p.first, p.origin, phases, best, arg, y, argmax)
    return y, argmax


def maxpool_backward(dy, argmax, out):
    _maxpool_backward(dy, argmax, out)
    return out
