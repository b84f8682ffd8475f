"""Winograd F(4x4, 5x5): the transforms of one tile, for winograd.py's loops.

Four outputs of a 5-tap filter from eight inputs with 8 multiplications instead
of 20, from the Toom-Cook points 0, +-1, +-2, +-1/2 and infinity (NNPACK's
F(6x6, 3x3) has the same points, so the same B^T).  The matrices, derived
exactly with fractions (row 0 of B^T and G negated, which leaves the product
unchanged):

    B^T = | 1  0   -21/4  0      21/4   0     -1  0 |    A^T = | 1 1  1 1  1 1    1    0 |
          | 0  1    1    -17/4  -17/4   1      1  0 |          | 0 1 -1 2 -2 1/2 -1/2  0 |
          | 0 -1    1     17/4  -17/4  -1      1  0 |          | 0 1  1 4  4 1/4  1/4  0 |
          | 0  1/2  1/4  -5/2   -5/4    2      1  0 |          | 0 1 -1 8 -8 1/8 -1/8  1 |
          | 0 -1/2  1/4   5/2   -5/4   -2      1  0 |
          | 0  2    4    -5/2   -5      1/2    1  0 |    G = rows (1, 0, 0, 0, 0),
          | 0 -2    4     5/2   -5     -1/2    1  0 |        -2/9 (1, +-1, 1, +-1, 1),
          | 0 -1    0     21/4   0     -21/4   0  1 |        (1, +-2, 4, +-8, 16) / 90,
                                                              (32, +-16, 8, +-4, 2) / 45,
                                                              (0, 0, 0, 0, 1)

In two dimensions a 4x4 output tile comes from an 8x8 input tile (alpha = 8)
with 64 multiplications per channel pair instead of 400: 2.25x fewer than
F(2x2, 5x5), and its input tiles take 2.25x less memory per output.  The price
is rounding: float32 results are 1.6x as far from the exact ones as F(2x2,
5x5)'s, 6x as far as direct summation's (benchmarks/winograd_error.py --kernel 5).  Rows of the tile
mix pixels that the reference keeps apart (a middle pixel of a row reaches
all four outputs), so winograd.py runs a backward whose dy is not finite by
the reference.  Position xi = 8r + s of the tile is row xi of a block.
"""
import numpy as np

from . import kernel

ALPHA, TILE = 8, 4

_HALF, _QUARTER, _EIGHTH = np.float32(0.5), np.float32(0.25), np.float32(0.125)
_TWO, _FOUR, _FIVE, _EIGHT = np.float32(2), np.float32(4), np.float32(5), np.float32(8)
_SIXTEEN, _THIRTY_TWO = np.float32(16), np.float32(32)
_NINE, _FORTY_FIVE, _NINETY = np.float32(9), np.float32(45), np.float32(90)
_21_4, _17_4, _5_2, _5_4 = np.float32(5.25), np.float32(4.25), np.float32(2.5), np.float32(1.25)


# -- the 1-D transforms and their adjoints: pairs of points +-p as even +- odd parts ----
@kernel
def _bt(d0, d1, d2, d3, d4, d5, d6, d7):
    """B^T d."""
    e1, o1 = (d2 + d6) - _17_4 * d4, (d1 + d5) - _17_4 * d3
    e2, o2 = (_QUARTER * d2 + d6) - _5_4 * d4, (_HALF * d1 + _TWO * d5) - _5_2 * d3
    e3, o3 = (_FOUR * d2 + d6) - _FIVE * d4, (_TWO * d1 + _HALF * d5) - _5_2 * d3
    return ((d0 - d6) + _21_4 * (d4 - d2), e1 + o1, e1 - o1, e2 + o2, e2 - o2, e3 + o3, e3 - o3,
            (d7 - d1) + _21_4 * (d3 - d5))


@kernel
def _b(t0, t1, t2, t3, t4, t5, t6, t7):
    """B t: the adjoint of _bt."""
    s1, r1, s2, r2, s3, r3 = t1 + t2, t1 - t2, t3 + t4, t3 - t4, t5 + t6, t5 - t6
    return (t0,
            (r1 + _HALF * r2 + _TWO * r3) - t7,
            (s1 + _QUARTER * s2 + _FOUR * s3) - _21_4 * t0,
            _21_4 * t7 - (_17_4 * r1 + _5_2 * (r2 + r3)),
            _21_4 * t0 - (_17_4 * s1 + _5_4 * s2 + _FIVE * s3),
            (r1 + _TWO * r2 + _HALF * r3) - _21_4 * t7,
            (s1 + s2 + s3) - t0,
            t7)


@kernel
def _at(m0, m1, m2, m3, m4, m5, m6, m7):
    """A^T m."""
    s1, r1, s2, r2, s3, r3 = m1 + m2, m1 - m2, m3 + m4, m3 - m4, m5 + m6, m5 - m6
    return (m0 + s1 + s2 + s3, r1 + _TWO * r2 + _HALF * r3, s1 + _FOUR * s2 + _QUARTER * s3,
            r1 + _EIGHT * r2 + _EIGHTH * r3 + m7)


@kernel
def _a(y0, y1, y2, y3):
    """A y: the adjoint of _at."""
    e1, o1 = y0 + y2, y1 + y3
    e2, o2 = y0 + _FOUR * y2, _TWO * y1 + _EIGHT * y3
    e3, o3 = y0 + _QUARTER * y2, _HALF * y1 + _EIGHTH * y3
    return y0, e1 + o1, e1 - o1, e2 + o2, e2 - o2, e3 + o3, e3 - o3, y3


@kernel
def _g(g0, g1, g2, g3, g4):
    """G g (the divisions by 9, 45 and 90 after the sums, so that float64 stays exact)."""
    e1, o1 = g0 + g2 + g4, g1 + g3
    e2, o2 = g0 + _FOUR * g2 + _SIXTEEN * g4, _TWO * g1 + _EIGHT * g3
    e3, o3 = _THIRTY_TWO * g0 + _EIGHT * g2 + _TWO * g4, _SIXTEEN * g1 + _FOUR * g3
    return (g0, -_TWO * (e1 + o1) / _NINE, -_TWO * (e1 - o1) / _NINE,
            (e2 + o2) / _NINETY, (e2 - o2) / _NINETY, (e3 + o3) / _FORTY_FIVE,
            (e3 - o3) / _FORTY_FIVE, g4)


@kernel
def _gt(u0, u1, u2, u3, u4, u5, u6, u7):
    """G^T u: the adjoint of _g."""
    s1, r1 = -_TWO * (u1 + u2) / _NINE, -_TWO * (u1 - u2) / _NINE
    s2, r2 = (u3 + u4) / _NINETY, (u3 - u4) / _NINETY
    s3, r3 = (u5 + u6) / _FORTY_FIVE, (u5 - u6) / _FORTY_FIVE
    return (u0 + s1 + s2 + _THIRTY_TWO * s3, r1 + _TWO * r2 + _SIXTEEN * r3,
            s1 + _FOUR * s2 + _EIGHT * s3, r1 + _EIGHT * r2 + _FOUR * r3,
            s1 + _SIXTEEN * s2 + _TWO * s3 + u7)


# -- one tile -----------------------------------------------------------------------
@kernel
def weight_tile(k, out, c):
    """out[8r + s, c] = (G k G^T)[r, s] for the 5x5 kernel k."""
    c0 = _g(k[0, 0], k[1, 0], k[2, 0], k[3, 0], k[4, 0])        # the columns of G k
    c1 = _g(k[0, 1], k[1, 1], k[2, 1], k[3, 1], k[4, 1])
    c2 = _g(k[0, 2], k[1, 2], k[2, 2], k[3, 2], k[4, 2])
    c3 = _g(k[0, 3], k[1, 3], k[2, 3], k[3, 3], k[4, 3])
    c4 = _g(k[0, 4], k[1, 4], k[2, 4], k[3, 4], k[4, 4])
    for r in range(8):                                           # the rows of (G k) G^T
        row = _g(c0[r], c1[r], c2[r], c3[r], c4[r])
        for s in range(8):
            out[8 * r + s, c] = row[s]


@kernel
def _gt_column(d, s, c):
    """G^T applied down column s of the 8x8 tile d[:, c] (row-major)."""
    return _gt(d[s, c], d[8 + s, c], d[16 + s, c], d[24 + s, c], d[32 + s, c], d[40 + s, c],
               d[48 + s, c], d[56 + s, c])


@kernel
def weight_tile_adjoint(d, c, k):
    """k = G^T D G, where D is d[:, c] read as an 8x8 tile."""
    e0, e1, e2, e3 = (_gt_column(d, 0, c), _gt_column(d, 1, c), _gt_column(d, 2, c),
                      _gt_column(d, 3, c))                         # the columns of G^T D
    e4, e5, e6, e7 = (_gt_column(d, 4, c), _gt_column(d, 5, c), _gt_column(d, 6, c),
                      _gt_column(d, 7, c))
    for i in range(5):                                             # the rows of (G^T D) G
        k[i, 0], k[i, 1], k[i, 2], k[i, 3], k[i, 4] = _gt(e0[i], e1[i], e2[i], e3[i], e4[i],
                                                          e5[i], e6[i], e7[i])


@kernel
def _bt_column(rows, j):
    """B^T applied down column j of the eight rows (8, W)."""
    return _bt(rows[0, j], rows[1, j], rows[2, j], rows[3, j], rows[4, j], rows[5, j],
               rows[6, j], rows[7, j])


@kernel
def input_row(rows, base, tw, out):
    """out[:, base + tj] = B^T d B for the tw tiles d = rows[:, 4tj:4tj + 8] of one tile row."""
    for tj in range(tw):
        q, s = base + tj, 4 * tj
        c0, c1, c2, c3 = (_bt_column(rows, s), _bt_column(rows, s + 1), _bt_column(rows, s + 2),
                          _bt_column(rows, s + 3))                 # the columns of B^T d
        c4, c5, c6, c7 = (_bt_column(rows, s + 4), _bt_column(rows, s + 5),
                          _bt_column(rows, s + 6), _bt_column(rows, s + 7))
        for r in range(8):                                         # the rows of (B^T d) B
            t = _bt(c0[r], c1[r], c2[r], c3[r], c4[r], c5[r], c6[r], c7[r])
            for j in range(8):
                out[8 * r + j, q] = t[j]


@kernel
def _b_row(d, first, q):
    """B applied to the eight values d[first:first + 8, q] (a row of the 8x8 tile q)."""
    return _b(d[first, q], d[first + 1, q], d[first + 2, q], d[first + 3, q], d[first + 4, q],
              d[first + 5, q], d[first + 6, q], d[first + 7, q])


@kernel
def input_row_adjoint(d, base, tw, rows):
    """rows[:, 4tj:4tj + 8] += B D B^T for the tw tiles D = d[:, base + tj] of one tile row."""
    for tj in range(tw):
        q, s = base + tj, 4 * tj
        a0, a1, a2, a3 = _b_row(d, 0, q), _b_row(d, 8, q), _b_row(d, 16, q), _b_row(d, 24, q)
        a4, a5, a6, a7 = _b_row(d, 32, q), _b_row(d, 40, q), _b_row(d, 48, q), _b_row(d, 56, q)
        for j in range(8):                               # the rows of D B^T, then B (D B^T)
            column = _b(a0[j], a1[j], a2[j], a3[j], a4[j], a5[j], a6[j], a7[j])
            for i in range(8):
                rows[i, s + j] += column[i]


# A loop over tiles that reads many rows at once does not vectorise: these run a pass
# per column (row) of the tile, 8 streams in and 4 out, or 4 in and 8 out.
@kernel
def output_tiles(m, f, tu, out):
    """out[4a + b, q] = (A^T M A)[a, b] for tile q of filter f of m (64, F+, L+), every tile
    of out (16, L).  tu: a (32, L) scratch, the columns of A^T M."""
    count = out.shape[1]
    for s in range(8):                                       # the columns of A^T M
        m0, m1, m2, m3 = m[s, f], m[8 + s, f], m[16 + s, f], m[24 + s, f]
        m4, m5, m6, m7 = m[32 + s, f], m[40 + s, f], m[48 + s, f], m[56 + s, f]
        t0, t1, t2, t3 = tu[s], tu[8 + s], tu[16 + s], tu[24 + s]
        for q in range(count):
            t0[q], t1[q], t2[q], t3[q] = _at(m0[q], m1[q], m2[q], m3[q], m4[q], m5[q], m6[q],
                                             m7[q])
    for a in range(4):                                       # the rows of (A^T M) A
        c0, c1, c2, c3 = tu[8 * a], tu[8 * a + 1], tu[8 * a + 2], tu[8 * a + 3]
        c4, c5, c6, c7 = tu[8 * a + 4], tu[8 * a + 5], tu[8 * a + 6], tu[8 * a + 7]
        y0, y1, y2, y3 = out[4 * a], out[4 * a + 1], out[4 * a + 2], out[4 * a + 3]
        for q in range(count):
            y0[q], y1[q], y2[q], y3[q] = _at(c0[q], c1[q], c2[q], c3[q], c4[q], c5[q], c6[q],
                                             c7[q])


@kernel
def output_tiles_adjoint(dy, tu, d, f):
    """d[:, f, q] = A dY A^T for the tile gradients dY = dy[:, q] (row-major 4x4), every
    tile of dy (16, L).  tu: a (32, L) scratch, the rows of dY A^T."""
    count = dy.shape[1]
    for a in range(4):                                       # row a of dY A^T: A dY[a]
        y0, y1, y2, y3 = dy[4 * a], dy[4 * a + 1], dy[4 * a + 2], dy[4 * a + 3]
        t0, t1, t2, t3 = tu[8 * a], tu[8 * a + 1], tu[8 * a + 2], tu[8 * a + 3]
        t4, t5, t6, t7 = tu[8 * a + 4], tu[8 * a + 5], tu[8 * a + 6], tu[8 * a + 7]
        for q in range(count):
            t0[q], t1[q], t2[q], t3[q], t4[q], t5[q], t6[q], t7[q] = _a(y0[q], y1[q], y2[q],
                                                                        y3[q])
    for s in range(8):                                       # column s of A (dY A^T)
        c0, c1, c2, c3 = tu[s], tu[8 + s], tu[16 + s], tu[24 + s]
        e0, e1, e2, e3 = d[s, f], d[8 + s, f], d[16 + s, f], d[24 + s, f]
        e4, e5, e6, e7 = d[32 + s, f], d[40 + s, f], d[48 + s, f], d[56 + s, f]
        for q in range(count):
            e0[q], e1[q], e2[q], e3[q], e4[q], e5[q], e6[q], e7[q] = _a(c0[q], c1[q], c2[q],
                                                                        c3[q])
