"""Fully connected layer: y = x @ w + b."""
from typing import Any, NamedTuple

from .workspace import Workspace


class DenseCache(NamedTuple):
    x: Any          # (N, D)
    w: Any          # (D, M)
    backend: Any


def dense_forward(x, w, b, backend, ws=None):
    """x (N, D), w (D, M), b (M,) -> (y (N, M), cache)."""
    ws = ws or Workspace(backend.xp)
    y = backend.xp.matmul(x, w, out=ws.empty("y", (x.shape[0], w.shape[1]), x.dtype))
    y += b
    return y, DenseCache(x, w, backend)


def dense_backward(dy, cache, need_dx=True, ws=None):
    """dy (N, M) -> (dx (N, D), or None unless need_dx; dw (D, M); db (M,))."""
    x, w, backend = cache
    xp = backend.xp
    ws = ws or Workspace(xp)
    dw = xp.matmul(x.T, dy, out=ws.empty("dw", w.shape, dy.dtype))
    db = dy.sum(axis=0, out=ws.empty("db", (w.shape[1],), dy.dtype))
    dx = xp.matmul(dy, w.T, out=ws.empty("dx", x.shape, dy.dtype)) if need_dx else None
    return dx, dw, db
