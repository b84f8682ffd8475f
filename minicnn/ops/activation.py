"""Elementwise activations.  Both keep their output: the derivative is a function of it."""
from typing import Any, NamedTuple

from .workspace import Workspace


class ActivationCache(NamedTuple):
    y: Any
    backend: Any


def relu_forward(x, backend, ws=None):
    """y = max(x, 0), any shape; NaN stays NaN."""
    ws = ws or Workspace(backend.xp)
    y = backend.xp.maximum(x, 0, out=ws.empty("y", x.shape, x.dtype))
    return y, ActivationCache(y, backend)


def relu_backward(dy, cache, ws=None):
    """dx = dy where y > 0 (equivalently x > 0), else 0."""
    xp = cache.backend.xp
    ws = ws or Workspace(xp)
    mask = xp.greater(cache.y, 0, out=ws.empty("mask", dy.shape, bool))
    return xp.multiply(dy, mask, out=ws.empty("dx", dy.shape, dy.dtype))


def sigmoid_forward(x, backend, ws=None):
    """y = 1 / (1 + exp(-x)), written with tanh so large |x| cannot overflow."""
    xp = backend.xp
    ws = ws or Workspace(xp)
    y = ws.empty("y", x.shape, x.dtype)
    xp.multiply(x, 0.5, out=y)
    xp.tanh(y, out=y)
    y += 1
    y *= 0.5
    return y, ActivationCache(y, backend)


def sigmoid_backward(dy, cache, ws=None):
    """dx = dy * y * (1 - y)."""
    xp, y = cache.backend.xp, cache.y
    ws = ws or Workspace(xp)
    dx = xp.subtract(1, y, out=ws.empty("dx", dy.shape, dy.dtype))
    dx *= y
    dx *= dy
    return dx


def tanh_forward(x, backend, ws=None):
    """y = tanh(x), any shape."""
    ws = ws or Workspace(backend.xp)
    y = backend.xp.tanh(x, out=ws.empty("y", x.shape, x.dtype))
    return y, ActivationCache(y, backend)


def tanh_backward(dy, cache, ws=None):
    """dx = dy * (1 - y^2)."""
    xp, y = cache.backend.xp, cache.y
    ws = ws or Workspace(xp)
    dx = xp.multiply(y, y, out=ws.empty("dx", dy.shape, dy.dtype))
    xp.subtract(1, dx, out=dx)
    dx *= dy
    return dx
