"""How much memory a model or a training run needs, estimated before anything is allocated.

``--filters 100000`` asks for 90 billion parameters of the second convolution:
rather than a NumPy traceback after minutes, a one-line refusal that gives the
estimate and what the machine has.  The estimate adds up what minicnn keeps:

    parameters             P values
    gradients              P values per shard of a batch (each has its own)
    optimizer state        P values per slot (momentum: 1, Adam: 2)
    initialisation         P float64 values on the host while the weights are drawn
    step buffers           per shard of the batch: every layer's output and its gradient,
                           and every convolution's columns (C*KH*KW x OH*OW per image) and
                           their gradient; the same again for evaluation batches of 250
    data                   the training and test images' uint8 pixels (data/images.py),
                           and float32 copies of the crops a run makes
    runtime                about 250 MiB for Python, NumPy, Numba and the compiled kernels

It is an estimate (buffers are shared where shapes repeat, columns depend on the
algorithm), meant to be within a factor of two; the check refuses only what
cannot fit.
"""
import math
import os

import numpy as np

from .layers import Conv2D

RUNTIME_BYTES = 250 * 2**20
EVALUATION_BATCH = 250


class NotEnoughMemory(MemoryError):
    """The configuration cannot fit in this machine's memory; the message gives both figures."""


def available_bytes():
    """Memory this process can still use: MemAvailable, capped by a cgroup limit if any."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return math.inf
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def gib(n):
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def parameter_bytes(parameters, itemsize, shards=1, optimizer_slots=0):
    """Parameters, their gradients (one set per shard), optimizer state and the float64
    initial draw."""
    return parameters * (itemsize * (1 + shards + optimizer_slots) + 8)


def step_buffer_bytes(layers, input_shape, batch, itemsize):
    """The buffers one forward and backward pass keeps for ``batch`` images (see above)."""
    total, shape = 0, tuple(input_shape)
    for layer in layers:
        out = layer.output_shape if layer.output_shape is not None else shape
        total += 2 * int(np.prod(out)) * batch * itemsize          # output and its gradient
        if isinstance(layer, Conv2D):
            kh, kw = layer.kernel_size
            total += 2 * shape[0] * kh * kw * out[1] * out[2] * batch * itemsize
        shape = out
    return total


def check(needed, what, smaller="a smaller batch"):
    """Raise NotEnoughMemory when ``needed`` bytes do not fit in what is available;
    ``smaller``: what else the caller's user can shrink."""
    free = available_bytes()
    if needed > free:
        raise NotEnoughMemory(f"{what} needs about {gib(needed)} of memory, and "
                              f"{gib(free)} are available; use fewer filters or units, "
                              f"{smaller}, or a machine with more memory")


def training_estimate(layers, input_shape, batch_size, threads, optimizer_slots=0,
                      data_bytes=0, shards=None):
    """{part: bytes} of a float32 training run of built ``layers`` (see the module
    docstring); ``shards`` of each batch, default one per thread."""
    itemsize = 4
    parameters = sum(layer.num_params() for layer in layers)
    shards = shards or threads
    shard = math.ceil(batch_size / shards)
    sizes = 2 if shards > threads else 1        # a thread then runs shards of two sizes
    return {
        "parameters, gradients and optimizer": parameter_bytes(parameters, itemsize, shards,
                                                               optimizer_slots),
        "step buffers": threads * (sizes * step_buffer_bytes(layers, input_shape, shard,
                                                             itemsize)
                                   + step_buffer_bytes(layers, input_shape,
                                                       math.ceil(EVALUATION_BATCH / shards),
                                                       itemsize) // 2),
        "data": data_bytes,
        "runtime": RUNTIME_BYTES,
    }
