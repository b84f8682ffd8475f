"""Machine and library versions, recorded with every result."""
import os
import platform


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def system_info(backend=None):
    import numpy
    info = {"machine": platform.machine(), "cpu": _cpu_name(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(),
            "numpy": numpy.__version__}
    try:
        import numba
        info["numba"] = numba.__version__
    except ImportError:
        pass
    from .._version import __version__
    from ..parallel.threads import current_threads
    info["minicnn"] = __version__
    # The BLAS kernel type decides GEMM speed (OPENBLAS_CORETYPE=Haswell halves it on
    # AVX-512 machines), so every result says which one ran and whether it was forced.
    info["blas"] = current_threads()["blas_libraries"]
    info["blas_env"] = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                        if k in os.environ}
    if hasattr(backend, "device_info"):     # a GPU backend: its library and device
        info.update(backend.device_info())
    return info
