"""Parameter updates of the optimizers, on flat buffers: every parameter of a model in one array.

The optimizers (``minicnn/optim.py``) hold the hyper-parameters and the state;
these functions are the arithmetic, one call per step for the whole model.
"""
from .workspace import Workspace


def sgd_update(p, g, lr, backend, ws=None):
    """p -= lr * g, in place."""
    ws = ws or Workspace(backend.xp)
    step = backend.xp.multiply(g, lr, out=ws.empty("step", g.shape, g.dtype))
    p -= step


def momentum_update(p, g, v, lr, momentum, backend, ws=None):
    """v = momentum * v - lr * g; p += v; in place."""
    ws = ws or Workspace(backend.xp)
    v *= momentum
    v -= backend.xp.multiply(g, lr, out=ws.empty("step", g.shape, g.dtype))
    p += v


def adam_update(p, g, m, v, lr_t, beta1, beta2, eps_t, backend, ws=None):
    """m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr_t m / (sqrt(v) + eps_t).

    lr_t and eps_t carry Adam's two bias corrections (see optim.Adam), so the
    update needs no per-element division by (1 - b^t).
    """
    xp = backend.xp
    ws = ws or Workspace(xp)
    tmp = ws.empty("tmp", g.shape, g.dtype)
    m *= beta1
    m += xp.multiply(g, 1 - beta1, out=tmp)
    v *= beta2
    xp.multiply(g, g, out=tmp)
    tmp *= 1 - beta2
    v += tmp
    xp.sqrt(v, out=tmp)
    tmp += eps_t
    xp.divide(m, tmp, out=tmp)
    tmp *= lr_t
    p -= tmp


def ema_update(shadow, p, decay, backend, ws=None):
    """shadow -= (1 - decay) * (shadow - p), in place: tf.train.ExponentialMovingAverage's
    update of the averaged weights."""
    ws = ws or Workspace(backend.xp)
    step = backend.xp.subtract(shadow, p, out=ws.empty("step", p.shape, p.dtype))
    step *= 1 - decay
    shadow -= step


def l2_penalty(p, g, rate, backend, ws=None):
    """g += rate * p, in place; returns rate / 2 * sum(p^2), the loss it adds (TensorFlow's
    rate * tf.nn.l2_loss(p))."""
    xp = backend.xp
    ws = ws or Workspace(xp)
    g += xp.multiply(p, rate, out=ws.empty("step", p.shape, p.dtype))
    return 0.5 * rate * float(xp.vdot(p.reshape(-1), p.reshape(-1)))
