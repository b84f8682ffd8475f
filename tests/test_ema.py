"""The exponential moving average of the weights (minicnn/nn/ema.py, --ema).

WeightAverage against a hand computation over three steps with TensorFlow's num_updates
rule (d = min(decay, (1 + step) / (10 + step)), the shadow starting at the initial
weights), both sides of the min; applied() swapping the averaged weights in and restoring
the raw ones (also when the block raises); and fit() with an average validating the
averaged weights: its numbers equal evaluate() under applied().
"""
import numpy as np
import pytest

import minicnn
from minicnn.data import Dataset, Split
from minicnn.nn.ema import WeightAverage
from minicnn.nn.fit import fit
from minicnn.nn.layers import Dense, Flatten, ReLU
from minicnn.nn.model import Sequential
from minicnn.nn.regularization import BatchNorm


def tiny(backend="numpy"):
    return Sequential([Flatten(), Dense(6), ReLU(), Dense(3)], (1, 3, 3), backend=backend,
                      dtype="float64", seed=2)


def batches(rng, n=3):
    return [(rng.standard_normal((4, 1, 3, 3)), rng.integers(0, 3, 4)) for _ in range(n)]


@pytest.mark.parametrize("decay", [0.9999, 0.2])
def test_average_by_hand_over_three_steps(backend, rng, decay):
    model = tiny(backend.name)
    to_host = backend.to_numpy
    ema = WeightAverage(decay)
    ema.begin(model)
    shadow = to_host(model.flat_params).copy()                   # the initial weights
    np.testing.assert_array_equal(to_host(ema.shadow), shadow)
    assert ema.shadow is not model.flat_params
    opt = minicnn.SGD(0.5)
    used = []
    for step, (x, y) in enumerate(batches(rng), start=1):
        model.train_step(backend.asarray(x), backend.asarray(y), opt)
        assert model.steps_taken == step
        ema.update(model)
        d = min(decay, (1 + step) / (10 + step))
        used.append(d)
        weights = to_host(model.flat_params)
        shadow = shadow - (1 - d) * (shadow - weights)
        np.testing.assert_allclose(to_host(ema.shadow), shadow, rtol=1e-12, atol=1e-15)
    if decay == 0.9999:
        assert used == [2 / 11, 3 / 12, 4 / 13]                   # the num_updates rule
    else:
        assert used == [2 / 11, 0.2, 0.2]                         # the decay itself
    assert not np.allclose(shadow, to_host(model.flat_params))     # it lags the weights


def test_applied_swaps_the_average_in_and_restores(rng):
    model = tiny()
    ema = WeightAverage(0.9)
    with ema.applied(model):                          # before begin(): nothing to apply
        pass
    ema.begin(model)
    opt = minicnn.SGD(0.5)
    for x, y in batches(rng):
        model.train_step(x, y, opt)
        ema.update(model)
    raw = model.flat_params.copy()
    x = rng.standard_normal((5, 1, 3, 3))
    raw_logits = model.forward(x)
    with ema.applied(model):
        np.testing.assert_array_equal(model.flat_params, ema.shadow)
        np.testing.assert_array_equal(dict(model.params())["dense.w"],
                                      ema.shadow[:9 * 6].reshape(9, 6))
        averaged_logits = model.forward(x)
    np.testing.assert_array_equal(model.flat_params, raw)
    np.testing.assert_array_equal(model.forward(x), raw_logits)
    assert not np.allclose(averaged_logits, raw_logits)
    # the same model built with the averaged weights gives the averaged logits
    other = tiny()
    other.flat_params[...] = ema.shadow
    np.testing.assert_array_equal(other.forward(x), averaged_logits)


def test_applied_restores_when_the_block_raises(rng):
    model = tiny()
    ema = WeightAverage(0.9)
    ema.begin(model)
    x, y = batches(rng, 1)[0]
    model.train_step(x, y, minicnn.SGD(1.0))
    ema.update(model)
    raw = model.flat_params.copy()
    with pytest.raises(KeyError, match="inside"):
        with ema.applied(model):
            assert not np.array_equal(model.flat_params, raw)
            raise KeyError("inside")
    np.testing.assert_array_equal(model.flat_params, raw)


def test_the_running_statistics_are_not_averaged(rng):
    model = Sequential([Flatten(), Dense(5), BatchNorm(), Dense(3)], (1, 3, 3),
                       dtype="float64")
    ema = WeightAverage(0.5)
    ema.begin(model)
    for x, y in batches(rng):
        model.train_step(x, y, minicnn.SGD(0.1))
        ema.update(model)
    state = model.flat_state.copy()
    assert ema.shadow.size == model.flat_params.size
    with ema.applied(model):
        np.testing.assert_array_equal(model.flat_state, state)


@pytest.mark.parametrize("decay", [0, 1, 1.5, -0.5])
def test_decay_outside_0_1_is_refused(decay):
    with pytest.raises(ValueError, match=rf"^--ema: decay must be in \(0, 1\), got {decay!r}"):
        WeightAverage(decay)


def test_fit_validates_the_averaged_weights():
    rng = np.random.default_rng(5)
    split = lambda n: Split(rng.random((n, 1, 3, 3)).astype(np.float32),
                            rng.integers(0, 3, n).astype(np.int64))
    data = Dataset(split(24), split(10), split(4))
    model, ema = tiny(), WeightAverage(0.99)
    seen = []

    def on_epoch(stats):
        with ema.applied(model):
            averaged = model.evaluate(data.val.x, data.val.y)
        raw = model.evaluate(data.val.x, data.val.y)
        seen.append((stats, averaged, raw))

    history = fit(model, minicnn.SGD(0.5), data, 3, 6, on_epoch=on_epoch, ema=ema)
    assert len(history) == 3 and model.steps_taken == 12
    for stats, averaged, raw in seen:
        assert (stats.val_loss, stats.val_accuracy) == averaged
        assert stats.val_loss != raw[0]                       # the raw weights score otherwise
    # training went on from the raw weights, which differ from the average
    assert not np.allclose(model.flat_params, ema.shadow)
    # and the average is the one a hand replay of fit's steps gives
    replay, shadow = tiny(), tiny().flat_params.copy()
    order_rng, sgd = np.random.default_rng(0), minicnn.SGD(0.5)
    for _ in range(3):
        order = order_rng.permutation(24)
        for start in range(0, 24, 6):
            idx = order[start:start + 6]
            replay.train_step(data.train.x[idx].astype(np.float64), data.train.y[idx], sgd)
            step = replay.steps_taken
            d = min(0.99, (1 + step) / (10 + step))
            shadow -= (1 - d) * (shadow - replay.flat_params)
    np.testing.assert_allclose(ema.shadow, shadow, rtol=1e-12, atol=1e-15)
