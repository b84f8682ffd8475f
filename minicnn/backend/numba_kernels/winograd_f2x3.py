"""Winograd F(2x2, 3x3): the transforms of one tile, for winograd.py's loops.

    B^T = | 1  0 -1  0 |     G = | 1    0    0   |     A^T = | 1  1  1  0 |
          | 0  1  1  0 |         | 1/2  1/2  1/2 |           | 0  1 -1 -1 |
          | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
          | 0  1  0 -1 |         | 0    0    1   |

A tile is 4x4 (alpha = 4); position xi = 4r + s of the tile is row xi of a
block.  Written term by term, never multiplying by a zero of B, G or A (why:
winograd.py, "NaN").
"""
import numpy as np

from . import kernel

ALPHA, TILE = 4, 2
A = np.array([[1, 0], [1, 1], [1, -1], [0, -1]])     # A = (A^T)^T, alpha x 2


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


# -- one tile -----------------------------------------------------------------------
@kernel
def weight_tile(k, out, c):
    """out[4r + s, c] = (G k G^T)[r, s] for the 3x3 kernel k."""
    a0, a1, a2, a3 = _g(k[0, 0], k[1, 0], k[2, 0])      # the columns of G k
    b0, b1, b2, b3 = _g(k[0, 1], k[1, 1], k[2, 1])
    c0, c1, c2, c3 = _g(k[0, 2], k[1, 2], k[2, 2])
    out[0, c], out[1, c], out[2, c], out[3, c] = _g(a0, b0, c0)  # the rows of (G k) G^T
    out[4, c], out[5, c], out[6, c], out[7, c] = _g(a1, b1, c1)
    out[8, c], out[9, c], out[10, c], out[11, c] = _g(a2, b2, c2)
    out[12, c], out[13, c], out[14, c], out[15, c] = _g(a3, b3, c3)


@kernel
def weight_tile_adjoint(d, c, k):
    """k = G^T D G, where D is d[:, c] read as a 4x4 tile."""
    a0, a1, a2 = _gt(d[0, c], d[4, c], d[8, c], d[12, c])     # the columns of G^T D
    b0, b1, b2 = _gt(d[1, c], d[5, c], d[9, c], d[13, c])
    c0, c1, c2 = _gt(d[2, c], d[6, c], d[10, c], d[14, c])
    e0, e1, e2 = _gt(d[3, c], d[7, c], d[11, c], d[15, c])
    k[0, 0], k[0, 1], k[0, 2] = _gt(a0, b0, c0, e0)             # the rows of (G^T D) G
    k[1, 0], k[1, 1], k[1, 2] = _gt(a1, b1, c1, e1)
    k[2, 0], k[2, 1], k[2, 2] = _gt(a2, b2, c2, e2)


@kernel
def input_row(rows, base, tw, out):
    """out[:, base + tj] = B^T d B for the tw tiles d = rows[:, 2tj:2tj + 4] of one tile row."""
    r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
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


@kernel
def _add_column(r0, r1, r2, r3, j, column):
    """Column j of the four rows r0..r3 += column (4 values)."""
    r0[j] += column[0]
    r1[j] += column[1]
    r2[j] += column[2]
    r3[j] += column[3]


@kernel
def input_row_adjoint(d, base, tw, rows):
    """rows[:, 2tj:2tj + 4] += B D B^T for the tw tiles D = d[:, base + tj] of one tile row."""
    r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
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


@kernel
def output_tile(m, f, q):
    """A^T M A for tile q of filter f of m (16, F+, L+): its outputs y00, y01, y10, y11."""
    t0, u0 = _at(m[0, f, q], m[4, f, q], m[8, f, q], m[12, f, q])      # the columns of A^T M
    t1, u1 = _at(m[1, f, q], m[5, f, q], m[9, f, q], m[13, f, q])
    t2, u2 = _at(m[2, f, q], m[6, f, q], m[10, f, q], m[14, f, q])
    t3, u3 = _at(m[3, f, q], m[7, f, q], m[11, f, q], m[15, f, q])
    y00, y01 = _at(t0, t1, t2, t3)                          # the rows of (A^T M) A
    y10, y11 = _at(u0, u1, u2, u3)
    return y00, y01, y10, y11


@kernel
def output_tile_adjoint(y00, y01, y10, y11, d, f, q):
    """d[:, f, q] = A dY A^T for the tile gradient dY = [[y00, y01], [y10, y11]]."""
    a0, a1, a2, a3 = _a(y00, y10)                        # the columns of A dY
    b0, b1, b2, b3 = _a(y01, y11)
    d[0, f, q], d[1, f, q], d[2, f, q], d[3, f, q] = _a(a0, b0)      # the rows of (A dY) A^T
    d[4, f, q], d[5, f, q], d[6, f, q], d[7, f, q] = _a(a1, b1)
    d[8, f, q], d[9, f, q], d[10, f, q], d[11, f, q] = _a(a2, b2)
    d[12, f, q], d[13, f, q], d[14, f, q], d[15, f, q] = _a(a3, b3)



@kernel
def output_tiles(m, f, tu, out):
    """out[:, q] = output_tile(m, f, q) for every tile q of out (4, L) (tu: unused,
    winograd_f4x5 needs it)."""
    for q in range(out.shape[1]):
        out[0, q], out[1, q], out[2, q], out[3, q] = output_tile(m, f, q)


@kernel
def output_tiles_adjoint(dy, d, f):
    """output_tile_adjoint of the tile gradients dy[:, q] (dy (4, L)) into d[:, f, q]."""
    for q in range(dy.shape[1]):
        output_tile_adjoint(dy[0, q], dy[1, q], dy[2, q], dy[3, q], d, f, q)
