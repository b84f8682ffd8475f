"""Optimizers: one update of every parameter of a model per step, on its flat buffers.

The arithmetic is in ``minicnn/ops/update.py`` (a backend may run it as one
fused kernel, see ``ops.resolve``); an optimizer holds the hyper-parameters and
its state, flat buffers shaped like ``model.flat_params``.
"""
import math

from .. import ops
from . import validate
from ..ops.workspace import Workspace


class Optimizer:
    def __init__(self):
        self._state = None       # flat state buffers, made on the first step
        self._size = None

    def step(self, model):
        """Update ``model.flat_params`` from ``model.flat_grads`` (its last backward)."""
        p, g = model.flat_params, model.flat_grads
        if self._state is None:
            self._size, self._ws = p.size, Workspace(model.backend.xp)
            self._state = self._init_state(model.backend, p)
        elif p.size != self._size:
            raise ValueError(f"{type(self).__name__}: this optimizer was used with a model of "
                             f"{self._size:,} parameters; make a new one for this model "
                             f"({p.size:,} parameters)")
        self._update(model.backend, p, g)

    def _init_state(self, backend, p):
        return ()

    def _update(self, backend, p, g):
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * g; with momentum: v = momentum * v - lr * g, p += v."""

    def __init__(self, lr, momentum=0.0):
        super().__init__()
        self.lr = validate.number(lr, "lr", "SGD")
        self.momentum = validate.number(momentum, "momentum", "SGD", high=1, low_inclusive=True)

    def _init_state(self, backend, p):
        return (backend.xp.zeros_like(p),) if self.momentum else ()

    def _update(self, backend, p, g):
        if self.momentum:
            ops.resolve("momentum_update", backend)(p, g, *self._state, self.lr, self.momentum,
                                                    backend, self._ws)
        else:
            ops.resolve("sgd_update", backend)(p, g, self.lr, backend, self._ws)

    def __repr__(self):
        return f"SGD(lr={self.lr}, momentum={self.momentum})"


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias-corrected first and second moments."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__()
        self.lr = validate.number(lr, "lr", "Adam")
        self.beta1 = validate.number(beta1, "beta1", "Adam", high=1, low_inclusive=True)
        self.beta2 = validate.number(beta2, "beta2", "Adam", high=1, low_inclusive=True)
        self.eps = validate.number(eps, "eps", "Adam")
        self.t = 0

    def _init_state(self, backend, p):
        return backend.xp.zeros_like(p), backend.xp.zeros_like(p)

    def _update(self, backend, p, g):
        self.t += 1
        # Both bias corrections folded into the step size and epsilon (same maths, fewer passes).
        lr_t = self.lr * math.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        eps_t = self.eps * math.sqrt(1 - self.beta2 ** self.t)
        ops.resolve("adam_update", backend)(p, g, *self._state, lr_t, self.beta1, self.beta2,
                                            eps_t, backend, self._ws)

    def __repr__(self):
        return f"Adam(lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps})"
