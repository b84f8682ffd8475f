"""The numba backend's kernels: plain Python loops compiled by Numba.

Every kernel is serial and releases the GIL (``nogil``): parallelism comes from
running the shards of a batch on threads (``minicnn/parallel.py``), not from
threads inside a kernel, so a kernel never fights BLAS or another kernel for
the cores.  Rules measured on this engine (docs/backends.md):
  - the inner loop runs over contiguous pixels, never over a handful of channels;
  - a shifted window is a view (``row = plane[y, x0:]``, then ``row[j]``), not an
    index with a runtime offset, which stops LLVM from vectorising;
  - reductions use ``reduce`` (fastmath reassociation, so they vectorise); no
    kernel uses the flags that assume away NaN or infinity, so NaN propagates
    as it does in NumPy;
  - the taps of a small kernel are hoisted into scalars.
Compiled code is cached on disk (``cache=True``): compilation is paid once per machine.
"""
from numba import njit

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}     # never "nnan"/"ninf"/"fast"

kernel = njit(nogil=True, cache=True)
reduce = njit(nogil=True, cache=True, fastmath=FASTMATH)


@kernel
def first_max(best, k, value, place):
    """The running maximum and its place after ``value``: the first maximum wins ties and the
    first NaN wins over numbers, as numpy.argmax; branch-free, so a loop of it vectorises."""
    take = (value > best) | ((value != value) & (best == best))
    return (value if take else best), (place if take else k)


@kernel
def relu(value, zero):
    """max(value, 0), NaN staying NaN as in numpy.maximum."""
    return zero if value < zero else value
