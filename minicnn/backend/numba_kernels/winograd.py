"""The ``winograd`` convolution algorithm, F(2x2, 3x3) (Lavin & Gray 2016): 3x3 kernels, stride 1.

One dimension first.  Two outputs of a 3-tap filter g over four inputs d,
y0 = d0 g0 + d1 g1 + d2 g2 and y1 = d1 g0 + d2 g1 + d3 g2, take 6
multiplications done directly but only 4 as

    y = A^T [(G g) * (B^T d)]        (* elementwise)

    B^T = | 1  0 -1  0 |     G = | 1    0    0   |     A^T = | 1  1  1  0 |
          | 0  1  1  0 |         | 1/2  1/2  1/2 |           | 0  1 -1 -1 |
          | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
          | 0  1  0 -1 |         | 0    0    1   |

Nested in two dimensions, a 2x2 tile of outputs comes from a 4x4 tile d of
the input: Y = A^T [U * V] A with U = G g G^T and V = B^T d B, 16
multiplications per channel instead of 36.  Summed over the input channels,
the product at each of the 16 positions xi = 4r + s of the 4x4 tile is a GEMM:

    M[xi] (F, N*T) = U[xi] (F, C) @ V[xi] (C, N*T)       (16 GEMMs, through BLAS)

Tiles.  Column n*T + t is tile t = ti*TW + tj of image n.  Tile (ti, tj)
makes the outputs (2ti + {0,1}, 2tj + {0,1}) from the input rows
2ti - pad_top + {0..3} and columns 2tj - pad_left + {0..3}, zero outside
the input, so neighbouring tiles overlap by two rows or columns.  conv2d
uses ceil(OH/2) x ceil(OW/2) tiles per image (a tile at an odd edge writes
only the pixels that exist); the pooled variant uses PH x PW.

Forward: U from w, V from x, the GEMMs, then Y = A^T M A plus the bias.
Backward runs the adjoints in reverse: dM = A dY A^T; dU = dM @ V^T and
dW = G^T dU G; dV = U^T @ dM and dx = B dV B^T, added up where tiles overlap.

The ReLU and the 2x2 max-pool fuse into the output transform.  The tiles
start at even rows and columns, so a 2x2 output tile IS a 2x2 pool window:
the output transform computes the tile's four outputs in registers, adds
the bias, applies the ReLU and keeps the maximum; the (F, N, OH, OW)
convolution output never exists.  Per window it stores one byte: the argmax
(0..3, row-major in the tile) plus 4 where the ReLU lets the gradient
through (max > 0).
The pool backward runs in the Winograd domain.  A tile's gradient dY is
zero except at its argmax (a, b), where it is g = dy * (max > 0), so
dM = A dY A^T = g A[:, a] A[:, b]^T: the outer product of two columns of A,
(1, 1, 1, 0) and (0, 1, -1, -1), that is sixteen signed copies of g or
zeros, written from the pooled gradient, the argmax and the ReLU mask
straight away (db is summed on the way).

Layout.  Each block is stored (R, 16, L): for each channel (or filter) its
16 Winograd rows side by side, each padded to an odd number of cache lines,
and np.matmul sees the stack (16, R, L) through strided views (the GEMMs
ran as fast as on contiguous stacks).  A transform then writes one
contiguous block per channel, and its 16 streams fall in 16 different cache
sets; stored (16, R, L) with R*L a power of two, they all fall in one (the
weight transform ran 3x slower at 256 channels).  The pooled output
(F, N, PH, PW) is M's column order itself, so the pooled output transform
and its adjoint are one long loop per filter.  The input transform copies
each (c, n) plane into a small zero-bordered scratch, so that its tile loop
needs no bounds checks.

NaN.  The transforms are written out term by term, never multiplying by a
zero of B, G or A, so a NaN in x reaches exactly the outputs whose 3x3
window holds it and a NaN in dy exactly the pixels and taps it reaches in
the reference.  But G and B mix the taps of a filter and the pixels of a
tile: a NaN or an infinity in x or w would reach taps of dw and pixels of
dx that the reference keeps finite (and the pooled variant never reads the
row a 'valid' pool drops, which the reference's dw still sees).  So a
forward whose x or w is not finite (a dot product each tells) runs the
im2col reference instead, and its backward follows.
"""
from typing import Any, NamedTuple

import numpy as np

from ...ops.algorithms import why_not
from ...ops import OpPair
from ...ops import conv as im2col_conv, fused as im2col_fused
from ...ops.workspace import Workspace
from . import first_max, kernel, reduce, relu


# -- the 1-D transforms and their adjoints ----------------------------------------
@kernel
def _bt(d0, d1, d2, d3):
    """B^T d."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@kernel
def _b(t0, t1, t2, t3):
    """B t: the adjoint of _bt."""
    return t0, t1 - t2 + t3, t1 + t2 - t0, -t3


@kernel
def _at(m0, m1, m2, m3):
    """A^T m."""
    return m0 + m1 + m2, m1 - m2 - m3


@kernel
def _a(y0, y1):
    """A y: the adjoint of _at."""
    return y0, y0 + y1, y0 - y1, -y1


@kernel
def _g(g0, g1, g2):
    """G g (0.5 is a float32 so that float32 weights stay float32)."""
    outer, middle = (g0 + g2) * np.float32(0.5), g1 * np.float32(0.5)
    return g0, outer + middle, outer - middle, g2


@kernel
def _gt(u0, u1, u2, u3):
    """G^T u: the adjoint of _g."""
    both = (u1 + u2) * np.float32(0.5)
    return u0 + both, (u1 - u2) * np.float32(0.5), both + u3


# -- layout -----------------------------------------------------------------------
def _row_length(n, itemsize):
    """n rounded up to whole cache lines, an odd number of them, so that the 16 rows of a
    channel fall in 16 different cache sets.  (Rows a power of two apart share sets: stored
    (16, F, C), U's rows are 256 KiB apart at 256 channels, and its transform ran 3x slower.)"""
    per_line = 64 // itemsize
    lines = -(-n // per_line)
    return (lines + 1 - lines % 2) * per_line


def _stack(a, cols):
    """The 16 matrices of a block (R, 16, L), as the stack (16, R, cols) that np.matmul takes."""
    return a[:, :, :cols].transpose(1, 0, 2)


# -- weights --------------------------------------------------------------------
@kernel
def _weight_transform(w, u):
    """u[f, 4r + s, c] = (G w[f, c] G^T)[r, s]."""
    f_, c_ = w.shape[:2]
    for f in range(f_):
        out = u[f]
        for c in range(c_):
            k = w[f, c]
            a0, a1, a2, a3 = _g(k[0, 0], k[1, 0], k[2, 0])      # the columns of G w
            b0, b1, b2, b3 = _g(k[0, 1], k[1, 1], k[2, 1])
            c0, c1, c2, c3 = _g(k[0, 2], k[1, 2], k[2, 2])
            out[0, c], out[1, c], out[2, c], out[3, c] = _g(a0, b0, c0)  # the rows of (G w) G^T
            out[4, c], out[5, c], out[6, c], out[7, c] = _g(a1, b1, c1)
            out[8, c], out[9, c], out[10, c], out[11, c] = _g(a2, b2, c2)
            out[12, c], out[13, c], out[14, c], out[15, c] = _g(a3, b3, c3)
    return u


@kernel
def _weight_transform_adjoint(du, dw):
    """dw[f, c] = G^T D G, where D is du[f, :, c] read as a 4x4 tile."""
    f_, c_ = dw.shape[:2]
    for f in range(f_):
        d = du[f]
        for c in range(c_):
            a0, a1, a2 = _gt(d[0, c], d[4, c], d[8, c], d[12, c])     # the columns of G^T D
            b0, b1, b2 = _gt(d[1, c], d[5, c], d[9, c], d[13, c])
            c0, c1, c2 = _gt(d[2, c], d[6, c], d[10, c], d[14, c])
            e0, e1, e2 = _gt(d[3, c], d[7, c], d[11, c], d[15, c])
            k = dw[f, c]
            k[0, 0], k[0, 1], k[0, 2] = _gt(a0, b0, c0, e0)             # the rows of (G^T D) G
            k[1, 0], k[1, 1], k[1, 2] = _gt(a1, b1, c1, e1)
            k[2, 0], k[2, 1], k[2, 2] = _gt(a2, b2, c2, e2)
    return dw


# -- input tiles ----------------------------------------------------------------
@kernel
def _copy_into(plane, pt, pl, pad):
    """pad[pt + y, pl + x] = plane[y, x] for the pixels that fit in pad."""
    rows, cols = min(plane.shape[0], pad.shape[0] - pt), min(plane.shape[1], pad.shape[1] - pl)
    for y in range(rows):
        dst, src = pad[pt + y, pl:], plane[y]
        for j in range(cols):
            dst[j] = src[j]


@kernel
def _input_transform(x, pt, pl, th, tw, pad, v):
    """v[c, 4r + s, (n * th + ti) * tw + tj] = (B^T d B)[r, s], where d is the 4x4 input
    tile at rows 2ti - pt.. and columns 2tj - pl.. of x[c, n], zero outside the input.
    pad: a (2th + 2, 2tw + 2) scratch, so that the tile loop needs no bounds checks."""
    c_, n_ = x.shape[:2]
    pad[...] = 0            # its border stays zero: every plane is copied to the same place
    for c in range(c_):
        out = v[c]
        for n in range(n_):
            _copy_into(x[c, n], pt, pl, pad)
            for ti in range(th):
                r0, r1, r2, r3 = pad[2 * ti], pad[2 * ti + 1], pad[2 * ti + 2], pad[2 * ti + 3]
                base = (n * th + ti) * tw
                for tj in range(tw):
                    q, s = base + tj, 2 * tj
                    a0, b0, c0, d0 = _bt(r0[s], r1[s], r2[s], r3[s])    # the columns of B^T d
                    a1, b1, c1, d1 = _bt(r0[s + 1], r1[s + 1], r2[s + 1], r3[s + 1])
                    a2, b2, c2, d2 = _bt(r0[s + 2], r1[s + 2], r2[s + 2], r3[s + 2])
                    a3, b3, c3, d3 = _bt(r0[s + 3], r1[s + 3], r2[s + 3], r3[s + 3])
                    out[0, q], out[1, q], out[2, q], out[3, q] = _bt(a0, a1, a2, a3)
                    out[4, q], out[5, q], out[6, q], out[7, q] = _bt(b0, b1, b2, b3)
                    out[8, q], out[9, q], out[10, q], out[11, q] = _bt(c0, c1, c2, c3)
                    out[12, q], out[13, q], out[14, q], out[15, q] = _bt(d0, d1, d2, d3)
    return v


@kernel
def _add_column(r0, r1, r2, r3, j, column):
    """Column j of the four rows r0..r3 += column (4 values)."""
    r0[j] += column[0]
    r1[j] += column[1]
    r2[j] += column[2]
    r3[j] += column[3]


@kernel
def _input_transform_adjoint(dv, pt, pl, th, tw, pad, dx):
    """dx[c, n] = the tiles B D B^T (D = dv[c, :, tile] as 4x4) added up where they overlap,
    the padding dropped; pixels no tile reads get 0."""
    c_, n_, h, w = dx.shape
    rows, cols = min(h, pad.shape[0] - pt), min(w, pad.shape[1] - pl)
    zero = dx.dtype.type(0)
    for c in range(c_):
        d = dv[c]
        for n in range(n_):
            pad[...] = zero
            for ti in range(th):
                r0, r1, r2, r3 = pad[2 * ti], pad[2 * ti + 1], pad[2 * ti + 2], pad[2 * ti + 3]
                base = (n * th + ti) * tw
                for tj in range(tw):
                    q, s = base + tj, 2 * tj
                    a0, a1, a2, a3 = _b(d[0, q], d[1, q], d[2, q], d[3, q])  # the rows of D B^T
                    b0, b1, b2, b3 = _b(d[4, q], d[5, q], d[6, q], d[7, q])
                    c0, c1, c2, c3 = _b(d[8, q], d[9, q], d[10, q], d[11, q])
                    e0, e1, e2, e3 = _b(d[12, q], d[13, q], d[14, q], d[15, q])
                    _add_column(r0, r1, r2, r3, s, _b(a0, b0, c0, e0))  # B (D B^T)
                    _add_column(r0, r1, r2, r3, s + 1, _b(a1, b1, c1, e1))
                    _add_column(r0, r1, r2, r3, s + 2, _b(a2, b2, c2, e2))
                    _add_column(r0, r1, r2, r3, s + 3, _b(a3, b3, c3, e3))
            plane = dx[c, n]
            for y in range(h):
                row = plane[y]
                done = 0
                if y < rows:
                    src = pad[pt + y, pl:]
                    for j in range(cols):
                        row[j] = src[j]
                    done = cols
                for j in range(done, w):
                    row[j] = zero
    return dx


# -- output tiles ---------------------------------------------------------------
@kernel
def _output_tile(m, q):
    """A^T M A for tile q of m (16, L): its outputs y00, y01, y10, y11."""
    t0, u0 = _at(m[0, q], m[4, q], m[8, q], m[12, q])      # the columns of A^T M
    t1, u1 = _at(m[1, q], m[5, q], m[9, q], m[13, q])
    t2, u2 = _at(m[2, q], m[6, q], m[10, q], m[14, q])
    t3, u3 = _at(m[3, q], m[7, q], m[11, q], m[15, q])
    y00, y01 = _at(t0, t1, t2, t3)                          # the rows of (A^T M) A
    y10, y11 = _at(u0, u1, u2, u3)
    return y00, y01, y10, y11


@kernel
def _output_transform(m, b, th, tw, y):
    """y[f, n] = the tiles A^T m[f] A + b[f]; a tile at an odd edge writes what fits."""
    f_, n_, oh, ow = y.shape
    for f in range(f_):
        bias, mf = b[f], m[f]
        for n in range(n_):
            for ti in range(th):
                top, bottom = y[f, n, 2 * ti], y[f, n, min(2 * ti + 1, oh - 1)]
                both_rows = 2 * ti + 1 < oh
                base = (n * th + ti) * tw
                for tj in range(tw):
                    y00, y01, y10, y11 = _output_tile(mf, base + tj)
                    s = 2 * tj
                    top[s] = y00 + bias
                    if both_rows:
                        bottom[s] = y10 + bias
                    if s + 1 < ow:
                        top[s + 1] = y01 + bias
                        if both_rows:
                            bottom[s + 1] = y11 + bias
    return y


@reduce
def _output_transform_adjoint(dy, th, tw, dm, db):
    """dm[f, :, tile] = A dY A^T for each tile dY of dy[f] (zero beyond an odd edge);
    db[f] = the sum of dy[f]."""
    f_, n_, oh, ow = dy.shape
    zero = dy.dtype.type(0)
    for f in range(f_):
        total, d = zero, dm[f]
        for n in range(n_):
            for ti in range(th):
                top, bottom = dy[f, n, 2 * ti], dy[f, n, min(2 * ti + 1, oh - 1)]
                both_rows = 2 * ti + 1 < oh
                base = (n * th + ti) * tw
                for tj in range(tw):
                    q, s = base + tj, 2 * tj
                    y00 = top[s]
                    y01 = top[s + 1] if s + 1 < ow else zero
                    y10 = bottom[s] if both_rows else zero
                    y11 = bottom[s + 1] if both_rows and s + 1 < ow else zero
                    total += (y00 + y01) + (y10 + y11)
                    a0, a1, a2, a3 = _a(y00, y10)                        # the columns of A dY
                    b0, b1, b2, b3 = _a(y01, y11)
                    d[0, q], d[1, q], d[2, q], d[3, q] = _a(a0, b0)      # the rows of (A dY) A^T
                    d[4, q], d[5, q], d[6, q], d[7, q] = _a(a1, b1)
                    d[8, q], d[9, q], d[10, q], d[11, q] = _a(a2, b2)
                    d[12, q], d[13, q], d[14, q], d[15, q] = _a(a3, b3)
        db[f] = total
    return dm, db


@kernel
def _output_transform_pooled(m, b, y, code):
    """y[f, q] = the largest of relu(tile q's four outputs + b[f]); code[f, q] = its place
    in the tile (0..3, row-major), + 4 where it is > 0 (the ReLU mask).  ReLU before the
    max, as in the reference, so that the argmax is the reference's where outputs tie at 0."""
    f_, length = y.shape
    zero = y.dtype.type(0)
    for f in range(f_):
        bias, mf, out, arg = b[f], m[f], y[f], code[f]
        for q in range(length):
            y00, y01, y10, y11 = _output_tile(mf, q)
            best, k = relu(y00 + bias, zero), 0
            best, k = first_max(best, k, relu(y01 + bias, zero), 1)
            best, k = first_max(best, k, relu(y10 + bias, zero), 2)
            best, k = first_max(best, k, relu(y11 + bias, zero), 3)
            out[q] = best
            arg[q] = k + 4 if best > zero else k
    return y, code


_A = np.array([[1, 0], [1, 1], [1, -1], [0, -1]])     # A = (A^T)^T, 4x2


@reduce
def _pooled_adjoint(dy, code, dm, db, g):
    """dm[f, :, q] = A dY A^T, where the tile's gradient dY is zero but at its argmax (a, b),
    where it is g = dy[f, q] * (ReLU passed): dm[f, 4r + s, q] = A[r, a] A[s, b] g, by
    selects (a NaN in dy must not reach the zeros).  db[f] = the sum of g; g: an (L,)
    scratch.  One output stream per loop, so that each loop vectorises (sixteen in one loop
    ran 1.5x slower: the compiler cannot prove that they do not overlap)."""
    f_, length = dy.shape
    zero = dy.dtype.type(0)
    for f in range(f_):
        grad, arg = dy[f], code[f]
        total = zero
        for q in range(length):
            g[q] = grad[q] if arg[q] >= 4 else grad[q] * zero     # the reference's dy * mask
            total += g[q]
        db[f] = total
        for xi in range(16):
            out = dm[f, xi]
            row0, row1 = _A[xi // 4, 0], _A[xi // 4, 1]     # A[r, a] for a = 0 and a = 1
            col0, col1 = _A[xi % 4, 0], _A[xi % 4, 1]       # A[s, b] for b = 0 and b = 1
            for q in range(length):
                k = arg[q]
                sign = (row1 if k & 2 else row0) * (col1 if k & 1 else col0)
                out[q] = g[q] if sign > 0 else (-g[q] if sign < 0 else zero)
    return dm, db


# -- the ops --------------------------------------------------------------------
class WinogradCache(NamedTuple):
    u: Any          # (F, 16, C+) the weights in the Winograd domain, rows padded (_row_length)
    v: Any          # (C, 16, L+) the input tiles in the Winograd domain, L = N * TH * TW
    x_shape: tuple  # (C, N, H, W)
    g: Any          # geometry.Window
    tiles: tuple    # (TH, TW): tiles per image
    code: Any       # pooled only: uint8 (F, L), argmax in the tile + 4 where ReLU passed


def _check(g):
    reason = why_not("winograd", g)
    if reason:
        raise ValueError(f"winograd cannot compute this convolution: {reason}")


def _block(ws, name, rows, length, dtype):
    return ws.empty(name, (rows, 16, _row_length(length, np.dtype(dtype).itemsize)), dtype)


def _finite(a):
    """False where ``a`` holds a NaN or an infinity (or values whose squares overflow).  A
    dot product runs at memory speed (checking inside the input transform slowed it 1.6x)."""
    flat = a.reshape(-1)
    return bool(np.isfinite(np.dot(flat, flat)))


def _transform_and_multiply(x, w, g, th, tw, ws):
    """U, V and M = U @ V (16 GEMMs) for th x tw tiles per image; None where x or w is not
    finite."""
    if not (_finite(x) and _finite(w)):
        return None
    c, n = x.shape[:2]
    f, length = w.shape[0], n * th * tw
    u = _weight_transform(w, _block(ws, "u", f, c, x.dtype))
    v = _block(ws, "v", c, length, x.dtype)
    _input_transform(x, g.pad_top, g.pad_left, th, tw,
                     ws.empty("pad", (2 * th + 2, 2 * tw + 2), x.dtype), v)
    m = _block(ws, "m", f, length, x.dtype)
    np.matmul(_stack(u, c), _stack(v, length), out=_stack(m, length))
    return u, v, m


def _backward(dm, cache, need_dx, ws):
    """(dx or None, dw) from dM: dU = dM @ V^T, dV = U^T @ dM (16 GEMMs each)."""
    u, v, x_shape, g, (th, tw) = cache[:5]
    c, n = x_shape[:2]
    f, length = u.shape[0], n * th * tw
    du = ws.empty("du", u.shape, dm.dtype)
    np.matmul(_stack(dm, length), _stack(v, length).transpose(0, 2, 1), out=_stack(du, c))
    dw = _weight_transform_adjoint(du, ws.empty("dw", (f, c, 3, 3), dm.dtype))
    if not need_dx:
        return None, dw
    dv = ws.empty("dv", v.shape, dm.dtype)
    np.matmul(_stack(u, c).transpose(0, 2, 1), _stack(dm, length), out=_stack(dv, length))
    dx = _input_transform_adjoint(dv, g.pad_top, g.pad_left, th, tw,
                                  ws.empty("pad", (2 * th + 2, 2 * tw + 2), dm.dtype),
                                  ws.empty("dx", x_shape, dm.dtype))
    return dx, dw


def conv2d_forward(x, w, b, g, backend, ws=None):
    """x (C, N, H, W), w (F, C, 3, 3), b (F,) -> (y (F, N, OH, OW), cache): ops.conv2d_forward
    computed by Winograd F(2x2, 3x3); stride 1."""
    _check(g)
    ws = ws or Workspace(np)
    th, tw = (g.oh + 1) // 2, (g.ow + 1) // 2
    transformed = _transform_and_multiply(x, w, g, th, tw, ws)
    if transformed is None:
        return im2col_conv.conv2d_forward(x, w, b, g, backend, ws.part("im2col"))
    u, v, m = transformed
    y = _output_transform(m, b, th, tw, ws.empty("y", (w.shape[0], x.shape[1], g.oh, g.ow),
                                                 x.dtype))
    return y, WinogradCache(u, v, x.shape, g, (th, tw), None)


def conv2d_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, OH, OW) -> (dx (C, N, H, W) or None, dw (F, C, 3, 3), db (F,))."""
    ws = ws or Workspace(np)
    if not isinstance(cache, WinogradCache):
        return im2col_conv.conv2d_backward(dy, cache, need_dx, ws.part("im2col"))
    f = dy.shape[0]
    dm = ws.empty("dm", (f, *cache.v.shape[1:]), dy.dtype)
    dm, db = _output_transform_adjoint(dy, *cache.tiles, dm, ws.empty("db", (f,), dy.dtype))
    return (*_backward(dm, cache, need_dx, ws), db)


def conv_relu_pool_forward(x, w, b, g, pool_g, backend, ws=None):
    """x (C, N, H, W) -> (maxpool2x2(relu(conv(x))) (F, N, PH, PW), cache), the ReLU and the
    pool fused into the output transform: the tiles are the pool windows."""
    _check(g)
    ws = ws or Workspace(np)
    ph, pw = g.oh // 2, g.ow // 2
    transformed = _transform_and_multiply(x, w, g, ph, pw, ws)
    if transformed is None:
        return im2col_fused.conv_relu_pool_forward(x, w, b, g, pool_g, backend, ws.part("im2col"))
    u, v, m = transformed
    f, length = w.shape[0], x.shape[1] * ph * pw
    y = ws.empty("y", (f, x.shape[1], ph, pw), x.dtype)
    code = ws.empty("code", (f, length), np.uint8)
    _output_transform_pooled(m, b, y.reshape(f, length), code)
    return y, WinogradCache(u, v, x.shape, g, (ph, pw), code)


def conv_relu_pool_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, PH, PW) -> (dx (C, N, H, W) or None, dw (F, C, 3, 3), db (F,)), the pool and
    the ReLU run backward in the Winograd domain."""
    ws = ws or Workspace(np)
    if not isinstance(cache, WinogradCache):
        return im2col_fused.conv_relu_pool_backward(dy, cache, need_dx, ws.part("im2col"))
    f = dy.shape[0]
    dm = ws.empty("dm", (f, *cache.v.shape[1:]), dy.dtype)
    length = cache.code.shape[1]
    dm, db = _pooled_adjoint(dy.reshape(f, length), cache.code, dm, ws.empty("db", (f,), dy.dtype),
                             ws.empty("g", (length,), dy.dtype))
    return (*_backward(dm, cache, need_dx, ws), db)


FUSED = {"conv2d/winograd": OpPair(conv2d_forward, conv2d_backward),
         "conv_relu_pool/winograd": OpPair(conv_relu_pool_forward, conv_relu_pool_backward)}
