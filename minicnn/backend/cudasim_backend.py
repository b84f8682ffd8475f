"""cudasim: the CUDA kernels of kernels/*.cu compiled for the host and run on the CPU.

For debugging and testing kernels without a GPU.  The same sources and the
same launch code (``cuda_shared.CudaKernelBackend``, driven by the kernel table)
as the ``cupy`` backend; only ``_run`` differs: a C++ wrapper per kernel
instance loops over the grid (blocks in parallel with OpenMP, the threads of
a block in order) and calls the kernel body once per (block, thread).
Arrays are NumPy arrays, matrix products go through NumPy.

It cannot simulate shared memory or __syncthreads() (see kernels/host/cuda_host.h),
nor timing, warps, or races between threads: it proves the index arithmetic,
the bounds and the launch arguments, not the performance.
"""
import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..paths import cache_root
from .cuda_shared import (CTYPE, KERNELS, CudaKernelBackend, c_signature, c_type, instantiation,
                          kernel_dir, kernel_params)

CXXFLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-Wall", "-Werror",
            "-Wno-unknown-pragmas")
_CARG = {"int": ctypes.c_int, "float": ctypes.c_float, "double": ctypes.c_double}


def _compiler():
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def host_translation_unit():
    """C++ source: the simulator header, every .cu file, and one extern "C" launcher per instance."""
    lines = ['#include "host/cuda_host.h"']
    lines += [f'#include "{f}"' for f in sorted({k.source for k in KERNELS.values()})]
    for name in KERNELS:
        call = ", ".join(n for _, n in kernel_params(name))
        for element in CTYPE.values():
            lines.append(f'extern "C" void launch_{name}_{element}(unsigned grid, unsigned block, '
                         f'{c_signature(name, element)}) {{\n  sim_launch(grid, block, [&] {{ '
                         f'{instantiation(name, element)}({call}); }});\n}}')
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def load_library():
    """Compile (once per source change, cached on disk) and load the kernels library."""
    cxx = _compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (install g++ or set CXX)")
    source = host_translation_unit()
    directory = kernel_dir()
    digest = hashlib.sha256()
    for part in [source, cxx, *CXXFLAGS] + [p.read_text() for p in sorted(directory.rglob("*.cu*"))
                                             + sorted(directory.rglob("*.h"))]:
        digest.update(part.encode())
    cache = cache_root() / "cudasim"
    lib_path = cache / f"kernels-{digest.hexdigest()[:16]}.so"
    if not lib_path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src = Path(tmp) / "kernels_host.cpp"
            src.write_text(source)
            out = Path(tmp) / "kernels.so"
            result = subprocess.run([cxx, *CXXFLAGS, f"-I{directory}", str(src), "-o", str(out)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"compiling the CUDA kernels for the host failed:\n{result.stderr}")
            os.replace(out, lib_path)     # atomic: a concurrent build just wins or loses the race
    lib = ctypes.CDLL(str(lib_path))
    for name in KERNELS:
        types = [t for t, _ in kernel_params(name)]
        for element in CTYPE.values():
            fn = getattr(lib, f"launch_{name}_{element}")
            fn.restype = None
            fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [
                ctypes.c_void_p if t.endswith("*") else _CARG[c_type(t, element)] for t in types]
    return lib


class CudaSimBackend(CudaKernelBackend):
    name = "cudasim"
    xp = np

    @classmethod
    def is_available(cls):
        if _compiler() is None:
            cls.unavailable_reason = "no C++ compiler found (install g++ or set CXX)"
            return False
        return True

    def __init__(self):
        self.lib = load_library()

    def _run(self, name, element, blocks, threads, args):
        c_args = [a.ctypes.data if isinstance(a, np.ndarray) else a.item() for a in args]
        getattr(self.lib, f"launch_{name}_{element}")(blocks, threads, *c_args)

