"""Pure operations: ``<op>_forward(...) -> (out, cache)`` and ``<op>_backward(dout, cache)``.

They do their math through the backend passed in (``backend.xp`` and its kernels)
and never import an array library themselves.
"""
from .activation import relu_backward, relu_forward, sigmoid_backward, sigmoid_forward
from .conv import conv2d_backward, conv2d_forward
from .dense import dense_backward, dense_forward
from .loss import softmax_cross_entropy
from .pool import maxpool_backward, maxpool_forward

__all__ = ["conv2d_forward", "conv2d_backward", "maxpool_forward", "maxpool_backward",
           "relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward",
           "dense_forward", "dense_backward", "softmax_cross_entropy"]
