"""2-D convolution by im2col + one GEMM: the reference algorithm, on every backend.

Images are (C, N, H, W) (see layout.py).  With the columns laid out
(C*KH*KW, N*OH*OW), all three products are single 2-D GEMMs:

    forward     y  = w2d @ col          (F, N*OH*OW), already (F, N, OH, OW)
    backward    dw = dy2d @ col.T       (F, C*KH*KW)
                dx = col2im(w2d.T @ dy2d)

where w2d is w reshaped to (F, C*KH*KW) and dy2d is dy reshaped to (F, N*OH*OW).
Faster algorithms (direct, Winograd) are kernels a backend provides beside this
one (``Backend.fused``); they are tested against it.
"""
from typing import Any, NamedTuple

from .workspace import Workspace


class ConvCache(NamedTuple):
    col: Any        # (C*KH*KW, N*OH*OW) columns of the input
    w: Any          # (F, C, KH, KW)
    x_shape: tuple  # (C, N, H, W)
    g: Any          # geometry.Window
    backend: Any


def conv2d_forward(x, w, b, g, backend, ws=None):
    """x (C, N, H, W), w (F, C, KH, KW), b (F,) -> (y (F, N, OH, OW), cache).

    y = x (*) w + b, cross-correlation with the stride and padding of ``g``.
    """
    ws = ws or Workspace(backend.xp)
    c, n = x.shape[:2]
    f = w.shape[0]
    col = backend.im2col(x, g, ws.empty("col", (c * g.kh * g.kw, n * g.oh * g.ow), x.dtype))
    y = ws.empty("y", (f, n, g.oh, g.ow), x.dtype)
    backend.xp.matmul(w.reshape(f, -1), col, out=y.reshape(f, -1))
    y += b.reshape(f, 1, 1, 1)
    return y, ConvCache(col, w, x.shape, g, backend)


def conv2d_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, OH, OW) -> (dx (C, N, H, W), or None unless need_dx; dw (F, C, KH, KW); db (F,))."""
    col, w, x_shape, g, backend = cache
    xp = backend.xp
    ws = ws or Workspace(xp)
    f = w.shape[0]
    dy2d = dy.reshape(f, -1)
    db = dy2d.sum(axis=1, out=ws.empty("db", (f,), dy.dtype))
    dw = ws.empty("dw", w.shape, dy.dtype)
    xp.matmul(dy2d, col.T, out=dw.reshape(f, -1))
    if not need_dx:
        return None, dw, db
    dcol = xp.matmul(w.reshape(f, -1).T, dy2d, out=ws.empty("dcol", col.shape, dy.dtype))
    return backend.col2im(dcol, g, ws.empty("dx", x_shape, dy.dtype)), dw, db
