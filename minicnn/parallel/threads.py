"""Threads, set once at an entry point (the command line, a benchmark, or your own call).

minicnn uses k cores by cutting each batch into shards (one per thread by
default) that k threads take as they come free (``Sequential(threads=k)``, see
parallel/shards.py), every thread running serial kernels.  BLAS must then run
one thread per call: two thread pools that each want every core fight for them
(on 2 cores, 2 Numba + 2 OpenBLAS threads measured 72 ms per step against 9 ms
with one pool; docs/backends.md).
Constructing a backend or a model never changes a thread setting.
"""
import os

from threadpoolctl import threadpool_info, threadpool_limits


def usable_cores():
    """The cores this process may run on (its affinity), sorted."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def default_threads():
    """One shard per core."""
    return len(usable_cores())


def configure(threads=None):
    """Single-threaded BLAS for sharded training; returns the shard count to use
    (``threads``, default: one per core)."""
    threadpool_limits(1, user_api="blas")
    return threads or default_threads()


def current_threads():
    """{'blas': threads per call of NumPy's BLAS, 'blas_core': its kernel type (e.g. SkylakeX),
    'blas_libraries': every BLAS loaded, 'cpus': cores here}."""
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return {"blas": blas[0]["num_threads"] if blas else None,
            "blas_core": blas[0].get("architecture") if blas else None,
            "blas_libraries": [f"{p['internal_api']} {p.get('version')} {p.get('architecture')} "
                               f"({p['num_threads']} threads)" for p in blas],
            "cpus": default_threads()}
