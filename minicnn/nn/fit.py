"""The training loop shared by ``python -m minicnn.train`` and the benchmarks."""
import collections
import math
import time
from typing import Callable, NamedTuple, Optional

import numpy as np

from ..parallel.shards import part_of
from ..ops.workspace import Workspace


class EpochStats(NamedTuple):
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float        # this epoch: training steps and validation
    elapsed: float        # since training started
    train_seconds: float  # this epoch's training steps alone (the device synchronised)


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


def train_epoch(model, optimizer, x, y, batch_size, order, on_batch=None, epoch=1,
                check=None):
    """One pass over the samples x[order], y[order] (backend arrays) in batches of
    ``batch_size`` (the last may be short): a training step each.  Returns (mean loss,
    accuracy) over the epoch.  Over several processes (model.comm) every process draws the
    same order and trains its part of each batch.  ``check(loss, epoch, step)`` may stop a
    diverging run (default: only a non-finite loss).  The benchmarks time this same loop."""
    check = check or DivergenceCheck(growth=math.inf)
    xp = model.backend.xp
    ws = Workspace(xp)           # the batch buffers, reused from step to step
    n = len(order)
    steps = math.ceil(n / batch_size)
    loss_sum, correct = 0.0, 0
    for step in range(steps):
        batch = order[step * batch_size:(step + 1) * batch_size]
        a, b = part_of(len(batch), model.comm)
        idx = batch[a:b]
        xb = xp.take(x, idx, axis=0, out=ws.empty("x", (len(idx),) + x.shape[1:], x.dtype))
        yb = xp.take(y, idx, out=ws.empty("y", (len(idx),), y.dtype))
        loss, hits = model.train_step(xb, yb, optimizer)
        check(loss, epoch, step + 1)
        loss_sum += loss * len(batch)
        correct += hits
        if on_batch:
            on_batch(epoch, step + 1, steps, loss_sum / min(n, (step + 1) * batch_size))
    return loss_sum / n, correct / n


def fit(model, optimizer, data, epochs, batch_size, seed=0,
        on_batch: Optional[Callable] = None, on_epoch: Optional[Callable] = None):
    """Train ``model`` on ``data.train`` for ``epochs``; returns [EpochStats].

    Each epoch reshuffles with a generator seeded once by ``seed``, so a run is
    reproducible.  The training split is moved to the backend once.
    on_batch(epoch, done, total, running_loss) and on_epoch(EpochStats) are
    called as training goes.  Raises NonFiniteLoss as soon as the run diverges
    (see DivergenceCheck); NumPy's overflow warnings on the way there are not
    shown, the exception says what happened.  KeyboardInterrupt propagates with
    the finished epochs already reported through on_epoch.
    """
    if len(data.train.y) == 0:
        raise ValueError("fit: the training split is empty; give at least one training sample")
    backend = model.backend
    x_all = backend.asarray(data.train.x, dtype=model.dtype)
    y_all = backend.asarray(data.train.y)
    rng = np.random.default_rng(seed)
    check = DivergenceCheck()
    history, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = backend.asarray(rng.permutation(len(y_all)))
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            train_loss, train_acc = train_epoch(model, optimizer, x_all, y_all, batch_size,
                                                order, on_batch, epoch, check)
        backend.synchronize()
        train_seconds = time.perf_counter() - t0
        val_loss, val_acc = model.evaluate(data.val.x, data.val.y)
        backend.synchronize()
        now = time.perf_counter()
        stats = EpochStats(epoch, train_loss, train_acc, val_loss, val_acc, now - t0,
                           now - start, train_seconds)
        history.append(stats)
        if on_epoch:
            on_epoch(stats)
            start += time.perf_counter() - now    # time spent reporting is not training time
    return history
