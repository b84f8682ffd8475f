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
"""


class Workspace:
    def __init__(self, xp):
        self.xp = xp
        self._buffers = {}          # name -> [buffer of the latest shape, of the one before]
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
        buf = self.xp.empty(shape, dtype=dtype)
        kept[:] = [buf] + kept[:1]
        return buf

    def part(self, name):
        """A nested workspace for a sub-op (its names cannot clash with this one's)."""
        ws = self._parts.get(name)
        if ws is None:
            ws = self._parts[name] = Workspace(self.xp)
        return ws
