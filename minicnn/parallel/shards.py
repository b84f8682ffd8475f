"""Data parallelism: split a batch into shards, compute each shard's gradients, sum them.

A training step on a batch of N images can be cut into shards: each shard runs
forward and backward on its own copy of the plan (the parameters are shared,
the caches, buffers and gradients are its own), its loss normalised by the
whole batch's N, so that the shards' gradients *add up* to the batch's.  Then
one update, the same on every shard.  One idea, two transports:

  - threads of one process (``ThreadShards``), each running serial, GIL-free
    kernels and single-threaded BLAS (two thread pools that each want every
    core fight: see docs/backends.md), taking shards as they come free (more
    shards than threads: a core slowed by a neighbour takes fewer);
    ``sum_gradients`` adds the shards' buffers in shard order;
  - processes (``comm``): each process trains its part of every batch on its
    threads, then the processes sum their flat gradient buffers with one
    all-reduce (MPI, see parallel/mpi.py).  ``SingleProcess`` is the
    communicator of a run in one process: there is nothing to exchange.
"""
import threading
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


def shard_count(threads, shards, synchronised=False, owner=""):
    """The shards of each batch: ``shards`` (an int > 0) if given, else one per thread.

    More shards than threads let a core slowed by a neighbour take fewer of them, at a cost
    on a quiet machine: on the lab model, 4 shards on 2 threads took 19% (16 filters) and 7%
    (64) longer when quiet, and with a busy process on one core 5% longer and 4% less time
    (docs/results.md, "One slow core"); so the default is one shard per thread.
    A ``synchronised`` model (batch norm: its statistics are summed at barriers that every
    shard must reach at once, ShardSums) needs one shard per thread.  ValueError, in words
    after ``owner``, for a count that cannot work."""
    if shards is None:
        return threads
    if shards < threads:
        raise ValueError(f"{owner}{shards} shards leave some of the {threads} threads idle; "
                         f"use at least {threads} shards or fewer threads")
    if synchronised and shards != threads:
        raise ValueError(f"{owner}a model with batch norm needs one shard per thread, "
                         f"{threads}, got {shards} (its statistics are summed over shards "
                         f"running at once)")
    return shards


def sum_gradients(total, shard_grads):
    """total += every array of shard_grads, in order (deterministic for a given shard count)."""
    for g in shard_grads:
        total += g
    return total


class ThreadShards:
    """Runs a list of calls on ``threads`` threads (the calling thread and threads - 1
    workers), each thread taking the next call not yet taken as soon as it is free.

    With more calls than threads, a thread slowed by a neighbour on its core simply takes
    fewer of them, instead of the whole step waiting for its fixed half.  Which thread runs
    which call does not change any number: every call has its own buffers and writes only
    its own results (the model sums the shards' gradients in shard order afterwards).
    """

    def __init__(self, threads):
        self.threads = threads
        self._pool = (ThreadPoolExecutor(threads - 1, thread_name_prefix="minicnn-shard")
                      if threads > 1 else None)

    def map(self, fn, calls, on_error=None):
        """[fn(thread, *args) for args in calls], run concurrently, ``thread`` the index (0 to
        threads - 1; 0 is the caller) of the thread running the call; waits for all before
        raising.
        ``on_error()`` is called as soon as one call raises (ShardSums.abort: shards waiting
        for the failed one at a barrier are released); no call starts after that."""
        results, errors = [None] * len(calls), []
        tickets, lock = iter(range(len(calls))), threading.Lock()

        def take_calls(thread):
            while True:
                with lock:
                    i = None if errors else next(tickets, None)
                if i is None:
                    return
                try:
                    results[i] = fn(thread, *calls[i])
                except BaseException as e:
                    with lock:
                        errors.append(e)
                    if on_error:
                        on_error()

        workers = min(self.threads, len(calls)) - 1
        futures = [self._pool.submit(take_calls, t) for t in range(1, workers + 1)]
        try:
            take_calls(0)
        finally:
            for f in futures:
                f.exception()          # wait: the shards' buffers must be idle when we return
        real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
        if errors:
            raise (real or errors)[0]
        return results


class ShardSums:
    """Adds an array over the shards of a batch, then over the processes: what batch norm's
    statistics need in the middle of a training step (synchronised batch norm).

    Each shard calls ``for_shard(i)(a)`` with its part at the same point of its forward or
    backward pass; all get the same total, added in shard order (so the same shards give
    the same bits).  ``start(k)`` before a batch of k shards; with one shard in one process
    the total is the shard's own array.
    """

    def __init__(self, comm):
        self.comm = comm
        self._barrier, self._parts, self._total = None, [], None

    def start(self, shards):
        if shards > 1 and (self._barrier is None or self._barrier.parties != shards
                           or self._barrier.broken):
            self._barrier = threading.Barrier(shards)
        self._parts = [None] * shards

    def abort(self):
        """Release the shards waiting for one that failed (they raise BrokenBarrierError)."""
        if self._barrier is not None:
            self._barrier.abort()

    def for_shard(self, index):
        """The ``reduce`` function of shard ``index``: a -> the total (``a`` may be
        overwritten)."""
        if len(self._parts) == 1:
            return self._over_processes
        return lambda a: self._sum(index, a)

    def _over_processes(self, a):
        return self.comm.allreduce_sum(a) if self.comm.size > 1 else a

    def _sum(self, index, a):
        self._parts[index] = a
        self._barrier.wait()
        if index == 0:
            total = a.copy()
            for part in self._parts[1:]:
                total += part
            self._total = self._over_processes(total)
        self._barrier.wait()
        return self._total


def part_of(n, comm):
    """(start, stop) of this process's share of n samples (empty where n < comm.size)."""
    bounds = shard_bounds(n, comm.size)
    return bounds[comm.rank] if comm.rank < len(bounds) else (n, n)


class SingleProcess:
    """The communicator of a run in one process: rank 0 of 1.  A multi-process one (MPI)
    has the same four members and sums over every process."""
    rank, size = 0, 1

    def allreduce_sum(self, array):
        """Replace ``array`` by its sum over the processes, in place; returns it."""
        return array

    def broadcast(self, array, root=0):
        """Overwrite ``array`` with process ``root``'s copy, in place; returns it."""
        return array

    def sum_scalars(self, *values):
        """The sums over the processes of a few numbers, as a tuple of floats."""
        return tuple(float(v) for v in values)
