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
megabytes of buffers, and the lab model's step at 16 filters ran 5-9% faster on them in
alternated runs (docs/results.md; fewer TLB misses is the likely cause).  The buffers are
cut one after another, 64-byte aligned, from 8 MiB chunks shared by every plan of the
process; a chunk is unmapped with the last buffer cut from it, and its memory is never
reused before that.  So a pooled buffer is never dropped: a name keeps each of its first
``POOLED_SHAPES`` shapes' buffers for good (a step that returns to its training shape after
an evaluation or a short last batch finds it again), and takes any further shape from
NumPy, so that a name which keeps changing shape cannot grow the chunks.
"""
import mmap
import threading

import numpy as np

HUGE_PAGE = 2 << 20
POOLED_BYTES = 64 << 10     # smaller buffers stay with NumPy's allocator
POOLED_SHAPES = 4           # per name: training shards of two sizes, evaluation, a short batch
CHUNK_BYTES = 8 << 20


class Workspace:
    def __init__(self, xp, huge_pages=False):
        self.xp = xp
        self.huge_pages = huge_pages and xp is np and _POOL is not None
        self._buffers = {}          # name -> [buffer of the latest shape, of the one before]
        self._pooled = {}           # (name, shape, dtype) -> its buffer on the pages, for good
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
        buf = self._pooled.get((name, shape, np.dtype(dtype))) if self._pooled else None
        if buf is None:
            buf = self._new(name, shape, np.dtype(dtype))
        kept[:] = [buf] + kept[:1]
        return buf

    def _new(self, name, shape, dtype):
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if self.huge_pages and nbytes >= POOLED_BYTES and \
                sum(key[0] == name for key in self._pooled) < POOLED_SHAPES:
            buf = self._pooled[name, shape, dtype] = _POOL.take(nbytes).view(dtype).reshape(shape)
            return buf
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
        self.taken = 0                      # buffers cut so far (tests: a warm step cuts none)

    def take(self, nbytes):
        """A uint8 array of nbytes, 64-byte aligned."""
        step = -(-nbytes // 64) * 64
        with self._lock:
            self.taken += 1
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
    try:
        memory.madvise(mmap.MADV_HUGEPAGE)
    except (AttributeError, OSError):    # no such advice here, or a kernel without THP
        pass
    whole = np.frombuffer(memory, np.uint8)
    start = (-whole.ctypes.data) % HUGE_PAGE
    return whole[start:start + size]


# Anonymous private maps (Linux, macOS); elsewhere a plan's buffers come from NumPy.
_POOL = _HugePages() if hasattr(mmap, "MAP_ANONYMOUS") and hasattr(mmap, "MAP_PRIVATE") \
    else None
