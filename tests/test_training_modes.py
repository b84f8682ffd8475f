"""Training and inference modes at the model level, weight decay and initialisers.

Batch norm's running statistics after each train_step against the batch statistics
computed by hand (Keras's momentum rule), inference (forward / predict / evaluate) on the
running statistics and forward(training=True) on the batch's, both against a hand
computation; save/load keeping the running statistics (and a file without state still
loading); weight decay in train_step's loss, in its gradient step (SGD on g + rate * w)
and in evaluate's loss; the truncated-normal and constant initialisers and the default
Glorot draw of the lab model; a whole-model float64 gradient check in training mode with
every new layer (conv, batch norm, ReLU, LRN, average pool, tanh, dropout, dense); and
the one-sample batch that batch norm after a dense layer refuses.
"""
import math

import numpy as np
import pytest

import minicnn
from minicnn.gradcheck import numerical_gradient, rel_error
from minicnn.nn import model_file
from minicnn.nn.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Tanh
from minicnn.nn.model import Sequential
from minicnn.nn.regularization import BatchNorm, Dropout, LocalResponseNorm
from reference import softmax_cross_entropy

EPS = 1e-3


def conv_bn(backend="numpy", momentum=0.9, seed=1, threads=1):
    return Sequential([Conv2D(3, 3), BatchNorm(momentum=momentum, epsilon=EPS), ReLU(),
                       Flatten(), Dense(4)], (2, 6, 5), backend=backend, dtype="float64",
                      seed=seed, threads=threads)


def dense_bn(backend="numpy", momentum=0.8, seed=2):
    return Sequential([Dense(5), BatchNorm(momentum=momentum, epsilon=EPS), Dense(3)], (7,),
                      backend=backend, dtype="float64", seed=seed)


def host(model, name):
    return model.backend.to_numpy(dict(model.params())[name]).copy()


def conv_output(model, x):
    """The first Conv2D's output (N, C, H, W) for the model's current weights, by a model of
    that layer alone with the same weights."""
    head = Sequential([Conv2D(3, 3)], model.input_shape, backend=model.backend.name,
                      dtype="float64")
    head.flat_params[...] = model.flat_params[:head.flat_params.size]
    return model.backend.to_numpy(head.forward(model.backend.asarray(x)))


# -- batch norm's running statistics -----------------------------------------------------------
def test_running_statistics_follow_the_momentum_rule_conv(rng):
    model, momentum = conv_bn(), 0.9
    opt = minicnn.SGD(0.2)
    mean_expected, var_expected = np.zeros(3), np.ones(3)
    for step in range(3):
        x = rng.standard_normal((5, 2, 6, 5))
        z = conv_output(model, x)                            # the weights this step sees
        batch_mean, batch_var = z.mean(axis=(0, 2, 3)), z.var(axis=(0, 2, 3))   # biased
        model.train_step(model.backend.asarray(x), rng.integers(0, 4, 5), opt)
        mean_expected = momentum * mean_expected + (1 - momentum) * batch_mean
        var_expected = momentum * var_expected + (1 - momentum) * batch_var
        state = dict(model.state())
        np.testing.assert_allclose(state["batchnorm.moving_mean"], mean_expected, rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_allclose(state["batchnorm.moving_variance"], var_expected,
                                   rtol=1e-12)
    assert [name for name, _ in model.state()] == ["batchnorm.moving_mean",
                                                   "batchnorm.moving_variance"]


def test_running_statistics_follow_the_momentum_rule_dense(rng):
    model = dense_bn()
    x = rng.standard_normal((6, 7))
    w, b = host(model, "dense.w"), host(model, "dense.b")
    z = x @ w + b
    model.train_step(model.backend.asarray(x), rng.integers(0, 3, 6), minicnn.SGD(0.1))
    state = dict(model.state())
    np.testing.assert_allclose(state["batchnorm.moving_mean"], 0.2 * z.mean(axis=0),
                               rtol=1e-12)
    np.testing.assert_allclose(state["batchnorm.moving_variance"],
                               0.8 + 0.2 * z.var(axis=0), rtol=1e-12)


def hand_dense_bn(model, x, mean, var):
    """The dense_bn model's logits computed by hand with the given statistics."""
    z = x @ host(model, "dense.w") + host(model, "dense.b")
    h = (host(model, "batchnorm.gamma") * (z - mean) / np.sqrt(var + EPS)
         + host(model, "batchnorm.beta"))
    return h @ host(model, "dense_1.w") + host(model, "dense_1.b")


def with_known_state(model, rng):
    """Non-trivial gamma, beta and running statistics set by hand."""
    layer = model.layers[1]
    layer.params["gamma"][...] = rng.uniform(0.5, 2.0, 5)
    layer.params["beta"][...] = rng.standard_normal(5)
    layer.state["moving_mean"][...] = rng.standard_normal(5)
    layer.state["moving_variance"][...] = rng.uniform(0.1, 3.0, 5)
    return model


def test_inference_uses_the_running_statistics(rng):
    model = with_known_state(dense_bn(), rng)
    state = {k.split(".")[1]: v.copy() for k, v in model.state()}
    x = rng.standard_normal((8, 7))
    labels = rng.integers(0, 3, 8)
    logits = hand_dense_bn(model, x, state["moving_mean"], state["moving_variance"])
    np.testing.assert_allclose(model.forward(model.backend.asarray(x)), logits, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(x), logits.argmax(axis=1))
    loss, accuracy = model.evaluate(x, labels, batch_size=3)
    assert loss == pytest.approx(softmax_cross_entropy(logits, labels)[0], rel=1e-12)
    assert accuracy == np.mean(logits.argmax(axis=1) == labels)
    # the statistics of one sample alone: inference does not need a batch
    np.testing.assert_allclose(model.forward(model.backend.asarray(x[:1])), logits[:1],
                               rtol=1e-12)
    # inference leaves the running statistics alone
    for k, v in model.state():
        np.testing.assert_array_equal(v, state[k.split(".")[1]])


def test_training_forward_uses_the_batch_statistics(rng):
    model = with_known_state(dense_bn(), rng)
    before = {k.split(".")[1]: v.copy() for k, v in model.state()}
    x = rng.standard_normal((8, 7))
    z = x @ host(model, "dense.w") + host(model, "dense.b")
    logits = hand_dense_bn(model, x, z.mean(axis=0), z.var(axis=0))
    np.testing.assert_allclose(model.forward(model.backend.asarray(x), training=True), logits,
                               rtol=1e-12)
    assert not np.allclose(logits, hand_dense_bn(model, x, before["moving_mean"],
                                                 before["moving_variance"]))
    labels = rng.integers(0, 3, 8)
    loss = model.loss(model.backend.asarray(x), labels, training=True)[0]
    assert loss == pytest.approx(softmax_cross_entropy(logits, labels)[0], rel=1e-12)


def test_conv_batch_norm_inference_by_hand(rng):
    model = conv_bn()
    layer = model.layers[1]
    layer.state["moving_mean"][...] = [0.3, -0.2, 1.0]
    layer.state["moving_variance"][...] = [0.5, 2.0, 1.5]
    layer.params["gamma"][...] = [1.5, 0.7, -1.0]
    x = rng.standard_normal((3, 2, 6, 5))
    z = conv_output(model, x)
    c = lambda v: np.asarray(v).reshape(1, -1, 1, 1)
    h = np.maximum(c(layer.params["gamma"]) * (z - c([0.3, -0.2, 1.0]))
                   / np.sqrt(c([0.5, 2.0, 1.5]) + EPS) + c(layer.params["beta"]), 0)
    logits = h.reshape(3, -1) @ host(model, "dense.w") + host(model, "dense.b")
    np.testing.assert_allclose(model.forward(model.backend.asarray(x)), logits, rtol=1e-12)


# -- saving the state ----------------------------------------------------------------------------
@pytest.mark.parametrize("load_on", ["numpy", "numba"])
def test_save_and_load_keep_the_running_statistics(tmp_path, rng, load_on):
    model = conv_bn()
    opt = minicnn.SGD(0.1)
    for _ in range(3):
        model.train_step(model.backend.asarray(rng.standard_normal((6, 2, 6, 5))),
                         rng.integers(0, 4, 6), opt)
    state = {k: v.copy() for k, v in model.state()}
    assert not np.allclose(state["batchnorm.moving_variance"], 1)    # it moved
    model.save(tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz", backend=load_on)
    for name, value in loaded.state():
        np.testing.assert_array_equal(loaded.backend.to_numpy(value), state[name])
    x = rng.standard_normal((10, 2, 6, 5))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_allclose(loaded.backend.to_numpy(loaded.forward(loaded.backend.asarray(x))),
                               model.forward(model.backend.asarray(x)), rtol=1e-10, atol=1e-12)
    # a fresh model of the same architecture predicts differently: the state mattered
    fresh = conv_bn()
    fresh.flat_params[...] = model.flat_params
    assert not np.allclose(fresh.forward(fresh.backend.asarray(x)),
                           model.forward(model.backend.asarray(x)))


def test_a_model_file_without_state_still_loads(tmp_path, rng):
    model = Sequential([Conv2D(2, 3), ReLU(), MaxPool2D(2), Flatten(), Dense(3)], (1, 8, 8),
                       dtype="float64", seed=3)
    model.save(tmp_path / "plain.npz")
    with np.load(tmp_path / "plain.npz") as data:
        assert not [k for k in data.files if k.startswith("state:")]
    # and one written the old way, with no state argument at all
    model_file.write(tmp_path / "old.npz", model.architecture(), {},
                     {name: p.copy() for name, p in model.params()})
    x = rng.standard_normal((4, 1, 8, 8))
    for name in ("plain.npz", "old.npz"):
        loaded = minicnn.load(tmp_path / name)
        assert loaded.state() == [] and loaded.flat_state.size == 0
        np.testing.assert_array_equal(loaded.forward(loaded.backend.asarray(x)),
                                      model.forward(model.backend.asarray(x)))


def test_a_batch_norm_model_file_missing_its_state_is_refused(tmp_path):
    model = dense_bn()
    model_file.write(tmp_path / "m.npz", model.architecture(), {},
                     {name: p.copy() for name, p in model.params()})
    with pytest.raises(ValueError, match="moving_mean"):
        minicnn.load(tmp_path / "m.npz")


# -- weight decay --------------------------------------------------------------------------------
def decay_model(decay, threads=1):
    rates = (0.01, 0.03) if decay else (0.0, 0.0)
    return Sequential([Conv2D(2, 3, weight_decay=rates[0]), ReLU(), Flatten(),
                       Dense(3, weight_decay=rates[1])], (1, 5, 5), dtype="float64", seed=7,
                      threads=threads)


def test_weight_decay_in_the_loss_and_the_step(rng):
    decayed, plain = decay_model(True), decay_model(False)
    np.testing.assert_array_equal(decayed.flat_params, plain.flat_params)
    x, labels = rng.standard_normal((4, 1, 5, 5)), rng.integers(0, 3, 4)
    before = dict((k, v.copy()) for k, v in decayed.params())
    penalty = 0.5 * 0.01 * np.sum(before["conv2d.w"] ** 2) + 0.5 * 0.03 * np.sum(
        before["dense.w"] ** 2)
    data_loss = plain.loss(x, labels)[0]
    assert decayed.loss(x, labels)[0] == pytest.approx(data_loss, rel=1e-14)  # loss(): no decay
    eval_plain = plain.evaluate(x, labels)[0]
    assert decayed.evaluate(x, labels)[0] == pytest.approx(eval_plain + penalty, rel=1e-12)

    lr = 0.5
    loss, _ = decayed.train_step(x, labels, minicnn.SGD(lr))
    plain_loss, _ = plain.train_step(x, labels, minicnn.SGD(lr))
    assert plain_loss == pytest.approx(data_loss, rel=1e-12)
    assert loss == pytest.approx(data_loss + penalty, rel=1e-12)
    after_plain, after = dict(plain.params()), dict(decayed.params())
    # SGD on g + rate * w for the weights; biases are not decayed
    for name, rate in (("conv2d.w", 0.01), ("dense.w", 0.03)):
        np.testing.assert_allclose(after[name], after_plain[name] - lr * rate * before[name],
                                   rtol=1e-12, atol=1e-15)
    for name in ("conv2d.b", "dense.b"):
        np.testing.assert_allclose(after[name], after_plain[name], rtol=1e-12, atol=1e-15)
    # the gradient buffer holds g + rate * w after the step
    grads = dict(decayed.grads())
    plain_grads = dict(plain.grads())
    np.testing.assert_allclose(grads["dense.w"], plain_grads["dense.w"] + 0.03 * before["dense.w"],
                               rtol=1e-12, atol=1e-15)


def test_weight_decay_with_two_threads_is_added_once(rng):
    one, two = decay_model(True, 1), decay_model(True, 2)
    x, labels = rng.standard_normal((5, 1, 5, 5)), rng.integers(0, 3, 5)
    l1 = one.train_step(x, labels, minicnn.SGD(0.3))[0]
    l2 = two.train_step(x, labels, minicnn.SGD(0.3))[0]
    assert l2 == pytest.approx(l1, abs=1e-12)
    np.testing.assert_allclose(two.flat_params, one.flat_params, rtol=0, atol=1e-12)


def test_weight_decay_is_saved(tmp_path):
    decay_model(True).save(tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    assert [l.weight_decay for l in loaded.layers if hasattr(l, "weight_decay")] == [0.01, 0.03]


def test_negative_weight_decay_is_refused():
    with pytest.raises(ValueError, match="weight_decay"):
        Dense(3, weight_decay=-0.1)


# -- initialisers ---------------------------------------------------------------------------------
def test_truncated_normal_and_constant_initialisers():
    stddev = 0.05
    model = Sequential([Dense(200, kernel_initializer={"type": "truncated_normal",
                                                       "stddev": stddev},
                              bias_initializer={"type": "constant", "value": 0.1}),
                        Dense(3, bias_initializer="ones", kernel_initializer="zeros")],
                       (150,), dtype="float64", seed=0)
    params = dict(model.params())
    w = params["dense.w"]
    assert w.shape == (150, 200)
    assert np.abs(w).max() <= 2 * stddev and np.abs(w).max() > 1.9 * stddev
    # the standard deviation of N(0, 1) cut at +-2: sqrt(1 - 2 * 2 phi(2) / (Phi(2) - Phi(-2)))
    phi2 = math.exp(-2) / math.sqrt(2 * math.pi)
    mass = math.erf(2 / math.sqrt(2))
    truncated_std = stddev * math.sqrt(1 - 4 * phi2 / mass)
    assert w.std() == pytest.approx(truncated_std, rel=0.02)
    assert abs(w.mean()) < 0.002
    np.testing.assert_array_equal(params["dense.b"], np.full(200, 0.1))
    np.testing.assert_array_equal(params["dense_1.w"], 0)
    np.testing.assert_array_equal(params["dense_1.b"], 1)


def test_unknown_initialiser_is_refused():
    with pytest.raises(ValueError, match="initializer"):
        Dense(3, kernel_initializer="he_normal")
    with pytest.raises(ValueError, match="stddev"):
        Dense(3, kernel_initializer={"type": "truncated_normal"})


def test_default_glorot_draw_of_the_lab_model_is_unchanged():
    params = dict(minicnn.lab_model(seed=0, dtype="float64").params())
    rng = np.random.default_rng(0)
    limit = math.sqrt(6 / (1 * 9 + 16 * 9))
    np.testing.assert_array_equal(params["conv2d.w"], rng.uniform(-limit, limit, (16, 1, 3, 3)))
    np.testing.assert_array_equal(params["conv2d.b"], 0)
    limit = math.sqrt(6 / (16 * 9 + 16 * 9))          # biases draw nothing: the next weights
    np.testing.assert_array_equal(params["conv2d_1.w"], rng.uniform(-limit, limit,
                                                                    (16, 16, 3, 3)))
    # the float32 model holds the same numbers, rounded
    params32 = dict(minicnn.lab_model(seed=0).params())
    np.testing.assert_array_equal(params32["conv2d.w"], params["conv2d.w"].astype(np.float32))


# -- the whole model in training mode ------------------------------------------------------------
def every_new_layer():
    return [Conv2D(3, 3, padding="same"), BatchNorm(), ReLU(),
            LocalResponseNorm(2, bias=1.0, alpha=0.3, beta=0.75), AvgPool2D(2, 2, "same"),
            Tanh(), Dropout(0.3), Flatten(), Dense(6), BatchNorm(momentum=0.9), Tanh(),
            Dropout(0.2), Dense(4)]


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
def test_whole_model_gradient_in_training_mode(backend_name):
    model = Sequential(every_new_layer(), (2, 5, 5), backend=backend_name, dtype="float64",
                       seed=3)
    rng = np.random.default_rng(11)
    x = model.backend.asarray(rng.standard_normal((4, 2, 5, 5)))
    labels = rng.integers(0, 4, 4)
    loss_of = lambda: np.float64(model.loss(x, labels, training=True)[0])
    _, dlogits, _ = model.loss(x, labels, training=True)
    dx = model.backward(dlogits)
    analytic = model.backend.to_numpy(model.flat_grads).copy()
    steps = model.steps_taken
    numeric = numerical_gradient(loss_of, model.flat_params, np.float64(1.0),
                                 to_numpy=model.backend.to_numpy)
    assert rel_error(numeric, analytic) < 1e-6
    numeric_x = numerical_gradient(loss_of, x, np.float64(1.0), to_numpy=model.backend.to_numpy)
    assert rel_error(numeric_x, model.backend.to_numpy(dx)) < 1e-6
    assert model.steps_taken == steps           # loss() does not take a step: masks stay fixed
    # the dropout masks are really on: the training loss is not the inference loss
    assert model.loss(x, labels, training=True)[0] != model.loss(x, labels)[0]


def test_gradient_after_an_inference_forward_holds_the_statistics_constant(rng):
    """model.backward after an inference forward: batch norm's statistics are constants."""
    model = with_known_state(dense_bn(), rng)
    x = rng.standard_normal((5, 7))
    labels = rng.integers(0, 3, 5)
    _, dlogits, _ = model.loss(x, labels)
    dx = model.backward(dlogits)
    numeric = numerical_gradient(lambda: np.float64(model.loss(x, labels)[0]), x,
                                 np.float64(1.0))
    assert rel_error(numeric, dx) < 1e-6
    numeric_p = numerical_gradient(lambda: np.float64(model.loss(x, labels)[0]),
                                   model.flat_params, np.float64(1.0))
    assert rel_error(numeric_p, model.flat_grads) < 1e-6


# -- one sample -----------------------------------------------------------------------------------
def test_batch_norm_after_dense_refuses_a_training_batch_of_one(rng):
    model = dense_bn()
    x, labels = rng.standard_normal((1, 7)), np.array([0])
    with pytest.raises(ValueError, match="batch norm"):
        model.train_step(x, labels, minicnn.SGD(0.1))
    with pytest.raises(ValueError, match="batch norm"):
        model.forward(x, training=True)
    assert model.steps_taken == 0
    model.forward(x)                                # inference is fine
    model.train_step(rng.standard_normal((2, 7)), np.array([0, 1]), minicnn.SGD(0.1))


def test_conv_batch_norm_trains_on_one_sample(rng):
    model = conv_bn()
    model.train_step(rng.standard_normal((1, 2, 6, 5)), np.array([1]), minicnn.SGD(0.1))
    assert model.steps_taken == 1
