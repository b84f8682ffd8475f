"""cupy: arrays on an NVIDIA GPU, our kernels from kernels/*.cu, GEMMs in cuBLAS.

The only module of minicnn that imports CuPy (sysinfo asks ``device_info()``).
Each .cu file becomes one ``RawModule``, compiled by NVRTC on first use (CuPy
caches the binary on disk) with the float and double instances named by the
kernel table; the launches are those of ``cuda_shared``.
"""
import functools

import numpy as np

from .cuda_shared import CTYPE, KERNELS, CudaKernelBackend, instantiation, kernel_source

NVRTC_OPTIONS = ("-std=c++17",)

try:
    import cupy
    _import_error = None
except Exception as exc:  # ImportError, or a broken CUDA install failing at import
    cupy, _import_error = None, exc


@functools.lru_cache(maxsize=None)
def load_module(filename):
    names = [instantiation(name, element) for name, spec in KERNELS.items()
             if spec.source == filename for element in CTYPE.values()]
    return cupy.RawModule(code=kernel_source(filename), options=NVRTC_OPTIONS,
                          name_expressions=names)


class CupyBackend(CudaKernelBackend):
    name = "cupy"
    xp = cupy

    @classmethod
    def is_available(cls):
        if cupy is None:
            cls.unavailable_reason = (f"CuPy is not installed ({_import_error}); "
                                      "pip install 'minicnn[gpu]' (CUDA 12) or "
                                      "'minicnn[gpu-cuda13]' (CUDA 13)")
            return False
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:
            cls.unavailable_reason = f"no usable CUDA device ({exc})"
            return False
        if count == 0:
            cls.unavailable_reason = "no CUDA device is visible"
            return False
        return True

    def to_numpy(self, a):
        return cupy.asnumpy(a) if isinstance(a, cupy.ndarray) else np.asarray(a)

    def synchronize(self):
        cupy.cuda.get_current_stream().synchronize()

    def device_info(self):
        """Versions and device, recorded with every result (see minicnn.sysinfo)."""
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        return {"cupy": cupy.__version__, "gpu": props["name"].decode(),
                "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}

    def _run(self, name, element, blocks, threads, args):
        kernel = load_module(KERNELS[name].source).get_function(instantiation(name, element))
        kernel((blocks,), (threads,), tuple(args))


def nccl_communicator(rank, size, broadcast_host):
    """NCCL over ``size`` processes, one GPU each (minicnn/distributed.py's device transport):
    an object with ``allreduce_sum(array)`` and ``broadcast(array, root)``, in place on the
    current stream.  ``broadcast_host`` sends rank 0's NCCL id (a NumPy array) to the others."""
    from types import SimpleNamespace
    from cupy.cuda import nccl
    uid = np.zeros(128, dtype=np.int64)        # NCCL_UNIQUE_ID_BYTES
    if rank == 0:
        uid[:] = nccl.get_unique_id()
    comm = nccl.NcclCommunicator(size, tuple(int(v) for v in broadcast_host(uid)), rank)
    kinds = {np.dtype("float32"): nccl.NCCL_FLOAT32, np.dtype("float64"): nccl.NCCL_FLOAT64}

    def allreduce_sum(a):
        comm.allReduce(a.data.ptr, a.data.ptr, a.size, kinds[a.dtype], nccl.NCCL_SUM,
                       cupy.cuda.get_current_stream().ptr)
        return a

    def broadcast(a, root=0):
        comm.bcast(a.data.ptr, a.size, kinds[a.dtype], root, cupy.cuda.get_current_stream().ptr)
        return a
    return SimpleNamespace(allreduce_sum=allreduce_sum, broadcast=broadcast)
