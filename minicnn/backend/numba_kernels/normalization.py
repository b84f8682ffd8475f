"""Local response normalisation across channels, in one pass per channel.

The reference (ops/normalization.py) makes about seventeen passes over the
tensor (the squares, eight window additions, the scalings, two square roots,
a division, the product).  Here each channel's window sum, its power and the
output are one loop over the channel's contiguous N*H*W values, the window's
rows read from cache.  The window is summed directly, 2r + 1 rows, not slid
(adding the entering row and subtracting the leaving one): a NaN or an
infinity in a sliding sum would reach every later channel.  Sums run over
the window's rows in channel order (the reference adds them centre-out:
float32 results agree to rounding).
"""
import numpy as np

from ...ops import OpPair
from ...ops.normalization import LRNCache
from ...ops.workspace import Workspace
from . import kernel


@kernel
def _power_code(beta):
    """0: u^-0.5, 1: u^-0.75 (both with square roots), 2: any other exponent."""
    return 0 if beta == 0.5 else (1 if beta == 0.75 else 2)


@kernel
def _window_rows(values, c, r, out):
    """out[q] = the sum of values[c', q] for c' in [c - r, c + r] within the channels."""
    first = values[max(0, c - r)]
    for q in range(out.size):
        out[q] = first[q]
    for d in range(max(0, c - r) + 1, min(values.shape[0], c + r + 1)):
        row = values[d]
        for q in range(out.size):
            out[q] += row[q]


@kernel
def _lrn_forward(x, squares, r, bias, alpha, beta, u, scale, y):
    """x (C, M) -> u = bias + alpha * window_sum(x^2), scale = u^-beta, y = x * scale.  One
    loop per power, so that each loop is branch-free and vectorises."""
    c_, m = x.shape
    one = x.dtype.type(1)
    for c in range(c_):
        row, sq = x[c], squares[c]
        for q in range(m):
            sq[q] = row[q] * row[q]
    code = _power_code(beta)
    for c in range(c_):
        uc, sc, yc, xc = u[c], scale[c], y[c], x[c]
        _window_rows(squares, c, r, uc)
        for q in range(m):
            uc[q] = bias + alpha * uc[q]
        if code == 0:
            for q in range(m):
                sc[q] = one / np.sqrt(uc[q])
        elif code == 1:
            for q in range(m):
                root = np.sqrt(uc[q])
                sc[q] = one / (root * np.sqrt(root))
        else:
            for q in range(m):
                sc[q] = uc[q] ** -beta
        for q in range(m):
            yc[q] = xc[q] * sc[q]


@kernel
def _lrn_backward(dy, x, y, u, scale, r, factor, t, summed, dx):
    """dx = dy * scale - 2 alpha beta x * window_sum(dy * y / u); factor = -2 alpha beta."""
    c_, m = dy.shape
    for c in range(c_):
        tc, dc, yc, uc = t[c], dy[c], y[c], u[c]
        for q in range(m):
            tc[q] = dc[q] * yc[q] / uc[q]
    for c in range(c_):
        _window_rows(t, c, r, summed)
        dxc, dc, sc, xc = dx[c], dy[c], scale[c], x[c]
        for q in range(m):
            dxc[q] = dc[q] * sc[q] + factor * xc[q] * summed[q]


def lrn_forward(x, depth_radius, bias, alpha, beta, backend, ws=None):
    """ops.lrn_forward in one kernel."""
    ws = ws or Workspace(np)
    c = x.shape[0]
    t = x.dtype.type
    flat = x.reshape(c, -1)
    u, scale, y = (ws.empty(name, x.shape, x.dtype) for name in ("u", "scale", "y"))
    _lrn_forward(flat, ws.empty("squares", flat.shape, x.dtype), depth_radius, t(bias),
                 t(alpha), t(beta), u.reshape(c, -1), scale.reshape(c, -1), y.reshape(c, -1))
    return y, LRNCache(x, y, u, scale, depth_radius, alpha, beta, backend)


def lrn_backward(dy, cache, ws=None):
    """ops.lrn_backward in one kernel."""
    x, y, u, scale, r, alpha, beta, backend = cache
    ws = ws or Workspace(np)
    c = dy.shape[0]
    dx = ws.empty("dx", dy.shape, dy.dtype)
    flat = [a.reshape(c, -1) for a in (dy, x, y, u, scale)]
    _lrn_backward(*flat, r, dy.dtype.type(-2.0 * alpha * beta),
                  ws.empty("t", flat[0].shape, dy.dtype),
                  ws.empty("summed", (flat[0].shape[1],), dy.dtype), dx.reshape(c, -1))
    return dx


FUSED = {"lrn": OpPair(lrn_forward, lrn_backward)}
