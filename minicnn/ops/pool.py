"""Max pooling with the argmax kept, so backward sends each dy to one input pixel."""
from typing import Any, NamedTuple

from .workspace import Workspace


class PoolCache(NamedTuple):
    argmax: Any     # int32 (C, N, OH, OW), flat h * W + w of each window's maximum
    x_shape: tuple
    g: Any
    backend: Any


def maxpool_forward(x, g, backend, ws=None):
    """x (C, N, H, W) -> (y (C, N, OH, OW), cache); ties go to the first maximum, NaN wins."""
    ws = ws or Workspace(backend.xp)
    shape = (*x.shape[:2], g.oh, g.ow)
    y, argmax = backend.maxpool_forward(x, g, ws.empty("y", shape, x.dtype),
                                        ws.empty("argmax", shape, "int32"), ws.part("scratch"))
    return y, PoolCache(argmax, x.shape, g, backend)


def maxpool_backward(dy, cache, ws=None):
    """dy (C, N, OH, OW) -> dx (C, N, H, W)."""
    argmax, x_shape, g, backend = cache
    ws = ws or Workspace(backend.xp)
    return backend.maxpool_backward(dy, argmax, g, ws.empty("dx", x_shape, dy.dtype))


class AvgPoolCache(NamedTuple):
    inverse_count: Any  # (OH, OW): 1 / the number of input pixels (not padding) of each window
    x_shape: tuple
    g: Any
    backend: Any


def _inverse_count(g, h, w, xp, dtype):
    """1 / (pixels of each window that lie inside the h x w input), (OH, OW)."""
    def inside(out, k, s, pad, size):
        start = xp.arange(out) * s - pad
        return xp.minimum(start + k, size) - xp.maximum(start, 0)
    rows, cols = inside(g.oh, g.kh, g.sh, g.pad_top, h), inside(g.ow, g.kw, g.sw, g.pad_left, w)
    return (1.0 / (rows.reshape(-1, 1) * cols.reshape(1, -1))).astype(dtype)


def avgpool_forward(x, g, backend, ws=None):
    """x (C, N, H, W) -> (y (C, N, OH, OW), cache): the mean of each window's input pixels.

    Padding is not counted, as in TensorFlow and Keras ('same' windows at the border
    average fewer pixels); PyTorch's AvgPool2d counts it unless count_include_pad=False.
    Computed with the backend's im2col: the window's taps are its column rows.
    """
    xp = backend.xp
    ws = ws or Workspace(xp)
    c, n, h, w = x.shape
    taps = g.kh * g.kw
    col = backend.im2col(x, g, ws.empty("col", (c * taps, n * g.oh * g.ow), x.dtype))
    y = ws.empty("y", (c, n, g.oh, g.ow), x.dtype)
    col.reshape(c, taps, n * g.oh * g.ow).sum(axis=1, out=y.reshape(c, -1))
    inverse_count = _inverse_count(g, h, w, xp, x.dtype)
    y *= inverse_count
    return y, AvgPoolCache(inverse_count, x.shape, g, backend)


def avgpool_backward(dy, cache, ws=None):
    """dy (C, N, OH, OW) -> dx (C, N, H, W): each window's dy / count spread over its pixels."""
    inverse_count, x_shape, g, backend = cache
    xp = backend.xp
    ws = ws or Workspace(xp)
    c, n = x_shape[:2]
    taps = g.kh * g.kw
    share = xp.multiply(dy, inverse_count, out=ws.empty("share", dy.shape, dy.dtype))
    dcol = ws.empty("dcol", (c, taps, n * g.oh * g.ow), dy.dtype)
    dcol[...] = share.reshape(c, 1, -1)
    return backend.col2im(dcol.reshape(c * taps, -1), g, ws.empty("dx", x_shape, dy.dtype))
