"""numba: NumPy arrays, our kernels compiled by Numba (``numba_kernels/``), GEMMs in NumPy's BLAS.

The four backend kernels, plus the fused kernels listed in ``fused``: each the
same op as its reference in ``minicnn.ops`` (tested against it), among them the
convolution algorithms beside im2col.
"""
import numpy as np

from .base import Backend

try:
    import numba  # noqa: F401
    _import_error = None
except Exception as exc:      # keeps minicnn importable; the backend says why it cannot run
    numba, _import_error = None, exc


def _fused_kernels():
    """This backend's ``fused``: the FUSED tables of the kernel modules (op name -> kernel in
    the reference's signature, see minicnn.ops).  Imported here, not at the top, so that
    minicnn imports without Numba."""
    from .numba_kernels import (chunked, columns, direct, loss, normalization, update,
                                winograd)
    return {**loss.FUSED, **update.FUSED, **direct.FUSED, **chunked.FUSED, **columns.FUSED,
            **winograd.FUSED, **normalization.FUSED}


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
        return self._columns.im2col(x, g, out)

    def col2im(self, col, g, out):
        return self._columns.col2im(col, g, out)

    def maxpool_forward(self, x, g, out, argmax, ws=None):
        return self._pool.maxpool_forward(x, g, out, argmax, ws)

    def maxpool_backward(self, dy, argmax, g, out):
        return self._pool.maxpool_backward(dy, argmax, out)
