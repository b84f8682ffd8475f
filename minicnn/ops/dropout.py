"""Inverted dropout, as Keras's Dropout(rate): training zeroes each value with probability
``rate`` and scales the others by 1 / (1 - rate), so inference is the identity.

The random numbers come in as an argument (``u``, uniform in [0, 1), the shape of x):
the model draws them per sample from (seed, step, sample index) with a
counter-based generator (nn/layers.py, Dropout.draw), so a sample gets the same
mask however the batch is split into shards or processes.  ``rate`` is the
probability of dropping (Keras's rate, PyTorch's p; cs231n's p is the keep
probability).
"""
from typing import Any, NamedTuple

from .workspace import Workspace


class DropoutCache(NamedTuple):
    keep: Any       # bool, the shape of x: the values that went through
    scale: Any      # 1 / (1 - rate), in x's dtype
    backend: Any


def dropout_forward(x, u, rate, backend, ws=None):
    """x (any shape), u (x's shape) -> (y = x * (u >= rate) / (1 - rate), cache).  A dropped
    NaN stays NaN (NaN * 0), as in TensorFlow."""
    xp = backend.xp
    ws = ws or Workspace(xp)
    keep = xp.greater_equal(u, rate, out=ws.empty("keep", x.shape, bool))
    scale = x.dtype.type(1.0 / (1.0 - rate))
    y = xp.multiply(x, keep, out=ws.empty("y", x.shape, x.dtype))
    y *= scale
    return y, DropoutCache(keep, scale, backend)


def dropout_backward(dy, cache, ws=None):
    """dx = dy * keep / (1 - rate)."""
    keep, scale, backend = cache
    ws = ws or Workspace(backend.xp)
    dx = backend.xp.multiply(dy, keep, out=ws.empty("dx", dy.shape, dy.dtype))
    dx *= scale
    return dx
