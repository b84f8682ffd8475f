"""im2col and col2im for images laid out (C, N, H, W), and the fused conv + ReLU + 2x2 pool.

``im2col``/``col2im`` are the backend kernels every algorithm and geometry can
use: columns ordered (n, oh, ow).  The fused step orders its columns the way
the pool reads them: (n, phase, window), with phase planes (planes.py), so
that each column row is a run of contiguous copies of shifted views, the GEMM
output holds every window's four conv outputs side by side, and bias, ReLU
and the max-pool are one flat pass over it.  It runs a few images at a time,
their columns cache-sized, as chunked.py does for the plain convolution.
"""
from typing import Any, NamedTuple

import numpy as np

from ...ops import OpPair
from ...ops.workspace import Workspace
from . import kernel, reduce
from .chunked import CHUNK_BYTES
from .windows import window_maps
from .planes import (Planes, from_phase_planes, phase_planes, plane_geometry, pool_epilogue,
                     pooled_outputs, tap_view, unpool_plane)


@kernel
def _im2col(x, reads, col):
    """col rows (c, tap), column block n = x[c, n] gathered through reads[tap]; a padding tap
    (-1 in reads) writes 0.  plane[max(i, 0)] keeps the unused side of the select in bounds."""
    c_, n_ = x.shape[:2]
    taps, pixels = reads.shape
    zero = x.dtype.type(0)
    for c in range(c_):
        for n in range(n_):
            plane = x[c, n].reshape(x.shape[2] * x.shape[3])
            for k in range(taps):
                out = col[c * taps + k, n * pixels:]
                index = reads[k]
                for q in range(pixels):
                    i = index[q]
                    out[q] = plane[max(i, 0)] if i >= 0 else zero


@kernel
def _col2im(col, read_by, dx):
    """dx[c, n, p] = the sum over taps of the column entry that read input pixel p."""
    c_, n_ = dx.shape[:2]
    taps, pixels = read_by.shape
    windows = col.shape[1] // n_
    zero = dx.dtype.type(0)
    for c in range(c_):
        for n in range(n_):
            plane = dx[c, n].reshape(pixels)
            plane[:] = 0
            for k in range(taps):
                src = col[c * taps + k, n * windows:]
                index = read_by[k]
                for p in range(pixels):
                    i = index[p]
                    plane[p] += src[max(i, 0)] if i >= 0 else zero


def im2col(x, g, out):
    """x (C, N, H, W) -> out (C*KH*KW, N*OH*OW), columns ordered (n, oh, ow)."""
    _im2col(x, window_maps(g, *x.shape[2:]).reads, out)
    return out


def col2im(col, g, out):
    """col (C*KH*KW, N*OH*OW) -> out (C, N, H, W), the adjoint of im2col."""
    _col2im(col, window_maps(g, *out.shape[2:]).read_by, out)
    return out


@kernel
def planes_to_columns(planes, kh, kw, ww, length, n0, count, col):
    """col (C*KH*KW, count*4*length): row (c, ky, kx), block (n, dy, dx) = the view of tap
    (dy + ky, dx + kx) of plane (c, n0 + n): the input pixel under that tap for every
    window, for the chunk of images n0..n0+count."""
    c_ = planes.shape[0]
    for c in range(c_):
        for ky in range(kh):
            for kx in range(kw):
                row = col[(c * kh + ky) * kw + kx]
                for n in range(count):
                    for phase in range(4):
                        src = tap_view(planes, c, n0 + n, 2, ww, phase // 2 + ky, phase % 2 + kx)
                        dst = row[(n * 4 + phase) * length:]
                        for q in range(length):
                            dst[q] = src[q]


@kernel
def columns_to_planes(col, kh, kw, ww, length, n0, count, dplanes):
    """The adjoint of planes_to_columns: every column entry of the chunk added back to its
    plane pixel (the chunk's planes zeroed first)."""
    c_ = dplanes.shape[0]
    for c in range(c_):
        for n in range(count):
            dplanes[c, n0 + n] = 0
    for c in range(c_):
        for ky in range(kh):
            for kx in range(kw):
                row = col[(c * kh + ky) * kw + kx]
                for n in range(count):
                    for phase in range(4):
                        dst = tap_view(dplanes, c, n0 + n, 2, ww, phase // 2 + ky,
                                       phase % 2 + kx)
                        src = row[(n * 4 + phase) * length:]
                        for q in range(length):
                            dst[q] += src[q]


@kernel
def _bias_relu_pool(z, b, ww, n0, y_pad, argmax, y):
    """z (F, count, 4, length) from a chunk's GEMM: + b[f], then ReLU and the 2x2 max per
    window, into images n0.. of y_pad, argmax and y."""
    f_, count = z.shape[:2]
    for f in range(f_):
        bias = b[f]
        for n in range(count):
            acc = z[f, n]
            flat = acc.reshape(acc.size)
            for q in range(flat.size):
                flat[q] += bias
            pool_epilogue(acc, ww, y_pad[f, n0 + n], argmax[f, n0 + n], y[f, n0 + n])


@reduce
def _unpool_relu_bias(dy, y_pad, argmax, ww, n0, dy_pad, dz, db):
    """dz (F, count, 4, length) from the pooled gradient dy of images n0.. (F, N, PH, PW);
    db[f] += its sum."""
    f_, count = dz.shape[:2]
    dy_pad[...] = 0             # its padding columns stay zero
    for f in range(f_):
        total = dy.dtype.type(0)
        for n in range(count):
            total += unpool_plane(dy[f, n0 + n], y_pad[f, n0 + n], argmax[f, n0 + n], ww,
                                  dy_pad, dz[f, n])
        db[f] += total


class PooledColumnsCache(NamedTuple):
    planes: Any     # (C, N, 4, hh*ww) phase planes of the input: the columns come from them
    w: Any
    x_shape: tuple
    g: Any
    p: Planes
    y_pad: Any      # pooled output at row stride ww: its sign is the ReLU mask
    argmax: Any     # uint8 phase of each window's maximum, at row stride ww


def _chunk(c, g, p, itemsize):
    """Images per chunk: their columns about CHUNK_BYTES (at least one image)."""
    return max(1, CHUNK_BYTES // (c * g.kh * g.kw * 4 * p.length * itemsize))


def _leading(buffer, shape):
    return buffer.reshape(-1)[:int(np.prod(shape))].reshape(shape)


def conv_relu_pool_forward(x, w, b, g, pool_g, backend, ws=None):
    """x (C, N, H, W) -> (maxpool2x2(relu(conv(x))) (F, N, PH, PW), cache): im2col + GEMM with
    the columns in pool-window order, then bias, ReLU and the pool in one pass; a few
    images at a time, their columns in cache (chunked.py says why)."""
    ws = ws or Workspace(np)
    p = plane_geometry(g, 2, *x.shape[2:])
    planes = phase_planes(x, p, ws)
    (c, n), f = x.shape[:2], w.shape[0]
    k = _chunk(c, g, p, x.dtype.itemsize)
    rows, block = c * g.kh * g.kw, 4 * p.length
    col = ws.empty("col", (rows, k * block), x.dtype)
    z = ws.empty("z", (f, k * block), x.dtype)
    y, y_pad, argmax = pooled_outputs(ws, f, n, p, x.dtype)
    w2 = w.reshape(f, -1)
    for n0 in range(0, n, k):
        count = min(k, n - n0)
        cols = _leading(col, (rows, count * block))
        planes_to_columns(planes, g.kh, g.kw, p.ww, p.length, n0, count, cols)
        out = _leading(z, (f, count * block))
        np.matmul(w2, cols, out=out)
        _bias_relu_pool(out.reshape(f, count, 4, p.length), b, p.ww, n0, y_pad, argmax, y)
    return y, PooledColumnsCache(planes, w, x.shape, g, p, y_pad, argmax)


def conv_relu_pool_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, PH, PW) -> (dx (C, N, H, W) or None, dw, db), chunk by chunk."""
    planes, w, x_shape, g, p, y_pad, argmax = cache
    ws = ws or Workspace(np)
    (f, n), c = dy.shape[:2], x_shape[0]
    k = _chunk(c, g, p, dy.dtype.itemsize)
    rows, block = c * g.kh * g.kw, 4 * p.length
    col = ws.empty("col", (rows, k * block), dy.dtype)
    dz = ws.empty("dz", (f, k * block), dy.dtype)
    db = ws.empty("db", (f,), dy.dtype)
    dw_t = ws.empty("dw_t", (rows, f), dy.dtype)
    part = ws.empty("part", (rows, f), dy.dtype)
    dy_pad = ws.empty("dy_pad", (p.length,), dy.dtype)
    if need_dx:
        dcol = ws.empty("dcol", (rows, k * block), dy.dtype)
        dplanes = ws.empty("dplanes", planes.shape, dy.dtype)
    w2 = w.reshape(f, -1)
    db[:] = 0
    for n0 in range(0, n, k):
        count = min(k, n - n0)
        grads = _leading(dz, (f, count * block))
        _unpool_relu_bias(dy, y_pad, argmax, p.ww, n0, dy_pad,
                          grads.reshape(f, count, 4, p.length), db)
        cols = _leading(col, (rows, count * block))
        planes_to_columns(planes, g.kh, g.kw, p.ww, p.length, n0, count, cols)
        # dw = dz @ col.T, computed transposed: BLAS is faster with the long axis in its M.
        np.matmul(cols, grads.T, out=dw_t if n0 == 0 else part)
        if n0:
            dw_t += part
        if need_dx:
            dcols = _leading(dcol, (rows, count * block))
            np.matmul(w2.T, grads, out=dcols)
            columns_to_planes(dcols, g.kh, g.kw, p.ww, p.length, n0, count, dplanes)
    dw = ws.empty("dw", w.shape, dy.dtype)
    dw.reshape(f, -1)[...] = dw_t.T
    if not need_dx:
        return None, dw, db
    dx = ws.empty("dx", x_shape, dy.dtype)
    from_phase_planes(dplanes, p, dx)
    return dx, dw, db


FUSED = {"conv_relu_pool/im2col": OpPair(conv_relu_pool_forward, conv_relu_pool_backward,
                                          applies=lambda g: (g.sh, g.sw) == (1, 1))}
