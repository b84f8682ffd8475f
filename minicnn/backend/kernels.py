"""The CUDA kernel table and the launch code shared by the ``cupy`` and ``cudasim`` backends.

``KERNELS`` is the single source of truth for kernel names, the file each lives
in and its argument C types ("T" is the element type; every kernel is a
template instantiated for float and double).  Both backends build their
launches from it, and the tests check it against the ``.cu`` sources, so the
simulator exercises this launch code as well as the CUDA source.
"""
import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .base import Backend

THREADS = 256           # threads per block
MAX_BLOCKS = 65535      # grid cap; the grid-stride loops cover the rest
CTYPE = {np.dtype("float32"): "float", np.dtype("float64"): "double"}
_INT_MAX = 2**31 - 1


class Kernel(NamedTuple):
    source: str          # file in kernels/
    args: tuple          # C types: "const T*", "T*", "const int*", "int*", "int", "T"


_GEOM = ("int",) * 10    # H, W, KH, KW, SH, SW, PT, PL, OH, OW
KERNELS = {
    # x/col, total, N, C, geometry
    "im2col": Kernel("conv.cu", ("const T*", "T*", "int", "int", "int") + _GEOM),
    "col2im": Kernel("conv.cu", ("const T*", "T*", "int", "int", "int") + _GEOM),
    "maxpool_fwd": Kernel("pool.cu", ("const T*", "T*", "int*", "int") + _GEOM),
    "maxpool_bwd": Kernel("pool.cu", ("const T*", "const int*", "T*", "int") + _GEOM),
    # z, b, y / dy, y, dz, then total, F, P, SF, SN, relu
    "bias_relu_fwd": Kernel("activation.cu", ("const T*", "const T*", "T*") + ("int",) * 6),
    "relu_bwd": Kernel("activation.cu", ("const T*", "const T*", "T*") + ("int",) * 6),
    "softmax_xent": Kernel("loss.cu", ("const T*", "const int*", "T*", "T*", "int", "int")),
    "sgd_update": Kernel("optim.cu", ("T*", "const T*", "T*", "int", "T", "T")),
}


def kernel_dir() -> Path:
    """kernels/ of a checkout, or the copy shipped inside an installed wheel."""
    here = Path(__file__).resolve().parent.parent      # minicnn/
    for candidate in (here / "kernels", here.parent / "kernels"):
        if (candidate / "common.cuh").is_file():
            return candidate
    raise FileNotFoundError(f"CUDA kernel sources not found next to {here}; reinstall minicnn")


def kernel_source(filename) -> str:
    """The text of kernels/<filename> with local #include "..." lines inlined (for NVRTC)."""
    directory = kernel_dir()

    def expand(match):
        return (directory / match.group(1)).read_text()
    return re.sub(r'^#include "([^"]+)"\s*$', expand, (directory / filename).read_text(),
                  flags=re.M)


def instantiation(name, ctype):
    """e.g. 'im2col<float>': the template instance both backends resolve."""
    return f"{name}<{ctype}>"


def c_signature(name, ctype):
    """The argument list of a kernel instance, e.g. 'const float*, float*, int, ...'."""
    return ", ".join(arg.replace("T", ctype) for arg in KERNELS[name].args)


def _blocks(n, max_blocks):
    return max(1, min(math.ceil(n / THREADS), max_blocks))


class CudaKernelBackend(Backend):
    """Backend operations written as launches of the kernels in ``KERNELS``.

    Subclasses supply the array module and ``_run(name, ctype, blocks, threads, args)``.
    ``max_blocks`` may be lowered (tests do) to make every grid-stride loop iterate.
    """
    max_blocks = MAX_BLOCKS

    def _run(self, name, ctype, blocks, threads, args):
        raise NotImplementedError

    def _empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def launch(self, name, *args):
        """Check and convert ``args`` to the exact C types of the table, then launch.

        The element count that sizes the grid is the first int argument.
        """
        spec = KERNELS[name]
        if len(args) != len(spec.args):
            raise TypeError(f"{name}: expected {len(spec.args)} arguments, got {len(args)}")
        dtype = next(a.dtype for a, t in zip(args, spec.args) if t.endswith("T*"))
        if dtype not in CTYPE:
            raise TypeError(f"{name}: kernels exist for float32 and float64, not {dtype}")
        converted, n = [], None
        for i, (ctype, a) in enumerate(zip(spec.args, args)):
            if ctype.endswith("*"):
                want = dtype if "T" in ctype else np.dtype(np.int32)
                if not self.is_array(a) or a.dtype != want or not a.flags.c_contiguous:
                    raise TypeError(f"{name}: argument {i} must be a C-contiguous {want} array")
            elif ctype == "int":
                if not 0 <= int(a) <= _INT_MAX:
                    raise ValueError(f"{name}: argument {i}={a} does not fit a C int")
                a = np.int32(a)
                n = int(a) if n is None else n
            else:
                a = dtype.type(a)
            converted.append(a)
        if n:
            self._run(name, CTYPE[dtype], _blocks(n, self.max_blocks), THREADS, converted)

    # -- the backend operations ---------------------------------------------
    def _geometry(self, g):
        """The kernels' geometry arguments after H, W."""
        return (g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, g.oh, g.ow)

    def im2col(self, x, g):
        x = self.xp.ascontiguousarray(x)
        n, c, h, w = x.shape
        col = self._empty((c * g.kh * g.kw, n * g.oh * g.ow), x.dtype)
        self.launch("im2col", x, col, col.size, n, c, h, w, *self._geometry(g))
        return col

    def col2im(self, col, x_shape, g):
        col = self.xp.ascontiguousarray(col)
        dx = self._empty(x_shape, col.dtype)
        self.launch("col2im", col, dx, dx.size, *x_shape, *self._geometry(g))
        return dx

    def maxpool_forward(self, x, g):
        x = self.xp.ascontiguousarray(x)
        n, c, h, w = x.shape
        y = self._empty((n, c, g.oh, g.ow), x.dtype)
        argmax = self._empty(y.shape, np.int32)
        self.launch("maxpool_fwd", x, y, argmax, y.size, h, w, *self._geometry(g))
        return y, argmax

    def maxpool_backward(self, dy, argmax, x_shape, g):
        dy = self.xp.ascontiguousarray(dy)
        dx = self._empty(x_shape, dy.dtype)
        self.launch("maxpool_bwd", dy, argmax, dx, dx.size, *x_shape[2:], *self._geometry(g))
        return dx

    def conv_bias_act(self, z, b, out_shape, relu):
        n, f, oh, ow = out_shape
        p = oh * ow
        y = self._empty(out_shape, z.dtype)
        self.launch("bias_relu_fwd", z, b, y, y.size, f, p, n * p, p, int(relu))
        return y

    def conv_act_backward(self, dy, y, relu):
        dy = self.xp.ascontiguousarray(dy)
        n, f, oh, ow = dy.shape
        p = oh * ow
        dz = self._empty((f, n * p), dy.dtype)
        self.launch("relu_bwd", dy, dy if y is None else y, dz, dy.size, f, p, n * p, p,
                    int(relu))
        return dz, dz.sum(axis=1)

    def dense_bias_act(self, z, b, relu):
        n, f = z.shape
        y = self._empty(z.shape, z.dtype)
        self.launch("bias_relu_fwd", z, b, y, y.size, f, 1, 1, f, int(relu))
        return y

    def relu_backward(self, dy, y):
        dy = self.xp.ascontiguousarray(dy)
        dx = self._empty(dy.shape, dy.dtype)
        self.launch("relu_bwd", dy, y, dx, dy.size, 1, 1, 0, 1, 1)
        return dx

    def softmax_cross_entropy(self, logits, labels):
        logits = self.xp.ascontiguousarray(logits)
        n, k = logits.shape
        labels = self.xp.ascontiguousarray(labels.astype(np.int32, copy=False))
        loss_rows = self._empty((n,), logits.dtype)
        dlogits = self._empty(logits.shape, logits.dtype)
        self.launch("softmax_xent", logits, labels, loss_rows, dlogits, n, k)
        return float(loss_rows.sum()) / n, dlogits

    def sgd_update(self, p, g, v, lr, momentum):
        self.launch("sgd_update", p, g, v, p.size, lr, momentum)
