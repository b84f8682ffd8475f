"""Dropout: the op (mask, 1 / (1 - rate) scale, backward) on every backend; the per-sample
Philox streams of Dropout.uniforms (reproducible, distinct per seed / step / sample / layer,
independent of how a batch is cut, uniform in [0, 1)); and the layer in a model: the
identity at inference, about ``rate`` of the values dropped and the rest scaled in a
training forward, a training step over two threads equal to one thread for models with
dropout and batch norm, masks that change from step to step, and the rate's checks.
"""
import numpy as np
import pytest

import minicnn
from minicnn import ops
from minicnn.gradcheck import numerical_gradient, rel_error
from minicnn.nn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from minicnn.nn.model import Sequential
from minicnn.nn.regularization import BatchNorm, Dropout


# -- the op --------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (6, 7)], ids=["cnhw", "nd"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_op_forward_and_backward(backend, rng, rate, shape, dtype):
    x_h = rng.standard_normal(shape).astype(dtype)
    u_h = rng.random(shape).astype(dtype)
    u_h.flat[0] = dtype(rate)                 # u == rate keeps the value (u >= rate)
    x, u = backend.asarray(x_h), backend.asarray(u_h)
    y, cache = ops.dropout_forward(x, u, rate, backend)
    keep = u_h >= dtype(rate)
    scale = dtype(1 / (1 - rate))
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(backend.to_numpy(y), x_h * keep * scale)
    assert backend.to_numpy(y).flat[0] != 0 or x_h.flat[0] == 0
    if rate == 0:
        np.testing.assert_array_equal(backend.to_numpy(y), x_h)
    dy_h = rng.standard_normal(shape).astype(dtype)
    dx = ops.dropout_backward(backend.asarray(dy_h), cache)
    np.testing.assert_array_equal(backend.to_numpy(dx), dy_h * keep * scale)


def test_dropout_op_gradient(backend, rng):
    x = backend.asarray(rng.standard_normal((2, 3, 3, 2)))
    u = backend.asarray(rng.random((2, 3, 3, 2)))
    y, cache = ops.dropout_forward(x, u, 0.4, backend)
    dy = backend.asarray(rng.standard_normal(y.shape))
    numeric = numerical_gradient(lambda: ops.dropout_forward(x, u, 0.4, backend)[0], x, dy,
                                 to_numpy=backend.to_numpy)
    assert rel_error(numeric, backend.to_numpy(ops.dropout_backward(dy, cache))) < 1e-8


def test_dropped_nan_stays_nan(backend):
    x = backend.asarray(np.array([[np.nan, np.nan, 1.0]]))
    u = backend.asarray(np.array([[0.1, 0.9, 0.1]]))
    y = backend.to_numpy(ops.dropout_forward(x, u, 0.5, backend)[0])
    assert np.isnan(y[0, 0]) and np.isnan(y[0, 1]) and y[0, 2] == 0


# -- the random numbers ----------------------------------------------------------------------
def built(rate=0.5, shape=(3, 4, 4), stream=0):
    layer = Dropout(rate)
    layer.build(shape)
    layer.stream = stream
    return layer


def test_uniforms_are_reproducible_and_distinct():
    layer = built()
    a = layer.uniforms(7, 3, 0, 4)
    assert a.shape == (4, 3, 4, 4) and a.dtype == np.float32
    np.testing.assert_array_equal(a, built().uniforms(7, 3, 0, 4))
    for other in (layer.uniforms(8, 3, 0, 4),                   # seed
                  layer.uniforms(7, 4, 0, 4),                   # step
                  layer.uniforms(7, 3, 1, 4),                   # samples shifted by one
                  built(stream=1).uniforms(7, 3, 0, 4)):        # another layer of the model
        assert not np.any(np.all(other == a, axis=(1, 2, 3)))
        assert np.mean(other == a) < 1e-3
    # the samples of one draw differ from each other
    assert not np.array_equal(a[0], a[1])


@pytest.mark.parametrize("first,count", [(0, 3), (3, 4), (9, 1)])
def test_uniforms_of_a_shard_are_rows_of_the_whole_batch(first, count):
    layer = built(shape=(5,))
    whole = layer.uniforms(1, 2, 0, 10)
    np.testing.assert_array_equal(layer.uniforms(1, 2, first, count), whole[first:first + count])


def test_uniforms_are_uniform_in_0_1():
    u = built(shape=(2, 10, 10)).uniforms(0, 0, 0, 500)      # 100,000 values
    assert u.min() >= 0 and u.max() < 1
    assert u.mean() == pytest.approx(0.5, abs=0.005)
    assert u.std() == pytest.approx(np.sqrt(1 / 12), abs=0.005)
    hist, _ = np.histogram(u, bins=10, range=(0, 1))
    assert np.all(np.abs(hist / u.size - 0.1) < 0.005)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan"), float("inf")])
def test_rate_outside_0_1_is_refused(rate):
    with pytest.raises(ValueError, match="rate"):
        Dropout(rate)


def test_rate_must_be_a_number():
    with pytest.raises(TypeError, match="rate"):
        Dropout("0.5")
    assert Dropout(0).rate == 0.0


# -- in a model ------------------------------------------------------------------------------
def mlp(backend, dropout=True, rate=0.4, dtype="float64", seed=5):
    layers = [Dense(50), ReLU()] + ([Dropout(rate)] if dropout else []) + [Dense(4)]
    return Sequential(layers, (12,), backend=backend, dtype=dtype, seed=seed)


def test_inference_is_the_model_without_dropout(backend, rng):
    with_dropout, without = mlp(backend.name), mlp(backend.name, dropout=False)
    np.testing.assert_array_equal(backend.to_numpy(with_dropout.flat_params),
                                  backend.to_numpy(without.flat_params))
    x_h = rng.standard_normal((9, 12))
    x = backend.asarray(x_h)
    labels = rng.integers(0, 4, 9)
    np.testing.assert_array_equal(backend.to_numpy(with_dropout.forward(x)),
                                  backend.to_numpy(without.forward(x)))
    np.testing.assert_array_equal(with_dropout.predict(x_h), without.predict(x_h))
    assert with_dropout.evaluate(x_h, labels) == without.evaluate(x_h, labels)
    assert with_dropout.loss(x, backend.asarray(labels))[0] == without.loss(
        x, backend.asarray(labels))[0]
    # ... and the training forward is not
    assert not np.array_equal(backend.to_numpy(with_dropout.forward(x, training=True)),
                              backend.to_numpy(without.forward(x)))


def test_training_forward_drops_rate_and_scales_the_rest(backend, rng):
    rate = 0.3
    head = Sequential([Dense(400), Dropout(rate)], (20,), backend=backend.name,
                      dtype="float64", seed=2)
    full = Sequential([Dense(400), Dropout(rate), Dense(3)], (20,), backend=backend.name,
                      dtype="float64", seed=2)
    full.flat_params[:head.flat_params.size] = head.flat_params
    x = backend.asarray(rng.standard_normal((16, 20)))
    plain = backend.to_numpy(head.forward(x))                     # inference: Dense alone
    dropped = backend.to_numpy(head.forward(x, training=True))
    zero = dropped == 0
    assert abs(zero.mean() - rate) < 0.02                         # 6,400 values
    np.testing.assert_allclose(dropped[~zero], plain[~zero] / (1 - rate), rtol=1e-14)
    # exactly the mask of the layer's stream for step 0, samples 0..15
    mask = head.layers[1].uniforms(2, 0, 0, 16) >= rate
    np.testing.assert_array_equal(zero, ~mask)
    # the full model's training forward runs its second dense layer on that intermediate
    w, b = full.layers[2].params["w"], full.layers[2].params["b"]
    np.testing.assert_allclose(backend.to_numpy(full.forward(x, training=True)),
                               dropped @ backend.to_numpy(w) + backend.to_numpy(b), rtol=1e-12)


def test_dropout_after_a_convolution_masks_each_sample_in_nchw(backend, rng):
    rate = 0.5
    model = Sequential([Conv2D(3, 3, padding="same"), Dropout(rate)], (2, 5, 6),
                       backend=backend.name, dtype="float64", seed=1)
    x = backend.asarray(rng.standard_normal((4, 2, 5, 6)))
    plain = backend.to_numpy(model.forward(x))
    dropped = backend.to_numpy(model.forward(x, training=True))
    keep = model.layers[1].uniforms(1, 0, 0, 4) >= rate              # (N, C, H, W)
    np.testing.assert_allclose(dropped, np.where(keep, plain * 2, 0), rtol=1e-14)


def test_masks_change_from_step_to_step(rng):
    rate = 0.5
    model = Sequential([Dense(30), Dropout(rate)], (6,), dtype="float64", seed=0)
    x = model.backend.asarray(rng.standard_normal((5, 6)))
    labels = rng.integers(0, 30, 5)
    first = model.forward(x, training=True) == 0
    np.testing.assert_array_equal(model.forward(x, training=True) == 0, first)  # same step
    optimizer = minicnn.SGD(1e-9)
    masks = [first]
    for step in range(1, 4):
        model.train_step(x, labels, optimizer)
        assert model.steps_taken == step
        masks.append(model.forward(x, training=True) == 0)
        np.testing.assert_array_equal(masks[-1], ~(model.layers[1].uniforms(0, step, 0, 5)
                                                   >= rate))
    for i in range(len(masks)):
        for j in range(i):
            assert not np.array_equal(masks[i], masks[j])


def regularised(backend, threads):
    layers = [Conv2D(4, 3, padding="same"), BatchNorm(momentum=0.9), ReLU(), Dropout(0.3),
              MaxPool2D(2), Flatten(), Dense(10), BatchNorm(momentum=0.8), ReLU(),
              Dropout(0.5), Dense(3)]
    return Sequential(layers, (2, 6, 6), backend=backend, dtype="float64", seed=4,
                      threads=threads)


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cudasim"])
def test_two_threads_train_as_one(backend_name):
    one, two = regularised(backend_name, 1), regularised(backend_name, 2)
    rng = np.random.default_rng(3)
    opt_one, opt_two = minicnn.SGD(0.1, momentum=0.9), minicnn.SGD(0.1, momentum=0.9)
    for step in range(3):
        x = one.backend.asarray(rng.standard_normal((7, 2, 6, 6)))
        y = one.backend.asarray(rng.integers(0, 3, 7))
        loss1, correct1 = one.train_step(x, y, opt_one)
        loss2, correct2 = two.train_step(x, y, opt_two)
        assert loss2 == pytest.approx(loss1, abs=1e-12) and correct1 == correct2
    to_host = one.backend.to_numpy
    np.testing.assert_allclose(to_host(two.flat_params), to_host(one.flat_params),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(to_host(two.flat_state), to_host(one.flat_state),
                               rtol=0, atol=1e-12)
    # the run really trained and really moved the running statistics
    assert not np.allclose(to_host(one.flat_params), to_host(regularised(backend_name, 1)
                                                            .flat_params))
    assert not np.allclose(to_host(one.flat_state), to_host(regularised(backend_name, 1)
                                                           .flat_state))
