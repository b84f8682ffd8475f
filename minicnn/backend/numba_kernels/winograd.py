"""The ``winograd`` convolution algorithm, F(2x2, 3x3) and F(4x4, 5x5) (Lavin & Gray 2016):
3x3 or 5x5 kernels, stride 1.

One dimension first.  Two outputs of a 3-tap filter g over four inputs d,
y0 = d0 g0 + d1 g1 + d2 g2 and y1 = d1 g0 + d2 g1 + d3 g2, take 6
multiplications done directly but only 4 as

    y = A^T [(G g) * (B^T d)]        (* elementwise)

with small constant matrices B^T (4x4), G (4x3) and A^T (2x4): F(2, 3).  Four
outputs of a 5-tap filter take 8 multiplications instead of 20 with 8x8, 8x5
and 4x8 ones: F(4, 5).  The matrices and the transforms of one tile are in
winograd_f2x3.py and winograd_f4x5.py; this module holds the loops and the
ops, the same for both.

Nested in two dimensions, an m x m tile of outputs comes from an alpha x alpha
tile d of the input (alpha = m + r - 1): Y = A^T [U * V] A with U = G g G^T
and V = B^T d B, alpha^2 multiplications per channel instead of m^2 r^2 (16
instead of 36, 64 instead of 400).  Summed over the input channels, the
product at each of the alpha^2 positions xi = alpha r + s of the tile is a
GEMM:

    M[xi] (F, N*T) = U[xi] (F, C) @ V[xi] (C, N*T)       (alpha^2 GEMMs, through BLAS)

Tiles.  Column n*T + t is tile t = ti*TW + tj of image n.  Tile (ti, tj)
makes the outputs (m ti + {0..m-1}, m tj + {0..m-1}) from the input rows
m ti - pad_top + {0..alpha-1} and columns m tj - pad_left + {0..alpha-1}, zero
outside the input, so neighbouring tiles overlap by alpha - m rows or
columns.  conv2d uses ceil(OH/m) x ceil(OW/m) tiles per image (a tile at an
edge writes only the pixels that exist); the pooled variant uses PH x PW 2x2
tiles, or ceil(PH/2) x ceil(PW/2) 4x4 ones.

Forward: U from w, V from x, the GEMMs, then Y = A^T M A plus the bias.
Backward runs the adjoints in reverse: dM = A dY A^T; dU = dM @ V^T and
dW = G^T dU G; dV = U^T @ dM and dx = B dV B^T, added up where tiles overlap.

The ReLU and the 2x2 max-pool fuse into the output transform.  The tiles
start at even rows and columns, so a 2x2 output tile IS a 2x2 pool window
(and a 4x4 one four windows): the output transform computes the tile's
outputs, adds the bias, applies the ReLU and keeps each window's maximum;
the (F, N, OH, OW) convolution output never exists.  Per window it stores
one byte: the argmax (0..3, row-major in the window) plus 4 where the ReLU
lets the gradient through (max > 0).
The pool backward runs in the Winograd domain.  A tile's gradient dY is
zero except at its windows' argmax, where it is g = dy * (max > 0).  For a
2x2 tile with its argmax at (a, b), dM = A dY A^T = g A[:, a] A[:, b]^T: the
outer product of two columns of A, that is 16 copies of g times 0 or +-1,
written from the pooled gradient, the argmax and the ReLU mask straight away
(db is summed on the way).  A 4x4 tile's dY is written out, then
transformed.  A plain convolution with a ReLU (conv_relu) applies it in the
output transform too, and its mask (y > 0) as dy is gathered into tiles.

Layout.  Each block is stored (alpha^2, R+, L+): matrix xi is [xi, :R, :L],
the form np.matmul takes as a stack.  Its rows are padded to an odd number of
cache lines, and so are the matrices (R+ is R or R + 1): a transform writes
the alpha^2 rows of a channel at once, and rows a power of two apart would all
fall in one cache set (stored so, the weight transform ran 3x slower at 256
channels).  Stored (R, alpha^2, L) instead, a channel's rows side by side, the
GEMMs wrote each row of M alpha^2 rows apart: 1.6x slower for tf-mnist's 5x5
layer (64 matrices), 1.2x for the lab model's 3x3 one at 64 filters.  With
2x2 tiles the pooled output (F, N, PH, PW) is M's column order itself, so
the pooled output transform and its adjoint are one long loop per filter.
The input transform copies each (c, n) plane into a small zero-bordered
scratch, so that its tile loop needs no bounds checks.

NaN.  The transforms are written out term by term, never multiplying by a
zero of B, G or A, so a NaN in x reaches exactly the outputs whose window
holds it and a NaN in dy exactly the pixels and taps it reaches in the
reference (the first and last pixel of a tile each feed one row of B^T d
only, the two outputs of a tile miss one of A's rows each).  Not so with 4x4
tiles: a middle pixel of a row feeds all four outputs' rows, and a NaN in dy
would reach pixels of dx that the reference keeps finite; so F(4x4, 5x5)'s
backward runs the reference where dy is not finite (from x and w, which its
cache keeps).  But G and B mix
the taps of a filter and the pixels of a tile: a NaN or an infinity in x or
w would reach taps of dw and pixels of dx that the reference keeps finite
(and the pooled variant never reads the row a 'valid' pool drops, which the
reference's dw still sees).  So a forward whose x or w is not finite (a dot
product each tells) runs the im2col reference instead, and its backward
follows.
"""
import functools
from typing import Any, NamedTuple

import numpy as np

from ...ops.algorithms import why_not
from ...ops import OpPair
from ...ops import conv as im2col_conv, fused as im2col_fused
from ...ops.workspace import Workspace
from . import first_max, kernel, reduce, relu
from . import winograd_f2x3 as f3, winograd_f4x5 as f45


# -- layout -----------------------------------------------------------------------
def _row_length(n, itemsize):
    """n rounded up to whole cache lines, an odd number of them: the row length of a block,
    and (with _block's R+) its matrices' size, so that the rows a transform writes at once
    fall in different cache sets (see "Layout" above)."""
    per_line = 64 // itemsize
    lines = -(-n // per_line)
    return (lines + 1 - lines % 2) * per_line


def _stack(a, rows, cols):
    """The alpha^2 matrices of a block (alpha^2, R+, L+), as the stack (alpha^2, rows, cols)
    that np.matmul takes."""
    return a[:, :rows, :cols]


# -- weights --------------------------------------------------------------------
@kernel
def _weight_transform(w, u):
    """u[alpha r + s, f, c] = (G w[f, c] G^T)[r, s]."""
    f_, c_, r = w.shape[:3]
    for f in range(f_):
        for c in range(c_):
            if r == 3:
                f3.weight_tile(w[f, c], u[:, f], c)
            else:
                f45.weight_tile(w[f, c], u[:, f], c)
    return u


@kernel
def _weight_transform_adjoint(du, dw):
    """dw[f, c] = G^T D G, where D is du[:, f, c] read as an alpha x alpha tile."""
    f_, c_, r = dw.shape[:3]
    for f in range(f_):
        for c in range(c_):
            if r == 3:
                f3.weight_tile_adjoint(du[:, f], c, dw[f, c])
            else:
                f45.weight_tile_adjoint(du[:, f], c, dw[f, c])
    return dw


# -- input tiles ----------------------------------------------------------------
def _pad_shape(th, tw, t):
    """The scratch that holds one zero-bordered plane: every pixel the tiles of the
    transforms ``t`` read."""
    return t.TILE * th + t.ALPHA - t.TILE, t.TILE * tw + t.ALPHA - t.TILE


@kernel
def _copy_into(plane, pt, pl, pad):
    """pad[pt + y, pl + x] = plane[y, x] for the pixels that fit in pad."""
    rows, cols = min(plane.shape[0], pad.shape[0] - pt), min(plane.shape[1], pad.shape[1] - pl)
    for y in range(rows):
        dst, src = pad[pt + y, pl:], plane[y]
        for j in range(cols):
            dst[j] = src[j]


@kernel
def _input_transform(x, pt, pl, th, tw, size, pad, v):
    """v[alpha r + s, c, (n * th + ti) * tw + tj] = (B^T d B)[r, s], where d is the input
    tile at rows m ti - pt.. and columns m tj - pl.. of x[c, n] (m: the output tile's
    size), zero outside the input.  pad: a _pad_shape scratch, so that the tile loop needs
    no bounds checks."""
    c_, n_ = x.shape[:2]
    alpha = pad.shape[0] - size * th + size
    pad[...] = 0            # its border stays zero: every plane is copied to the same place
    for c in range(c_):
        out = v[:, c]
        for n in range(n_):
            _copy_into(x[c, n], pt, pl, pad)
            for ti in range(th):
                rows, base = pad[size * ti:size * ti + alpha], (n * th + ti) * tw
                if alpha == 4:
                    f3.input_row(rows, base, tw, out)
                else:
                    f45.input_row(rows, base, tw, out)
    return v


@kernel
def _input_transform_adjoint(dv, pt, pl, th, tw, size, pad, dx):
    """dx[c, n] = the tiles B D B^T (D = dv[:, c, tile] as alpha x alpha) added up where they
    overlap, the padding dropped; pixels no tile reads get 0."""
    c_, n_, h, w = dx.shape
    alpha = pad.shape[0] - size * th + size
    rows, cols = min(h, pad.shape[0] - pt), min(w, pad.shape[1] - pl)
    zero = dx.dtype.type(0)
    for c in range(c_):
        d = dv[:, c]
        for n in range(n_):
            pad[...] = zero
            for ti in range(th):
                window, base = pad[size * ti:size * ti + alpha], (n * th + ti) * tw
                if alpha == 4:
                    f3.input_row_adjoint(d, base, tw, window)
                else:
                    f45.input_row_adjoint(d, base, tw, window)
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
# The loops over tiles run in the transforms' modules, over all of a filter's tiles at
# once: a choice between them inside a loop stops it vectorising (the pooled output
# transform ran 15x slower), and so would short rows of tiles.
@kernel
def _output_tiles(m, f, tu, out):
    """out[:, q] = the m x m outputs of tile q (row-major), A^T M A for filter f (m
    (alpha^2, F+, L+), out (m^2, L)); tu: an (m alpha, L) scratch."""
    if m.shape[0] == 16:
        f3.output_tiles(m, f, tu, out)
    else:
        f45.output_tiles(m, f, tu, out)


@kernel
def _output_tiles_adjoint(dy, tu, d, f):
    """d[:, f, q] = A dY A^T for the tile gradients dY = dy[:, q] (m x m, row-major); tu: an
    (m alpha, L) scratch."""
    if d.shape[0] == 16:
        f3.output_tiles_adjoint(dy, d, f)
    else:
        f45.output_tiles_adjoint(dy, tu, d, f)


@functools.lru_cache(maxsize=64)
def _tile_map(th, tw, size, oh, ow):
    """int32 (size^2, th tw): the pixel (y * OW + x, in its image's OH x OW plane) of place
    p = size a + b of tile t = ti tw + tj, that is (size ti + a, size tj + b); -1 beyond an
    edge."""
    a, b = np.divmod(np.arange(size * size), size)
    ti, tj = np.divmod(np.arange(th * tw), tw)
    rows, cols = size * ti[None, :] + a[:, None], size * tj[None, :] + b[:, None]
    return np.where((rows < oh) & (cols < ow), rows * ow + cols, -1).astype(np.int32)


# The two loops below run over the images innermost: a tile row or column holds 2 or 4
# pixels, an image's tiles a few dozen, and loops that short cost more to set up than to
# run (the adjoint took 9 ns a pixel with the images outermost).
@kernel
def _output_transform(m, b, source, tu, tiles, with_relu, y):
    """y[f, n] = the tiles A^T m[:, f] A + b[f], through a ReLU if ``with_relu``; a tile at an
    edge writes what fits.  source: _tile_map; tu, tiles: (m alpha, L) and (m^2, L)
    scratches (m: the tile's size)."""
    f_, n_ = y.shape[:2]
    positions, count = source.shape
    zero = y.dtype.type(0)
    for f in range(f_):
        bias, out = b[f], y[f].reshape(n_, y.shape[2] * y.shape[3])
        _output_tiles(m, f, tu, tiles)
        for p in range(positions):
            row = tiles[p]
            for t in range(count):
                pixel = source[p, t]
                if pixel >= 0:
                    for n in range(n_):
                        value = row[n * count + t] + bias
                        out[n, pixel] = relu(value, zero) if with_relu else value
    return y


@reduce
def _output_transform_adjoint(dy, source, tu, tiles, with_relu, y, dm, db):
    """dm[:, f, tile] = A dY A^T for each tile dY of dy[f] (zero beyond an edge), dy times
    (y > 0) first if ``with_relu`` (as the reference's ReLU: a NaN stays NaN); db[f] = the
    sum of that.  source: _tile_map; tu, tiles: (m alpha, L) and (m^2, L) scratches."""
    f_, n_ = dy.shape[:2]
    positions, count = source.shape
    plane = dy.shape[2] * dy.shape[3]
    zero = dy.dtype.type(0)
    for f in range(f_):
        grad, after = dy[f].reshape(n_, plane), y[f].reshape(n_, plane)
        total = zero
        for p in range(positions):
            row = tiles[p]
            for t in range(count):
                pixel = source[p, t]
                if pixel < 0:
                    for n in range(n_):
                        row[n * count + t] = zero
                elif with_relu:
                    for n in range(n_):
                        value = grad[n, pixel]
                        value = value if after[n, pixel] > zero else value * zero
                        row[n * count + t] = value
                        total += value
                else:
                    for n in range(n_):
                        row[n * count + t] = grad[n, pixel]
                        total += grad[n, pixel]
        _output_tiles_adjoint(tiles, tu, dm, f)
        db[f] = total
    return dm, db


@kernel
def _output_transform_pooled(m, b, tu, tiles, y, code):
    """y[f, q] = the largest of relu(tile q's four outputs A^T m[:, f] A + b[f]); code[f, q] =
    its place in the tile (0..3, row-major), + 4 where it is > 0 (the ReLU mask).  ReLU
    before the max, as in the reference, so that the argmax is the reference's where
    outputs tie at 0.  tu, tiles: (8, L) (unused here) and (4, L) scratches."""
    f_, length = y.shape
    zero = y.dtype.type(0)
    y00, y01, y10, y11 = tiles[0], tiles[1], tiles[2], tiles[3]
    for f in range(f_):
        bias, out, arg = b[f], y[f], code[f]
        _output_tiles(m, f, tu, tiles)
        for q in range(length):
            best, k = relu(y00[q] + bias, zero), 0
            best, k = first_max(best, k, relu(y01[q] + bias, zero), 1)
            best, k = first_max(best, k, relu(y10[q] + bias, zero), 2)
            best, k = first_max(best, k, relu(y11[q] + bias, zero), 3)
            out[q] = best
            arg[q] = k + 4 if best > zero else k
    return y, code


@reduce
def _pooled_adjoint(dy, code, a, dm, db, g):
    """dm[:, f, q] = A dY A^T, where the tile's gradient dY is zero but at its argmax (i, j),
    where it is g = dy[f, q] * (ReLU passed): dm[alpha r + s, f, q] = A[r, i] A[s, j] g, by
    selects (a NaN in dy must not reach the zeros).  a: A (alpha, 2), of dy's dtype;
    db[f] = the sum of g; g: an (L,) scratch.  One output stream per loop, so that each
    loop vectorises (sixteen in one loop ran 1.5x slower: the compiler cannot prove that
    they do not overlap)."""
    f_, length = dy.shape
    alpha = a.shape[0]
    zero = dy.dtype.type(0)
    for f in range(f_):
        grad, arg = dy[f], code[f]
        total = zero
        for q in range(length):
            g[q] = grad[q] if arg[q] >= 4 else grad[q] * zero     # the reference's dy * mask
            total += g[q]
        db[f] = total
        for xi in range(alpha * alpha):
            out = dm[xi, f]
            r, s = xi // alpha, xi % alpha
            c00, c01 = a[r, 0] * a[s, 0], a[r, 0] * a[s, 1]       # the argmax's place k = 2i + j
            c10, c11 = a[r, 1] * a[s, 0], a[r, 1] * a[s, 1]
            for q in range(length):
                k = arg[q]
                coefficient = (c11 if k & 1 else c10) if k & 2 else (c01 if k & 1 else c00)
                out[q] = g[q] * coefficient if coefficient != zero else zero
    return dm, db


@kernel
def _output_transform_pooled_4x4(m, b, th, tw, tu, tiles, y, code):
    """4x4 tiles, four pool windows each: y[f, n, i, j] = the largest of relu(the window's
    four outputs + b[f]), code[f, n, i, j] = its place in the window (0..3, row-major) + 4
    where it is > 0, as _output_transform_pooled.  Window (i, j) is quarter (i % 2, j % 2)
    of tile (i // 2, j // 2).  tu, tiles: (4 alpha, L) and (16, L) scratches."""
    f_, n_, ph, pw = y.shape
    zero = y.dtype.type(0)
    for f in range(f_):
        bias = b[f]
        _output_tiles(m, f, tu, tiles)
        for n in range(n_):
            for i in range(ph):
                out, arg, top = y[f, n, i], code[f, n, i], 8 * (i % 2)
                base = (n * th + i // 2) * tw
                for j in range(pw):
                    q, k0 = base + j // 2, top + 2 * (j % 2)     # k0: the window's first output
                    best, k = relu(tiles[k0, q] + bias, zero), 0
                    best, k = first_max(best, k, relu(tiles[k0 + 1, q] + bias, zero), 1)
                    best, k = first_max(best, k, relu(tiles[k0 + 4, q] + bias, zero), 2)
                    best, k = first_max(best, k, relu(tiles[k0 + 5, q] + bias, zero), 3)
                    out[j] = best
                    arg[j] = k + 4 if best > zero else k
    return y, code


@reduce
def _pooled_adjoint_4x4(dy, code, th, tw, tu, tiles, dm, db):
    """dm[:, f, tile] = A dY A^T, where the 4x4 tile's gradient dY is zero but at each of its
    windows' argmax, where it is dy * (ReLU passed); db[f] = the sum of those.  tu, tiles:
    (4 alpha, L) and (16, L) scratches."""
    f_, n_, ph, pw = dy.shape
    zero = dy.dtype.type(0)
    for f in range(f_):
        tiles[:] = zero
        total = zero
        for n in range(n_):
            for i in range(ph):
                grad, arg, top = dy[f, n, i], code[f, n, i], 8 * (i % 2)
                base = (n * th + i // 2) * tw
                for j in range(pw):
                    k = arg[j]
                    g = grad[j] if k >= 4 else grad[j] * zero    # the reference's dy * mask
                    total += g
                    place = top + 2 * (j % 2) + (k & 1) + 4 * ((k >> 1) & 1)
                    tiles[place, base + j // 2] = g
        _output_tiles_adjoint(tiles, tu, dm, f)
        db[f] = total
    return dm, db


# -- the ops --------------------------------------------------------------------
class WinogradCache(NamedTuple):
    u: Any          # (alpha^2, F+, C+) the weights in the Winograd domain (_block)
    v: Any          # (alpha^2, C+, L+) the input tiles in the Winograd domain, L = N TH TW
    x_shape: tuple  # (C, N, H, W)
    g: Any          # geometry.Window
    tiles: tuple    # (TH, TW): tiles per image
    t: Any          # the transforms' module (winograd_f2x3 or winograd_f4x5)
    code: Any       # pooled only: uint8 (F, N, PH, PW), argmax in the window + 4 where ReLU
                    # passed
    inputs: tuple   # 4x4 tiles only: (x, w, b, backend[, pool_g]), for a backward by the
                    # reference
    after: Any      # conv_relu only: its output y, whose y > 0 is the ReLU's mask


# kernel size -> the transforms, plain or pooled.  F(4x4, 3x3) was built and measured, and
# dropped: on the lab model's 14x14 layer (4x4 tiles cover 16x16) it was 1.66x slower than
# F(2x2, 3x3) at 16 channels, 4% slower at 64 and 8% faster at 256, with 5-6x its rounding
# (docs/results.md).
# F(2x2, 5x5) too, once F(4x4, 5x5) was faster on every shape measured.
_TRANSFORMS = {3: f3, 5: f45}
# dtype -> F(2x2, 3x3)'s A (4, 2) in that dtype, made once, not on every backward
_A = {dtype: f3.A.astype(dtype) for dtype in (np.float32, np.float64)}


def _check(g):
    reason = why_not("winograd", g)
    if reason:
        raise ValueError(f"winograd cannot compute this convolution: {reason}")


def _block(ws, name, rows, length, alpha, dtype):
    """(alpha^2, R+, L+): matrix xi of the block is [xi, :R, :L].  The rows are padded to an
    odd number of cache lines, and so are the matrices (R+ is R or R + 1)."""
    itemsize = np.dtype(dtype).itemsize
    row = _row_length(length, itemsize)
    lines = rows * row * itemsize // 64
    return ws.empty(name, (alpha * alpha, rows + 1 - lines % 2, row), dtype)


def _scratch(ws, length, t, dtype):
    """The output transforms' scratches: (m alpha, L) for A^T M's columns (or dY A^T's
    rows), (m^2, L) for the outputs of the tiles, m = t.TILE."""
    return (ws.empty("tu", (t.TILE * t.ALPHA, length), dtype),
            ws.empty("tiles", (t.TILE * t.TILE, length), dtype))


def _finite(a):
    """False where ``a`` holds a NaN or an infinity (or values whose squares overflow).  A
    dot product runs at memory speed (checking inside the input transform slowed it 1.6x)."""
    flat = a.reshape(-1)
    return bool(np.isfinite(np.dot(flat, flat)))


def _transform_and_multiply(x, w, g, th, tw, t, ws):
    """U, V and M = U @ V (alpha^2 GEMMs) for th x tw tiles per image with the transforms
    ``t``; None where x or w is not finite."""
    if not (_finite(x) and _finite(w)):
        return None
    c, n = x.shape[:2]
    f, length = w.shape[0], n * th * tw
    u = _weight_transform(w, _block(ws, "u", f, c, t.ALPHA, x.dtype))
    v = _block(ws, "v", c, length, t.ALPHA, x.dtype)
    _input_transform(x, g.pad_top, g.pad_left, th, tw, t.TILE,
                     ws.empty("pad", _pad_shape(th, tw, t), x.dtype), v)
    m = _block(ws, "m", f, length, t.ALPHA, x.dtype)
    np.matmul(_stack(u, f, c), _stack(v, c, length), out=_stack(m, f, length))
    return u, v, m


def _backward(dm, f, cache, need_dx, ws):
    """(dx or None, dw) from dM of f filters: dU = dM @ V^T, dV = U^T @ dM (alpha^2 GEMMs
    each)."""
    u, v, x_shape, g, (th, tw), t = cache[:6]
    c, n = x_shape[:2]
    length = n * th * tw
    du = _block(ws, "du", f, c, t.ALPHA, dm.dtype)
    np.matmul(_stack(dm, f, length), _stack(v, c, length).transpose(0, 2, 1),
              out=_stack(du, f, c))
    dw = _weight_transform_adjoint(du, ws.empty("dw", (f, c, g.kh, g.kw), dm.dtype))
    if not need_dx:
        return None, dw
    dv = _block(ws, "dv", c, length, t.ALPHA, dm.dtype)
    np.matmul(_stack(u, f, c).transpose(0, 2, 1), _stack(dm, f, length),
              out=_stack(dv, c, length))
    dx = _input_transform_adjoint(dv, g.pad_top, g.pad_left, th, tw, t.TILE,
                                  ws.empty("pad", _pad_shape(th, tw, t), dm.dtype),
                                  ws.empty("dx", x_shape, dm.dtype))
    return dx, dw


def _plain_forward(x, w, b, g, backend, ws, with_relu):
    """conv2d_forward and conv_relu_forward; None where x or w is not finite."""
    _check(g)
    t = _TRANSFORMS[g.kh]
    th, tw = -(-g.oh // t.TILE), -(-g.ow // t.TILE)
    transformed = _transform_and_multiply(x, w, g, th, tw, t, ws)
    if transformed is None:
        return None
    u, v, m = transformed
    y = _output_transform(m, b, _tile_map(th, tw, t.TILE, g.oh, g.ow),
                          *_scratch(ws, x.shape[1] * th * tw, t, x.dtype), with_relu,
                          ws.empty("y", (w.shape[0], x.shape[1], g.oh, g.ow), x.dtype))
    inputs = (x, w, b, backend) if t.TILE == 4 else None
    return y, WinogradCache(u, v, x.shape, g, (th, tw), t, None, inputs,
                            y if with_relu else None)


def _plain_backward(dy, cache, need_dx, ws):
    """conv2d_backward and conv_relu_backward, from a WinogradCache."""
    with_relu = cache.after is not None
    if cache.inputs is not None and not _finite(dy):
        # F(4x4, 5x5)'s tiles would spread a NaN of dy to pixels of dx the reference keeps
        x, w, b, backend = cache.inputs
        ref = im2col_conv.conv2d_forward(x, w, b, cache.g, backend, ws.part("im2col"))[1]
        d = dy * (cache.after > 0) if with_relu else dy
        return im2col_conv.conv2d_backward(d, ref, need_dx, ws.part("im2col"))
    f, t, (th, tw), n = dy.shape[0], cache.t, cache.tiles, cache.x_shape[1]
    dm = _block(ws, "dm", f, n * th * tw, t.ALPHA, dy.dtype)
    dy = np.ascontiguousarray(dy)                   # the kernel reads its planes flat
    dm, db = _output_transform_adjoint(dy, _tile_map(th, tw, t.TILE, *dy.shape[2:]),
                                       *_scratch(ws, n * th * tw, t, dy.dtype), with_relu,
                                       cache.after if with_relu else dy, dm,
                                       ws.empty("db", (f,), dy.dtype))
    return (*_backward(dm, f, cache, need_dx, ws), db)


def conv2d_forward(x, w, b, g, backend, ws=None):
    """x (C, N, H, W), w (F, C, r, r), b (F,) -> (y (F, N, OH, OW), cache): ops.conv2d_forward
    computed by Winograd F(2x2, 3x3) or F(4x4, 5x5); stride 1."""
    ws = ws or Workspace(np)
    done = _plain_forward(x, w, b, g, backend, ws, False)
    return done or im2col_conv.conv2d_forward(x, w, b, g, backend, ws.part("im2col"))


def conv2d_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, OH, OW) -> (dx (C, N, H, W) or None, dw (F, C, r, r), db (F,))."""
    ws = ws or Workspace(np)
    if not isinstance(cache, WinogradCache):
        return im2col_conv.conv2d_backward(dy, cache, need_dx, ws.part("im2col"))
    return _plain_backward(dy, cache, need_dx, ws)


def conv_relu_forward(x, w, b, g, backend, ws=None):
    """x (C, N, H, W) -> (relu(conv(x)) (F, N, OH, OW), cache), the ReLU in the output
    transform."""
    ws = ws or Workspace(np)
    done = _plain_forward(x, w, b, g, backend, ws, True)
    return done or im2col_fused.conv_relu_forward(x, w, b, g, backend, ws.part("im2col"))


def conv_relu_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, OH, OW) -> (dx or None, dw, db), the ReLU's mask applied as dy is gathered
    into tiles."""
    ws = ws or Workspace(np)
    if not isinstance(cache, WinogradCache):
        return im2col_fused.conv_relu_backward(dy, cache, need_dx, ws.part("im2col"))
    return _plain_backward(dy, cache, need_dx, ws)


def conv_relu_pool_forward(x, w, b, g, pool_g, backend, ws=None):
    """x (C, N, H, W) -> (maxpool2x2(relu(conv(x))) (F, N, PH, PW), cache), the ReLU and the
    pool fused into the output transform: a 2x2 tile is a pool window, a 4x4 tile four."""
    _check(g)
    ws = ws or Workspace(np)
    ph, pw = g.oh // 2, g.ow // 2
    t = _TRANSFORMS[g.kh]
    th, tw = (ph, pw) if t.TILE == 2 else (-(-ph // 2), -(-pw // 2))
    transformed = _transform_and_multiply(x, w, g, th, tw, t, ws)
    if transformed is None:
        return im2col_fused.conv_relu_pool_forward(x, w, b, g, pool_g, backend, ws.part("im2col"))
    u, v, m = transformed
    f, n = w.shape[0], x.shape[1]
    y = ws.empty("y", (f, n, ph, pw), x.dtype)
    code = ws.empty("code", (f, n, ph, pw), np.uint8)
    scratch = _scratch(ws, n * th * tw, t, x.dtype)
    if t.TILE == 2:
        _output_transform_pooled(m, b, *scratch, y.reshape(f, -1), code.reshape(f, -1))
        return y, WinogradCache(u, v, x.shape, g, (th, tw), t, code, None, None)
    _output_transform_pooled_4x4(m, b, th, tw, *scratch, y, code)
    return y, WinogradCache(u, v, x.shape, g, (th, tw), t, code, (x, w, b, backend, pool_g), None)


def conv_relu_pool_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, PH, PW) -> (dx (C, N, H, W) or None, dw (F, C, r, r), db (F,)), the pool and
    the ReLU run backward in the Winograd domain."""
    ws = ws or Workspace(np)
    if isinstance(cache, WinogradCache) and cache.inputs is not None and not _finite(dy):
        # 4x4 tiles would spread a NaN of dy to pixels of dx the reference keeps finite
        x, w, b, backend, pool_g = cache.inputs
        cache = im2col_fused.conv_relu_pool_forward(x, w, b, cache.g, pool_g, backend,
                                                    ws.part("im2col"))[1]
    if not isinstance(cache, WinogradCache):
        return im2col_fused.conv_relu_pool_backward(dy, cache, need_dx, ws.part("im2col"))
    f, t, (th, tw) = dy.shape[0], cache.t, cache.tiles
    dm = _block(ws, "dm", f, cache.x_shape[1] * th * tw, t.ALPHA, dy.dtype)
    db = ws.empty("db", (f,), dy.dtype)
    if t.TILE == 2:
        length = dy[0].size
        dm, db = _pooled_adjoint(dy.reshape(f, length), cache.code.reshape(f, length),
                                 _A[dy.dtype.type], dm, db,
                                 ws.empty("g", (length,), dy.dtype))
    else:
        dm, db = _pooled_adjoint_4x4(dy, cache.code, th, tw,
                                     *_scratch(ws, cache.x_shape[1] * th * tw, t, dy.dtype),
                                     dm, db)
    return (*_backward(dm, f, cache, need_dx, ws), db)


FUSED = {"conv2d/winograd": OpPair(conv2d_forward, conv2d_backward),
         "conv_relu/winograd": OpPair(conv_relu_forward, conv_relu_backward),
         "conv_relu_pool/winograd": OpPair(conv_relu_pool_forward, conv_relu_pool_backward)}
