"""Winograd F(2x2, 5x5): the transforms of one tile, for winograd.py's loops.

Two outputs of a 5-tap filter from six inputs with 6 multiplications instead of
10, from the Toom-Cook points 0, 1, -1, 2, -2 and infinity (the points of
F(4, 3), so B^T is F(4x4, 3x3)'s):

    B^T = | 4  0 -5  0  1  0 |   G = |  1/4   0     0    0    0   |   A^T = | 1 1  1 1  1 0 |
          | 0 -4 -4  1  1  0 |       | -1/6 -1/6  -1/6 -1/6 -1/6  |         | 0 1 -1 2 -2 1 |
          | 0  4 -4 -1  1  0 |       | -1/6  1/6  -1/6  1/6 -1/6  |
          | 0 -2 -1  2  1  0 |       |  1/24 1/12  1/6  1/3  2/3  |
          | 0  2 -1 -2  1  0 |       |  1/24 -1/12 1/6 -1/3  2/3  |
          | 0  4  0 -5  0  1 |       |  0    0     0    0    1    |

In two dimensions a 2x2 output tile comes from a 6x6 input tile (alpha = 6)
with 36 multiplications per channel pair instead of 100.  Position
xi = 6r + s of the tile is row xi of a block.  The price is rounding: the
entries of B^T reach 5 and G divides by 6 and 24, so float32 results are
3.5-4.6x as far from the exact ones as direct summation's (RMS and largest
error, 32 and 64 channels of 12x12; benchmarks/winograd_error.py --kernel 5),
where F(2x2, 3x3) is as accurate as direct.  The constants are float32 (exact
small integers, or divisors, so that float64 stays exact to rounding), and
every transform is written term by term, never multiplying by a zero (why:
winograd.py, "NaN").
"""
import numpy as np

from . import kernel

ALPHA, TILE = 6, 2
A = np.array([[1, 0], [1, 1], [1, -1], [1, 2], [1, -2], [0, 1]])    # (A^T)^T, alpha x 2

_TWO, _FOUR, _FIVE = np.float32(2), np.float32(4), np.float32(5)
_SIX, _TWENTY_FOUR, _QUARTER = np.float32(6), np.float32(24), np.float32(0.25)


# -- the 1-D transforms and their adjoints ----------------------------------------
@kernel
def _bt(d0, d1, d2, d3, d4, d5):
    """B^T d."""
    return (_FOUR * d0 - _FIVE * d2 + d4,
            (d3 + d4) - _FOUR * (d1 + d2),
            (d4 - d3) + _FOUR * (d1 - d2),
            (d4 - d2) + _TWO * (d3 - d1),
            (d4 - d2) - _TWO * (d3 - d1),
            _FOUR * d1 - _FIVE * d3 + d5)


@kernel
def _b(t0, t1, t2, t3, t4, t5):
    """B t: the adjoint of _bt."""
    return (_FOUR * t0,
            _FOUR * (t2 - t1) + _TWO * (t4 - t3) + _FOUR * t5,
            -_FIVE * t0 - _FOUR * (t1 + t2) - (t3 + t4),
            (t1 - t2) + _TWO * (t3 - t4) - _FIVE * t5,
            t0 + (t1 + t2) + (t3 + t4),
            t5)


@kernel
def _at(m0, m1, m2, m3, m4, m5):
    """A^T m."""
    return m0 + (m1 + m2) + (m3 + m4), (m1 - m2) + _TWO * (m3 - m4) + m5


@kernel
def _a(y0, y1):
    """A y: the adjoint of _at."""
    return y0, y0 + y1, y0 - y1, y0 + _TWO * y1, y0 - _TWO * y1, y1


@kernel
def _g(g0, g1, g2, g3, g4):
    """G g."""
    even, odd = g0 + g2 + g4, g1 + g3
    even4, odd4 = g0 + _FOUR * g2 + _FOUR * _FOUR * g4, _TWO * g1 + _FOUR * _TWO * g3
    return (g0 * _QUARTER, -(even + odd) / _SIX, -(even - odd) / _SIX,
            (even4 + odd4) / _TWENTY_FOUR, (even4 - odd4) / _TWENTY_FOUR, g4)


@kernel
def _gt(u0, u1, u2, u3, u4, u5):
    """G^T u: the adjoint of _g."""
    e, o = -(u1 + u2) / _SIX, (u2 - u1) / _SIX
    p, q = (u3 + u4) / _TWENTY_FOUR, (u3 - u4) / _TWENTY_FOUR
    return (u0 * _QUARTER + e + p, o + _TWO * q, e + _FOUR * p, o + _FOUR * _TWO * q,
            e + _FOUR * _FOUR * p + u5)


# -- one tile -----------------------------------------------------------------------
@kernel
def weight_tile(k, out, c):
    """out[6r + s, c] = (G k G^T)[r, s] for the 5x5 kernel k."""
    c0 = _g(k[0, 0], k[1, 0], k[2, 0], k[3, 0], k[4, 0])        # the columns of G k
    c1 = _g(k[0, 1], k[1, 1], k[2, 1], k[3, 1], k[4, 1])
    c2 = _g(k[0, 2], k[1, 2], k[2, 2], k[3, 2], k[4, 2])
    c3 = _g(k[0, 3], k[1, 3], k[2, 3], k[3, 3], k[4, 3])
    c4 = _g(k[0, 4], k[1, 4], k[2, 4], k[3, 4], k[4, 4])
    for r in range(6):                                           # the rows of (G k) G^T
        row = _g(c0[r], c1[r], c2[r], c3[r], c4[r])
        for s in range(6):
            out[6 * r + s, c] = row[s]


@kernel
def weight_tile_adjoint(d, c, k):
    """k = G^T D G, where D is d[:, c] read as a 6x6 tile."""
    e0 = _gt(d[0, c], d[6, c], d[12, c], d[18, c], d[24, c], d[30, c])  # columns of G^T D
    e1 = _gt(d[1, c], d[7, c], d[13, c], d[19, c], d[25, c], d[31, c])
    e2 = _gt(d[2, c], d[8, c], d[14, c], d[20, c], d[26, c], d[32, c])
    e3 = _gt(d[3, c], d[9, c], d[15, c], d[21, c], d[27, c], d[33, c])
    e4 = _gt(d[4, c], d[10, c], d[16, c], d[22, c], d[28, c], d[34, c])
    e5 = _gt(d[5, c], d[11, c], d[17, c], d[23, c], d[29, c], d[35, c])
    for i in range(5):                                                   # rows of (G^T D) G
        k[i, 0], k[i, 1], k[i, 2], k[i, 3], k[i, 4] = _gt(e0[i], e1[i], e2[i], e3[i], e4[i],
                                                          e5[i])


@kernel
def input_row(rows, base, tw, out):
    """out[:, base + tj] = B^T d B for the tw tiles d = rows[:, 2tj:2tj + 6] of one tile row."""
    r0, r1, r2, r3, r4, r5 = rows[0], rows[1], rows[2], rows[3], rows[4], rows[5]
    for tj in range(tw):
        q, s = base + tj, 2 * tj
        c0 = _bt(r0[s], r1[s], r2[s], r3[s], r4[s], r5[s])              # the columns of B^T d
        c1 = _bt(r0[s + 1], r1[s + 1], r2[s + 1], r3[s + 1], r4[s + 1], r5[s + 1])
        c2 = _bt(r0[s + 2], r1[s + 2], r2[s + 2], r3[s + 2], r4[s + 2], r5[s + 2])
        c3 = _bt(r0[s + 3], r1[s + 3], r2[s + 3], r3[s + 3], r4[s + 3], r5[s + 3])
        c4 = _bt(r0[s + 4], r1[s + 4], r2[s + 4], r3[s + 4], r4[s + 4], r5[s + 4])
        c5 = _bt(r0[s + 5], r1[s + 5], r2[s + 5], r3[s + 5], r4[s + 5], r5[s + 5])
        for r in range(6):                                               # the rows of (B^T d) B
            t = _bt(c0[r], c1[r], c2[r], c3[r], c4[r], c5[r])
            for j in range(6):
                out[6 * r + j, q] = t[j]


@kernel
def input_row_adjoint(d, base, tw, rows):
    """rows[:, 2tj:2tj + 6] += B D B^T for the tw tiles D = d[:, base + tj] of one tile row."""
    for tj in range(tw):
        q, s = base + tj, 2 * tj
        a0 = _b(d[0, q], d[1, q], d[2, q], d[3, q], d[4, q], d[5, q])   # the rows of D B^T
        a1 = _b(d[6, q], d[7, q], d[8, q], d[9, q], d[10, q], d[11, q])
        a2 = _b(d[12, q], d[13, q], d[14, q], d[15, q], d[16, q], d[17, q])
        a3 = _b(d[18, q], d[19, q], d[20, q], d[21, q], d[22, q], d[23, q])
        a4 = _b(d[24, q], d[25, q], d[26, q], d[27, q], d[28, q], d[29, q])
        a5 = _b(d[30, q], d[31, q], d[32, q], d[33, q], d[34, q], d[35, q])
        for j in range(6):                                               # B (D B^T)
            column = _b(a0[j], a1[j], a2[j], a3[j], a4[j], a5[j])
            for i in range(6):
                rows[i, s + j] += column[i]


# A loop over tiles that reads all 36 rows at once does not vectorise (LLVM gives up; 16
# rows, F(2x2, 3x3)'s, do): these run a pass per row of A instead, a few streams each.
@kernel
def _scaled(value, coefficient, zero):
    """value * coefficient, or 0 for a zero coefficient (so that a NaN does not reach it)."""
    return value * coefficient if coefficient != zero else zero


@kernel
def output_tiles(m, tu, out):
    """out[:, q] = the outputs y00, y01, y10, y11 (A^T M A) of tile q, for every tile of
    out (4, L).  tu: a (12, L) scratch, the columns of A^T M."""
    count = out.shape[1]
    for s in range(6):                                       # the columns of A^T M
        m0, m1, m2, m3, m4, m5 = m[s], m[6 + s], m[12 + s], m[18 + s], m[24 + s], m[30 + s]
        t, u = tu[s], tu[6 + s]
        for q in range(count):
            t[q], u[q] = _at(m0[q], m1[q], m2[q], m3[q], m4[q], m5[q])
    for i in range(2):                                       # the rows of (A^T M) A
        c0, c1, c2, c3, c4, c5 = (tu[6 * i], tu[6 * i + 1], tu[6 * i + 2], tu[6 * i + 3],
                                  tu[6 * i + 4], tu[6 * i + 5])
        left, right = out[2 * i], out[2 * i + 1]
        for q in range(count):
            left[q], right[q] = _at(c0[q], c1[q], c2[q], c3[q], c4[q], c5[q])


@kernel
def output_tiles_adjoint(dy, d):
    """d[:, q] = A dY A^T for the tile gradients dY = dy[:, q] (y00, y01, y10, y11), every
    tile of dy (4, L): d[6r + s] = A[r, 0] A[s, 0] y00 + A[r, 0] A[s, 1] y01 + A[r, 1] A[s, 0] y10
    + A[r, 1] A[s, 1] y11, a pass for each of the 36, zero coefficients skipped."""
    y00, y01, y10, y11 = dy[0], dy[1], dy[2], dy[3]
    zero = dy.dtype.type(0)
    for xi in range(36):
        r, s = xi // 6, xi % 6
        c00, c01 = dy.dtype.type(A[r, 0] * A[s, 0]), dy.dtype.type(A[r, 0] * A[s, 1])
        c10, c11 = dy.dtype.type(A[r, 1] * A[s, 0]), dy.dtype.type(A[r, 1] * A[s, 1])
        out = d[xi]
        for q in range(dy.shape[1]):
            out[q] = ((_scaled(y00[q], c00, zero) + _scaled(y01[q], c01, zero))
                      + (_scaled(y10[q], c10, zero) + _scaled(y11[q], c11, zero)))
