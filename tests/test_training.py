"""The numbers a user reads: fit's per-epoch loss and accuracy, evaluate, the order of the
samples and their labels.  No MNIST needed: fake data with each sample's index in its first
pixel, so every batch can be checked image by image."""
import numpy as np
import pytest

import minicnn
from minicnn.data import Dataset, Split
from minicnn.nn.fit import fit

N_TRAIN, N_VAL = 53, 11            # 53 = 5 batches of 10 and a short one of 3


def indexed_data(seed=0):
    """Images whose pixel (0, 0, 0) is the sample's index (the rest noise), and labels that
    are a fixed, irregular function of the index, so a mis-paired batch cannot pass."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL
    x = rng.random((n, 1, 8, 8)).astype(np.float32)
    x[:, 0, 0, 0] = np.arange(n)
    y = label_of(np.arange(n))
    return Dataset(Split(x[:N_TRAIN], y[:N_TRAIN]), Split(x[N_TRAIN:], y[N_TRAIN:]),
                   Split(x[N_TRAIN:], y[N_TRAIN:]))


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
