"""The training loop shared by ``python -m minicnn.train`` and the benchmarks."""
import math
import time
from typing import Callable, NamedTuple, Optional

import numpy as np

from .parallel import part_of
from .workspace import Workspace


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
    pass


def train_epoch(model, optimizer, x, y, batch_size, order, on_batch=None, epoch=1):
    """One pass over the samples x[order], y[order] (backend arrays) in batches of
    ``batch_size`` (the last may be short): a training step each.  Returns (mean loss,
    accuracy) over the epoch.  Over several processes (model.comm) every process draws the
    same order and trains its part of each batch.  The benchmarks time this same loop."""
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
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"the loss became {loss} in epoch {epoch}, step {step + 1}")
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
    called as training goes.  Raises NonFiniteLoss as soon as a batch loss is
    NaN or infinite; KeyboardInterrupt propagates with the finished epochs
    already reported through on_epoch.
    """
    backend = model.backend
    x_all = backend.asarray(data.train.x, dtype=model.dtype)
    y_all = backend.asarray(data.train.y)
    rng = np.random.default_rng(seed)
    history, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = backend.asarray(rng.permutation(len(y_all)))
        train_loss, train_acc = train_epoch(model, optimizer, x_all, y_all, batch_size, order,
                                            on_batch, epoch)
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
