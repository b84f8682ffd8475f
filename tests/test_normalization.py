"""Batch normalisation and local response normalisation ops (minicnn/ops/normalization.py)
on every backend.

Forward against naive NumPy loops written here (per-channel mean and biased variance;
LRN with explicit loops over the channels, TensorFlow's formula), in both batch-norm
layouts ((C, N, H, W) per channel and (N, D) per unit) and odd shapes (one channel, fewer
channels than the depth radius, radius 0); float64 gradient checks of dx, dgamma and dbeta
(training and inference mode) and of LRN's dx; power()'s square-root special cases;
TensorFlow's LRN parameters mapped onto PyTorch's formula (written out in NumPy); batch
norm over two shards equal to the whole batch; and NaN propagation exactly where the
reference's NaNs are.  The backend's own LRN kernel (numba) is checked as the reference
op is, through ops.resolve.
"""
import threading

import numpy as np
import pytest

from minicnn import ops
from minicnn.gradcheck import numerical_gradient, rel_error
from minicnn.ops.normalization import power, running_average, window_sum
from minicnn.parallel.shards import ShardSums, SingleProcess

TOL = 1e-6
BN_SHAPES = [(3, 4, 5, 2), (1, 2, 3, 3), (2, 1, 4, 4), (4, 6), (2, 1, 1, 1)]  # internal layouts
BN_IDS = ["cnhw", "cnhw-C1", "cnhw-N1", "nd", "cnhw-1px"]


# -- naive references ------------------------------------------------------------------------
def naive_batchnorm(x, gamma, beta, eps):
    """x in minicnn's internal layout: (C, N, H, W) normalised per channel, (N, D) per unit.
    Returns (y, mean, biased variance), loops over the channels and their values."""
    x = np.asarray(x, dtype=np.float64)
    y = np.empty_like(x)
    channels = x.shape[0] if x.ndim == 4 else x.shape[1]
    mean, var = np.empty(channels), np.empty(channels)
    for c in range(channels):
        values = (x[c] if x.ndim == 4 else x[:, c]).ravel()
        m = 0.0
        for v in values:
            m += v
        m /= values.size
        s = 0.0
        for v in values:
            s += (v - m) ** 2
        s /= values.size
        mean[c], var[c] = m, s
        normalised = (values - m) / np.sqrt(s + eps) * gamma[c] + beta[c]
        if x.ndim == 4:
            y[c] = normalised.reshape(x.shape[1:])
        else:
            y[:, c] = normalised
    return y, mean, var


def naive_lrn(x, r, bias, alpha, beta):
    """TensorFlow's tf.nn.local_response_normalization over axis 0 (channels):
    sqr_sum[c] = sum x[c']^2 for c' in [c - r, c + r] clipped; y = x / (bias + alpha sqr)^beta."""
    x = np.asarray(x, dtype=np.float64)
    channels = x.shape[0]
    y = np.empty_like(x)
    for c in range(channels):
        sqr_sum = np.zeros(x.shape[1:])
        for other in range(max(0, c - r), min(channels - 1, c + r) + 1):
            sqr_sum = sqr_sum + x[other] ** 2
        y[c] = x[c] / (bias + alpha * sqr_sum) ** beta
    return y


def pytorch_lrn(x_nchw, size, alpha, beta, k):
    """torch.nn.LocalResponseNorm(size, alpha, beta, k) written in NumPy: the squares averaged
    over a window of ``size`` channels (zero-padded size // 2 before, (size - 1) // 2 after),
    b = a / (k + alpha * average)^beta."""
    n, c, h, w = x_nchw.shape
    squares = np.zeros((n, c + size - 1, h, w))
    squares[:, size // 2:size // 2 + c] = x_nchw ** 2
    average = np.zeros_like(x_nchw)
    for ch in range(c):
        average[:, ch] = squares[:, ch:ch + size].sum(axis=1) / size
    return x_nchw / (k + alpha * average) ** beta


def lrn_pair(impl, backend):
    """The reference op pair, or what the model's plan runs on this backend (numba's kernel)."""
    if impl == "reference":
        return ops.lrn_forward, ops.lrn_backward
    pair = ops.resolve("lrn", backend)
    return pair.forward, pair.backward


def gradcheck(backend, f, inputs, grads, dout):
    for i, (x, analytic) in enumerate(zip(inputs, grads)):
        numeric = numerical_gradient(f, x, dout, to_numpy=backend.to_numpy)
        err = rel_error(numeric, backend.to_numpy(analytic))
        assert err < TOL, f"input {i}: relative error {err:.2e}"


def bn_inputs(backend, rng, shape, dtype=np.float64):
    x = rng.standard_normal(shape) * 2.0 + 0.7
    c = shape[0] if len(shape) == 4 else shape[1]
    gamma = rng.uniform(0.5, 1.5, c)
    beta = rng.standard_normal(c)
    return x, gamma, beta, [backend.asarray(a, dtype=dtype) for a in (x, gamma, beta)]


def alone(a):
    return a


# -- batch norm, training ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", BN_SHAPES, ids=BN_IDS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)],
                         ids=["f64", "f32"])
def test_batchnorm_forward_matches_naive_loops(backend, rng, shape, dtype, tol):
    eps = 1e-3
    x, gamma, beta, (bx, bg, bb) = bn_inputs(backend, rng, shape, dtype)
    y, cache = ops.batchnorm_forward(bx, bg, bb, eps, alone, backend)
    ref, mean, var = naive_batchnorm(backend.to_numpy(bx).astype(np.float64), gamma, beta, eps)
    assert y.shape == bx.shape and y.dtype == dtype
    np.testing.assert_allclose(backend.to_numpy(y), ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(backend.to_numpy(cache.mean), mean, rtol=tol, atol=tol)
    np.testing.assert_allclose(backend.to_numpy(cache.var), var, rtol=tol, atol=tol)
    assert cache.count == (np.prod(shape) // shape[0] if len(shape) == 4 else shape[0])


def test_batchnorm_large_mean_does_not_swamp_the_variance(backend):
    """Two passes: a channel at 1e4 +- 1e-2 still gets its variance right in float64."""
    base = np.array([-1.0, 1.0, -1.0, 1.0]) * 1e-2
    x = (1e4 + base).reshape(1, 4, 1, 1)
    y, cache = ops.batchnorm_forward(backend.asarray(x), backend.asarray(np.ones(1)),
                                     backend.asarray(np.zeros(1)), 1e-12, alone, backend)
    assert backend.to_numpy(cache.var)[0] == pytest.approx(1e-4, rel=1e-6)
    np.testing.assert_allclose(backend.to_numpy(y).ravel(), np.sign(base), rtol=1e-5)


@pytest.mark.parametrize("shape", BN_SHAPES, ids=BN_IDS)
def test_batchnorm_gradients(backend, rng, shape):
    if shape == (2, 1, 1, 1):
        pytest.skip("one value per channel: the normalised output is constant")
    eps = 1e-3
    _, _, _, (x, gamma, beta) = bn_inputs(backend, rng, shape)
    y, cache = ops.batchnorm_forward(x, gamma, beta, eps, alone, backend)
    dy = backend.asarray(rng.standard_normal(y.shape))
    dx, dgamma, dbeta = ops.batchnorm_backward(dy, cache)
    f = lambda: ops.batchnorm_forward(x, gamma, beta, eps, alone, backend)[0]
    gradcheck(backend, f, (x, gamma, beta), (dx, dgamma, dbeta), dy)
    none, dgamma2, dbeta2 = ops.batchnorm_backward(dy, cache, need_dx=False)
    assert none is None
    np.testing.assert_array_equal(backend.to_numpy(dgamma2), backend.to_numpy(dgamma))
    np.testing.assert_array_equal(backend.to_numpy(dbeta2), backend.to_numpy(dbeta))


@pytest.mark.parametrize("shape", BN_SHAPES[:4], ids=BN_IDS[:4])
def test_batchnorm_inference_forward_and_gradients(backend, rng, shape):
    eps = 1e-3
    x_host, gamma_host, beta_host, (x, gamma, beta) = bn_inputs(backend, rng, shape)
    c = gamma_host.size
    mean_host, var_host = rng.standard_normal(c), rng.uniform(0.2, 3.0, c)
    mean, var = backend.asarray(mean_host), backend.asarray(var_host)
    y, cache = ops.batchnorm_inference_forward(x, gamma, beta, mean, var, eps, backend)
    ref = np.empty_like(x_host)
    for ch in range(c):
        sel = (ch,) if len(shape) == 4 else (slice(None), ch)
        ref[sel] = (gamma_host[ch] * (x_host[sel] - mean_host[ch]) / np.sqrt(var_host[ch] + eps)
                    + beta_host[ch])
    np.testing.assert_allclose(backend.to_numpy(y), ref, rtol=1e-12, atol=1e-12)
    dy = backend.asarray(rng.standard_normal(y.shape))
    grads = ops.batchnorm_inference_backward(dy, cache)
    f = lambda: ops.batchnorm_inference_forward(x, gamma, beta, mean, var, eps, backend)[0]
    gradcheck(backend, f, (x, gamma, beta), grads, dy)
    assert ops.batchnorm_inference_backward(dy, cache, need_dx=False)[0] is None


def test_running_average_is_keras_momentum():
    running = np.array([1.0, -2.0, 0.5])
    batch = np.array([3.0, 0.0, 0.5])
    out = running_average(running, batch, 0.9)
    assert out is running
    np.testing.assert_allclose(running, [0.9 * 1 + 0.1 * 3, 0.9 * -2, 0.5], rtol=1e-15)


# -- batch norm over two shards ---------------------------------------------------------------
class TwoShards:
    """reduce functions for two concurrent shards: each returns the sum of both parts."""

    def __init__(self):
        self.barrier = threading.Barrier(2, timeout=30)
        self.parts = [None, None]

    def reduce_for(self, i):
        def reduce(a):
            self.parts[i] = a.copy()
            self.barrier.wait()
            total = self.parts[0] + self.parts[1]
            self.barrier.wait()
            return total
        return reduce


def split(a, layout_4d, k):
    if layout_4d:
        return np.ascontiguousarray(a[:, :k]), np.ascontiguousarray(a[:, k:])
    return np.ascontiguousarray(a[:k]), np.ascontiguousarray(a[k:])


def run_two_shards(backend, parts, dys, gamma, beta, eps, make_reduce):
    """Forward and backward of each shard on its own thread: [(y, dx, dgamma, dbeta)]."""
    results, errors = [None, None], []

    def shard(i):
        try:
            x = backend.asarray(parts[i])
            y, cache = ops.batchnorm_forward(x, gamma, beta, eps, make_reduce(i), backend)
            dx, dg, db = ops.batchnorm_backward(backend.asarray(dys[i]), cache)
            results[i] = tuple(backend.to_numpy(a).copy() for a in (y, dx, dg, db))
        except BaseException as exc:      # reported by the main thread
            errors.append(exc)
    threads = [threading.Thread(target=shard, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


@pytest.mark.parametrize("shape,k", [((3, 5, 4, 3), 2), ((6, 7), 3), ((2, 2, 3, 3), 1)],
                         ids=["cnhw", "nd", "cnhw-one-each"])
@pytest.mark.parametrize("reducer", ["test-barrier", "ShardSums"])
def test_batchnorm_two_shards_equal_the_whole_batch(backend, rng, shape, k, reducer):
    eps = 1e-3
    layout_4d = len(shape) == 4
    x, gamma_h, beta_h, (bx, gamma, beta) = bn_inputs(backend, rng, shape)
    dy = rng.standard_normal(shape)
    y_all, cache = ops.batchnorm_forward(bx, gamma, beta, eps, alone, backend)
    dx_all, dg_all, db_all = (backend.to_numpy(a) for a in
                              ops.batchnorm_backward(backend.asarray(dy), cache))
    if reducer == "ShardSums":
        sums = ShardSums(SingleProcess())
        sums.start(2)
        make_reduce = sums.for_shard
    else:
        make_reduce = TwoShards().reduce_for
    (y0, dx0, dg0, db0), (y1, dx1, dg1, db1) = run_two_shards(
        backend, split(x, layout_4d, k), split(dy, layout_4d, k), gamma, beta, eps, make_reduce)
    axis = 1 if layout_4d else 0
    np.testing.assert_allclose(np.concatenate([y0, y1], axis), backend.to_numpy(y_all),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([dx0, dx1], axis), dx_all, rtol=0, atol=1e-12)
    # each shard's dgamma, dbeta is its own part: they add up to the whole batch's
    np.testing.assert_allclose(dg0 + dg1, dg_all, rtol=0, atol=1e-12)
    np.testing.assert_allclose(db0 + db1, db_all, rtol=0, atol=1e-12)


def test_batchnorm_shards_with_precomputed_totals(backend, rng):
    """No threads: each half's forward and backward given the whole batch's totals."""
    eps, shape = 1e-3, (2, 6, 2, 3)
    x, gamma_h, beta_h, (bx, gamma, beta) = bn_inputs(backend, rng, shape)
    dy = rng.standard_normal(shape)
    y_all, cache = ops.batchnorm_forward(bx, gamma, beta, eps, alone, backend)
    dx_all = backend.to_numpy(ops.batchnorm_backward(backend.asarray(dy), cache)[0])
    halves, dys = split(x, True, 2), split(dy, True, 2)
    mean = x.mean(axis=(1, 2, 3))
    xhat = (x - mean.reshape(-1, 1, 1, 1)) / np.sqrt(x.var(axis=(1, 2, 3)) + eps).reshape(-1, 1, 1, 1)
    totals = [np.concatenate([x.sum(axis=(1, 2, 3)), [x[0].size]]),       # the sums and count
              ((x - mean.reshape(-1, 1, 1, 1)) ** 2).sum(axis=(1, 2, 3)),  # centred squares
              np.stack([dy.sum(axis=(1, 2, 3)), (dy * xhat).sum(axis=(1, 2, 3))])]
    for half, d, lo in zip(halves, dys, (0, 2)):
        queue = list(totals)
        reduce = lambda a: backend.asarray(queue.pop(0))
        y, c = ops.batchnorm_forward(backend.asarray(half), gamma, beta, eps, reduce, backend)
        dx = ops.batchnorm_backward(backend.asarray(d), c)[0]
        assert not queue                               # three sums: two forward, one backward
        np.testing.assert_allclose(backend.to_numpy(y), backend.to_numpy(y_all)[:, lo:lo + len(half[0])],
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(backend.to_numpy(dx), dx_all[:, lo:lo + len(half[0])],
                                   rtol=0, atol=1e-12)


# -- LRN ---------------------------------------------------------------------------------------
LRN_CASES = [  # (shape (C, N, H, W), depth_radius, bias, alpha, beta)
    ((7, 2, 3, 3), 2, 1.0, 0.3, 0.75),
    ((9, 2, 2, 2), 4, 1.0, 0.001 / 9, 0.75),     # the CIFAR-10 tutorial's
    ((6, 1, 3, 2), 5, 1.0, 1.0, 0.5),            # TensorFlow's defaults, C < depth_radius
    ((1, 3, 2, 2), 3, 2.0, 0.5, 0.6),            # one channel
    ((3, 2, 2, 3), 1, 0.5, 0.7, 1.3),            # a general exponent
    ((4, 2, 3, 3), 0, 1.0, 0.4, 0.75),           # radius 0: each value on its own
    ((5, 2, 2, 2), 2, 0.0, 1.0, 0.5),            # bias 0
]
LRN_IDS = ["r2", "cifar", "C<r", "C1", "beta1.3", "r0", "bias0"]


@pytest.mark.parametrize("impl", ["reference", "resolved"])
@pytest.mark.parametrize("case", LRN_CASES, ids=LRN_IDS)
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)],
                         ids=["f64", "f32"])
def test_lrn_forward_matches_tensorflow_formula(backend, rng, case, impl, dtype, tol):
    shape, r, bias, alpha, beta = case
    forward, _ = lrn_pair(impl, backend)
    x = rng.standard_normal(shape) * 1.5
    bx = backend.asarray(x, dtype=dtype)
    y, _ = forward(bx, r, bias, alpha, beta, backend)
    assert y.shape == x.shape and y.dtype == dtype
    ref = naive_lrn(backend.to_numpy(bx).astype(np.float64), r, bias, alpha, beta)
    np.testing.assert_allclose(backend.to_numpy(y), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("impl", ["reference", "resolved"])
@pytest.mark.parametrize("case", LRN_CASES, ids=LRN_IDS)
def test_lrn_gradient(backend, rng, case, impl):
    shape, r, bias, alpha, beta = case
    forward, backward = lrn_pair(impl, backend)
    x = backend.asarray(rng.standard_normal(shape) + (0.5 if bias == 0 else 0.0))
    y, cache = forward(x, r, bias, alpha, beta, backend)
    dy = backend.asarray(rng.standard_normal(shape))
    dx = backward(dy, cache)
    gradcheck(backend, lambda: forward(x, r, bias, alpha, beta, backend)[0], (x,), (dx,), dy)


@pytest.mark.parametrize("r,bias,alpha,beta", [(2, 1.0, 0.3, 0.75), (4, 1.0, 0.001 / 9, 0.75),
                                               (1, 2.0, 0.05, 0.5), (0, 1.5, 0.2, 1.0)])
def test_lrn_is_pytorch_with_size_2r_plus_1(rng, r, bias, alpha, beta):
    """TensorFlow's (r, bias, alpha, beta) = PyTorch's (size=2r+1, alpha*size, beta, k=bias)."""
    from minicnn.backend import get_backend
    backend = get_backend("numpy")
    x_nchw = rng.standard_normal((2, 7, 3, 4)) * 2
    size = 2 * r + 1
    y, _ = ops.lrn_forward(backend.asarray(np.swapaxes(x_nchw, 0, 1)), r, bias, alpha, beta,
                           backend)
    torch_like = pytorch_lrn(x_nchw, size, alpha * size, beta, bias)
    np.testing.assert_allclose(np.swapaxes(y, 0, 1), torch_like, rtol=1e-13, atol=1e-14)
    # and without the rescaling of alpha they differ (the mapping is not a no-op)
    assert not np.allclose(np.swapaxes(y, 0, 1), pytorch_lrn(x_nchw, size, alpha, beta, bias),
                           rtol=1e-9) or r == 0


def test_window_sum_matches_loops(rng):
    a = rng.standard_normal((6, 2, 3))
    for r in range(0, 8):
        out = window_sum(a, r, np.empty_like(a))
        for c in range(6):
            expected = sum(a[d] for d in range(max(0, c - r), min(5, c + r) + 1))
            np.testing.assert_allclose(out[c], expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("exponent", [-0.75, -0.5])
def test_power_square_root_cases_equal_np_power(backend, rng, dtype, exponent):
    u_host = np.concatenate([rng.uniform(1e-3, 1e3, 500), [1.0, 4.0, 16.0, 1e-30, 1e30]])
    u = backend.asarray(u_host, dtype=dtype)
    out = power(u, exponent, backend.xp, backend.xp.empty_like(u))
    expected = np.power(u_host.astype(dtype), dtype(exponent))
    assert out.dtype == dtype
    # a few units in the last place at most
    np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=4 * np.finfo(dtype).eps,
                               atol=0)
    np.testing.assert_array_equal(backend.to_numpy(power(backend.asarray([16.0], dtype=dtype),
                                                         exponent, backend.xp,
                                                         backend.xp.empty(1, dtype))),
                                  [0.25 if exponent == -0.5 else 0.125])


def test_power_general_exponent_is_np_power(backend, rng):
    u_host = rng.uniform(0.1, 10, 50)
    u = backend.asarray(u_host)
    out = power(u, -1.3, backend.xp, backend.xp.empty_like(u))
    np.testing.assert_array_equal(backend.to_numpy(out), np.power(u_host, -1.3))


# -- NaN ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 4, 2, 2), (5, 4)], ids=["cnhw", "nd"])
def test_batchnorm_nan_propagates_as_in_the_reference(backend, rng, shape):
    x, gamma_h, beta_h, _ = bn_inputs(backend, rng, shape)
    x[(1, 2, 0, 1) if len(shape) == 4 else (2, 1)] = np.nan
    bx, gamma, beta = (backend.asarray(a) for a in (x, gamma_h, beta_h))
    y, cache = ops.batchnorm_forward(bx, gamma, beta, 1e-3, alone, backend)
    with np.errstate(invalid="ignore"):
        ref, _, _ = naive_batchnorm(x, gamma_h, beta_h, 1e-3)
    y = backend.to_numpy(y)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    assert np.isnan(y).any() and not np.isnan(y).all()     # the one channel, not the others
    np.testing.assert_allclose(y[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=1e-12, atol=1e-12)
    dx = backend.to_numpy(ops.batchnorm_backward(backend.asarray(np.ones(shape)), cache)[0])
    channel = np.isnan(ref)
    assert np.isnan(dx[channel]).all()        # the poisoned channel's gradient is NaN, not 0

    # inference: only the NaN value itself
    c = gamma_h.size
    yi, _ = ops.batchnorm_inference_forward(bx, gamma, beta, backend.asarray(np.zeros(c)),
                                            backend.asarray(np.ones(c)), 1e-3, backend)
    np.testing.assert_array_equal(np.isnan(backend.to_numpy(yi)), np.isnan(x))


@pytest.mark.parametrize("impl", ["reference", "resolved"])
@pytest.mark.parametrize("r", [0, 1, 3])
def test_lrn_nan_propagates_as_in_the_reference(backend, rng, impl, r):
    forward, backward = lrn_pair(impl, backend)
    x = rng.standard_normal((6, 2, 3, 3))
    x[2, 1, 0, 2] = np.nan
    x[5, 0, 1, 1] = np.nan
    with np.errstate(invalid="ignore"):
        ref = naive_lrn(x, r, 1.0, 0.3, 0.75)
    y, cache = forward(backend.asarray(x), r, 1.0, 0.3, 0.75, backend)
    y = backend.to_numpy(y)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    assert np.isnan(ref).sum() == (min(5, 2 + r) - max(0, 2 - r) + 1) + (5 - max(0, 5 - r) + 1)
    np.testing.assert_allclose(y[~np.isnan(ref)], ref[~np.isnan(ref)], rtol=1e-13)
    dx = backend.to_numpy(backward(backend.asarray(np.ones(x.shape)), cache))
    assert np.isnan(dx[np.isnan(x)]).all()
