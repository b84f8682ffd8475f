"""What every backend provides: its array module and the few kernels that differ per backend.

Everything else (the loss, the activations, the optimizers, the sandwiches of
fused steps) is written once in ``minicnn.ops`` with ``backend.xp``.  A backend
that has a faster kernel for one of those ops lists it in ``fused``, by the
op's name (see ``minicnn.ops.resolve``); the tests compare every entry with
the reference composition.

Images are laid out (C, N, H, W) inside minicnn ("CNHW", see ``ops/layout.py``);
a pooling or im2col kernel sees C*N planes of H x W pixels.
"""


class Backend:
    name = "abstract"
    xp = None                  # the array module: numpy or cupy
    fused = {}                 # op name -> faster kernel (or OpPair) this backend provides
    unavailable_reason = None  # set by is_available() when it returns False

    @classmethod
    def is_available(cls) -> bool:
        """False where the library or device is missing (the reason goes to unavailable_reason)."""
        return True

    def asarray(self, a, dtype=None):
        """A C-contiguous array of this backend (no copy when ``a`` already is one)."""
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))

    def to_numpy(self, a):
        import numpy
        return numpy.asarray(a)

    def synchronize(self):
        """Wait for queued device work; nothing to wait for on the CPU."""

    def im2col(self, x, g, out):
        """x (C, N, H, W) -> out (C*KH*KW, N*OH*OW): row (c, ky, kx) holds, for every output
        pixel, the input pixel under kernel tap (ky, kx) of channel c (zero in the padding)."""
        raise NotImplementedError

    def col2im(self, col, g, out):
        """col (C*KH*KW, N*OH*OW) -> out (C, N, H, W): the adjoint of im2col (overlapping
        windows add up)."""
        raise NotImplementedError

    def maxpool_forward(self, x, g, out, argmax, ws=None):
        """x (C, N, H, W) -> out (C, N, OH, OW) and argmax int32 (C, N, OH, OW), the flat index
        h * W + w of each window's first (row-major) maximum; padding never wins, NaN does.
        ws: a Workspace for the scratch a backend needs (None: allocate it)."""
        raise NotImplementedError

    def maxpool_backward(self, dy, argmax, g, out):
        """dy (C, N, OH, OW) -> out (C, N, H, W): each dy added at its window's argmax."""
        raise NotImplementedError

    def __repr__(self):
        return f"<minicnn backend {self.name!r}>"
