"""im2col and col2im for images laid out (C, N, H, W), and the fused conv + ReLU + 2x2 pool.

``im2col``/``col2im`` are the backend kernels every algorithm and geometry can
use: columns ordered (n, oh, ow).  The fused step orders its columns the way
the pool reads them: (n, phase, window), with phase planes (planes.py), so
that each column row is a run of contiguous copies of shifted views, the GEMM
output holds every window's four conv outputs side by side, and bias, ReLU
and the max-pool are one flat pass over it.
"""
from typing import Any, NamedTuple

import numpy as np

from ...ops import OpPair
from ...ops.workspace import Workspace
from . import kernel, reduce
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
def planes_to_columns(planes, kh, kw, ww, length, col):
    """col (C*KH*KW, N*4*length): row (c, ky, kx), block (n, dy, dx) = the view of tap
    (dy + ky, dx + kx) of plane (c, n): the input pixel under that tap for every window."""
    c_, n_ = planes.shape[:2]
    for c in range(c_):
        for ky in range(kh):
            for kx in range(kw):
                row = col[(c * kh + ky) * kw + kx]
                for n in range(n_):
                    for phase in range(4):
                        src = tap_view(planes, c, n, 2, ww, phase // 2 + ky, phase % 2 + kx)
                        dst = row[(n * 4 + phase) * length:]
                        for q in range(length):
                            dst[q] = src[q]


@kernel
def columns_to_planes(col, kh, kw, ww, length, dplanes):
    """The adjoint of planes_to_columns: every column entry added back to its plane pixel."""
    c_, n_ = dplanes.shape[:2]
    dplanes[...] = 0
    for c in range(c_):
        for ky in range(kh):
            for kx in range(kw):
                row = col[(c * kh + ky) * kw + kx]
                for n in range(n_):
                    for phase in range(4):
                        dst = tap_view(dplanes, c, n, 2, ww, phase // 2 + ky, phase % 2 + kx)
                        src = row[(n * 4 + phase) * length:]
                        for q in range(length):
                            dst[q] += src[q]


@kernel
def _bias_relu_pool(z, b, ww, y_pad, argmax, y):
    """z (F, N, 4, length) from the GEMM: + b[f], then ReLU and the 2x2 max per window."""
    f_, n_ = z.shape[:2]
    for f in range(f_):
        bias = b[f]
        for n in range(n_):
            acc = z[f, n]
            flat = acc.reshape(acc.size)
            for q in range(flat.size):
                flat[q] += bias
            pool_epilogue(acc, ww, y_pad[f, n], argmax[f, n], y[f, n])


@reduce
def _unpool_relu_bias(dy, y_pad, argmax, ww, dy_pad, dz, db):
    """dz (F, N, 4, length) from the pooled gradient dy (F, N, PH, PW); db = its sum per f."""
    f_, n_ = dy.shape[:2]
    dy_pad[...] = 0             # its padding columns stay zero
    for f in range(f_):
        total = dy.dtype.type(0)
        for n in range(n_):
            total += unpool_plane(dy[f, n], y_pad[f, n], argmax[f, n], ww, dy_pad, dz[f, n])
        db[f] = total


class PooledColumnsCache(NamedTuple):
    col: Any        # (C*KH*KW, N*4*length) columns in pool-window order
    w: Any
    x_shape: tuple
    g: Any
    p: Planes
    y_pad: Any      # pooled output at row stride ww: its sign is the ReLU mask
    argmax: Any     # uint8 phase of each window's maximum, at row stride ww


def conv_relu_pool_forward(x, w, b, g, pool_g, backend, ws=None):
    """x (C, N, H, W) -> (maxpool2x2(relu(conv(x))) (F, N, PH, PW), cache): im2col + GEMM with
    the columns in pool-window order, then bias, ReLU and the pool in one pass."""
    ws = ws or Workspace(np)
    p = plane_geometry(g, 2, *x.shape[2:])
    planes = phase_planes(x, p, ws)
    (c, n), f = x.shape[:2], w.shape[0]
    col = ws.empty("col", (c * g.kh * g.kw, n * 4 * p.length), x.dtype)
    planes_to_columns(planes, g.kh, g.kw, p.ww, p.length, col)
    z = np.matmul(w.reshape(f, -1), col, out=ws.empty("z", (f, col.shape[1]), x.dtype))
    y, y_pad, argmax = pooled_outputs(ws, f, n, p, x.dtype)
    _bias_relu_pool(z.reshape(f, n, 4, p.length), b, p.ww, y_pad, argmax, y)
    return y, PooledColumnsCache(col, w, x.shape, g, p, y_pad, argmax)


def conv_relu_pool_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, PH, PW) -> (dx (C, N, H, W) or None, dw, db)."""
    col, w, x_shape, g, p, y_pad, argmax = cache
    ws = ws or Workspace(np)
    (f, n), c = dy.shape[:2], x_shape[0]
    dz = ws.empty("dz", (f, col.shape[1]), dy.dtype)
    db = ws.empty("db", (f,), dy.dtype)
    _unpool_relu_bias(dy, y_pad, argmax, p.ww, ws.empty("dy_pad", (p.length,), dy.dtype),
                      dz.reshape(f, n, 4, p.length), db)
    # dw = dz @ col.T, computed transposed: BLAS is faster with the long axis in its M.
    dw_t = np.matmul(col, dz.T, out=ws.empty("dw_t", (col.shape[0], f), dy.dtype))
    dw = ws.empty("dw", w.shape, dy.dtype)
    dw.reshape(f, -1)[...] = dw_t.T
    if not need_dx:
        return None, dw, db
    dcol = np.matmul(w.reshape(f, -1).T, dz, out=ws.empty("dcol", col.shape, dy.dtype))
    dplanes = ws.empty("dplanes", (c, n, 4, p.hh * p.ww), dy.dtype)
    columns_to_planes(dcol, g.kh, g.kw, p.ww, p.length, dplanes)
    dx = ws.empty("dx", x_shape, dy.dtype)
    from_phase_planes(dplanes, p, dx)
    return dx, dw, db


FUSED = {"conv_relu_pool/im2col": OpPair(conv_relu_pool_forward, conv_relu_pool_backward,
                                          applies=lambda g: (g.sh, g.sw) == (1, 1))}
