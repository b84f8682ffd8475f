"""Parallelism: the threads of one process (shards of a batch) and MPI across processes."""
