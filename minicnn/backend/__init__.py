"""Backend registry: ``get_backend(name)`` returns one cached instance per name.

Backends are imported lazily, so a missing optional library (CuPy, a C++
compiler) only matters when that backend is asked for.
"""
import importlib
import os

from .base import Backend

# name -> (module, class); "auto" tries AUTO_ORDER, fastest first.
_REGISTRY = {
    "numpy": ("numpy_backend", "NumpyBackend"),
    "numba": ("numba_backend", "NumbaBackend"),
    "cupy": ("cupy_backend", "CupyBackend"),
    "cudasim": ("cudasim_backend", "CudaSimBackend"),
}
AUTO_ORDER = ("cupy", "numba", "numpy")
_instances = {}


class BackendUnavailable(RuntimeError):
    """The backend exists but cannot run here (library or device missing)."""


def backend_names():
    return list(_REGISTRY)


def backend_class(name):
    if name not in _REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose one of: auto, {', '.join(_REGISTRY)}")
    module, cls = _REGISTRY[name]
    try:
        return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
    except ImportError as exc:   # the module itself imports fine; this guards odd installs
        raise BackendUnavailable(f"backend {name!r} cannot be imported: {exc}") from exc


def available_backends():
    """Names of the backends that can run on this machine, in registry order."""
    return [name for name in _REGISTRY if backend_class(name).is_available()]


def get_backend(name=None) -> Backend:
    """The backend called ``name`` (default: $MINICNN_BACKEND, else 'auto').

    Raises ValueError for an unknown name and BackendUnavailable, with the
    reason, for one that cannot run here.
    """
    if isinstance(name, Backend):
        return name
    name = name or os.environ.get("MINICNN_BACKEND") or "auto"
    if name == "auto":
        name = next(n for n in AUTO_ORDER if backend_class(n).is_available())
    if name not in _instances:
        cls = backend_class(name)
        if not cls.is_available():
            raise BackendUnavailable(f"backend {name!r} is not available: {cls.unavailable_reason}")
        _instances[name] = cls()
    return _instances[name]


__all__ = ["Backend", "BackendUnavailable", "get_backend",
           "available_backends", "backend_names", "backend_class"]
