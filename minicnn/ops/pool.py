"""Max pooling with saved argmax, so backward is a scatter of dy to one index per window."""
from typing import NamedTuple, Any


class PoolCache(NamedTuple):
    argmax: Any     # int32 (N, C, OH, OW), flat h * W + w of each window's maximum
    x_shape: tuple
    g: Any
    backend: Any


def maxpool_forward(x, g, backend):
    """x (N, C, H, W) -> (y (N, C, OH, OW), cache)."""
    y, argmax = backend.maxpool_forward(x, g)
    return y, PoolCache(argmax, x.shape, g, backend)


def maxpool_backward(dy, cache):
    """dy (N, C, OH, OW) -> dx (N, C, H, W)."""
    return cache.backend.maxpool_backward(dy, cache.argmax, cache.x_shape, cache.g)
