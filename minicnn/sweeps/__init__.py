"""Sweeps: many independent training runs (trials) as tasks on a Dask cluster.

    trial.py    what one task runs on a worker: build, train and score one model
    cluster.py  the Dask client and where trials may run (a local cluster, or a running one)
    points.py   finished results kept one file each, so an interrupted sweep resumes

The library raises ``SweepError``; the commands (``python -m minicnn.sweep``,
the studies in benchmarks/) turn it into their one-line error.
"""


class SweepError(RuntimeError):
    """A sweep cannot run as asked; the message says why and what to do."""


class TrialFailed(SweepError):
    """A trial raised on its worker; the finished ones are kept (exit status 1)."""
