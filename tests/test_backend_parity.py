"""Whole training steps agree across backends: float32, rtol 1e-5, odd shapes."""
import numpy as np
import pytest

import minicnn
from conftest import gpu_params
from minicnn import SGD, Adam, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid

OTHERS = ["numba", "cudasim", *gpu_params("cupy")]


def odd_model(backend):
    return Sequential([Conv2D(5, (4, 3), stride=(2, 1), padding="same"), ReLU(),
                       MaxPool2D(3, stride=2), Conv2D(7, 2, padding=1), Sigmoid(),
                       MaxPool2D(2), Flatten(), Dense(33), ReLU(), Dense(10)],
                      input_shape=(3, 19, 14), backend=backend, seed=7)


def assert_backends_agree(a, b, what, atol=1e-6):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=atol, err_msg=what)


# Adam divides by sqrt(v): where a gradient is ~0, float32 rounding differences of
# 1e-9 become parameter differences of a few 1e-6, so its parameters, and the logits
# computed from them after the first step, get atol 1e-5.
@pytest.mark.parametrize("make_optimizer,param_atol",
                         [(lambda: SGD(0.1, momentum=0.9), 1e-6), (lambda: Adam(0.01), 1e-5)],
                         ids=["momentum", "adam"])
@pytest.mark.parametrize("other", OTHERS)
@pytest.mark.parametrize("make_model", [odd_model, lambda b: minicnn.lab_model(8, backend=b)],
                         ids=["odd", "lab"])
def test_training_steps_agree(other, make_model, make_optimizer, param_atol):
    models = {name: make_model(name) for name in ("numpy", other)}
    opts = {name: make_optimizer() for name in models}
    shape = models["numpy"].input_shape
    rng = np.random.default_rng(0)
    for step in range(3):
        x = rng.random((7, *shape), dtype=np.float32)
        y = rng.integers(0, 10, 7)
        results = {}
        for name, model in models.items():
            b = model.backend
            loss, dlogits, logits = model.loss(b.asarray(x), b.asarray(y))
            model.backward(dlogits)
            grads = [b.to_numpy(g) for _, g in model.grads()]
            opts[name].step(model)
            results[name] = (loss, b.to_numpy(logits), grads,
                             [b.to_numpy(p) for _, p in model.params()])
        ref, got = results["numpy"], results[other]
        assert got[0] == pytest.approx(ref[0], rel=1e-5)
        assert_backends_agree(ref[1], got[1], f"logits, step {step}",
                              1e-6 if step == 0 else param_atol)
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
