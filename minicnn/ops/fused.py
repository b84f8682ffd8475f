"""Fused steps as compositions of the pure ops, like cs231n's "sandwich" layers.

A model runs a convolution and the ReLU (and 2x2 max-pool) after it as one step
of its plan.  These functions are that step written as the composition of the
pure ops: the reference.  A backend may provide the same step as fused kernels
(``Backend.fused["conv_relu_pool/im2col"]``, or for another convolution
algorithm ``".../direct"``, ``".../winograd"``); the tests compare each with
these, forward and backward.  Backward undoes forward in reverse order.
"""
from typing import Any, NamedTuple

from .workspace import Workspace
from .activation import relu_backward, relu_forward
from .conv import conv2d_backward, conv2d_forward
from .pool import maxpool_backward, maxpool_forward


class ConvReluCache(NamedTuple):
    conv: Any
    relu: Any


def conv_relu_forward(x, w, b, g, backend, ws=None):
    """x (C, N, H, W) -> (relu(conv(x)) (F, N, OH, OW), cache)."""
    ws = ws or Workspace(backend.xp)
    y, conv = conv2d_forward(x, w, b, g, backend, ws.part("conv"))
    y, relu = relu_forward(y, backend, ws.part("relu"))
    return y, ConvReluCache(conv, relu)


def conv_relu_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, OH, OW) -> (dx or None, dw, db)."""
    ws = ws or Workspace(cache.relu.backend.xp)
    d = relu_backward(dy, cache.relu, ws.part("relu"))
    return conv2d_backward(d, cache.conv, need_dx, ws.part("conv"))


class ConvReluPoolCache(NamedTuple):
    conv: Any
    relu: Any
    pool: Any


def conv_relu_pool_forward(x, w, b, g, pool_g, backend, ws=None):
    """x (C, N, H, W) -> (maxpool(relu(conv(x))) (F, N, PH, PW), cache)."""
    ws = ws or Workspace(backend.xp)
    y, conv = conv2d_forward(x, w, b, g, backend, ws.part("conv"))
    y, relu = relu_forward(y, backend, ws.part("relu"))
    y, pool = maxpool_forward(y, pool_g, backend, ws.part("pool"))
    return y, ConvReluPoolCache(conv, relu, pool)


def conv_relu_pool_backward(dy, cache, need_dx=True, ws=None):
    """dy (F, N, PH, PW) -> (dx or None, dw, db)."""
    ws = ws or Workspace(cache.relu.backend.xp)
    d = maxpool_backward(dy, cache.pool, ws.part("pool"))
    d = relu_backward(d, cache.relu, ws.part("relu"))
    return conv2d_backward(d, cache.conv, need_dx, ws.part("conv"))
