"""The ``direct`` convolution algorithm: sums of shifted planes, no columns; stride 1.

For a layer with few input channels (the first layer has one) im2col builds a
column matrix nine times the size of the image only to feed a GEMM whose inner
dimension is 9.  Summing the shifted input planes directly does the same
multiplications with a fraction of the memory traffic.  It works in phase
planes (see planes.py): every tap of the kernel is one contiguous axpy over a
shifted view of a plane, and with a 3x3 kernel the nine taps are summed in one
pass with the weights in registers.  Fused with ReLU and the 2x2 max-pool, the
conv output is never written out.

Backward mirrors it: the pooled gradient goes back to the phase of its argmax
where the output was positive (unpool_plane); then dw[c, ky, kx] is a dot
product of that gradient with the same shifted view, db a sum, and dx the
axpys run backwards into phase planes of the input gradient.

The first layer (one input channel, 3x3, with the pool) runs over the whole
batch at once: its phase planes lie image after image (batch_phase_planes), so
each of the 16 tap views serves every image, and each filter is one pass over
all of the batch's windows, forward and backward (dw without dx), instead of
one short pass per image.  The lab model's first layer went from 0.53-0.58 to
0.40 ms forward and from 0.55-0.58 to 0.31-0.43 ms backward at 16 filters, from
2.1-2.3 to 1.2-1.6 and from 2.3-2.5 to 1.5-1.9 ms at 64 (batch 50, one thread,
alternated runs; docs/results.md).  Its cache keeps that layout; a backward that
needs dx copies it into the general one first (_per_image).
"""
from typing import Any, NamedTuple

import numpy as np

from ...ops import OpPair
from ...ops.workspace import Workspace
from . import first_max, kernel, ordered_sum, reduce, relu
from .planes import (Planes, batch_phase_planes, compact, expand, from_phase_planes, phase_planes,
                     plane_geometry, pool_epilogue, pooled_outputs, tap_view, unpool_plane,
                     window_mask)


@kernel
def _taps_3x3(out, length, k0, k1, k2, k3, k4, k5, k6, k7, k8, s0, s1, s2, s3, s4, s5, s6, s7,
              s8):
    """out[q] += the nine taps of a 3x3 kernel at q: one pass, weights in registers.

    The nine weights and views are spelled out as arguments: passed as a tuple of
    arrays instead, the loop ran 2x slower (measured)."""
    for q in range(length):
        out[q] += (k0 * s0[q] + k1 * s1[q] + k2 * s2[q] + k3 * s3[q] + k4 * s4[q]
                   + k5 * s5[q] + k6 * s6[q] + k7 * s7[q] + k8 * s8[q])


@kernel
def _accumulate(planes, w, f, n, s, ww, length, acc):
    """acc[dy * s + dx, q] += sum over c, ky, kx of w[f, c, ky, kx] times the view of tap
    (dy + ky, dx + kx) at q: the conv outputs of every phase (dy, dx) of every window q."""
    c_, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    for c in range(c_):
        k = w[f, c]
        for dy in range(s):
            for dx in range(s):
                out = acc[dy * s + dx]
                if kh == 3 and kw == 3:
                    _taps_3x3(out, length, k[0, 0], k[0, 1], k[0, 2], k[1, 0], k[1, 1], k[1, 2],
                              k[2, 0], k[2, 1], k[2, 2],
                              tap_view(planes, c, n, s, ww, dy, dx),
                              tap_view(planes, c, n, s, ww, dy, dx + 1),
                              tap_view(planes, c, n, s, ww, dy, dx + 2),
                              tap_view(planes, c, n, s, ww, dy + 1, dx),
                              tap_view(planes, c, n, s, ww, dy + 1, dx + 1),
                              tap_view(planes, c, n, s, ww, dy + 1, dx + 2),
                              tap_view(planes, c, n, s, ww, dy + 2, dx),
                              tap_view(planes, c, n, s, ww, dy + 2, dx + 1),
                              tap_view(planes, c, n, s, ww, dy + 2, dx + 2))
                    continue
                for ky in range(kh):
                    for kx in range(kw):
                        tap = k[ky, kx]
                        src = tap_view(planes, c, n, s, ww, dy + ky, dx + kx)
                        for q in range(length):
                            out[q] += tap * src[q]


@kernel
def _sixteen_views(phases, ww):
    """The 16 tap views (r, t = 0..3, row-major) of one channel's four phases (4, X), 2x2
    pool: one image's (planes[0, n]) or a whole batch's (batch_phase_planes).  What the
    one-channel kernels take as separate arguments (as one tuple inside the loop they ran
    slower, as _taps_3x3 found)."""
    return (phases[0, 0:], phases[1, 0:], phases[0, 1:], phases[1, 1:],
            phases[2, 0:], phases[3, 0:], phases[2, 1:], phases[3, 1:],
            phases[0, ww:], phases[1, ww:], phases[0, ww + 1:], phases[1, ww + 1:],
            phases[2, ww:], phases[3, ww:], phases[2, ww + 1:], phases[3, ww + 1:])


@kernel
def _pooled_one_channel_3x3(y_pad, argmax, length, bias, k0, k1, k2, k3, k4, k5, k6, k7, k8,
                            v00, v01, v02, v03, v10, v11, v12, v13, v20, v21, v22, v23,
                            v30, v31, v32, v33):
    """One input channel, 3x3 taps, 2x2 pool: at each window q, the four phases' conv
    outputs from the 16 tap views v[r][t] (r, t = 0..3), then ReLU and the max, in one
    pass, never stored (the general path adds each phase into memory, then pools).  The
    same sums in the same order as _taps_3x3 after ``acc = b``: the same bits."""
    zero = y_pad.dtype.type(0)
    for q in range(length):
        a00, a01, a02, a03 = v00[q], v01[q], v02[q], v03[q]
        a10, a11, a12, a13 = v10[q], v11[q], v12[q], v13[q]
        a20, a21, a22, a23 = v20[q], v21[q], v22[q], v23[q]
        a30, a31, a32, a33 = v30[q], v31[q], v32[q], v33[q]
        p0 = bias + (k0 * a00 + k1 * a01 + k2 * a02 + k3 * a10 + k4 * a11 + k5 * a12
                     + k6 * a20 + k7 * a21 + k8 * a22)
        p1 = bias + (k0 * a01 + k1 * a02 + k2 * a03 + k3 * a11 + k4 * a12 + k5 * a13
                     + k6 * a21 + k7 * a22 + k8 * a23)
        p2 = bias + (k0 * a10 + k1 * a11 + k2 * a12 + k3 * a20 + k4 * a21 + k5 * a22
                     + k6 * a30 + k7 * a31 + k8 * a32)
        p3 = bias + (k0 * a11 + k1 * a12 + k2 * a13 + k3 * a21 + k4 * a22 + k5 * a23
                     + k6 * a31 + k7 * a32 + k8 * a33)
        best, k = relu(p0, zero), np.uint8(0)
        best, k = first_max(best, k, relu(p1, zero), np.uint8(1))
        best, k = first_max(best, k, relu(p2, zero), np.uint8(2))
        best, k = first_max(best, k, relu(p3, zero), np.uint8(3))
        y_pad[q] = best
        argmax[q] = k


@kernel
def _forward_pooled(planes, w, b, ww, y, y_pad, argmax, acc):
    """For every (f, n): the four phases' conv outputs, then ReLU and the 2x2 max at width
    ww (y_pad, argmax: the cache), then y[f, n] compact."""
    f_, n_ = y.shape[:2]
    length = acc.shape[1]
    for f in range(f_):
        for n in range(n_):
            acc[...] = b[f]
            _accumulate(planes, w, f, n, 2, ww, length, acc)
            pool_epilogue(acc, ww, y_pad[f, n], argmax[f, n], y[f, n])


@kernel
def _forward_pooled_one_channel(phases, w, b, ww, y, y_pad, argmax):
    """One input channel, 3x3: for every filter, one pass over the whole batch's windows
    (phases: batch_phase_planes; y_pad, argmax (F, N * hh * ww), image n's windows from
    n * hh * ww at row stride ww), then y[f, n] compact."""
    f_, n_ = y.shape[:2]
    plane = y_pad.shape[1] // n_
    views = _sixteen_views(phases, ww)
    for f in range(f_):
        k = w[f, 0]
        _pooled_one_channel_3x3(y_pad[f], argmax[f], y_pad.shape[1], b[f], k[0, 0], k[0, 1],
                                k[0, 2], k[1, 0], k[1, 1], k[1, 2], k[2, 0], k[2, 1], k[2, 2],
                                *views)
        for n in range(n_):
            compact(y_pad[f, n * plane:], ww, y[f, n])


@kernel
def _forward_plain(planes, w, b, ww, y, acc):
    """y[f, n] = conv + b[f], one phase."""
    f_, n_ = y.shape[:2]
    for f in range(f_):
        for n in range(n_):
            acc[...] = b[f]
            _accumulate(planes, w, f, n, 1, ww, acc.shape[1], acc)
            compact(acc[0], ww, y[f, n])


@reduce
def _dots_3x3(grad, length, s0, s1, s2, s3, s4, s5, s6, s7, s8):
    """The nine dot products of grad with the nine tap views, in one pass."""
    zero = grad.dtype.type(0)
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = t8 = zero
    for q in range(length):
        g = grad[q]
        t0 += g * s0[q]
        t1 += g * s1[q]
        t2 += g * s2[q]
        t3 += g * s3[q]
        t4 += g * s4[q]
        t5 += g * s5[q]
        t6 += g * s6[q]
        t7 += g * s7[q]
        t8 += g * s8[q]
    return t0, t1, t2, t3, t4, t5, t6, t7, t8


@reduce
def _backward_phases(planes, w, dz, f, n, s, ww, length, dw, dplanes, need_dx):
    """dw[f] += dz (x) planes, and with need_dx dplanes += w[f] (x) dz, for one (f, n)."""
    c_, kh, kw = w.shape[1], w.shape[2], w.shape[3]
    for c in range(c_):
        for dy in range(s):
            for dx in range(s):
                grad = dz[dy * s + dx]
                if kh == 3 and kw == 3:
                    t = _dots_3x3(grad, length,
                                  tap_view(planes, c, n, s, ww, dy, dx),
                                  tap_view(planes, c, n, s, ww, dy, dx + 1),
                                  tap_view(planes, c, n, s, ww, dy, dx + 2),
                                  tap_view(planes, c, n, s, ww, dy + 1, dx),
                                  tap_view(planes, c, n, s, ww, dy + 1, dx + 1),
                                  tap_view(planes, c, n, s, ww, dy + 1, dx + 2),
                                  tap_view(planes, c, n, s, ww, dy + 2, dx),
                                  tap_view(planes, c, n, s, ww, dy + 2, dx + 1),
                                  tap_view(planes, c, n, s, ww, dy + 2, dx + 2))
                    for k in range(9):
                        dw[f, c, k // 3, k % 3] += t[k]
                else:
                    for ky in range(kh):
                        for kx in range(kw):
                            src = tap_view(planes, c, n, s, ww, dy + ky, dx + kx)
                            total = dw.dtype.type(0)
                            for q in range(length):
                                total += grad[q] * src[q]
                            dw[f, c, ky, kx] += total
                if need_dx:
                    for ky in range(kh):
                        for kx in range(kw):
                            tap = w[f, c, ky, kx]
                            dst = tap_view(dplanes, c, n, s, ww, dy + ky, dx + kx)
                            for q in range(length):
                                dst[q] += tap * grad[q]


@reduce
def _pooled_grad_one_channel_3x3(dy_pad, y_pad, argmax, length, g, real,
                                 v00, v01, v02, v03, v10, v11, v12, v13, v20, v21, v22, v23,
                                 v30, v31, v32, v33):
    """The nine dw taps of one plane, one input channel, in one pass: at each window q the
    pooled gradient goes through the ReLU mask (a multiplication, as unpool_relu) to the
    phase of its argmax, and tap (ky, kx) gathers phase (dy, dx) times view (dy + ky,
    dx + kx).  g gets the masked gradient, for db's fixed-order sum.  real[q] is 0 at the
    entries between a plane's windows (padding columns, and rows between images): their
    gradient is 0, but 0 times a NaN or infinite pixel they read is NaN, which the
    reference, without such windows, does not have; so they are left out by a select."""
    zero = dy_pad.dtype.type(0)
    t0 = t1 = t2 = t3 = t4 = t5 = t6 = t7 = t8 = zero
    for q in range(length):
        m = dy_pad[q] * (y_pad[q] > zero)
        g[q] = m
        k, inside = argmax[q], real[q] != 0
        g0 = m if k == 0 else zero
        g1 = m if k == 1 else zero
        g2 = m if k == 2 else zero
        g3 = m if k == 3 else zero
        c0 = g0 * v00[q] + g1 * v01[q] + g2 * v10[q] + g3 * v11[q]
        c1 = g0 * v01[q] + g1 * v02[q] + g2 * v11[q] + g3 * v12[q]
        c2 = g0 * v02[q] + g1 * v03[q] + g2 * v12[q] + g3 * v13[q]
        c3 = g0 * v10[q] + g1 * v11[q] + g2 * v20[q] + g3 * v21[q]
        c4 = g0 * v11[q] + g1 * v12[q] + g2 * v21[q] + g3 * v22[q]
        c5 = g0 * v12[q] + g1 * v13[q] + g2 * v22[q] + g3 * v23[q]
        c6 = g0 * v20[q] + g1 * v21[q] + g2 * v30[q] + g3 * v31[q]
        c7 = g0 * v21[q] + g1 * v22[q] + g2 * v31[q] + g3 * v32[q]
        c8 = g0 * v22[q] + g1 * v23[q] + g2 * v32[q] + g3 * v33[q]
        t0 += c0 if inside else zero
        t1 += c1 if inside else zero
        t2 += c2 if inside else zero
        t3 += c3 if inside else zero
        t4 += c4 if inside else zero
        t5 += c5 if inside else zero
        t6 += c6 if inside else zero
        t7 += c7 if inside else zero
        t8 += c8 if inside else zero
    return t0, t1, t2, t3, t4, t5, t6, t7, t8


@reduce
def _backward_pooled(dy, y_pad, argmax, planes, w, ww, need_dx, dw, db, dplanes, dz, dy_pad):
    """Unpool + ReLU mask + db in one pass per (f, n), then dw and dx from the phases."""
    f_, n_ = dy.shape[:2]
    length = dz.shape[1]
    dw[...] = 0
    dplanes[...] = 0
    dy_pad[...] = 0             # its padding columns stay zero
    for f in range(f_):
        total = dy.dtype.type(0)
        for n in range(n_):
            total += unpool_plane(dy[f, n], y_pad[f, n], argmax[f, n], ww, dy_pad, dz)
            _backward_phases(planes, w, dz, f, n, 2, ww, length, dw, dplanes, need_dx)
        db[f] = total


@reduce
def _backward_pooled_one_channel(dy, y_pad, argmax, phases, ww, length, real, dw, db, dy_pad,
                                 g):
    """One input channel, 3x3, no dx: per filter, the pooled gradient expanded over the
    whole batch's windows (dy_pad, zero between images), then the nine dw taps in one pass
    (_pooled_grad_one_channel_3x3, the entries between windows left out where real is 0);
    db summed image by image in a fixed order, the bits of the general path."""
    f_, n_ = dy.shape[:2]
    plane = y_pad.shape[1] // n_
    views = _sixteen_views(phases, ww)
    dy_pad[...] = 0             # the columns and rows between images stay zero
    for f in range(f_):
        for n in range(n_):
            expand(dy[f, n], ww, dy_pad[n * plane:])
        t = _pooled_grad_one_channel_3x3(dy_pad, y_pad[f], argmax[f], y_pad.shape[1], g, real,
                                         *views)
        for k in range(9):
            dw[f, 0, k // 3, k % 3] = t[k]
        total = dy.dtype.type(0)
        for n in range(n_):
            total += ordered_sum(g[n * plane:n * plane + length])
        db[f] = total


@reduce
def _backward_plain(dy, planes, w, ww, need_dx, dw, db, dplanes, dz):
    f_, n_ = dy.shape[:2]
    length = dz.shape[1]
    dw[...] = 0
    dplanes[...] = 0
    dz[...] = 0                 # its padding columns stay zero
    for f in range(f_):
        total = dy.dtype.type(0)
        for n in range(n_):
            plane = dy[f, n]
            expand(plane, ww, dz[0])
            flat = plane.reshape(plane.size)
            for q in range(flat.size):
                total += flat[q]
            _backward_phases(planes, w, dz, f, n, 1, ww, length, dw, dplanes, need_dx)
        db[f] = total


class DirectCache(NamedTuple):
    planes: Any     # (C, N, s*s, hh*ww) phase planes of the padded input; batched:
                    # (s*s, N*hh*ww + ww + 1), batch_phase_planes
    w: Any
    x_shape: tuple
    p: Planes
    y_pad: Any      # pooled output at row stride ww (its sign is the ReLU mask), or None;
                    # batched: (F, N * hh * ww), image n's from n * hh * ww
    argmax: Any     # uint8 phase of each window's maximum, laid out as y_pad, or None
    batched: bool = False   # the one-channel 3x3 path's layout (batch_phase_planes)


def _one_channel_3x3(w):
    return w.shape[1] == 1 and w.shape[2] == 3 and w.shape[3] == 3


def _per_image(cache, ws):
    """A batched cache in the general path's layout, for a backward that needs dx (the
    first layer, where the batched path runs, needs none)."""
    p, (f, n) = cache.p, (cache.w.shape[0], cache.x_shape[1])
    plane, dtype = p.hh * p.ww, cache.y_pad.dtype
    planes = ws.empty("planes_per_image", (1, n, p.s * p.s, plane), dtype)
    planes[0] = cache.planes[:, :n * plane].reshape(-1, n, plane).transpose(1, 0, 2)
    y_pad = ws.empty("y_pad_per_image", (f, n, p.length), dtype)
    argmax = ws.empty("argmax_per_image", (f, n, p.length), np.uint8)
    y_pad[...] = cache.y_pad.reshape(f, n, plane)[:, :, :p.length]
    argmax[...] = cache.argmax.reshape(f, n, plane)[:, :, :p.length]
    return cache._replace(planes=planes, y_pad=y_pad, argmax=argmax, batched=False)


def _gradient_buffers(dy, cache, need_dx, ws):
    """(dw, db, dplanes, dz) for a backward pass: dplanes is a dummy without need_dx."""
    planes, w, p = cache.planes, cache.w, cache.p
    return (ws.empty("dw", w.shape, dy.dtype), ws.empty("db", (w.shape[0],), dy.dtype),
            ws.empty("dplanes", planes.shape if need_dx else (1, 1, 1, 1), dy.dtype),
            ws.empty("dz", (p.s * p.s, p.length), dy.dtype))


def _input_gradient(dplanes, dw, db, cache, need_dx, ws):
    """(dx or None, dw, db): dx gathered back from the phase planes' gradient."""
    if not need_dx:
        return None, dw, db
    return from_phase_planes(dplanes, cache.p, ws.empty("dx", cache.x_shape, dw.dtype)), dw, db


def conv2d_forward(x, w, b, g, backend, ws=None):
    """x (C, N, H, W) -> (y (F, N, OH, OW), cache): ops.conv2d_forward, computed directly."""
    ws = ws or Workspace(np)
    p = plane_geometry(g, 1, *x.shape[2:])
    planes = phase_planes(x, p, ws)
    y = ws.empty("y", (w.shape[0], x.shape[1], g.oh, g.ow), x.dtype)
    _forward_plain(planes, w, b, p.ww, y, ws.empty("acc", (1, p.length), x.dtype))
    return y, DirectCache(planes, w, x.shape, p, None, None)


def conv2d_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, OH, OW) -> (dx or None, dw, db)."""
    ws = ws or Workspace(np)
    dw, db, dplanes, dz = _gradient_buffers(dy, cache, need_dx, ws)
    _backward_plain(dy, cache.planes, cache.w, cache.p.ww, need_dx, dw, db, dplanes, dz)
    return _input_gradient(dplanes, dw, db, cache, need_dx, ws)


def conv_relu_pool_forward(x, w, b, g, pool_g, backend, ws=None):
    """x (C, N, H, W) -> (maxpool2x2(relu(conv(x))) (F, N, PH, PW), cache), in one pass."""
    ws = ws or Workspace(np)
    p = plane_geometry(g, 2, *x.shape[2:])
    f, n = w.shape[0], x.shape[1]
    if _one_channel_3x3(w):
        phases = batch_phase_planes(x, p, ws)
        y = ws.empty("y", (f, n, p.rows, p.cols), x.dtype)
        y_pad = ws.empty("y_pad", (f, n * p.hh * p.ww), x.dtype)
        argmax = ws.empty("argmax", y_pad.shape, np.uint8)
        _forward_pooled_one_channel(phases, w, b, p.ww, y, y_pad, argmax)
        return y, DirectCache(phases, w, x.shape, p, y_pad, argmax, True)
    planes = phase_planes(x, p, ws)
    y, y_pad, argmax = pooled_outputs(ws, f, n, p, x.dtype)
    _forward_pooled(planes, w, b, p.ww, y, y_pad, argmax, ws.empty("acc", (4, p.length), x.dtype))
    return y, DirectCache(planes, w, x.shape, p, y_pad, argmax)


def conv_relu_pool_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, PH, PW) -> (dx or None, dw, db)."""
    ws = ws or Workspace(np)
    if cache.batched and not need_dx:
        p, (f, windows) = cache.p, cache.y_pad.shape
        dw, db = ws.empty("dw", cache.w.shape, dy.dtype), ws.empty("db", (f,), dy.dtype)
        real = window_mask(p.rows, p.cols, p.hh, p.ww, cache.x_shape[1])
        _backward_pooled_one_channel(dy, cache.y_pad, cache.argmax, cache.planes, p.ww,
                                     p.length, real, dw, db,
                                     ws.empty("dy_pad", (windows,), dy.dtype),
                                     ws.empty("g", (windows,), dy.dtype))
        return None, dw, db
    if cache.batched:
        cache = _per_image(cache, ws)
    dw, db, dplanes, dz = _gradient_buffers(dy, cache, need_dx, ws)
    _backward_pooled(dy, cache.y_pad, cache.argmax, cache.planes, cache.w, cache.p.ww, need_dx,
                     dw, db, dplanes, dz, ws.empty("dy_pad", (cache.p.length,), dy.dtype))
    return _input_gradient(dplanes, dw, db, cache, need_dx, ws)


FUSED = {"conv2d/direct": OpPair(conv2d_forward, conv2d_backward),
         "conv_relu_pool/direct": OpPair(conv_relu_pool_forward, conv_relu_pool_backward)}
