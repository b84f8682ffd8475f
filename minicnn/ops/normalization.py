"""Batch normalisation and local response normalisation.

Batch norm (Ioffe & Szegedy 2015) normalises each channel (after a
convolution: over the batch and every pixel; after a dense layer: each unit
over the batch) to zero mean and unit variance, then applies a learned scale
gamma and shift beta.  Training uses the batch's statistics, with the biased
variance (divided by the count, as Keras and PyTorch do); inference uses the
running statistics.  The sums a batch's statistics need are taken through
``reduce``, a function that adds an array over every shard of the batch
(threads, processes: nn/plan.py) and returns the total; with one shard it
returns its argument.  So a batch split into shards normalises by the whole
batch's statistics, as synchronised batch norm does.

Local response normalisation, TensorFlow's definition
(tf.nn.local_response_normalization): across channels,

    sqr_sum[c] = sum of x[c']^2 for c' in [c - depth_radius, c + depth_radius]
    y[c] = x[c] / (bias + alpha * sqr_sum[c]) ** beta

PyTorch's LocalResponseNorm(size, alpha, beta, k) divides alpha by the window:
TensorFlow's (r, bias, alpha, beta) is PyTorch's (size=2r+1, alpha=alpha*(2r+1),
beta, k=bias).  Backward (as Chainer's): with u = bias + alpha * sqr_sum,
dx = dy * u^-beta - 2 alpha beta x * window_sum(dy * y / u).
"""
from typing import Any, NamedTuple

from .workspace import Workspace


def _channels(x):
    """x as (channels, values of one channel): (C, N, H, W) -> (C, N*H*W); (N, D) -> (D, N),
    a view."""
    return x.reshape(x.shape[0], -1) if x.ndim == 4 else x.T


def _per_channel(v, x):
    """A per-channel vector (C,) shaped to broadcast against x."""
    return v.reshape(-1, 1, 1, 1) if x.ndim == 4 else v.reshape(1, -1)


class BatchNormCache(NamedTuple):
    xhat: Any       # (x - mean) / sqrt(var + eps), x's shape
    inv_std: Any    # (C,)
    gamma: Any
    count: int      # values per channel in the whole batch
    mean: Any       # the batch's statistics, for the running averages
    var: Any
    reduce: Any
    backend: Any


def batchnorm_forward(x, gamma, beta, eps, reduce, backend, ws=None):
    """x (C, N, H, W) (per channel) or (N, D) (per unit), gamma and beta (C,) ->
    (y = gamma * (x - mean) / sqrt(var + eps) + beta, cache), the batch's mean and biased
    variance summed through ``reduce`` (``lambda a: a`` for a batch in one piece; it may
    overwrite its argument).  Two passes (mean, then the centred squares), so a
    large mean cannot swamp the variance."""
    xp = backend.xp
    ws = ws or Workspace(xp)
    flat = _channels(x)
    c = flat.shape[0]
    sums = ws.empty("sums", (c + 1,), x.dtype)
    flat.sum(axis=1, out=sums[:c])
    sums[c] = flat.shape[1]
    sums = reduce(sums)
    count = int(sums[c])
    mean = sums[:c] / count
    xhat = xp.subtract(x, _per_channel(mean, x), out=ws.empty("xhat", x.shape, x.dtype))
    squares = ws.empty("squares", x.shape, x.dtype)
    xp.multiply(xhat, xhat, out=squares)
    var = reduce(_channels(squares).sum(axis=1)) / count
    inv_std = 1.0 / xp.sqrt(var + eps)
    xhat *= _per_channel(inv_std, x)
    y = xp.multiply(xhat, _per_channel(gamma, x), out=ws.empty("y", x.shape, x.dtype))
    y += _per_channel(beta, x)
    return y, BatchNormCache(xhat, inv_std, gamma, count, mean, var, reduce, backend)


def batchnorm_backward(dy, cache, need_dx=True, ws=None):
    """dy (x's shape) -> (dx or None, dgamma, dbeta): dgamma and dbeta are this shard's part
    (the model adds the shards' gradients); dx uses the whole batch's sums,
    dx = gamma * inv_std / M * (M * dy - sum(dy) - xhat * sum(dy * xhat))."""
    xhat, inv_std, gamma, count, _, _, reduce, backend = cache
    xp = backend.xp
    ws = ws or Workspace(xp)
    c = gamma.shape[0]
    local = ws.empty("local", (2, c), dy.dtype)
    _channels(dy).sum(axis=1, out=local[0])
    product = xp.multiply(dy, xhat, out=ws.empty("product", dy.shape, dy.dtype))
    _channels(product).sum(axis=1, out=local[1])
    dbeta, dgamma = local[0].copy(), local[1].copy()
    if not need_dx:
        return None, dgamma, dbeta
    total = reduce(local)
    # dx = gamma * inv_std * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M)
    dx = xp.multiply(xhat, _per_channel(total[1] / count, dy), out=ws.empty("dx", dy.shape,
                                                                             dy.dtype))
    xp.subtract(dy, dx, out=dx)
    dx -= _per_channel(total[0] / count, dy)
    dx *= _per_channel(gamma * inv_std, dy)
    return dx, dgamma, dbeta


class BatchNormInferenceCache(NamedTuple):
    xhat: Any       # (x - running mean) / sqrt(running var + eps)
    a: Any          # gamma / sqrt(running var + eps), (C,)
    backend: Any


def batchnorm_inference_forward(x, gamma, beta, mean, var, eps, backend, ws=None):
    """x -> (y = gamma * (x - mean) / sqrt(var + eps) + beta, cache) with the running
    statistics ``mean`` and ``var`` (C,)."""
    xp = backend.xp
    ws = ws or Workspace(xp)
    inv_std = 1.0 / xp.sqrt(var + eps)
    xhat = xp.subtract(x, _per_channel(mean, x), out=ws.empty("xhat", x.shape, x.dtype))
    xhat *= _per_channel(inv_std, x)
    y = xp.multiply(xhat, _per_channel(gamma, x), out=ws.empty("y", x.shape, x.dtype))
    y += _per_channel(beta, x)
    return y, BatchNormInferenceCache(xhat, gamma * inv_std, backend)


def batchnorm_inference_backward(dy, cache, need_dx=True, ws=None):
    """dy -> (dx = dy * gamma / sqrt(var + eps) or None, dgamma, dbeta): the statistics are
    constants here (saliency maps and model.backward after an inference forward)."""
    xhat, a, backend = cache
    xp = backend.xp
    ws = ws or Workspace(xp)
    product = xp.multiply(dy, xhat, out=ws.empty("product", dy.shape, dy.dtype))
    dgamma = _channels(product).sum(axis=1)
    dbeta = _channels(dy).sum(axis=1)
    if not need_dx:
        return None, dgamma, dbeta
    dx = xp.multiply(dy, _per_channel(a, dy), out=ws.empty("dx", dy.shape, dy.dtype))
    return dx, dgamma, dbeta


def running_average(running, batch, momentum):
    """running = momentum * running + (1 - momentum) * batch, in place (Keras's convention:
    momentum 0.99 keeps 99% of the running value; PyTorch's 0.1 is 1 - that)."""
    running *= momentum
    running += (1.0 - momentum) * batch
    return running


# -- local response normalisation ---------------------------------------------------------
class LRNCache(NamedTuple):
    x: Any
    y: Any
    u: Any          # bias + alpha * sqr_sum
    scale: Any      # u ** -beta
    depth_radius: int
    alpha: float
    beta: float
    backend: Any


def window_sum(a, r, out):
    """out[c] = the sum of a[c'] for c' in [c - r, c + r] within the channels (axis 0)."""
    out[...] = a
    for d in range(1, r + 1):
        out[d:] += a[:-d]
        out[:-d] += a[d:]
    return out


def power(u, exponent, xp, out):
    """u ** exponent; exponent -0.75 and -0.5 with square roots (exact to rounding and much
    cheaper than a general power, which is an exp and a log per value)."""
    if exponent == -0.5:
        xp.sqrt(u, out=out)
        return xp.divide(1, out, out=out)
    if exponent == -0.75:
        xp.sqrt(u, out=out)
        xp.sqrt(out, out=out)
        return xp.divide(out, u, out=out)            # u^0.25 / u, in the one buffer
    return xp.power(u, exponent, out=out)


def lrn_forward(x, depth_radius, bias, alpha, beta, backend, ws=None):
    """x (C, N, H, W) -> (y (C, N, H, W), cache), TensorFlow's LRN across channels."""
    xp = backend.xp
    ws = ws or Workspace(xp)
    squares = xp.multiply(x, x, out=ws.empty("squares", x.shape, x.dtype))
    u = window_sum(squares, depth_radius, ws.empty("u", x.shape, x.dtype))
    u *= alpha
    u += bias
    scale = power(u, -beta, xp, ws.empty("scale", x.shape, x.dtype))
    y = xp.multiply(x, scale, out=ws.empty("y", x.shape, x.dtype))
    return y, LRNCache(x, y, u, scale, depth_radius, alpha, beta, backend)


def lrn_backward(dy, cache, ws=None):
    """dy (C, N, H, W) -> dx = dy * u^-beta - 2 alpha beta x * window_sum(dy * y / u)."""
    x, y, u, scale, r, alpha, beta, backend = cache
    xp = backend.xp
    ws = ws or Workspace(xp)
    t = xp.multiply(dy, y, out=ws.empty("t", dy.shape, dy.dtype))
    t /= u
    summed = window_sum(t, r, ws.empty("summed", dy.shape, dy.dtype))
    summed *= x
    summed *= -2.0 * alpha * beta
    dx = xp.multiply(dy, scale, out=ws.empty("dx", dy.shape, dy.dtype))
    dx += summed
    return dx
