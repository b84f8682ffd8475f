"""Optimizer updates in one pass over the flat parameter buffer."""
import math

from . import kernel


@kernel
def sgd_update(p, g, lr):
    for i in range(p.size):
        p[i] -= lr * g[i]


@kernel
def momentum_update(p, g, v, lr, momentum):
    for i in range(p.size):
        v[i] = momentum * v[i] - lr * g[i]
        p[i] += v[i]


@kernel
def adam_update(p, g, m, v, lr_t, beta1, beta2, eps_t):
    for i in range(p.size):
        m[i] = beta1 * m[i] + (1 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
        p[i] -= lr_t * m[i] / (math.sqrt(v[i]) + eps_t)


# The same ops as minicnn/ops/update.py, scalars in the parameters' precision.
def _sgd(p, g, lr, backend, ws=None):
    sgd_update(p, g, p.dtype.type(lr))


def _momentum(p, g, v, lr, momentum, backend, ws=None):
    momentum_update(p, g, v, p.dtype.type(lr), p.dtype.type(momentum))


def _adam(p, g, m, v, lr_t, beta1, beta2, eps_t, backend, ws=None):
    t = p.dtype.type
    adam_update(p, g, m, v, t(lr_t), t(beta1), t(beta2), t(eps_t))


FUSED = {"sgd_update": _sgd, "momentum_update": _momentum, "adam_update": _adam}
