"""2-D convolution by im2col + one GEMM, NCHW."""
from typing import NamedTuple, Any


class ConvCache(NamedTuple):
    col: Any        # (C*KH*KW, N*OH*OW) columns of the input
    w: Any          # (F, C, KH, KW)
    x_shape: tuple
    g: Any          # backend.Window
    y: Any          # output, kept only when a ReLU is fused (its mask is y > 0)
    backend: Any


def conv2d_forward(x, w, b, g, backend, relu=False):
    """x (N, C, H, W), w (F, C, KH, KW), b (F,) -> (y (N, F, OH, OW), cache).

    y = x * w + b (cross-correlation), then max(y, 0) when ``relu``.
    """
    n, f = x.shape[0], w.shape[0]
    col = backend.im2col(x, g)
    z = w.reshape(f, -1) @ col                                   # (F, N*OH*OW)
    y = backend.conv_bias_act(z, b, (n, f, g.oh, g.ow), relu)
    return y, ConvCache(col, w, x.shape, g, y if relu else None, backend)


def conv2d_backward(dy, cache, need_dx=True):
    """dy (N, F, OH, OW) -> (dx (N, C, H, W) or None, dw (F, C, KH, KW), db (F,))."""
    backend, w = cache.backend, cache.w
    f = w.shape[0]
    dz, db = backend.conv_act_backward(dy, cache.y, cache.y is not None)   # (F, N*OH*OW)
    dw = (dz @ cache.col.T).reshape(w.shape)
    dx = None
    if need_dx:
        dx = backend.col2im(w.reshape(f, -1).T @ dz, cache.x_shape, cache.g)
    return dx, dw, db
