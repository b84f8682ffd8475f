"""The training loop shared by ``python -m minicnn.train``, the sweeps and the benchmarks.

Each step may take its learning rate from a schedule (nn/schedules.py) and
update an average of the weights (nn/ema.py) that validation then uses.  The
batches are gathered from the training arrays on the backend, or, with
augmentation, made on the host (data/augment.py) one batch ahead on a
background thread while the current one trains.
"""
import collections
import contextlib
import functools
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple, Optional

import numpy as np

from ..data.images import Images, check_indices
from ..ops.workspace import Workspace
from ..parallel.shards import part_of


class EpochStats(NamedTuple):
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float        # this epoch: training steps and validation
    elapsed: float        # since training started
    train_seconds: float  # this epoch's training steps alone (the device synchronised)
    lr: float = math.nan  # the learning rate of the epoch's first step
    lr_end: float = math.nan  # ... and of its last step


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite, or grew far beyond where it started: the run diverges."""


class DivergenceCheck:
    """Stops a run whose loss is no longer finite, or whose mean over the last ``window``
    batches has grown to ``growth`` times the loss of its first batch.

    The first batch's loss is what an untrained model scores (about ln 10 = 2.3 for ten
    classes), a diverging run's grows by orders of magnitude within a few batches (lr 1000:
    2e18), and a healthy run's wanders far below ten times its start, so the rule neither
    waits for the overflow nor stops a noisy but learning run.
    """

    def __init__(self, window=10, growth=10.0):
        self.growth = growth
        self.start, self.recent = None, collections.deque(maxlen=window)

    def __call__(self, loss, epoch, step):
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the loss became {loss} in epoch {epoch}, step {step}")
        if self.start is None:
            self.start = loss
        self.recent.append(loss)
        mean = sum(self.recent) / len(self.recent)
        if mean > self.growth * self.start:
            raise NonFiniteLoss(f"the loss grew from {self.start:.3g} to {mean:.3g} (mean of the "
                                f"last {len(self.recent)} batches) by epoch {epoch}, step {step}")


def _gathered(model, x, y, batch_size, order):
    """make(step) -> this process's part of batch ``step`` of x[order], y[order] (x a backend
    array, or Images on the host: each batch converted to float32 as it is gathered), into
    buffers reused from step to step."""
    xp, ws = model.backend.xp, Workspace(model.backend.xp)
    pixels = isinstance(x, Images)
    host_order, host_ws = (model.backend.to_numpy(order), Workspace(np)) if pixels else (None, None)
    if pixels or xp is np:      # checked once here, so that no take buffers each batch
        check_indices(host_order if pixels else order, len(y))
    take = functools.partial(np.take, mode="clip") if xp is np else xp.take

    def make(step):
        batch = order[step * batch_size:(step + 1) * batch_size]
        a, b = part_of(len(batch), model.comm)
        idx = batch[a:b]
        shape = (len(idx),) + x.shape[1:]
        if pixels:
            host_idx = host_order[step * batch_size:(step + 1) * batch_size][a:b]
            xb = x.gather(host_idx, host_ws.empty("x", shape, model.dtype),
                          host_ws.empty("pixels", shape, np.uint8))
            xb = model.backend.asarray(xb, dtype=model.dtype)      # on the host: itself
        else:
            xb = take(x, idx, axis=0, out=ws.empty("x", shape, x.dtype))
        return xb, take(y, idx, out=ws.empty("y", (len(idx),), y.dtype))
    return make


def _prepared(model, augment, y, batch_size, order, epoch):
    """make(step) -> this process's part of batch ``step``, its images made on the host by
    ``augment(indices, epoch)``; each batch is made one step ahead on a background thread
    (the GIL is released by NumPy and Numba while it works), so the training step overlaps
    it.  Returns (make, close)."""
    host_order = model.backend.to_numpy(order)
    pool = ThreadPoolExecutor(1, thread_name_prefix="minicnn-augment")

    def build(step):
        batch = host_order[step * batch_size:(step + 1) * batch_size]
        a, b = part_of(len(batch), model.comm)
        return model.backend.asarray(augment(batch[a:b], epoch), dtype=model.dtype)
    pending = {}

    def make(step):
        future = pending.pop(step, None) or pool.submit(build, step)
        if (step + 1) * batch_size < len(host_order):
            pending[step + 1] = pool.submit(build, step + 1)
        batch = order[step * batch_size:(step + 1) * batch_size]
        a, b = part_of(len(batch), model.comm)
        return future.result(), model.backend.xp.take(y, batch[a:b])

    def close():
        for future in pending.values():
            future.cancel()
        pool.shutdown(wait=True)
    return make, close


def train_epoch(model, optimizer, x, y, batch_size, order, on_batch=None, epoch=1,
                check=None, schedule=None, ema=None, augment=None, on_step=None):
    """One pass over the samples x[order], y[order] (backend arrays; x may be Images, on the
    host) in batches of ``batch_size`` (the last may be short): a training step each.
    Returns (mean loss, accuracy) over the epoch.  Over several processes (model.comm) every
    process draws the same order and trains its part of each batch.  ``check(loss, epoch,
    step)`` may stop a diverging run (default: only a non-finite loss).  ``schedule(step)``
    sets the learning rate of each step; ``ema`` (a WeightAverage) is updated after it.
    ``augment(indices, epoch)``: the batch's images made on the host from training-set
    indices instead of taken from x (which may then be None).  ``on_step(step, loss,
    accuracy, lr, xb)`` is called after each step (step: model.steps_taken, xb: its batch;
    TensorBoard logging).  The benchmarks time this same loop."""
    check = check or DivergenceCheck(growth=math.inf)
    n = len(order)
    steps = math.ceil(n / batch_size)
    close = None
    if augment is None:
        make = _gathered(model, x, y, batch_size, order)
    else:
        make, close = _prepared(model, augment, y, batch_size, order, epoch)
    loss_sum, correct = 0.0, 0
    try:
        for step in range(steps):
            xb, yb = make(step)
            if schedule is not None:
                optimizer.lr = schedule(model.steps_taken)
            loss, hits = model.train_step(xb, yb, optimizer)
            if ema is not None:
                ema.update(model)
            check(loss, epoch, step + 1)
            size = min(batch_size, n - step * batch_size)
            if on_step:
                on_step(model.steps_taken, loss, hits / size, optimizer.lr, xb)
            loss_sum += loss * size
            correct += hits
            if on_batch:
                on_batch(epoch, step + 1, steps, loss_sum / min(n, (step + 1) * batch_size))
    finally:
        if close:
            close()
    return loss_sum / n, correct / n


def fit(model, optimizer, data, epochs, batch_size, seed=0,
        on_batch: Optional[Callable] = None, on_epoch: Optional[Callable] = None,
        schedule=None, ema=None, augment=None, on_step: Optional[Callable] = None):
    """Train ``model`` on ``data.train`` for ``epochs``; returns [EpochStats].

    Each epoch reshuffles with a generator seeded once by ``seed``, so a run is
    reproducible.  The training split is moved to the backend once, or on a host backend
    its ``Images`` stay as they are and each batch is converted as it is gathered (with
    ``augment``, only its labels: augment(indices, epoch) makes each batch's images
    from the host copy).  ``schedule(step)``: the learning rate of each step (default:
    the optimizer's own); ``ema``: a WeightAverage, which validation then uses.
    on_batch(epoch, done, total, running_loss), on_step (see train_epoch) and
    on_epoch(EpochStats) are called as training goes.  Raises NonFiniteLoss as soon as the
    run diverges (see DivergenceCheck); NumPy's overflow warnings on the way there are not
    shown, the exception says what happened.  KeyboardInterrupt propagates with
    the finished epochs already reported through on_epoch.
    """
    if len(data.train.y) == 0:
        raise ValueError("fit: the training split is empty; give at least one training sample")
    backend = model.backend
    host_images = isinstance(data.train.x, Images) and backend.xp is np    # batch by batch
    x_all = None if augment else data.train.x if host_images else \
        backend.asarray(np.asarray(data.train.x), dtype=model.dtype)
    y_all = backend.asarray(data.train.y)
    rng = np.random.default_rng(seed)
    check = DivergenceCheck()
    if ema is not None:
        ema.begin(model)
    history, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        first_step = model.steps_taken
        order = backend.asarray(rng.permutation(len(y_all)))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            train_loss, train_acc = train_epoch(model, optimizer, x_all, y_all, batch_size,
                                                order, on_batch, epoch, check, schedule, ema,
                                                augment, on_step)
        backend.synchronize()
        train_seconds = time.perf_counter() - t0
        with ema.applied(model) if ema is not None else contextlib.nullcontext():
            val_loss, val_acc = model.evaluate(data.val.x, data.val.y)
        backend.synchronize()
        now = time.perf_counter()
        rates = (schedule(first_step), schedule(model.steps_taken - 1)) if schedule else (
            optimizer.lr, optimizer.lr)
        stats = EpochStats(epoch, train_loss, train_acc, val_loss, val_acc, now - t0,
                           now - start, train_seconds, *rates)
        history.append(stats)
        if on_epoch:
            on_epoch(stats)
            start += time.perf_counter() - now    # time spent reporting is not training time
    return history
