"""Named buffers that a step reuses from one batch to the next.

A training step asks for the same shapes every time, so once the first batch
has run, nothing is allocated: no page faults, no heap churn.  An op asks for
``ws.empty("col", shape, dtype)``; a sandwich hands each part its own
namespace with ``ws.part("conv")``, so names never collide.  Each name keeps
the buffers of its last two shapes: a thread's plan runs shards of two sizes
(50 images in 4 shards: 13, 13, 12, 12) in whatever order the threads take
them.  A new buffer is made only for a third shape (the evaluation batch, a
short last batch).  Called without a workspace, an op gets a fresh one: plain
allocation, as in NumPy.

A plan's workspaces (``huge_pages=True``) take their large host buffers from 2 MiB pages
(transparent huge pages, where Linux offers them): a training step walks through
megabytes of buffers, and with 4 KiB pages the lab model's step missed the TLB often
enough to cost 3-10% of its time (docs/results.md).  The buffers are packed one after
another, 64-byte aligned, in 8 MiB chunks; a chunk is freed with the last buffer cut
from it.  Only a name's first two shapes come from the pages, so a name that keeps
changing shape cannot grow the chunks.
"""
import mmap
import threading

import numpy as np

HUGE_PAGE = 2 << 20
POOLED_BYTES = 64 << 10     # smaller buffers stay with NumPy's allocator
CHUNK_BYTES = 8 << 20


class Workspace:
    def __init__(self, xp, huge_pages=False):
        self.xp = xp
        self.huge_pages = huge_pages and xp is np and _POOL is not None
        self._buffers = {}          # name -> [buffer of the latest shape, of the one before]
        self._pooled = {}           # name -> how many of its buffers came from the pages
        self._parts = {}

    def empty(self, name, shape, dtype):
        """The buffer called ``name``, shaped ``shape``; its contents are undefined."""
        kept = self._buffers.setdefault(name, [])
        shape = tuple(shape)
        for i, buf in enumerate(kept):
            if buf.shape == shape and buf.dtype == dtype:
                if i:
                    kept.reverse()
                return buf
        buf = self._new(name, shape, dtype)
        kept[:] = [buf] + kept[:1]
        return buf

    def _new(self, name, shape, dtype):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if self.huge_pages and nbytes >= POOLED_BYTES and self._pooled.get(name, 0) < 2:
            self._pooled[name] = self._pooled.get(name, 0) + 1
            return _POOL.take(nbytes).view(dtype).reshape(shape)
        return self.xp.empty(shape, dtype=dtype)

    def part(self, name):
        """A nested workspace for a sub-op (its names cannot clash with this one's)."""
        ws = self._parts.get(name)
        if ws is None:
            ws = self._parts[name] = Workspace(self.xp, self.huge_pages)
        return ws


class _HugePages:
    """Bytes cut one after another from 2 MiB-aligned chunks advised for huge pages.  The
    pool holds only the chunk it is cutting; each buffer's view holds its own chunk."""

    def __init__(self):
        self._lock = threading.Lock()       # two threads' plans allocate at once
        self._chunk, self._used = None, 0

    def take(self, nbytes):
        """A uint8 array of nbytes, 64-byte aligned."""
        step = -(-nbytes // 64) * 64
        with self._lock:
            if self._chunk is None or self._used + step > self._chunk.size:
                self._chunk, self._used = _huge_chunk(max(CHUNK_BYTES, step)), 0
            start = self._used
            self._used += step
            return self._chunk[start:start + nbytes]


def _huge_chunk(size):
    """size bytes (rounded up to 2 MiB), 2 MiB-aligned, private anonymous memory advised
    for transparent huge pages (touched pages only are resident)."""
    size = -(-size // HUGE_PAGE) * HUGE_PAGE
    memory = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        memory.madvise(mmap.MADV_HUGEPAGE)
    whole = np.frombuffer(memory, np.uint8)
    start = (-whole.ctypes.data) % HUGE_PAGE
    return whole[start:start + size]


# Anonymous private maps (Linux, macOS); elsewhere a plan's buffers come from NumPy.
_POOL = _HugePages() if hasattr(mmap, "MAP_ANONYMOUS") and hasattr(mmap, "MAP_PRIVATE") \
    else None
