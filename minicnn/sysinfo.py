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
    from . import __version__
    info["minicnn"] = __version__
    if hasattr(backend, "device_info"):     # a GPU backend: its library and device
        info.update(backend.device_info())
    return info
