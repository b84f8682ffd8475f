"""Numerical gradients by centred finite differences, for tests and for learners."""
import numpy as np


def rel_error(a, b):
    """max|a - b| / max(max|a|, max|b|): 0 for identical arrays, scale-free.

    Relative to the largest entry rather than entry by entry, so that entries
    that are ~0 (where finite differences only see rounding noise) cannot
    dominate; 1e-6 then means "agrees to six significant digits".
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.max(np.abs(a), initial=0.0), np.max(np.abs(b), initial=0.0))
    return float(np.max(np.abs(a - b), initial=0.0) / scale) if scale > 0 else 0.0


def numerical_gradient(f, x, dout, h=1e-5, to_numpy=np.asarray):
    """d(sum(f() * dout)) / dx by centred differences, perturbing x in place.

    f: a function of no arguments that reads x; x: array (any backend) changed
    one element at a time and always restored; dout: upstream gradient, the
    shape of f().  Returns a NumPy array shaped like x.
    """
    dout = np.asarray(to_numpy(dout), dtype=np.float64)
    grad = np.zeros(x.shape, dtype=np.float64)
    if not x.flags.c_contiguous:
        raise ValueError("numerical_gradient: x must be C-contiguous so it can be perturbed in place")
    flat = x.reshape(-1)   # a view: writing to it changes x
    for i in range(flat.size):
        old = flat[i].item()
        try:
            flat[i] = old + h
            plus = np.sum(np.asarray(to_numpy(f()), dtype=np.float64) * dout)
            flat[i] = old - h
            minus = np.sum(np.asarray(to_numpy(f()), dtype=np.float64) * dout)
        finally:
            flat[i] = old
        grad.reshape(-1)[i] = (plus - minus) / (2 * h)
    return grad
