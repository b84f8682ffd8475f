"""im2col and col2im for images laid out (C, N, H, W)."""
from . import kernel


@kernel
def _column_range(ow, w, sw, pl, kx):
    """Output columns [lo, hi) whose input column j * sw - pl + kx lies in [0, w)."""
    lo = min(max(0, (pl - kx + sw - 1) // sw), ow)
    hi = max(min(ow, (w - 1 + pl - kx) // sw + 1), lo)
    return lo, hi


@kernel
def im2col(x, kh, kw, sh, sw, pt, pl, oh, ow, col):
    """x (C, N, H, W) -> col (C*KH*KW, N*OH*OW): row (c, ky, kx) holds x[c, n, i*sh - pt + ky,
    j*sw - pl + kx] at column (n, i, j), zero where that falls in the padding."""
    c_, n_, h, w = x.shape
    col6 = col.reshape(c_, kh, kw, n_, oh, ow)
    zero = x.dtype.type(0)
    for c in range(c_):
        for ky in range(kh):
            for kx in range(kw):
                lo, hi = _column_range(ow, w, sw, pl, kx)
                for n in range(n_):
                    out = col6[c, ky, kx, n]
                    for i in range(oh):
                        y = i * sh - pt + ky
                        row = out[i]
                        if y < 0 or y >= h:
                            row[:] = zero
                            continue
                        row[:lo] = zero
                        row[hi:] = zero
                        dst = row[lo:hi]
                        src = x[c, n, y, lo * sw - pl + kx:]
                        for j in range(hi - lo):
                            dst[j] = src[j * sw]
    return col


@kernel
def col2im(col, kh, kw, sh, sw, pt, pl, oh, ow, dx):
    """col (C*KH*KW, N*OH*OW) -> dx (C, N, H, W): every column entry added back to the input
    pixel im2col took it from (the padding's entries are dropped)."""
    c_, n_, h, w = dx.shape
    col6 = col.reshape(c_, kh, kw, n_, oh, ow)
    dx[...] = 0
    for c in range(c_):
        for ky in range(kh):
            for kx in range(kw):
                lo, hi = _column_range(ow, w, sw, pl, kx)
                for n in range(n_):
                    src = col6[c, ky, kx, n]
                    for i in range(oh):
                        y = i * sh - pt + ky
                        if y < 0 or y >= h:
                            continue
                        part = src[i, lo:hi]
                        dst = dx[c, n, y, lo * sw - pl + kx:]
                        for j in range(hi - lo):
                            dst[j * sw] += part[j]
    return dx
