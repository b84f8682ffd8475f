"""Thread counts for the two pools a CPU step uses: Numba's kernels and the BLAS GEMMs.

Both pools busy-wait for a while after each parallel region.  On a machine
with few cores, two pools that each want every core slow each other down
many times over when their regions alternate (measured on 2 cores: 72 ms per
step with 2 + 2 threads against 9-11 ms with 2 + 1), so the numba backend
gives BLAS one thread unless told otherwise.
"""
import os

from threadpoolctl import threadpool_limits


def set_threads(numba_threads=None, blas_threads=None):
    """Set either pool (None leaves it as it is); returns the counts now in force."""
    if numba_threads is not None:
        import numba
        numba.set_num_threads(min(int(numba_threads), numba.config.NUMBA_NUM_THREADS))
    if blas_threads is not None:
        threadpool_limits(int(blas_threads), user_api="blas")
    return current_threads()


def current_threads():
    from threadpoolctl import threadpool_info
    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    try:
        import numba
        nb = numba.get_num_threads()
    except ImportError:
        nb = None
    return {"numba": nb, "blas": blas[0] if blas else None, "cpus": os.cpu_count()}


def configure(backend_name, threads=None):
    """The thread policy for a backend: ``threads`` (default: all cores) caps both pools.

    Under numba, BLAS keeps one thread unless $MINICNN_BLAS_THREADS says otherwise,
    for the reason in this module's docstring.
    """
    threads = threads or os.cpu_count()
    if backend_name == "numba":
        blas = int(os.environ.get("MINICNN_BLAS_THREADS", 1))
        return set_threads(numba_threads=threads, blas_threads=min(blas, threads))
    return set_threads(blas_threads=threads)
