"""Phase planes: the layout in which a stride-1 convolution and the 2x2 max-pool after it fuse.

With the pool fused in, conv output pixel (2i + dy, 2j + dx) (dy, dx in {0, 1}:
its place in pool window (i, j)) reads padded input pixel (2i + dy + ky,
2j + dx + kx) under tap (ky, kx).  Split the padded input into the s x s = 4
phase planes P[a][b][i, j] = xpad[2i + a, 2j + b]: tap (r, t) = (dy + ky, dx + kx)
of every window (i, j) reads plane P[r % 2][t % 2] at (i + r // 2, j + t // 2),
the same plane at the same offset.  Flattened with row stride ww, that is one
contiguous, shifted view of the plane over q = i * ww + j (``tap_view``), so
the work runs over long contiguous loops that vectorise (columns j >= cols are
padding: computed, never used).  A window's four conv outputs (its "phases")
sit at the same q of four arrays, so bias, ReLU and the max cost one more
flat pass, and the argmax is one byte (0..3, row-major in the window).
Without a pool (s = 1) there is one phase and the plane is the padded input.

Both the direct algorithm (direct.py: sums of tap views) and the fused im2col
(columns.py: the tap views copied into columns, then one GEMM) work here.
Loops in these kernels run over whole planes, never over rows of a few
pixels: in Numba a 14-pixel row costs as much as its set-up.
"""
import functools
from typing import Any, NamedTuple

import numpy as np

from . import first_max, kernel, ordered_sum, reduce, relu


class Planes(NamedTuple):
    s: int          # pool factor: 2 with the 2x2 pool fused, else 1
    rows: int       # windows per column, PH (or OH)
    cols: int       # windows per row, PW (or OW)
    hh: int         # phase plane height
    ww: int         # phase plane width: the flat row stride
    length: int     # flat outputs computed per plane: (rows - 1) * ww + cols
    source: Any     # int32 (s*s*hh*ww,): the input pixel y * W + x of each plane entry, -1: padding
    target: Any     # int32 (H*W,): the plane entry of each input pixel, -1: in no plane


@functools.lru_cache(maxsize=64)
def plane_geometry(g, s, h, w):
    """The Planes of a stride-1 convolution of geometry g over (h, w) images, with the 2x2
    pool fused (s=2) or not (s=1).  The two index maps turn the layout change into flat
    gathers, computed once per geometry."""
    rows, cols = (g.oh // 2, g.ow // 2) if s == 2 else (g.oh, g.ow)
    hh, ww = rows + (g.kh + s - 2) // s, cols + (g.kw + s - 2) // s
    a, b, i, j = np.meshgrid(range(s), range(s), range(hh), range(ww), indexing="ij")
    y, x = s * i + a - g.pad_top, s * j + b - g.pad_left
    inside = (0 <= y) & (y < h) & (0 <= x) & (x < w)
    source = np.where(inside, y * w + x, -1).astype(np.int32).ravel()
    target = np.full(h * w, -1, np.int32)
    target[source[source >= 0]] = np.flatnonzero(source >= 0)
    return Planes(s, rows, cols, hh, ww, (rows - 1) * ww + cols, source, target)


@kernel
def _gather(src, index, out):
    """out[p, q] = src[p, index[q]], or 0 where index[q] < 0, for every plane p."""
    zero = out.dtype.type(0)
    for p in range(out.shape[0]):
        s, o = src[p], out[p]
        for q in range(index.size):
            k = index[q]
            o[q] = s[max(k, 0)] if k >= 0 else zero


def to_phase_planes(x, p, out):
    """out (C, N, s*s, hh*ww): the phase planes of images x (C, N, H, W)."""
    c, n = x.shape[:2]
    _gather(x.reshape(c * n, -1), p.source, out.reshape(c * n, -1))
    return out


def from_phase_planes(planes, p, out):
    """The adjoint: out (C, N, H, W) from gradients of the phase planes (0 for pixels in no
    plane: the last rows/columns a 'valid' pool drops)."""
    c, n = out.shape[:2]
    _gather(planes.reshape(c * n, -1), p.target, out.reshape(c * n, -1))
    return out


@kernel
def tap_view(planes, c, n, s, ww, r, t):
    """The phase plane of tap (r, t), shifted so that entry q is the tap of window q."""
    return planes[c, n, (r % s) * s + t % s, (r // s) * ww + t // s:]



@kernel
def compact(src, ww, out):
    """out (rows, cols) = the valid columns of src, a plane stored with row stride ww."""
    rows, cols = out.shape
    flat = out.reshape(rows * cols)
    for i in range(rows):
        row, dst = src[i * ww:], flat[i * cols:]    # views: no index arithmetic per pixel
        for j in range(cols):
            dst[j] = row[j]


@kernel
def expand(src, ww, out):
    """The inverse of compact: src (rows, cols) into out with row stride ww (the columns
    j >= cols are left as they are)."""
    rows, cols = src.shape
    flat = src.reshape(rows * cols)
    for i in range(rows):
        row, dst = flat[i * cols:], out[i * ww:]
        for j in range(cols):
            dst[j] = row[j]


@kernel
def relu_pool_2x2(acc, y, argmax):
    """y[q] = the largest of relu(the four phases at q), argmax[q] = its phase.  ReLU before
    the max, as in the reference: where all four are <= 0 they tie at 0 and phase 0 wins, so
    a NaN in the gradient goes where the reference sends it.  The first maximum wins ties,
    the first NaN wins over numbers; branch-free over flat q, so it vectorises."""
    a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
    zero = acc.dtype.type(0)
    for q in range(y.size):
        best, k = relu(a0[q], zero), np.uint8(0)
        best, k = first_max(best, k, relu(a1[q], zero), np.uint8(1))
        best, k = first_max(best, k, relu(a2[q], zero), np.uint8(2))
        best, k = first_max(best, k, relu(a3[q], zero), np.uint8(3))
        y[q] = best
        argmax[q] = k


@kernel
def unpool_relu(dy, y, argmax, dz):
    """dz[phase, q] = dy[q] * (y[q] > 0) for the phase that won window q, 0 for the others
    (a multiplication, as the reference's ReLU backward: NaN * 0 stays NaN); returns the sum
    of what went through, the window's share of db.  One output stream per loop, so each
    loop vectorises."""
    zero = dy.dtype.type(0)
    g = dz[0]                   # first the masked gradient, then it is spread over the phases
    for q in range(y.size):
        g[q] = dy[q] * (y[q] > zero)
    total = ordered_sum(g[:y.size])
    for phase in range(3, -1, -1):
        z, k = dz[phase], np.uint8(phase)
        for q in range(y.size):
            z[q] = g[q] if argmax[q] == k else zero
    return total


@kernel
def pool_epilogue(acc, ww, y_pad, argmax, y):
    """ReLU and the 2x2 max of one plane's four phases acc (4, length): y_pad and argmax at
    row stride ww (kept for backward), y compact (rows, cols)."""
    relu_pool_2x2(acc, y_pad, argmax)
    compact(y_pad, ww, y)


@reduce
def unpool_plane(dy, y_pad, argmax, ww, dy_pad, dz):
    """The pooled gradient of one plane, dy (rows, cols), spread over its four phases dz
    (4, length) (see unpool_relu); dy_pad is scratch whose padding columns must be zero."""
    expand(dy, ww, dy_pad)
    return unpool_relu(dy_pad, y_pad, argmax, dz)


def phase_planes(x, p, ws):
    """The phase planes (C, N, s*s, hh*ww) of images x (C, N, H, W), in workspace ws."""
    c, n = x.shape[:2]
    return to_phase_planes(x, p, ws.empty("planes", (c, n, p.s * p.s, p.hh * p.ww), x.dtype))


def batch_phase_planes(x, p, ws):
    """The phase planes of one-channel images x (1, N, H, W), image after image: (s*s,
    N * hh * ww + ww + 1), image n's phase k at [k, n * hh * ww:], then zeros (the
    largest tap shift, ww + 1), so that one view of a phase serves every image of the
    batch (direct.py's one-channel path)."""
    n, plane = x.shape[1], p.hh * p.ww
    out = ws.empty("batch_planes", (p.s * p.s, n * plane + p.ww + 1), x.dtype)
    images = x[0].reshape(n, -1)
    for k in range(p.s * p.s):      # phase k of every image: the gather of to_phase_planes
        _gather(images, p.source[k * plane:(k + 1) * plane], out[k, :n * plane].reshape(n, -1))
    out[:, n * plane:] = 0
    return out


@functools.lru_cache(maxsize=16)
def window_mask(rows, cols, hh, ww, n):
    """uint8 (n * hh * ww,): 1 at the entries of n planes laid out image after image that are
    windows (i < rows, j < cols), 0 at the padding columns and the rows between images."""
    i, j = np.divmod(np.arange(hh * ww), ww)
    mask = np.tile(((i < rows) & (j < cols)).astype(np.uint8), n)
    mask.setflags(write=False)          # cached, read by every thread's kernels
    return mask


def pooled_outputs(ws, f, n, p, dtype):
    """The buffers of a fused conv + ReLU + 2x2 pool output, in workspace ws: y (F, N, PH, PW)
    compact, and at row stride ww, for backward, y_pad (its sign is the ReLU mask) and the
    uint8 argmax phase of each window."""
    return (ws.empty("y", (f, n, p.rows, p.cols), dtype),
            ws.empty("y_pad", (f, n, p.length), dtype),
            ws.empty("argmax", (f, n, p.length), np.uint8))
