"""Every op, the loss and whole models against centred finite differences, float64."""
import numpy as np
import pytest

import minicnn
from conftest import cnhw
from minicnn import ops
from minicnn.ops.geometry import window
from minicnn.gradcheck import numerical_gradient, rel_error
from shapes import CONV_CASES, POOL_CASES, case_id

TOL = 1e-6


def check(backend, f, inputs, grads, dout):
    """Every analytic gradient in grads against f's numerical gradient w.r.t. inputs."""
    for x, analytic in zip(inputs, grads):
        numeric = numerical_gradient(f, x, dout, to_numpy=backend.to_numpy)
        err = rel_error(numeric, backend.to_numpy(analytic))
        assert err < TOL, f"relative error {err:.2e}"


def away_from_zero(rng, shape, margin=1e-2):
    """Normal samples with |x| >= margin, so ReLU's kink is never crossed by h."""
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < margin, margin * np.sign(x + 1e-30), x)


def conv_inputs(backend, rng, case):
    x_shape, f, kernel, stride, padding = case
    g = window(*x_shape[2:], kernel, stride, padding)
    x, w, b = (backend.asarray(rng.standard_normal(s))
               for s in (cnhw(np.empty(x_shape)).shape, (f, x_shape[1], *kernel), (f,)))
    return x, w, b, g


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv2d(backend, rng, case):
    x, w, b, g = conv_inputs(backend, rng, case)
    y, cache = ops.conv2d_forward(x, w, b, g, backend)
    dy = backend.asarray(rng.standard_normal(y.shape))
    grads = ops.conv2d_backward(dy, cache)
    check(backend, lambda: ops.conv2d_forward(x, w, b, g, backend)[0], (x, w, b), grads, dy)


@pytest.mark.parametrize("sandwich", ["conv_relu", "conv_relu_pool"])
@pytest.mark.parametrize("case", CONV_CASES[:4], ids=case_id)
def test_conv_sandwiches(backend, rng, case, sandwich):
    x, w, b, g = conv_inputs(backend, rng, case)
    static = (g,) if sandwich == "conv_relu" else (g, window(g.oh, g.ow, (2, 2), (2, 2), "valid")
                                                   if min(g.oh, g.ow) >= 2 else None)
    if static[-1] is None:
        pytest.skip("output too small to pool")
    fwd, bwd = ops.REFERENCE[f"{sandwich}/im2col"][:2]
    pre = backend.to_numpy(ops.conv2d_forward(x, w, b, g, backend)[0])
    assert np.min(np.abs(pre)) > 1e-4        # the seeded pre-activations stay clear of the kink
    y, cache = fwd(x, w, b, *static, backend)
    dy = backend.asarray(rng.standard_normal(y.shape))
    check(backend, lambda: fwd(x, w, b, *static, backend)[0], (x, w, b), bwd(dy, cache), dy)


@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_maxpool(backend, rng, case):
    x_shape, pool, stride, padding = case
    g = window(*x_shape[2:], pool, stride, padding)
    # distinct, well separated values: no ties, no argmax change under +-h
    x = backend.asarray(rng.permutation(np.prod(x_shape)).reshape(x_shape) * 0.1)
    y, cache = ops.maxpool_forward(x, g, backend)
    dy = backend.asarray(rng.standard_normal(y.shape))
    check(backend, lambda: ops.maxpool_forward(x, g, backend)[0], (x,),
          (ops.maxpool_backward(dy, cache),), dy)


@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_avgpool(backend, rng, case):
    x_shape, pool, stride, padding = case
    g = window(*x_shape[2:], pool, stride, padding)
    x = backend.asarray(cnhw(rng.standard_normal(x_shape)))
    y, cache = ops.avgpool_forward(x, g, backend)
    dy = backend.asarray(rng.standard_normal(y.shape))
    check(backend, lambda: ops.avgpool_forward(x, g, backend)[0], (x,),
          (ops.avgpool_backward(dy, cache),), dy)


@pytest.mark.parametrize("op", ["relu", "sigmoid", "tanh"])
def test_activations(backend, rng, op):
    fwd, bwd = getattr(ops, f"{op}_forward"), getattr(ops, f"{op}_backward")
    x = backend.asarray(away_from_zero(rng, (3, 2, 5, 4)) * 3)
    y, cache = fwd(x, backend)
    dy = backend.asarray(rng.standard_normal(y.shape))
    check(backend, lambda: fwd(x, backend)[0], (x,), (bwd(dy, cache),), dy)


@pytest.mark.parametrize("n,d,m", [(1, 7, 3), (3, 5, 4)])
def test_dense(backend, rng, n, d, m):
    x, w, b = (backend.asarray(rng.standard_normal(s)) for s in ((n, d), (d, m), (m,)))
    y, cache = ops.dense_forward(x, w, b, backend)
    dy = backend.asarray(rng.standard_normal(y.shape))
    check(backend, lambda: ops.dense_forward(x, w, b, backend)[0], (x, w, b),
          ops.dense_backward(dy, cache), dy)


def test_flatten_is_its_own_inverse(backend, rng):
    x = backend.asarray(rng.standard_normal((3, 2, 4, 5)))          # (C, N, H, W)
    y, cache = ops.flatten_forward(x, backend)
    np.testing.assert_array_equal(backend.to_numpy(y),
                                  backend.to_numpy(x).transpose(1, 0, 2, 3).reshape(2, -1))
    np.testing.assert_array_equal(backend.to_numpy(ops.flatten_backward(y, cache)),
                                  backend.to_numpy(x))


@pytest.mark.parametrize("n,k", [(1, 2), (3, 10), (4, 7)])
def test_softmax_cross_entropy(backend, rng, n, k):
    logits = backend.asarray(rng.standard_normal((n, k)) * 3)
    labels = backend.asarray(rng.integers(0, k, n))
    _, dlogits = ops.softmax_cross_entropy(logits, labels, backend)
    check(backend, lambda: np.float64(ops.softmax_cross_entropy(logits, labels, backend)[0]),
          (logits,), (dlogits,), np.float64(1.0))


def every_layer_type():
    return [minicnn.Conv2D(3, (3, 2), stride=2, padding="same"), minicnn.ReLU(),
            minicnn.MaxPool2D(2, stride=1), minicnn.Conv2D(2, 2, padding=1),
            minicnn.Sigmoid(), minicnn.MaxPool2D(3), minicnn.Flatten(),
            minicnn.Dense(5), minicnn.ReLU(), minicnn.Dense(4)]


def lab_like():
    """Conv+ReLU+2x2 pool (the fused step), twice, then dense layers."""
    return [minicnn.Conv2D(3, 3, padding="same"), minicnn.ReLU(), minicnn.MaxPool2D(2),
            minicnn.Conv2D(4, 3, padding="same"), minicnn.ReLU(), minicnn.MaxPool2D(2),
            minicnn.Flatten(), minicnn.Dense(5), minicnn.ReLU(), minicnn.Dense(4)]


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("make,shape", [(every_layer_type, (3, 9, 7)), (lab_like, (2, 8, 10))],
                         ids=["every-layer", "lab-like"])
@pytest.mark.parametrize("batch", [1, 3])
def test_whole_model(backend, batch, make, shape, fuse):
    """Every parameter and the input: model.backward returns dL/dx."""
    model = minicnn.Sequential(make(), shape, backend=backend.name, dtype="float64", seed=3,
                               fuse=fuse)
    rng = np.random.default_rng(batch)
    x = backend.asarray(rng.standard_normal((batch, *shape)))
    labels = backend.asarray(rng.integers(0, 4, batch))
    loss_of = lambda: np.float64(model.loss(x, labels)[0])
    _, dlogits, _ = model.loss(x, labels)
    dx = model.backward(dlogits)
    assert dx.shape == x.shape
    check(backend, loss_of, [p for _, p in model.params()] + [x],
          [g for _, g in model.grads()] + [dx], np.float64(1.0))
    assert model.backward(dlogits, input_grad=False) is None
