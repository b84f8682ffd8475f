"""Elementwise activations.  Both keep their output: the derivative is a function of it."""
from typing import NamedTuple, Any


class ActivationCache(NamedTuple):
    y: Any
    backend: Any


def relu_forward(x, backend):
    """y = max(x, 0), any shape."""
    y = backend.relu_forward(x)
    return y, ActivationCache(y, backend)


def relu_backward(dy, cache):
    """dx = dy where y > 0 (equivalently x > 0), else 0."""
    return cache.backend.relu_backward(dy, cache.y)


def sigmoid_forward(x, backend):
    """y = 1 / (1 + exp(-x)), written with tanh so large |x| cannot overflow."""
    xp = backend.xp
    y = 0.5 * (xp.tanh(0.5 * x) + 1)
    return y, ActivationCache(y, backend)


def sigmoid_backward(dy, cache):
    """dx = dy * y * (1 - y)."""
    y = cache.y
    return dy * y * (1 - y)
