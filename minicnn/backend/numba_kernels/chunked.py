"""The im2col convolution in chunks of images, with its bias and ReLU, for any geometry.

The reference (ops/conv.py) builds the columns of the whole batch, C*KH*KW rows of
N*OH*OW values: for the CIFAR-10 tutorial's second layer, 1,600 x 18,432 floats
(118 MB), written, read by one GEMM and, in backward, written and read again.
Here the columns are built a few images at a time, about 2 MiB (cache-sized),
each chunk's GEMM run while they are still in cache: the GEMM keeps its speed
(the chunk's 300-600 columns are wide enough for BLAS), the round trip through
memory is gone, and backward builds each chunk's columns again rather than
keeping the whole batch's.  The bias and ReLU are applied as each chunk's GEMM
output is written to its images; backward masks by the output's sign, sums
db, adds each chunk's share of dw, and col2im-s each chunk's dx.
"""
from typing import Any, NamedTuple

import numpy as np

from ...ops import OpPair
from ...ops.workspace import Workspace
from . import kernel, reduce, relu as relu_of
from .windows import window_maps

CHUNK_BYTES = 1 << 21


def images_per_chunk(c, g, itemsize):
    """How many images' columns fit in CHUNK_BYTES (at least one)."""
    return max(1, CHUNK_BYTES // (c * g.kh * g.kw * g.oh * g.ow * itemsize))


@kernel
def _im2col_chunk(x, n0, count, reads, col):
    """col (C*KH*KW, count*P) = the columns of images n0..n0+count of x (C, N, H*W); a
    padding tap (-1 in reads) writes 0."""
    c_ = x.shape[0]
    taps, pixels = reads.shape
    zero = x.dtype.type(0)
    for c in range(c_):
        for i in range(count):
            plane = x[c, n0 + i]
            for k in range(taps):
                out = col[c * taps + k, i * pixels:]
                index = reads[k]
                for q in range(pixels):
                    j = index[q]
                    out[q] = plane[max(j, 0)] if j >= 0 else zero


@kernel
def _col2im_chunk(col, read_by, n0, count, dx):
    """dx[c, n0 + i, p] = the sum over taps of the chunk's column entry that read pixel p."""
    c_ = dx.shape[0]
    taps, pixels = read_by.shape
    windows = col.shape[1] // count
    zero = dx.dtype.type(0)
    for c in range(c_):
        for i in range(count):
            plane = dx[c, n0 + i]
            plane[:] = 0
            for k in range(taps):
                src = col[c * taps + k, i * windows:]
                index = read_by[k]
                for p in range(pixels):
                    j = index[p]
                    plane[p] += src[max(j, 0)] if j >= 0 else zero


@kernel
def _bias_into(z, b, with_relu, n0, y):
    """y[f, n0 + i] = z[f, i] + b[f] (then ReLU): a chunk's GEMM output into its images."""
    f_, count, pixels = z.shape
    zero = z.dtype.type(0)
    for f in range(f_):
        bias = b[f]
        for i in range(count):
            src, out = z[f, i], y[f, n0 + i]
            if with_relu:
                for q in range(pixels):
                    out[q] = relu_of(src[q] + bias, zero)
            else:
                for q in range(pixels):
                    out[q] = src[q] + bias


@reduce
def _gradient_chunk(dy, y, with_relu, n0, dz, db):
    """dz[f, i] = dy[f, n0 + i] (times y > 0 with the ReLU, a product as the reference's:
    NaN * 0 stays NaN); db[f] += their sum."""
    f_, count, pixels = dz.shape
    zero = dz.dtype.type(0)
    for f in range(f_):
        total = zero
        for i in range(count):
            src, out = dy[f, n0 + i], dz[f, i]
            if with_relu:
                mask = y[f, n0 + i]
                for q in range(pixels):
                    out[q] = src[q] * (mask[q] > zero)
                    total += out[q]
            else:
                for q in range(pixels):
                    out[q] = src[q]
                    total += out[q]
        db[f] += total


class ChunkedCache(NamedTuple):
    x: Any          # (C, N, H, W), the input (its columns are built again in backward)
    w: Any
    y: Any          # the output: its sign is the ReLU mask
    g: Any
    with_relu: bool


def _leading(buffer, shape):
    """The first prod(shape) values of a contiguous buffer, as a contiguous array."""
    return buffer.reshape(-1)[:int(np.prod(shape))].reshape(shape)


def _forward(x, w, b, g, ws, with_relu):
    ws = ws or Workspace(np)
    (c, n, h, width), f = x.shape, w.shape[0]
    pixels, taps = g.oh * g.ow, g.kh * g.kw
    k = images_per_chunk(c, g, x.dtype.itemsize)
    reads = window_maps(g, h, width).reads
    col = ws.empty("col", (c * taps, k * pixels), x.dtype)
    z = ws.empty("z", (f, k * pixels), x.dtype)
    y = ws.empty("y", (f, n, g.oh, g.ow), x.dtype)
    x3, y3, w2 = x.reshape(c, n, h * width), y.reshape(f, n, pixels), w.reshape(f, -1)
    for n0 in range(0, n, k):
        count = min(k, n - n0)
        cols = _leading(col, (c * taps, count * pixels))
        _im2col_chunk(x3, n0, count, reads, cols)
        out = _leading(z, (f, count * pixels))
        np.matmul(w2, cols, out=out)
        _bias_into(out.reshape(f, count, pixels), b, with_relu, n0, y3)
    return y, ChunkedCache(x, w, y, g, with_relu)


def _backward(dy, cache, need_dx, ws):
    x, w, y, g, with_relu = cache
    ws = ws or Workspace(np)
    (c, n, h, width), f = x.shape, w.shape[0]
    pixels, taps = g.oh * g.ow, g.kh * g.kw
    k = images_per_chunk(c, g, x.dtype.itemsize)
    maps = window_maps(g, h, width)
    col = ws.empty("col", (c * taps, k * pixels), dy.dtype)
    dz = ws.empty("dz", (f, k * pixels), dy.dtype)
    db = ws.empty("db", (f,), dy.dtype)
    dw_t = ws.empty("dw_t", (c * taps, f), dy.dtype)
    part = ws.empty("part", (c * taps, f), dy.dtype)
    dcol = ws.empty("dcol", (c * taps, k * pixels), dy.dtype) if need_dx else None
    dx = ws.empty("dx", x.shape, dy.dtype) if need_dx else None
    x3, dy3, y3, w2 = (x.reshape(c, n, h * width), dy.reshape(f, n, pixels),
                       y.reshape(f, n, pixels), w.reshape(f, -1))
    db[:] = 0
    for n0 in range(0, n, k):
        count = min(k, n - n0)
        grads = _leading(dz, (f, count * pixels))
        _gradient_chunk(dy3, y3, with_relu, n0, grads.reshape(f, count, pixels), db)
        cols = _leading(col, (c * taps, count * pixels))
        _im2col_chunk(x3, n0, count, maps.reads, cols)
        # dw = dz @ col.T, computed transposed: BLAS is faster with the long axis in its M.
        np.matmul(cols, grads.T, out=dw_t if n0 == 0 else part)
        if n0:
            dw_t += part
        if need_dx:
            dcols = _leading(dcol, (c * taps, count * pixels))
            np.matmul(w2.T, grads, out=dcols)
            _col2im_chunk(dcols, maps.read_by, n0, count, dx.reshape(c, n, h * width))
    dw = ws.empty("dw", w.shape, dy.dtype)
    dw.reshape(f, -1)[...] = dw_t.T
    return dx, dw, db


def conv2d_forward(x, w, b, g, backend, ws=None):
    """ops.conv2d_forward in chunks of images."""
    return _forward(x, w, b, g, ws, False)


def conv_relu_forward(x, w, b, g, backend, ws=None):
    """ops.conv_relu_forward in chunks of images."""
    return _forward(x, w, b, g, ws, True)


def conv2d_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, OH, OW) -> (dx (C, N, H, W) or None, dw, db); also conv_relu's backward
    (the cache says whether the ReLU is in)."""
    return _backward(dy, cache, need_dx, ws)


FUSED = {"conv2d/im2col": OpPair(conv2d_forward, conv2d_backward),
         "conv_relu/im2col": OpPair(conv_relu_forward, conv2d_backward)}
