"""The numba backend's kernels: plain Python loops compiled by Numba.

Every kernel is serial and releases the GIL (``nogil``): parallelism comes from
running the shards of a batch on threads (``minicnn/parallel/shards.py``), not from
threads inside a kernel, so a kernel never fights BLAS or another kernel for
the cores.  Rules measured on this engine (docs/backends.md):
  - the inner loop runs over contiguous pixels, never over a handful of channels;
  - a shifted window is a view (``row = plane[y, x0:]``, then ``row[j]``), not an
    index with a runtime offset, which stops LLVM from vectorising;
  - reductions use ``reduce`` (fastmath reassociation, so they vectorise), or
    ``ordered_sum`` where the order must not depend on how the kernel was compiled; no
    kernel uses the flags that assume away NaN or infinity, so NaN propagates
    as it does in NumPy;
  - the taps of a small kernel are hoisted into scalars;
  - division follows NumPy (``error_model="numpy"``: x / 0 is inf or NaN, not a raised
    ZeroDivisionError), which also lets a loop that divides vectorise: Python's model
    puts a zero test on every division.
Compiled code is cached on disk (``cache=True``): compilation is paid once per machine.
The cache folder is keyed by a hash of every source file here (``source_key``): Numba
checks only a kernel's own file, so after an edit to a helper another file inlines
(``first_max``, ``relu``, ``planes.py``) a shared folder would keep running the old code.
"""
import hashlib
import os
from pathlib import Path

import numba
from numba import njit

from ...paths import cache_root


def source_key():
    """A hash of the sources of this package: the name of its Numba cache folder."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_folder():
    """<NUMBA_CACHE_DIR or the minicnn cache>/numba-<source_key>.  Set before any kernel is
    compiled; it is Numba's process-wide setting, so other cached Numba code of the same
    process is cached there too."""
    root = Path(os.environ["NUMBA_CACHE_DIR"]) if os.environ.get("NUMBA_CACHE_DIR") else \
        cache_root()
    return root / f"numba-{source_key()}"


numba.config.CACHE_DIR = str(_cache_folder())

FASTMATH = {"reassoc", "contract", "nsz", "arcp"}     # never "nnan"/"ninf"/"fast"

kernel = njit(nogil=True, cache=True, error_model="numpy")
reduce = njit(nogil=True, cache=True, error_model="numpy", fastmath=FASTMATH)


@kernel
def first_max(best, k, value, place):
    """The running maximum and its place after ``value``: the first maximum wins ties and the
    first NaN wins over numbers, as numpy.argmax; branch-free, so a loop of it vectorises."""
    take = (value > best) | ((value != value) & (best == best))
    return (value if take else best), (place if take else k)


@kernel
def ordered_sum(a):
    """The sum of a (1-D) in an order fixed by this source: sixteen running sums of
    a[q::16], then a fixed tree.  Without fastmath the compiler may not reorder it.  A
    ``reduce`` loop's order is the compiler's choice, and Numba compiles a kernel inlined
    into another differently fresh than from the cache (a fresh and a cached run then differ
    in the last bit: tests/test_numba_cache.py).  The price: LLVM does not vectorise these
    sums, about 3x slower than a ``reduce`` loop (docs/results.md, section 1b), so use it only
    where the order matters."""
    zero = a.dtype.type(0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    s8 = s9 = s10 = s11 = s12 = s13 = s14 = s15 = zero
    n = a.size - a.size % 16
    for q in range(0, n, 16):
        s0 += a[q]
        s1 += a[q + 1]
        s2 += a[q + 2]
        s3 += a[q + 3]
        s4 += a[q + 4]
        s5 += a[q + 5]
        s6 += a[q + 6]
        s7 += a[q + 7]
        s8 += a[q + 8]
        s9 += a[q + 9]
        s10 += a[q + 10]
        s11 += a[q + 11]
        s12 += a[q + 12]
        s13 += a[q + 13]
        s14 += a[q + 14]
        s15 += a[q + 15]
    tail = zero
    for q in range(n, a.size):
        tail += a[q]
    return ((((s0 + s8) + (s4 + s12)) + ((s2 + s10) + (s6 + s14)))
            + (((s1 + s9) + (s5 + s13)) + ((s3 + s11) + (s7 + s15)))) + tail


@kernel
def relu(value, zero):
    """max(value, 0), NaN staying NaN as in numpy.maximum."""
    return zero if value < zero else value
