"""The training loop (nn/fit.py) and the numbers a user reads: fit's per-epoch loss and
accuracy, evaluate, the order of the samples and their labels, the progress line, the epoch
timings, a NaN loss and the divergence rule's defaults (how NaN travels through the ops:
test_nan.py).  No MNIST needed: with a real model, fake data with each sample's index in its
first pixel, so every batch can be checked image by image; with a stub model (train_step's
loss the mean label of its batch, a clock that advances by hand), every number the loop
reports can be worked out by hand."""
from types import SimpleNamespace

import numpy as np
import pytest

import minicnn
from minicnn.backend import get_backend
from minicnn.data import Dataset, Split
from minicnn.nn import fit as fit_module
from minicnn.nn.fit import DivergenceCheck, NonFiniteLoss, fit, train_epoch
from minicnn.parallel.shards import SingleProcess

# -- a real model on indexed data --------------------------------------------------------
N_TRAIN, N_VAL, N_TEST = 53, 11, 17   # 53 = 5 batches of 10 and a short one of 3


def indexed_data(seed=0):
    """Images whose pixel (0, 0, 0) is the sample's index (the rest noise), and labels that
    are a fixed, irregular function of the index, so a mis-paired batch cannot pass.  The
    three splits hold different samples, so a number computed on the wrong one shows."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL + N_TEST
    x = rng.random((n, 1, 8, 8)).astype(np.float32)
    x[:, 0, 0, 0] = np.arange(n)
    y = label_of(np.arange(n))
    val = slice(N_TRAIN, N_TRAIN + N_VAL)
    return Dataset(Split(x[:N_TRAIN], y[:N_TRAIN]), Split(x[val], y[val]),
                   Split(x[val.stop:], y[val.stop:]))


def label_of(index):
    return (np.asarray(index) * 7 + 3) % 10 ^ (np.asarray(index) // 10 % 2)


def small_model(dtype="float32", threads=1):
    return minicnn.Sequential([minicnn.Conv2D(3, 3, padding="same"), minicnn.ReLU(),
                               minicnn.MaxPool2D(2), minicnn.Flatten(), minicnn.Dense(10)],
                              (1, 8, 8), dtype=dtype, seed=1, threads=threads)


class Spy:
    """Wraps model.train_step: records the sample indices of every batch and checks each
    image came with its own label."""

    def __init__(self, model):
        self.batches, self.real = [], model.train_step
        model.train_step = self

    def __call__(self, x, labels, optimizer):
        index = np.asarray(x)[:, 0, 0, 0].round().astype(int)
        np.testing.assert_array_equal(np.asarray(labels), label_of(index),
                                      err_msg="an image came with another image's label")
        self.batches.append(index)
        return self.real(x, labels, optimizer)

    def epochs(self, steps):
        return [np.concatenate(self.batches[i:i + steps])
                for i in range(0, len(self.batches), steps)]


def test_each_step_reports_its_own_batchs_loss_and_accuracy():
    """What on_step gets (TensorBoard's training scalars): each batch's mean loss and its
    accuracy, which weighted by the batch sizes give the epoch's numbers."""
    data = indexed_data()
    model = small_model("float64")
    steps = []
    history = fit(model, minicnn.SGD(1e-300), data, epochs=1, batch_size=10, seed=3,
                  on_step=lambda step, loss, acc, lr, xb: steps.append((loss, acc, len(xb))))
    sizes = np.array([n for _, _, n in steps])
    assert sizes.sum() == len(data.train.y) and sizes[-1] < 10      # a short last batch too
    loss, acc = (np.array([s[i] for s in steps]) for i in (0, 1))
    assert ((0 <= acc) & (acc <= 1)).all() and len(set(acc.tolist())) > 1
    assert (loss * sizes).sum() / sizes.sum() == pytest.approx(history[0].train_loss, rel=1e-12)
    assert (acc * sizes).sum() / sizes.sum() == pytest.approx(history[0].train_accuracy,
                                                               abs=1e-12)


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_reports_what_evaluate_measures(threads):
    """Weights that cannot move (lr 1e-300, float64): the epoch's training loss and accuracy,
    averaged per sample over a short last batch too, equal evaluate on the training data."""
    data = indexed_data()
    model = small_model("float64", threads)
    history = fit(model, minicnn.SGD(1e-300), data, epochs=2, batch_size=10, seed=3)
    loss, accuracy = model.evaluate(data.train.x, data.train.y)
    for stats in history:
        assert stats.train_loss == pytest.approx(loss, rel=1e-12)
        assert stats.train_accuracy == pytest.approx(accuracy, abs=1e-12)
        assert (stats.val_loss, stats.val_accuracy) == pytest.approx(
            model.evaluate(data.val.x, data.val.y), rel=1e-12)
    assert 0 < accuracy < 1 and loss > 0            # neither trivially 0 nor 1
    # the check can tell the splits apart: validation on the training or test split fails it
    for other in (data.train, data.test):
        assert model.evaluate(other.x, other.y)[0] != pytest.approx(history[-1].val_loss,
                                                                    rel=1e-6)


def test_evaluate_does_not_depend_on_the_batch_size():
    data = indexed_data()
    model = small_model("float64")
    results = [model.evaluate(data.train.x, data.train.y, batch_size=b) for b in (1, 7, 10, 53, 250)]
    for loss, accuracy in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-12)
        assert accuracy == results[0][1]
    # the mean of per-sample losses, not of per-batch means
    logits = model.forward(data.train.x.astype(np.float64))
    z = logits - logits.max(axis=1, keepdims=True)
    per_sample = np.log(np.exp(z).sum(axis=1)) - z[np.arange(N_TRAIN), data.train.y]
    assert results[0][0] == pytest.approx(per_sample.mean(), rel=1e-12)


def test_each_epoch_visits_every_sample_once_in_a_new_order():
    data = indexed_data()
    model = small_model()
    spy = Spy(model)
    fit(model, minicnn.SGD(0.01), data, epochs=3, batch_size=10, seed=5)
    epochs = spy.epochs(steps=6)
    assert [len(b) for b in spy.batches[:6]] == [10, 10, 10, 10, 10, 3]
    for order in epochs:
        assert sorted(order) == list(range(N_TRAIN))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    assert not np.array_equal(epochs[0], np.arange(N_TRAIN))      # shuffled at all


def test_the_same_seed_gives_the_same_orders_and_numbers():
    runs = []
    for seed in (5, 5, 6):
        model = small_model()
        spy = Spy(model)
        history = fit(model, minicnn.SGD(0.05), indexed_data(), epochs=2, batch_size=10,
                      seed=seed)
        runs.append((spy.epochs(steps=6), [h.train_loss for h in history]))
    (orders_a, loss_a), (orders_b, loss_b), (orders_c, _) = runs
    assert all(np.array_equal(a, b) for a, b in zip(orders_a, orders_b)) and loss_a == loss_b
    assert not all(np.array_equal(a, c) for a, c in zip(orders_a, orders_c))


def test_reported_loss_is_a_per_sample_mean_not_a_per_batch_sum():
    """At initialisation a 10-class model's cross-entropy is about ln 10 per sample."""
    model = small_model("float64")
    history = fit(model, minicnn.SGD(1e-300), indexed_data(), epochs=1, batch_size=10)
    assert 1.0 < history[0].train_loss < 5.0


def test_fit_refuses_an_empty_training_split():
    x, y = np.zeros((3, 1, 28, 28), np.float32), np.arange(3)
    empty = Dataset(Split(x[:0], y[:0]), Split(x, y), Split(x, y))
    with pytest.raises(ValueError, match="^fit: the training split is empty"):
        fit(minicnn.lab_model(2, backend="numpy"), minicnn.SGD(0.1), empty, 1, 10)


# -- the loop itself, on a stub model -----------------------------------------------------
class StubModel:
    """What fit and train_epoch use of a model.  train_step's loss is the mean label of its
    batch and its hits the even labels, so every number the loop reports can be worked out by
    hand; the clock, when given, advances 1 s per training step and 0.25 s per evaluation."""
    dtype = "float32"

    def __init__(self, clock=None, nan_at=None):
        self.backend, self.comm = get_backend("numpy"), SingleProcess()
        self.clock, self.nan_at, self.batches = clock, nan_at, []
        self.steps_taken = 0

    def train_step(self, x, y, optimizer):
        self.batches.append((x, y, np.array(x), np.array(y)))
        self.steps_taken += 1
        if self.clock:
            self.clock.now += 1.0
        if len(self.batches) == self.nan_at:
            return float("nan"), 0
        return float(y.mean()), int((y % 2 == 0).sum())

    def evaluate(self, x, y):
        if self.clock:
            self.clock.now += 0.25
        return 0.5, 0.25

    def orders(self, steps):
        labels = [b[3] for b in self.batches]
        return [np.concatenate(labels[i:i + steps]) for i in range(0, len(labels), steps)]


OPTIMIZER = SimpleNamespace(lr=0.5)      # the stub does not step it; fit reports its lr


def stub_data(n=10):
    """Images whose every pixel is the sample's index, labels equal to the index."""
    x = np.repeat(np.arange(n, dtype=np.float32), 4).reshape(n, 1, 2, 2)
    y = np.arange(n)
    return Dataset(Split(x, y), Split(x[:3], y[:3]), Split(x[:3], y[:3]))


def test_the_progress_line_reports_the_running_per_sample_mean():
    """on_batch(epoch, done, total, running loss): epoch 1 by default, steps counted from 1,
    and the running loss the mean over every sample seen so far (a short last batch too)."""
    data, model, calls = stub_data(10), StubModel(), []
    order = np.array([3, 9, 0, 7, 1, 8, 2, 6, 4, 5])
    loss, accuracy = train_epoch(model, OPTIMIZER, data.train.x, data.train.y, 4, order,
                                 on_batch=lambda *args: calls.append(args))
    seen = [order[:4], order[:8], order]
    assert [c[:3] for c in calls] == [(1, 1, 3), (1, 2, 3), (1, 3, 3)]
    assert [c[3] for c in calls] == pytest.approx([s.mean() for s in seen], rel=1e-12)
    assert (loss, accuracy) == pytest.approx((4.5, 0.5), rel=1e-12)


def test_batches_reuse_their_buffers_and_keep_images_with_their_labels():
    """train_epoch takes every full batch into the same two buffers (no allocation per step)."""
    data, model = stub_data(10), StubModel()
    train_epoch(model, OPTIMIZER, data.train.x, data.train.y, 3, np.arange(10)[::-1])
    full = model.batches[:3]
    assert all(x is full[0][0] and y is full[0][1] for x, y, _, _ in full)
    for _, _, images, labels in model.batches:
        np.testing.assert_array_equal(images[:, 0, 0, 0], labels)


def test_a_nan_loss_names_its_epoch_and_step():
    data, model = stub_data(10), StubModel(nan_at=3)
    with pytest.raises(NonFiniteLoss, match=r"^the loss became nan in epoch 1, step 3$"):
        train_epoch(model, OPTIMIZER, data.train.x, data.train.y, 2, np.arange(10))


def test_fit_runs_the_epochs_asked_for_with_the_default_seed_0():
    data, default, seeded = stub_data(10), StubModel(), StubModel()
    calls = []
    history = fit(default, OPTIMIZER, data, epochs=2, batch_size=4,
                  on_batch=lambda *args: calls.append(args[:3]))
    fit(seeded, OPTIMIZER, data, epochs=2, batch_size=4, seed=0)
    assert [h.epoch for h in history] == [1, 2] and len(default.batches) == 6
    assert calls == [(e, s, 3) for e in (1, 2) for s in (1, 2, 3)]
    # another seed, other orders: test_the_same_seed_gives_the_same_orders_and_numbers
    assert all(np.array_equal(a, b) for a, b in zip(default.orders(3), seeded.orders(3)))


def test_fit_reports_epoch_times_without_the_time_spent_reporting(monkeypatch):
    """3 steps of 1 s and an evaluation of 0.25 s per epoch; on_epoch takes 100 s, which
    ``elapsed`` leaves out."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(fit_module, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    reported = []

    def on_epoch(stats):
        reported.append(stats)
        clock.now += 100.0

    history = fit(StubModel(clock), OPTIMIZER, stub_data(10), epochs=2, batch_size=4,
                  on_epoch=on_epoch)
    assert reported == history
    assert [(h.epoch, h.train_seconds, h.seconds, h.elapsed) for h in history] == [
        (1, 3.0, 3.25, 3.25), (2, 3.0, 3.25, 6.5)]
    assert [(h.train_loss, h.train_accuracy, h.val_loss, h.val_accuracy)
            for h in history] == [(4.5, 0.5, 0.5, 0.25)] * 2


def test_the_default_divergence_rule_is_ten_times_the_first_loss_over_ten_batches():
    check = DivergenceCheck()
    check(1.0, 1, 1)
    for step in range(2, 11):                # the first loss is still in the window of 10
        check(10.5, 1, step)
    with pytest.raises(NonFiniteLoss, match=r"grew from 1 to 10\.5 \(mean of the last 10 "
                                            r"batches\) by epoch 1, step 11$"):
        check(10.5, 1, 11)
    boundary = DivergenceCheck()
    boundary(1.0, 1, 1)
    boundary(19.0, 1, 2)                     # the mean is exactly 10 times the start: no stop


@pytest.mark.parametrize("kind", ["float32 array", "Images"])
def test_gathering_a_batch_allocates_nothing_and_a_bad_order_is_refused(kind):
    """A step's batch is gathered into reused buffers (np.take with mode "raise" would
    buffer every batch): the order is checked once, for the whole epoch."""
    from conftest import NO_ALLOCATION, traced_peak
    from minicnn.data import Images
    rng = np.random.default_rng(10)
    pixels = rng.integers(0, 256, (400, 1, 28, 28), dtype=np.uint8)
    x = Images(pixels) if kind == "Images" else pixels.astype(np.float32)
    y, order = rng.integers(0, 10, 400), rng.permutation(400)
    model = minicnn.lab_model(8, backend="numba")
    make = fit_module._gathered(model, x, y, 100, order)
    make(0)
    peak, (xb, yb) = traced_peak(lambda: make(1))
    assert peak < NO_ALLOCATION
    np.testing.assert_array_equal(xb, np.asarray(x)[order[100:200]], strict=True)
    np.testing.assert_array_equal(yb, y[order[100:200]])
    with pytest.raises(IndexError, match=r"indices must be in \[0, 400\), got 0\.\.400"):
        fit_module._gathered(model, x, y, 100, np.append(order, 400))
