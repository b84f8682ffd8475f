"""minicnn's image layout inside a model, (C, N, H, W), and the conversions at its edges.

Why channels first: a convolution computed as one GEMM,
w (F, C*KH*KW) @ col (C*KH*KW, N*OH*OW), produces (F, N*OH*OW), which already is
the next layer's input (F, N, OH, OW): no transpose between layers, and every
kernel runs over contiguous planes.  The public API (``Sequential``) takes and
returns NCHW; a model converts once on the way in and once where it flattens
the images for a dense layer (in NCHW order, so that a saved model means the
same thing in any layout).  With one channel both conversions are free.
"""
from typing import Any, NamedTuple

from .workspace import Workspace


def _swap_01(x, backend, ws, name):
    """(A, B, H, W) -> (B, A, H, W), contiguous; a reshape when A or B is 1."""
    a, b = x.shape[:2]
    if a == 1 or b == 1:
        return x.reshape(b, a, *x.shape[2:])
    out = (ws or Workspace(backend.xp)).empty(name, (b, a, *x.shape[2:]), x.dtype)
    out[...] = x.transpose(1, 0, 2, 3)
    return out


def to_internal(x, backend, ws=None):
    """A batch of images (N, C, H, W) -> (C, N, H, W); other shapes pass through."""
    return _swap_01(x, backend, ws, "to_internal") if x.ndim == 4 else x


def to_public(x, backend, ws=None):
    """(C, N, H, W) -> images (N, C, H, W); other shapes pass through."""
    return _swap_01(x, backend, ws, "to_public") if x.ndim == 4 else x


class FlattenCache(NamedTuple):
    x_shape: tuple
    backend: Any


def flatten_forward(x, backend, ws=None):
    """x (C, N, H, W) -> y (N, C*H*W), in C, H, W order; other shapes: (N, ...) -> (N, D)."""
    nchw = to_public(x, backend, ws)
    return nchw.reshape(nchw.shape[0], -1), FlattenCache(x.shape, backend)


def flatten_backward(dy, cache, ws=None):
    """dy (N, C*H*W) -> dx (C, N, H, W) (or the input's shape)."""
    if len(cache.x_shape) != 4:
        return dy.reshape(cache.x_shape)
    c, n, h, w = cache.x_shape
    return to_internal(dy.reshape(n, c, h, w), cache.backend, ws)
