"""Pure operations: ``<op>_forward(...) -> (out, cache)`` and ``<op>_backward(dout, cache, ...)``.

They do their math with the backend passed in (``backend.xp`` and its few
kernels) and never import an array library.  Images are (C, N, H, W) here
(see layout.py).  Every op takes an optional workspace ``ws`` last: a model
passes one so that its steps reuse their buffers.

Conventions, so that a model's plan can run any of them:
    forward(x, *params, *static, backend, ws) -> (y, cache)
    backward(dy, cache, need_dx, ws) -> (dx or None, *param_grads)   ops with parameters
    backward(dy, cache, ws) -> dx                                    ops without

``REFERENCE`` names every op; a backend may replace any of them with a faster
kernel of the same signature (``Backend.fused``), and ``resolve`` picks the
backend's kernel where it has one.  Convolution entries are named
"<pattern>/<algorithm>".
"""
from typing import Callable, NamedTuple, Optional

from .activation import (relu_backward, relu_forward, sigmoid_backward, sigmoid_forward,
                         tanh_backward, tanh_forward)
from .conv import conv2d_backward, conv2d_forward
from .dense import dense_backward, dense_forward
from .dropout import dropout_backward, dropout_forward
from .fused import (conv_relu_backward, conv_relu_forward, conv_relu_pool_backward,
                    conv_relu_pool_forward)
from .layout import flatten_backward, flatten_forward, to_internal, to_public
from .loss import softmax_cross_entropy
from .normalization import (batchnorm_backward, batchnorm_forward, batchnorm_inference_backward,
                            batchnorm_inference_forward, lrn_backward, lrn_forward)
from .pool import avgpool_backward, avgpool_forward, maxpool_backward, maxpool_forward
from .update import adam_update, ema_update, l2_penalty, momentum_update, sgd_update


class OpPair(NamedTuple):
    forward: Callable
    backward: Callable
    applies: Optional[Callable] = None    # applies(g) -> False where a fused kernel cannot run


REFERENCE = {
    "conv2d/im2col": OpPair(conv2d_forward, conv2d_backward),
    "conv_relu/im2col": OpPair(conv_relu_forward, conv_relu_backward),
    "conv_relu_pool/im2col": OpPair(conv_relu_pool_forward, conv_relu_pool_backward),
    "maxpool": OpPair(maxpool_forward, maxpool_backward),
    "avgpool": OpPair(avgpool_forward, avgpool_backward),
    "relu": OpPair(relu_forward, relu_backward),
    "sigmoid": OpPair(sigmoid_forward, sigmoid_backward),
    "tanh": OpPair(tanh_forward, tanh_backward),
    "flatten": OpPair(flatten_forward, flatten_backward),
    "dense": OpPair(dense_forward, dense_backward),
    "dropout": OpPair(dropout_forward, dropout_backward),
    "batchnorm": OpPair(batchnorm_forward, batchnorm_backward),
    "batchnorm_inference": OpPair(batchnorm_inference_forward, batchnorm_inference_backward),
    "lrn": OpPair(lrn_forward, lrn_backward),
    "softmax_cross_entropy": softmax_cross_entropy,
    "sgd_update": sgd_update,
    "momentum_update": momentum_update,
    "adam_update": adam_update,
    "ema_update": ema_update,
    "l2_penalty": l2_penalty,
}


def reference_of(name):
    """The reference an entry of ``Backend.fused`` is tested against: the same op, or for
    another convolution algorithm the same pattern computed by im2col."""
    return REFERENCE[name.split("/")[0] + "/im2col" if "/" in name else name]


def resolve(name, backend, g=None):
    """The backend's fused kernel for op ``name`` where it has one that applies to geometry
    ``g``, else the reference (None where neither exists, e.g. an algorithm this backend
    does not have)."""
    fused = backend.fused.get(name)
    if fused is not None and (g is None or getattr(fused, "applies", None) is None
                              or fused.applies(g)):
        return fused
    return REFERENCE.get(name)


__all__ = ["OpPair", "REFERENCE", "reference_of", "resolve",
           "conv2d_forward", "conv2d_backward", "conv_relu_forward", "conv_relu_backward",
           "conv_relu_pool_forward", "conv_relu_pool_backward",
           "maxpool_forward", "maxpool_backward", "avgpool_forward", "avgpool_backward",
           "relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward",
           "tanh_forward", "tanh_backward", "dense_forward", "dense_backward",
           "dropout_forward", "dropout_backward", "batchnorm_forward", "batchnorm_backward",
           "batchnorm_inference_forward", "batchnorm_inference_backward", "lrn_forward",
           "lrn_backward", "flatten_forward", "flatten_backward", "to_internal", "to_public",
           "softmax_cross_entropy", "sgd_update", "momentum_update", "adam_update",
           "ema_update", "l2_penalty"]
