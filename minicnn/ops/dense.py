"""Fully connected layer: y = x @ w + b."""
from typing import NamedTuple, Any


class DenseCache(NamedTuple):
    x: Any          # (N, D)
    w: Any          # (D, M)
    y: Any          # output, kept only when a ReLU is fused
    backend: Any


def dense_forward(x, w, b, backend, relu=False):
    """x (N, D), w (D, M), b (M,) -> (y (N, M), cache)."""
    y = backend.dense_bias_act(x @ w, b, relu)
    return y, DenseCache(x, w, y if relu else None, backend)


def dense_backward(dy, cache, need_dx=True):
    """dy (N, M) -> (dx (N, D) or None, dw (D, M), db (M,))."""
    dz = dy if cache.y is None else cache.backend.relu_backward(dy, cache.y)
    dx = dz @ cache.w.T if need_dx else None
    return dx, cache.x.T @ dz, dz.sum(axis=0)
