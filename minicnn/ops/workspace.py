"""Named buffers that a step reuses from one batch to the next.

A training step asks for the same shapes every time, so once the first batch
has run, nothing is allocated: no page faults, no heap churn.  An op asks for
``ws.empty("col", shape, dtype)``; a sandwich hands each part its own
namespace with ``ws.part("conv")``, so names never collide.  A buffer changes
only when the shape does (the evaluation batch, a short last batch).  Called
without a workspace, an op gets a fresh one: plain allocation, as in NumPy.
"""


class Workspace:
    def __init__(self, xp):
        self.xp = xp
        self._buffers = {}
        self._parts = {}

    def empty(self, name, shape, dtype):
        """The buffer called ``name``, shaped ``shape``; its contents are undefined."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = self._buffers[name] = self.xp.empty(shape, dtype=dtype)
        return buf

    def part(self, name):
        """A nested workspace for a sub-op (its names cannot clash with this one's)."""
        ws = self._parts.get(name)
        if ws is None:
            ws = self._parts[name] = Workspace(self.xp)
        return ws
