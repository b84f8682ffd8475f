"""numba: NumPy arrays, with the layout-shuffling and elementwise work in @njit kernels.

Matrix products stay in NumPy's BLAS.  Every kernel is parallel over an axis
whose iterations write disjoint memory (a plane, a row, a filter), so no two
threads ever write the same element; ``cache=True`` keeps the compiled code on
disk, so compilation is paid once per machine.
"""
import math

import numpy as np

from ..threads import configure
from .base import Backend

try:
    import numba
    from numba import njit, prange
    _import_error = None
except Exception as exc:
    numba, _import_error = None, exc

    def njit(*args, **kwargs):      # keeps this module importable; the backend reports why
        return lambda f: f
    prange = range

_jit = njit(parallel=True, cache=True, nogil=True)


@_jit
def _im2col(x, col, kh, kw, sh, sw, pt, pl, oh, ow):
    n, c, h, w = x.shape
    col6 = col.reshape(c, kh, kw, n, oh, ow)
    for r in prange(c * kh * kw * n):          # one (c, ky, kx, n) block of OH*OW per iteration
        ci, ky = r // (kh * kw * n), r // (kw * n) % kh
        kx, ni = r // n % kw, r % n
        out = col6[ci, ky, kx, ni]
        plane = x[ni, ci]
        zero = x.dtype.type(0)
        # columns j whose source xx = j*sw - pl + kx lies inside [0, w)
        j_lo = min(max(0, (pl - kx + sw - 1) // sw), ow)
        j_hi = max(min(ow, (w - 1 + pl - kx) // sw + 1), j_lo)
        for i in range(oh):
            y = i * sh - pt + ky
            if y < 0 or y >= h:
                out[i, :] = zero
                continue
            out[i, :j_lo] = zero
            out[i, j_hi:] = zero
            for j in range(j_lo, j_hi):
                out[i, j] = plane[y, j * sw - pl + kx]


@_jit
def _col2im(col, dx, kh, kw, sh, sw, pt, pl, oh, ow):
    n, c, h, w = dx.shape
    col6 = col.reshape(c, kh, kw, n, oh, ow)
    for p in prange(n * c):                    # each iteration owns dx[n, c]
        ni, ci = p // c, p % c
        plane = dx[ni, ci]
        plane[:, :] = 0
        for ky in range(kh):
            for kx in range(kw):
                src = col6[ci, ky, kx, ni]
                for i in range(oh):
                    y = i * sh - pt + ky
                    if y < 0 or y >= h:
                        continue
                    for j in range(ow):
                        xx = j * sw - pl + kx
                        if 0 <= xx < w:
                            plane[y, xx] += src[i, j]


@_jit
def _maxpool_fwd(x, y, argmax, kh, kw, sh, sw, pt, pl):
    n, c, h, w = x.shape
    oh, ow = y.shape[2:]
    inside = pt == 0 and pl == 0 and (oh - 1) * sh + kh <= h and (ow - 1) * sw + kw <= w
    for p in prange(n * c):
        ni, ci = p // c, p % c
        plane = x[ni, ci]
        if inside:      # no bounds checks needed
            for i in range(oh):
                for j in range(ow):
                    r0, s0 = i * sh, j * sw
                    best, best_value = r0 * w + s0, plane[r0, s0]
                    for ky in range(kh):
                        for kx in range(kw):
                            v = plane[r0 + ky, s0 + kx]
                            if v > best_value:
                                best, best_value = (r0 + ky) * w + s0 + kx, v
                    y[ni, ci, i, j] = best_value
                    argmax[ni, ci, i, j] = best
            continue
        for i in range(oh):
            for j in range(ow):
                best, best_value = -1, plane[0, 0]
                for ky in range(kh):
                    r = i * sh - pt + ky
                    if r < 0 or r >= h:
                        continue
                    for kx in range(kw):
                        s = j * sw - pl + kx
                        if 0 <= s < w and (best < 0 or plane[r, s] > best_value):
                            best, best_value = r * w + s, plane[r, s]
                y[ni, ci, i, j] = best_value
                argmax[ni, ci, i, j] = best


@_jit
def _maxpool_bwd(dy, argmax, dx):
    n, c, h, w = dx.shape
    for p in prange(n * c):
        ni, ci = p // c, p % c
        plane = dx[ni, ci].reshape(h * w)
        plane[:] = 0
        d, a = dy[ni, ci].ravel(), argmax[ni, ci].ravel()
        for k in range(d.size):
            plane[a[k]] += d[k]


@_jit
def _conv_bias_act(z, b, y, relu):
    n, f, oh, ow = y.shape
    p = oh * ow
    for r in prange(n * f):                    # y[n, f] = z[f, n*P:(n+1)*P] + b[f]
        ni, fi = r // f, r % f
        zero = z.dtype.type(0)
        src = z[fi, ni * p:(ni + 1) * p]
        dst = y[ni, fi].reshape(p)
        bias = b[fi]
        for k in range(p):
            v = src[k] + bias
            dst[k] = v if not relu or v > 0 else zero


@_jit
def _conv_act_bwd(dy, y, dz, db, relu):
    n, f, oh, ow = dy.shape
    p = oh * ow
    for fi in prange(f):                       # each iteration owns row dz[f] and db[f]
        zero = dy.dtype.type(0)
        total = zero
        for ni in range(n):
            src, out = dy[ni, fi].reshape(p), dz[fi, ni * p:(ni + 1) * p]
            mask = y[ni, fi].reshape(p)
            for k in range(p):
                v = src[k] if not relu or mask[k] > 0 else zero
                out[k] = v
                total += v
        db[fi] = total


@_jit
def _dense_bias_act(z, b, relu):
    n, f = z.shape
    zero = z.dtype.type(0)
    for i in prange(n):
        for j in range(f):
            v = z[i, j] + b[j]
            z[i, j] = v if not relu or v > 0 else zero


@_jit
def _relu_bwd(dy, y, dx):
    a, m, out = dy.ravel(), y.ravel(), dx.reshape(dx.size)
    zero = dy.dtype.type(0)
    for i in prange(a.size):
        out[i] = a[i] if m[i] > 0 else zero


@_jit
def _softmax_xent(logits, labels, dlogits):
    n, k = logits.shape
    total = 0.0
    for i in prange(n):
        row = logits[i]
        m = row.max()
        s = 0.0
        for j in range(k):
            s += math.exp(row[j] - m)
        total += math.log(s) - (row[labels[i]] - m)
        for j in range(k):
            dlogits[i, j] = math.exp(row[j] - m) / s / n
        dlogits[i, labels[i]] -= 1.0 / n
    return total / n


@_jit
def _sgd_update(p, g, v, lr, momentum):
    pf, gf, vf = p.reshape(p.size), g.ravel(), v.reshape(v.size)
    for i in prange(pf.size):
        if momentum == 0:
            pf[i] -= lr * gf[i]
        else:
            vi = momentum * vf[i] - lr * gf[i]
            vf[i] = vi
            pf[i] += vi


class NumbaBackend(Backend):
    name = "numba"
    xp = np

    @classmethod
    def is_available(cls):
        if numba is None:
            cls.unavailable_reason = f"Numba is not installed ({_import_error}); pip install numba"
            return False
        return True

    def __init__(self):
        configure("numba")      # BLAS and Numba thread pools fight for the cores

    def im2col(self, x, g):
        n, c = x.shape[:2]
        col = np.empty((c * g.kh * g.kw, n * g.oh * g.ow), dtype=x.dtype)
        _im2col(np.ascontiguousarray(x), col, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left,
                g.oh, g.ow)
        return col

    def col2im(self, col, x_shape, g):
        dx = np.empty(x_shape, dtype=col.dtype)
        _col2im(np.ascontiguousarray(col), dx, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left,
                g.oh, g.ow)
        return dx

    def maxpool_forward(self, x, g):
        n, c = x.shape[:2]
        y = np.empty((n, c, g.oh, g.ow), dtype=x.dtype)
        argmax = np.empty(y.shape, dtype=np.int32)
        _maxpool_fwd(np.ascontiguousarray(x), y, argmax, g.kh, g.kw, g.sh, g.sw, g.pad_top,
                     g.pad_left)
        return y, argmax

    def maxpool_backward(self, dy, argmax, x_shape, g):
        dx = np.empty(x_shape, dtype=dy.dtype)
        _maxpool_bwd(np.ascontiguousarray(dy), argmax, dx)
        return dx

    def conv_bias_act(self, z, b, out_shape, relu):
        y = np.empty(out_shape, dtype=z.dtype)
        _conv_bias_act(z, b, y, relu)
        return y

    def conv_act_backward(self, dy, y, relu):
        n, f = dy.shape[:2]
        dz = np.empty((f, dy.size // f), dtype=dy.dtype)
        db = np.empty(f, dtype=dy.dtype)
        _conv_act_bwd(np.ascontiguousarray(dy), dy if y is None else y, dz, db, relu)
        return dz, db

    def dense_bias_act(self, z, b, relu):
        _dense_bias_act(z, b, relu)
        return z

    def relu_backward(self, dy, y):
        dx = np.empty(dy.shape, dtype=dy.dtype)
        _relu_bwd(np.ascontiguousarray(dy), np.ascontiguousarray(y), dx)
        return dx

    def softmax_cross_entropy(self, logits, labels):
        dlogits = np.empty_like(logits)
        loss = _softmax_xent(np.ascontiguousarray(logits), labels, dlogits)
        return float(loss), dlogits

    def sgd_update(self, p, g, v, lr, momentum):
        _sgd_update(p, g, v, p.dtype.type(lr), p.dtype.type(momentum))
