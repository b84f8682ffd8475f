"""Every backend kernel against the NumPy reference: odd shapes, sizes that are not
multiples of the block size, float32 and float64.  Runs the CUDA sources on the CPU
through cudasim (also with a tiny grid, so every grid-stride loop iterates), on
Numba, and on a GPU where there is one."""
import numpy as np
import pytest

from minicnn.backend import get_backend, window
from minicnn.backend.kernels import THREADS
from conftest import gpu_params
from shapes import CONV_CASES, POOL_CASES, case_id

GPU = gpu_params("cupy", "cupy-3-blocks")

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@pytest.fixture(params=["numba", "cudasim", "cudasim-3-blocks", *GPU])
def kernel_backend(request, monkeypatch):
    name, _, small_grid = request.param.partition("-")
    backend = get_backend(name)
    if small_grid:   # a grid of 3 blocks: every grid-stride loop runs many iterations
        monkeypatch.setattr(backend, "max_blocks", 3)
    return backend


REF = get_backend("numpy")


def agree(backend, got, want, dtype):
    got = backend.to_numpy(got)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_im2col_col2im(kernel_backend, rng, case, dtype):
    b = kernel_backend
    x_shape, _, kernel, stride, padding = case
    g = window(*x_shape[2:], kernel, stride, padding)
    x = rng.standard_normal(x_shape).astype(dtype)
    col = REF.im2col(x, g)
    agree(b, b.im2col(b.asarray(x), g), col, dtype)
    dcol = rng.standard_normal(col.shape).astype(dtype)
    agree(b, b.col2im(b.asarray(dcol), x_shape, g), REF.col2im(dcol, x_shape, g), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_maxpool(kernel_backend, rng, case, dtype):
    b = kernel_backend
    x_shape, pool, stride, padding = case
    g = window(*x_shape[2:], pool, stride, padding)
    x = rng.standard_normal(x_shape).astype(dtype)
    x.flat[::5] = x.flat[1]      # ties: the first maximum must win everywhere
    y, argmax = b.maxpool_forward(b.asarray(x), g)
    want_y, want_argmax = REF.maxpool_forward(x, g)
    agree(b, y, want_y, dtype)
    np.testing.assert_array_equal(b.to_numpy(argmax), want_argmax)
    dy = rng.standard_normal(want_y.shape).astype(dtype)
    agree(b, b.maxpool_backward(b.asarray(dy), argmax, x_shape, g),
          REF.maxpool_backward(dy, want_argmax, x_shape, g), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (3, 5, 17, 19), (2, 4, 1, 1)])
def test_conv_bias_act_and_backward(kernel_backend, rng, shape, relu, dtype):
    b = kernel_backend
    n, f, oh, ow = shape
    z = rng.standard_normal((f, n * oh * ow)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    want = REF.conv_bias_act(z, bias, shape, relu)
    y = b.conv_bias_act(b.asarray(z), b.asarray(bias), shape, relu)
    agree(b, y, want, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    for got, ref in zip(b.conv_act_backward(b.asarray(dy), y if relu else None, relu),
                        REF.conv_act_backward(dy, want if relu else None, relu)):
        agree(b, got, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(1, 10), (37, 300)])   # 11,100 elements: not a multiple of 256
def test_dense_bias_act_and_relu(kernel_backend, rng, shape, relu, dtype):
    b = kernel_backend
    z = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[1]).astype(dtype)
    want = REF.dense_bias_act(z.copy(), bias, relu)
    y = b.dense_bias_act(b.asarray(z.copy()), b.asarray(bias), relu)
    agree(b, y, want, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    agree(b, b.relu_backward(b.asarray(dy), y), REF.relu_backward(dy, want), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(1, 10), (3, 2), (2 * THREADS + 3, 10)])
def test_softmax_cross_entropy(kernel_backend, rng, n, k, dtype):
    b = kernel_backend
    logits = (rng.standard_normal((n, k)) * 5).astype(dtype)
    labels = rng.integers(0, k, n)
    loss, d = b.softmax_cross_entropy(b.asarray(logits), b.asarray(labels))
    want_loss, want_d = REF.softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(want_loss, rel=TOL[dtype]["rtol"], abs=TOL[dtype]["atol"])
    agree(b, d, want_d, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_update(kernel_backend, rng, momentum, dtype):
    b = kernel_backend
    p, g, v = (rng.standard_normal(THREADS * 3 + 5).astype(dtype) for _ in range(3))
    want_p, want_v = p.copy(), v.copy()
    REF.sgd_update(want_p, g, want_v if momentum else want_p, 0.1, momentum)
    bp, bv = b.asarray(p.copy()), b.asarray(v.copy())
    b.sgd_update(bp, b.asarray(g), bv if momentum else bp, 0.1, momentum)
    agree(b, bp, want_p, dtype)
    agree(b, bv, want_v, dtype)


def test_launch_checks_argument_types():
    b = get_backend("cudasim")
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="argument 1 must be a C-contiguous float32 array"):
        b.launch("sgd_update", x, np.zeros((2, 3), np.float64), x, 6, 0.1, 0.0)
    with pytest.raises(TypeError, match="must be a C-contiguous"):
        b.launch("sgd_update", x, x.T, x, 6, 0.1, 0.0)
    with pytest.raises(TypeError, match="expected 6 arguments"):
        b.launch("sgd_update", x, x)
