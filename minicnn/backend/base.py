"""What every backend provides, and the window arithmetic shared by all of them.

A backend is a small object: its array module ``xp`` plus the few operations
whose implementation differs per backend.  Layers do all other math with ``xp``.

Column layout used by im2col/col2im everywhere: ``(C*KH*KW, N*OH*OW)``, i.e. the
6-D array ``(C, KH, KW, N, OH, OW)`` flattened.  With it both convolution
products are single 2-D GEMMs: ``w2d @ col`` forward and ``dz @ col.T`` for dw.
"""
from __future__ import annotations

import math
from typing import NamedTuple


class Window(NamedTuple):
    """Geometry of a sliding window (convolution kernel or pooling window)."""
    kh: int
    kw: int
    sh: int
    sw: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    oh: int
    ow: int


def _pair(value, name, owner):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
        pair = tuple(value)
    else:
        pair = (value, value)
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{owner}: {name} must be an int or a pair of ints, got {value!r}")
    return pair


def positive_int(value, name, owner):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{owner}: {name} must be positive, got {value!r}")
    return value


def positive_pair(value, name, owner):
    pair = _pair(value, name, owner)
    if min(pair) <= 0:
        raise ValueError(f"{owner}: {name} must be positive, got {value!r}")
    return pair


def check_padding(padding, owner):
    """Validate a padding spec: 'valid', 'same', an int >= 0 or a (pad_h, pad_w) pair."""
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"{owner}: unknown padding {padding!r}; use 'valid', 'same', "
                             "an int or a (pad_h, pad_w) pair")
        return padding
    pair = _pair(padding, "padding", owner)
    if min(pair) < 0:
        raise ValueError(f"{owner}: padding must be >= 0, got {padding!r}")
    return pair


def _axis(size, k, s, padding, axis, owner):
    """(pad_before, pad_after, out) along one axis."""
    if padding == "same":
        # TensorFlow/Keras: out = ceil(in / s); odd total padding puts the extra row at the end.
        out = math.ceil(size / s)
        total = max((out - 1) * s + k - size, 0)
        return total // 2, total - total // 2, out
    pad = 0 if padding == "valid" else padding[axis]
    if k > size + 2 * pad:
        raise ValueError(f"{owner}: window {k} is larger than the padded input {size + 2 * pad} "
                         f"along {'HW'[axis]}; use a smaller kernel, more padding or a larger input")
    return pad, pad, (size + 2 * pad - k) // s + 1


def window(h, w, kernel, stride, padding, owner="window") -> Window:
    """Output geometry of a (kh, kw) window sliding over an (h, w) input.

    'valid': out = floor((in - k) / s) + 1; int p: out = floor((in + 2p - k) / s) + 1;
    'same': out = ceil(in / s) with TensorFlow's asymmetric padding.
    """
    kh, kw = kernel
    sh, sw = stride
    pt, pb, oh = _axis(h, kh, sh, padding, 0, owner)
    pl, pr, ow = _axis(w, kw, sw, padding, 1, owner)
    return Window(kh, kw, sh, sw, pt, pb, pl, pr, oh, ow)


class Backend:
    """Interface of a backend; the defaults are written with ``self.xp`` only.

    Subclasses must provide ``im2col``, ``col2im``, ``maxpool_forward`` and
    ``maxpool_backward``; they may override the fused elementwise helpers.
    """
    name = "abstract"
    xp = None
    unavailable_reason = None   # set by is_available() when it returns False

    @classmethod
    def is_available(cls) -> bool:
        return True

    # -- arrays ---------------------------------------------------------------
    def asarray(self, a, dtype=None):
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))

    def to_numpy(self, a):
        import numpy
        return numpy.asarray(a)

    def is_array(self, a) -> bool:
        return isinstance(a, self.xp.ndarray)

    def synchronize(self):
        """Wait for queued device work; nothing to wait for on the CPU."""

    # -- kernels every backend implements --------------------------------------
    def im2col(self, x, g: Window):
        """x (N, C, H, W) -> col (C*KH*KW, N*OH*OW); zero padding."""
        raise NotImplementedError

    def col2im(self, col, x_shape, g: Window):
        """col (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), summing overlapping windows."""
        raise NotImplementedError

    def maxpool_forward(self, x, g: Window):
        """x (N, C, H, W) -> (y (N, C, OH, OW), argmax int32 (N, C, OH, OW)).

        argmax is the flat index h * W + w of the first (row-major) maximum of
        each window; padding never wins.
        """
        raise NotImplementedError

    def maxpool_backward(self, dy, argmax, x_shape, g: Window):
        """dy (N, C, OH, OW) -> dx (N, C, H, W): each dy goes to its argmax."""
        raise NotImplementedError

    # -- fused elementwise helpers (overridden where fusing pays) -------------
    def conv_bias_act(self, z, b, out_shape, relu):
        """z (F, N*OH*OW) from the GEMM, b (F,) -> y = act(z + b) of out_shape (N, F, OH, OW)."""
        n, f, oh, ow = out_shape
        y = z.reshape(f, n, oh, ow).transpose(1, 0, 2, 3) + b.reshape(1, f, 1, 1)
        if relu:
            self.xp.maximum(y, 0, out=y)
        return y

    def conv_act_backward(self, dy, y, relu):
        """dy, y (N, F, OH, OW) -> (dz (F, N*OH*OW), db (F,)); dz = dy * (y > 0) if relu."""
        n, f = dy.shape[:2]
        dz = dy * (y > 0) if relu else dy
        dz = self.xp.ascontiguousarray(dz.reshape(n, f, -1).transpose(1, 0, 2)).reshape(f, -1)
        return dz, dz.sum(axis=1)

    def dense_bias_act(self, z, b, relu):
        """z (N, F) = x @ w, b (F,) -> act(z + b), in place."""
        z += b
        if relu:
            self.xp.maximum(z, 0, out=z)
        return z

    def relu_forward(self, x):
        return self.xp.maximum(x, 0)

    def relu_backward(self, dy, y):
        """dx = dy where the ReLU output y > 0, else 0."""
        return dy * (y > 0)

    def softmax_cross_entropy(self, logits, labels):
        """logits (N, K), labels int (N,) -> (mean loss as float, dlogits (N, K))."""
        xp = self.xp
        n = logits.shape[0]
        z = logits - logits.max(axis=1, keepdims=True)
        log_sum = xp.log(xp.exp(z).sum(axis=1, keepdims=True))
        log_p = z - log_sum
        rows = xp.arange(n)
        loss = -float(log_p[rows, labels].sum()) / n
        dlogits = xp.exp(log_p)
        dlogits[rows, labels] -= 1
        dlogits /= n
        return loss, dlogits

    def sgd_update(self, p, g, v, lr, momentum):
        """In place: v = momentum * v - lr * g; p += v (v unused when momentum == 0)."""
        if momentum == 0.0:
            p -= lr * g
        else:
            v *= momentum
            v -= lr * g
            p += v

    def __repr__(self):
        return f"<minicnn backend {self.name!r}>"
