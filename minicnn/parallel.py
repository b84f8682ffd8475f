"""Data parallelism: split a batch into shards, compute each shard's gradients, sum them.

A training step on a batch of N images can be cut into shards: each shard runs
forward and backward on its own copy of the plan (the parameters are shared,
the caches, buffers and gradients are its own), its loss normalised by the
whole batch's N, so that the shards' gradients *add up* to the batch's.  Then
one update.  Here the shards are threads of one process, each running serial,
GIL-free kernels and single-threaded BLAS (two thread pools that each want
every core fight: see docs/backends.md).  ``sum_gradients`` is the one place
shards' gradients meet; training over several processes sums the same flat
buffers with MPI.
"""
from concurrent.futures import ThreadPoolExecutor


def shard_bounds(n, shards):
    """[(start, stop)] cutting range(n) into at most ``shards`` parts whose sizes differ by <= 1."""
    k = max(1, min(shards, n))
    base, extra = divmod(n, k)
    bounds, start = [], 0
    for i in range(k):
        stop = start + base + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def sum_gradients(total, shard_grads):
    """total += every array of shard_grads, in order (deterministic for a given shard count)."""
    for g in shard_grads:
        total += g
    return total


class ThreadShards:
    """Runs one call per shard: the first on the calling thread, the others on worker threads."""

    def __init__(self, threads):
        self.threads = threads
        self._pool = (ThreadPoolExecutor(threads - 1, thread_name_prefix="minicnn-shard")
                      if threads > 1 else None)

    def map(self, fn, calls):
        """[fn(*args) for args in calls], run concurrently; waits for all before raising."""
        futures = [self._pool.submit(fn, *args) for args in calls[1:]]
        try:
            first = fn(*calls[0])
        finally:
            for f in futures:
                f.exception()          # wait: the shards' buffers must be idle when we return
        return [first] + [f.result() for f in futures]
