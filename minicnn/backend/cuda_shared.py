"""What the ``cupy`` and ``cudasim`` backends share: the CUDA kernel table and the launch code.

``KERNELS`` is the single source of truth for kernel names, the file each lives
in and its C parameters ("const T* x": type and name; T is the element type,
every kernel being a template instantiated for float and double).  Both
backends launch from it by keyword, and the tests check it against the ``.cu``
sources, names and types, so the simulator exercises this launch code as well
as the CUDA source.  Importing this module needs no GPU library.
"""
import functools
import math
import operator
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .base import Backend
from ..ops.workspace import Workspace

THREADS = 256           # threads per block
MAX_BLOCKS = 65535      # grid cap; the grid-stride loops cover the rest
CTYPE = {np.dtype("float32"): "float", np.dtype("float64"): "double"}
_INT_MAX = 2**31 - 1


class Kernel(NamedTuple):
    source: str          # file in kernels/
    params: tuple        # C parameters, "type name": "const T* x", "int* argmax", "int total", "T lr"
    grid: str = "total"  # the int parameter counting the work items: one thread each


# The window geometry (see minicnn.geometry.Window) as every conv and pool kernel takes it.
_WINDOW = ("int KH", "int KW", "int SH", "int SW", "int PT", "int PL", "int OH", "int OW")
KERNELS = {
    "im2col": Kernel("conv.cu", ("const T* x", "T* col", "int total", "int N", "int H", "int W",
                                 *_WINDOW)),
    "col2im": Kernel("conv.cu", ("const T* col", "T* dx", "int total", "int N", "int H", "int W",
                                 *_WINDOW)),
    "maxpool_fwd": Kernel("pool.cu", ("const T* x", "T* y", "int* argmax", "int total", "int H",
                                      "int W", *_WINDOW)),
    "maxpool_bwd": Kernel("pool.cu", ("const T* dy", "const int* argmax", "T* dx", "int total",
                                      "int H", "int W", *_WINDOW)),
    "softmax_xent": Kernel("loss.cu", ("const T* logits", "const int* labels", "T* loss_rows",
                                       "T* dlogits", "int N", "int K", "int total"), grid="N"),
    "sgd_update": Kernel("optim.cu", ("T* p", "const T* g", "int total", "T lr")),
    "momentum_update": Kernel("optim.cu", ("T* p", "const T* g", "T* v", "int total", "T lr",
                                           "T momentum")),
    "adam_update": Kernel("optim.cu", ("T* p", "const T* g", "T* m", "T* v", "int total",
                                       "T lr_t", "T beta1", "T beta2", "T eps_t")),
}


def split_param(param):
    """'const T* x' -> ('const T*', 'x')."""
    ctype, name = param.rsplit(" ", 1)
    return ctype, name


@functools.lru_cache(maxsize=None)
def kernel_params(name):
    """((C type, name), ...) of kernel ``name``'s parameters, parsed once."""
    return tuple(map(split_param, KERNELS[name].params))


def c_type(ctype, element):
    """A parameter type for one instance: c_type('const T*', 'float') == 'const float*'."""
    return re.sub(r"\bT\b", element, ctype)


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


def instantiation(name, element):
    """e.g. 'im2col<float>': the template instance both backends resolve."""
    return f"{name}<{element}>"


def c_signature(name, element):
    """The parameter list of a kernel instance, e.g. 'const float* x, float* col, int total, ...'."""
    return ", ".join(f"{c_type(t, element)} {n}" for t, n in kernel_params(name))


def _blocks(n, max_blocks):
    return max(1, min(math.ceil(n / THREADS), max_blocks))


def _check_shape(op, name, a, shape):
    """The kernels index by the shapes they are given: a wrong one would read out of bounds."""
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{op}: expected an array of shape {tuple(shape)} for {name}, got "
                         f"{tuple(a.shape)}")


# -- fused ops: the references of minicnn/ops, same signatures, one kernel each ----------------
def _softmax_cross_entropy(logits, labels, backend, total=None, ws=None):
    ws = ws or Workspace(backend.xp)
    logits = backend.xp.ascontiguousarray(logits)
    n, k = logits.shape
    total = n if total is None else total
    loss_rows = ws.empty("loss_rows", (n,), logits.dtype)
    dlogits = ws.empty("dlogits", logits.shape, logits.dtype)
    backend.launch("softmax_xent", logits=logits,
                   labels=backend.xp.ascontiguousarray(labels, dtype=np.int32),
                   loss_rows=loss_rows, dlogits=dlogits, N=n, K=k, total=total)
    return float(loss_rows.sum()) / total, dlogits


def _sgd_update(p, g, lr, backend, ws=None):
    _check_shape("sgd_update", "g", g, p.shape)
    backend.launch("sgd_update", p=p, g=g, total=p.size, lr=lr)


def _momentum_update(p, g, v, lr, momentum, backend, ws=None):
    for name, a in (("g", g), ("v", v)):
        _check_shape("momentum_update", name, a, p.shape)
    backend.launch("momentum_update", p=p, g=g, v=v, total=p.size, lr=lr, momentum=momentum)


def _adam_update(p, g, m, v, lr_t, beta1, beta2, eps_t, backend, ws=None):
    for name, a in (("g", g), ("m", m), ("v", v)):
        _check_shape("adam_update", name, a, p.shape)
    backend.launch("adam_update", p=p, g=g, m=m, v=v, total=p.size, lr_t=lr_t, beta1=beta1,
                   beta2=beta2, eps_t=eps_t)


FUSED = {
    "softmax_cross_entropy": _softmax_cross_entropy,
    "sgd_update": _sgd_update,
    "momentum_update": _momentum_update,
    "adam_update": _adam_update,
}


class CudaKernelBackend(Backend):
    """Backend operations written as launches of the kernels in ``KERNELS``.

    Subclasses supply the array module and ``_run(name, element, blocks, threads, args)``.
    ``fused`` runs the loss and the optimizer updates as one kernel each.
    ``max_blocks`` may be lowered (tests do) to make every grid-stride loop iterate.
    """
    max_blocks = MAX_BLOCKS
    fused = FUSED

    def _run(self, name, element, blocks, threads, args):
        raise NotImplementedError

    def launch(self, name, **args):
        """Launch kernel ``name`` with ``args`` named exactly as its parameters in ``KERNELS``.

        Arrays must be C-contiguous arrays of this backend, of the element type T
        (float32 or float64, that of the first T* argument) or int32; scalars become
        the exact C type (int32, or T).  The grid covers ``Kernel.grid`` work items.
        """
        spec, params = KERNELS[name], kernel_params(name)
        names = [n for _, n in params]
        if set(args) != set(names):
            raise TypeError(f"{name}: expected arguments ({', '.join(names)}), got "
                            f"({', '.join(args)})")
        first = next(args[n] for t, n in params if t.endswith("T*"))
        dtype = getattr(first, "dtype", None)
        if dtype not in CTYPE:
            raise TypeError(f"{name}: kernels exist for float32 and float64, not {dtype}")
        converted = [self._c_value(name, t, n, args[n], dtype) for t, n in params]
        count = int(args[spec.grid])
        if count:
            self._run(name, CTYPE[dtype], _blocks(count, self.max_blocks), THREADS, converted)

    def _c_value(self, kernel, ctype, pname, a, dtype):
        """``a`` checked against, and converted to, C parameter type ``ctype``."""
        if ctype.endswith("*"):
            want = dtype if "T" in ctype else np.dtype(np.int32)
            if not isinstance(a, self.xp.ndarray) or a.dtype != want or not a.flags.c_contiguous:
                raise TypeError(f"{kernel}: {pname} must be a C-contiguous {want} array "
                                f"of the {self.name} backend")
            return a
        if ctype == "int":
            a = operator.index(a)       # refuses floats rather than truncating them
            if not 0 <= a <= _INT_MAX:
                raise ValueError(f"{kernel}: {pname}={a} does not fit a C int")
            return np.int32(a)
        return dtype.type(a)

    # -- the four backend kernels (see base.py) -------------------------------
    @staticmethod
    def _window(g):
        """A Window as the kernels' geometry parameters."""
        return dict(KH=g.kh, KW=g.kw, SH=g.sh, SW=g.sw, PT=g.pad_top, PL=g.pad_left,
                    OH=g.oh, OW=g.ow)

    def im2col(self, x, g, out):
        x = self.xp.ascontiguousarray(x)
        c, n, h, w = x.shape
        _check_shape("im2col", "out", out, (c * g.kh * g.kw, n * g.oh * g.ow))
        self.launch("im2col", x=x, col=out, total=out.size, N=n, H=h, W=w, **self._window(g))
        return out

    def col2im(self, col, g, out):
        col = self.xp.ascontiguousarray(col)
        c, n, h, w = out.shape
        _check_shape("col2im", "col", col, (c * g.kh * g.kw, n * g.oh * g.ow))
        self.launch("col2im", col=col, dx=out, total=out.size, N=n, H=h, W=w, **self._window(g))
        return out

    def maxpool_forward(self, x, g, out, argmax, ws=None):
        x = self.xp.ascontiguousarray(x)
        c, n, h, w = x.shape
        _check_shape("maxpool_forward", "out", out, (c, n, g.oh, g.ow))
        _check_shape("maxpool_forward", "argmax", argmax, (c, n, g.oh, g.ow))
        self.launch("maxpool_fwd", x=x, y=out, argmax=argmax, total=out.size, H=h, W=w,
                    **self._window(g))
        return out, argmax

    def maxpool_backward(self, dy, argmax, g, out):
        dy = self.xp.ascontiguousarray(dy)
        c, n, h, w = out.shape
        _check_shape("maxpool_backward", "dy", dy, (c, n, g.oh, g.ow))
        _check_shape("maxpool_backward", "argmax", argmax, (c, n, g.oh, g.ow))
        self.launch("maxpool_bwd", dy=dy, argmax=argmax, dx=out, total=out.size, H=h, W=w,
                    **self._window(g))
        return out

