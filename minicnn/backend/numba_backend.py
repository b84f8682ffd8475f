"""numba: NumPy arrays, our kernels compiled by Numba (``numba_kernels/``), GEMMs in NumPy's BLAS.

The four backend kernels, plus the fused kernels listed in ``fused`` (each the
same op as its reference in ``minicnn.ops``, tested against it).
"""
import numpy as np

from .base import Backend

try:
    import numba  # noqa: F401
    _import_error = None
except Exception as exc:      # keeps minicnn importable; the backend says why it cannot run
    numba, _import_error = None, exc


def _fused_kernels():
    """{op name: kernel} in the signatures of their references (see minicnn.ops)."""
    from .numba_kernels import loss, update

    def softmax_cross_entropy(logits, labels, backend, total=None, ws=None):
        dlogits = (ws.empty("dlogits", logits.shape, logits.dtype) if ws is not None
                   else np.empty_like(logits))
        total = logits.shape[0] if total is None else total
        return float(loss.softmax_cross_entropy(logits, labels, total, dlogits)), dlogits

    def sgd_update(p, g, lr, backend, ws=None):
        update.sgd_update(p, g, p.dtype.type(lr))

    def momentum_update(p, g, v, lr, momentum, backend, ws=None):
        update.momentum_update(p, g, v, p.dtype.type(lr), p.dtype.type(momentum))

    def adam_update(p, g, m, v, lr_t, beta1, beta2, eps_t, backend, ws=None):
        t = p.dtype.type
        update.adam_update(p, g, m, v, t(lr_t), t(beta1), t(beta2), t(eps_t))

    return {"softmax_cross_entropy": softmax_cross_entropy, "sgd_update": sgd_update,
            "momentum_update": momentum_update, "adam_update": adam_update}


class NumbaBackend(Backend):
    name = "numba"
    xp = np

    @classmethod
    def is_available(cls):
        if numba is None:
            cls.unavailable_reason = f"Numba is not installed ({_import_error}); pip install numba"
            return False
        return True

    def __init__(self):
        from .numba_kernels import columns, pool
        self._columns, self._pool = columns, pool
        self.fused = _fused_kernels()

    def im2col(self, x, g, out):
        return self._columns.im2col(x, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, g.oh, g.ow,
                                    out)

    def col2im(self, col, g, out):
        return self._columns.col2im(col, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, g.oh,
                                    g.ow, out)

    def maxpool_forward(self, x, g, out, argmax):
        return self._pool.maxpool_forward(x, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, out,
                                          argmax)

    def maxpool_backward(self, dy, argmax, g, out):
        return self._pool.maxpool_backward(dy, argmax, out)
