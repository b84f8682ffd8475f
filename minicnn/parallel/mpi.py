"""Training one model over several processes: MPI ranks, each training its part of every batch.

    pip install 'minicnn[mpi]'                      # mpi4py and the MPICH wheel from PyPI
    mpiexec -n 4 python -m minicnn.train --epochs 2

The transport of parallel/shards.py's "sum the shards' gradients" across
processes.  ``communicator()`` is called once, at an entry point, before any
array exists:

  - launched by an MPI launcher (mpiexec, mpirun, srun: seen in the variables
    it sets, ``LAUNCH_VARIABLES``) with more than one process, it returns an
    ``MPIComm`` over MPI.COMM_WORLD; launched so but without mpi4py, it raises
    ``MPIError`` with one line saying what to install;
  - otherwise ``SingleProcess``: nothing changes.

``MPIComm`` has SingleProcess's four members.  Host (NumPy) arrays go through
MPI's buffer interface (``Allreduce(IN_PLACE, ...)``, ``Bcast``: no pickling);
CuPy arrays through NCCL (``nccl_communicator`` in backend/cupy_backend.py, the
only module that imports CuPy), one GPU per rank.

Placement, decided before the model is built: the ranks on one node split its
cores (each pinned to its share, so that the default thread count, one per
core, gives every rank its own cores) unless the launcher already bound them
(``mpiexec -bind-to core``); and each sees one GPU, the node-local rank's
(``CUDA_VISIBLE_DEVICES`` narrowed to one entry) where GPUs are visible.
"""
import os
from pathlib import Path

import numpy as np

from .shards import SingleProcess
from .threads import usable_cores

# Set by the launchers in every process they start: Open MPI, MPICH/Intel MPI (Hydra)
# and Slurm's srun --mpi=pmi2, MVAPICH2, PMIx (srun --mpi=pmix, Open MPI 5).
LAUNCH_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_RANK")


class MPIError(RuntimeError):
    """A multi-process launch that cannot work here; the message is one line saying why."""


def launched_by_mpi():
    """(variable, value) of the first launch variable found, else None."""
    for name in LAUNCH_VARIABLES:
        if name in os.environ:
            return name, os.environ[name]
    return None


def communicator():
    """The communicator of this process: an MPIComm when started by an MPI launcher with
    more than one process, else SingleProcess.  Raises MPIError when launched by MPI
    but mpi4py cannot be imported."""
    launch = launched_by_mpi()
    if launch is None or (launch[0] != "PMIX_RANK" and launch[1].strip() == "1"):
        return SingleProcess()
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise MPIError(
            f"launched by MPI ({launch[0]}={launch[1]}) but mpi4py cannot be imported ({exc}); "
            "pip install 'minicnn[mpi]' (mpi4py and an MPI from PyPI), or see "
            "docs/distributed.md for a cluster's own MPI") from None
    world = MPI.COMM_WORLD
    if world.Get_size() == 1:
        return SingleProcess()
    node = world.Split_type(MPI.COMM_TYPE_SHARED)
    _place(node.Get_rank(), node.Get_size())
    node.Free()
    return MPIComm(world)


class MPIComm:
    """SingleProcess's four members over an mpi4py communicator (default: MPI.COMM_WORLD)."""

    def __init__(self, comm=None):
        from mpi4py import MPI
        self._mpi = MPI
        self._comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()
        self._nccl = None

    def allreduce_sum(self, array):
        """Replace ``array`` by its sum over the processes, in place; returns it."""
        if isinstance(array, np.ndarray):
            self._comm.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)
        else:
            self._gpu().allreduce_sum(array)
        return array

    def broadcast(self, array, root=0):
        """Overwrite ``array`` with process ``root``'s copy, in place; returns it."""
        if isinstance(array, np.ndarray):
            self._comm.Bcast(array, root=root)
        else:
            self._gpu().broadcast(array, root)
        return array

    def sum_scalars(self, *values):
        """The sums over the processes of a few numbers, as a tuple of floats."""
        buffer = np.array([float(v) for v in values], dtype=np.float64)
        self._comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)
        return tuple(buffer.tolist())

    def _gpu(self):
        """The NCCL communicator for device arrays, made on first use (a collective: every
        rank reaches it at the same call, the model's first broadcast)."""
        if self._nccl is None:
            from .backend.cupy_backend import nccl_communicator
            self._nccl = nccl_communicator(self.rank, self.size, self.broadcast)
        return self._nccl

    def __repr__(self):
        return f"MPIComm(rank={self.rank}, size={self.size})"


# -- placement ----------------------------------------------------------------
def pin_to_cores(cores):
    """Restrict every thread of this process (and the threads it starts later) to ``cores``."""
    cores = set(cores)
    if not cores or not hasattr(os, "sched_setaffinity"):
        return
    try:
        threads = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, cores)
        except OSError:             # a thread that ended meanwhile
            pass


def visible_gpus():
    """The GPUs a process here may use, as CUDA_VISIBLE_DEVICES entries (without CUDA):
    CUDA_VISIBLE_DEVICES if set, else the NVIDIA driver's list under /proc."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    gpus = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(gpus.iterdir())))] if gpus.is_dir() else []


def _place(local_rank, local_size):
    """One share of this node's cores and one of its GPUs for node-local rank ``local_rank``."""
    if hasattr(os, "sched_setaffinity"):
        mine = usable_cores()
        every = os.cpu_count() or len(mine)
        if len(mine) == every and every >= local_size:     # not bound by the launcher
            share = every // local_size
            pin_to_cores(mine[local_rank * share:(local_rank + 1) * share])
    gpus = visible_gpus()
    if len(gpus) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[local_rank % len(gpus)]
