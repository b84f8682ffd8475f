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
                                        ws.empty("argmax", shape, "int32"))
    return y, PoolCache(argmax, x.shape, g, backend)


def maxpool_backward(dy, cache, ws=None):
    """dy (C, N, OH, OW) -> dx (C, N, H, W)."""
    argmax, x_shape, g, backend = cache
    ws = ws or Workspace(backend.xp)
    return backend.maxpool_backward(dy, argmax, g, ws.empty("dx", x_shape, dy.dtype))
