"""Whole training steps agree across backends: rtol 1e-5, odd shapes and the lab model."""
import numpy as np
import pytest

import minicnn
from conftest import gpu_params
from minicnn import SGD, Adam, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid

OTHERS = ["numba", "cudasim", *gpu_params("cupy")]


def odd_model(backend, dtype):
    return Sequential([Conv2D(5, (4, 3), stride=(2, 1), padding="same"), ReLU(),
                       MaxPool2D(3, stride=2), Conv2D(7, 2, padding=1), Sigmoid(),
                       MaxPool2D(2), Flatten(), Dense(33), ReLU(), Dense(10)],
                      input_shape=(3, 19, 14), backend=backend, dtype=dtype, seed=7)


def norm_model(backend, dtype):
    """The new layers: batch norm (per channel and per unit), LRN, average pooling, tanh,
    dropout, weight decay and the tutorial's initialisers."""
    from minicnn.nn.layers import AvgPool2D, Tanh
    from minicnn.nn.regularization import BatchNorm, Dropout, LocalResponseNorm
    return Sequential([Conv2D(6, 5, padding="same", kernel_initializer={
                           "type": "truncated_normal", "stddev": 0.1}), BatchNorm(0.9), ReLU(),
                       LocalResponseNorm(2, 1.0, 0.01, 0.75), MaxPool2D(3, 2, padding="same"),
                       Conv2D(8, 3, padding="same"), Tanh(), AvgPool2D(2), Flatten(),
                       Dense(24, weight_decay=0.01), BatchNorm(0.9), ReLU(), Dropout(0.25),
                       Dense(10)], input_shape=(3, 13, 11), backend=backend, dtype=dtype,
                      seed=5)


def assert_backends_agree(a, b, what, atol=1e-6):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=atol, err_msg=what)


# Adam's first steps move every parameter by about lr * g / (|g| + eps) whatever the size
# of g: where a gradient is ~1e-8 (a unit that barely fires), float32 rounding in another
# summation order changes that step by a few 1e-5.  So Adam is compared in float64, where
# the same check is exact to 1e-10, and SGD with momentum in float32.
@pytest.mark.parametrize("make_optimizer,dtype",
                         [(lambda: SGD(0.1, momentum=0.9), "float32"),
                          (lambda: Adam(0.01), "float64")], ids=["momentum-f32", "adam-f64"])
@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("make_model", [odd_model,
                                        lambda b, d: minicnn.lab_model(8, backend=b, dtype=d)],
                         ids=["odd", "lab"])
def test_training_steps_agree(other, make_model, make_optimizer, dtype):
    compare_steps(other, make_model, make_optimizer, dtype)


# Batch norm over 7 samples divides by their spread: float32 rounding of another summation
# order (the LRN kernel, the BLAS) grows to a few 1e-6 after one step, so the new layers are
# compared in float64, where every backend agrees to 1e-10.
@pytest.mark.parametrize("make_optimizer", [lambda: SGD(0.1, momentum=0.9), lambda: Adam(0.01)],
                         ids=["momentum", "adam"])
@pytest.mark.parametrize("other", OTHERS)
def test_training_steps_agree_with_the_new_layers(other, make_optimizer):
    compare_steps(other, norm_model, make_optimizer, "float64")


def compare_steps(other, make_model, make_optimizer, dtype):
    """Three training-mode steps on the numpy backend and on ``other``: losses, logits,
    gradients and parameters agree."""
    param_atol = 1e-6
    models = {name: make_model(name, dtype) for name in ("numpy", other)}
    opts = {name: make_optimizer() for name in models}
    shape = models["numpy"].input_shape
    rng = np.random.default_rng(0)
    for step in range(3):
        x = rng.random((7, *shape)).astype(dtype)
        y = rng.integers(0, 10, 7)
        results = {}
        for name, model in models.items():
            b = model.backend
            loss, dlogits, logits = model.loss(b.asarray(x), b.asarray(y), training=True)
            model.backward(dlogits)
            grads = [b.to_numpy(g) for _, g in model.grads()]
            opts[name].step(model)
            results[name] = (loss, b.to_numpy(logits), grads,
                             [b.to_numpy(p) for _, p in model.params()])
        ref, got = results["numpy"], results[other]
        assert got[0] == pytest.approx(ref[0], rel=1e-5)
        assert_backends_agree(ref[1], got[1], f"logits, step {step}")
        for (name, _), g_ref, g_got, p_ref, p_got in zip(models["numpy"].params(), ref[2],
                                                           got[2], ref[3], got[3]):
            assert_backends_agree(g_ref, g_got, f"grad {name}, step {step}")
            assert_backends_agree(p_ref, p_got, f"param {name}, step {step}", param_atol)


@pytest.mark.parametrize("backend_name", ["numpy", "numba"])
@pytest.mark.parametrize("threads", [2, 3])
def test_sharded_steps_equal_one_thread(backend_name, threads):
    """A batch cut into shards on threads gives the one-thread parameters to 1e-6 (float32):
    the shards' gradients add up to the batch's; only the summation order differs."""
    rng = np.random.default_rng(1)
    models = [minicnn.lab_model(8, backend=backend_name, threads=t) for t in (1, threads)]
    opts = [SGD(0.1, momentum=0.9) for _ in models]
    initial = models[0].flat_params.copy()
    for step in range(5):
        x = rng.random((11, 1, 28, 28), dtype=np.float32)      # 11: shards of unequal size
        y = rng.integers(0, 10, 11)
        losses = [m.train_step(x, y, o) for m, o in zip(models, opts)]
        assert losses[1][0] == pytest.approx(losses[0][0], rel=1e-6)
        assert losses[1][1] == losses[0][1]
    one, many = (m.flat_params for m in models)
    assert np.max(np.abs(many - one)) <= 1e-6 * np.max(np.abs(one))
    assert np.max(np.abs(one - initial)) > 1e-3                       # it trained
