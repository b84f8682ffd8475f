"""Optimizers: update a model's parameters in place from its grads, on any backend."""
import math


def _check_rate(value, name, owner, low_inclusive=False, high=None):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value >= 0 if low_inclusive else value > 0) and (high is None or value < high)
    if not ok:
        bounds = f"in [0, {high})" if low_inclusive else "positive" if high is None else f"in (0, {high})"
        raise ValueError(f"{owner}: {name} must be a finite number {bounds}, got {value!r}")
    return float(value)


class Optimizer:
    def __init__(self):
        self._state = {}     # parameter name -> state arrays

    def step(self, model):
        """Update every parameter of ``model`` from the grads of its last backward."""
        backend = model.backend
        for (name, p), (_, g) in zip(model.params(), model.grads()):
            if name not in self._state:
                self._state[name] = self._init_state(backend, p)
            self._update(backend, p, g, self._state[name])

    def _init_state(self, backend, p):
        return None

    def _update(self, backend, p, g, state):
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * g; with momentum: v = momentum * v - lr * g, p += v."""

    def __init__(self, lr, momentum=0.0):
        super().__init__()
        self.lr = _check_rate(lr, "lr", "SGD")
        self.momentum = _check_rate(momentum, "momentum", "SGD", low_inclusive=True, high=1)

    def _init_state(self, backend, p):
        return backend.xp.zeros_like(p) if self.momentum else p   # p stands in, never read

    def _update(self, backend, p, g, velocity):
        backend.sgd_update(p, g, velocity, self.lr, self.momentum)

    def __repr__(self):
        return f"SGD(lr={self.lr}, momentum={self.momentum})"


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias-corrected first and second moments."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__()
        self.lr = _check_rate(lr, "lr", "Adam")
        self.beta1 = _check_rate(beta1, "beta1", "Adam", low_inclusive=True, high=1)
        self.beta2 = _check_rate(beta2, "beta2", "Adam", low_inclusive=True, high=1)
        self.eps = _check_rate(eps, "eps", "Adam")
        self.t = 0

    def step(self, model):
        self.t += 1
        super().step(model)

    def _init_state(self, backend, p):
        return backend.xp.zeros_like(p), backend.xp.zeros_like(p)

    def _update(self, backend, p, g, state):
        m, v = state
        m *= self.beta1
        m += (1 - self.beta1) * g
        v *= self.beta2
        v += (1 - self.beta2) * (g * g)
        # Fold both bias corrections into the step size (same maths, one pass fewer).
        step = self.lr * math.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        eps_hat = self.eps * math.sqrt(1 - self.beta2 ** self.t)
        p -= step * m / (backend.xp.sqrt(v) + eps_hat)

    def __repr__(self):
        return f"Adam(lr={self.lr}, beta1={self.beta1}, beta2={self.beta2}, eps={self.eps})"
