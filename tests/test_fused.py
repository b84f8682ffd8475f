"""Every fused convolution kernel a backend provides (Backend.fused, "<pattern>/<algorithm>")
against the reference composition it replaces, forward and backward, where it applies;
ops.resolve falling back to the reference where it does not; and a model's fused plan
against the same model run layer by layer.  The fused loss and optimizer updates against
their references: test_kernels.py."""
import numpy as np
import pytest

import minicnn
from conftest import ALL_BACKENDS, cnhw
from minicnn import ops
from minicnn.ops import algorithms
from minicnn.backend import get_backend
from minicnn.ops.geometry import window
from shapes import CONV_CASES, case_id

REF = get_backend("numpy")
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def fused_convolutions():
    """pytest params (backend, op name) for every fused convolution of every backend."""
    params = []
    for p in ALL_BACKENDS:
        name, marks = (p, ()) if isinstance(p, str) else (p.values[0], p.marks)
        try:
            names = sorted(get_backend(name).fused)
        except Exception:       # cupy where it cannot run: one skipped placeholder
            names = ["(unavailable)"]
        params += [pytest.param(name, op, marks=marks, id=f"{name}-{op}")
                   for op in names if "/" in op or op.startswith("(")]
    return params


def agree(got, want, dtype, what, rounding=1.0):
    """got == want to TOL[dtype]; ``rounding``: how many times direct summation's rounding an
    algorithm's float32 results carry (its atol then relative to the largest |want|)."""
    tol = dict(TOL[dtype])
    if rounding > 1 and dtype == np.float32:
        tol = dict(rtol=tol["rtol"] * rounding, atol=tol["rtol"] * rounding * np.abs(want).max())
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, **tol, err_msg=what)


def conv_static(pattern, g):
    if pattern == "conv_relu_pool":
        return (g, window(g.oh, g.ow, (2, 2), (2, 2), "valid"))
    return (g,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
@pytest.mark.parametrize("backend_name,op", fused_convolutions())
def test_fused_convolution_matches_the_reference(backend_name, op, case, dtype, rng):
    b = get_backend(backend_name)
    pattern, algorithm = op.split("/")
    x_shape, f, kernel, stride, padding = case
    g = window(*x_shape[2:], kernel, stride, padding)
    if (algorithms.why_not(algorithm, g) or (pattern == "conv_relu_pool" and min(g.oh, g.ow) < 2)
            or (b.fused[op].applies and not b.fused[op].applies(g))):
        pytest.skip(f"{op} does not apply to this geometry")
    x = cnhw(rng.standard_normal(x_shape)).astype(dtype)
    w = rng.standard_normal((f, x_shape[1], *kernel)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    static = conv_static(pattern, g)
    fwd, bwd = b.fused[op].forward, b.fused[op].backward
    ref_fwd, ref_bwd = ops.reference_of(op)[:2]
    # F(4x4, 5x5) rounds about 6x as much as direct summation (test_winograd.py)
    rounding = 10.0 if (algorithm, kernel) == ("winograd", (5, 5)) else 1.0
    y, cache = fwd(*map(b.asarray, (x, w, bias)), *static, b)
    want, ref_cache = ref_fwd(x, w, bias, *static, REF)
    agree(b.to_numpy(y), want, dtype, f"{op} forward", rounding)
    dy = rng.standard_normal(want.shape).astype(dtype)
    for need_dx in (True, False):
        got = bwd(b.asarray(dy), cache, need_dx)
        wanted = ref_bwd(dy, ref_cache, need_dx)
        assert (got[0] is None) == (not need_dx)
        for name, g_got, g_want in zip(("dx", "dw", "db"), got, wanted):
            if g_want is not None:
                agree(b.to_numpy(g_got), g_want, dtype, f"{op} {name}", rounding)


def test_direct_one_channel_pass_gives_the_general_paths_bits(rng):
    """One input channel and 3x3 taps take one-pass paths (direct.py); with a second
    channel whose weights are zero the general path runs: the same pooled outputs, argmax
    and bias gradient bit for bit, dw to rounding (its sums run in another order)."""
    b = get_backend("numba")
    fwd, bwd = b.fused["conv_relu_pool/direct"].forward, b.fused["conv_relu_pool/direct"].backward
    g = window(13, 11, (3, 3), (1, 1), "same")
    pool = window(g.oh, g.ow, (2, 2), (2, 2), "valid")
    x = rng.standard_normal((1, 5, 13, 11)).astype(np.float32)
    w = rng.standard_normal((6, 1, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    x2 = np.concatenate([x, rng.standard_normal(x.shape).astype(np.float32)])
    w2 = np.concatenate([w, np.zeros_like(w)], axis=1)
    y, cache = fwd(x, w, bias, g, pool, b)
    y2, cache2 = fwd(x2, w2, bias, g, pool, b)
    assert cache.batched and not cache2.batched
    per_image = cache.argmax.reshape(6, 5, -1)[:, :, :cache.p.length]   # (F, N, length)
    assert np.array_equal(y, y2) and np.array_equal(per_image, cache2.argmax)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    _, dw, db = bwd(dy, cache, need_dx=False)
    _, dw2, db2 = bwd(dy, cache2, need_dx=False)
    assert np.array_equal(db, db2)
    np.testing.assert_allclose(dw, dw2[:, :1], rtol=1e-5, atol=1e-5)


def test_the_one_channel_kernels_compute_what_the_general_kernels_do(rng):
    """The one-pass kernels against the general path's pieces on the same phase planes:
    the four phases summed into memory then pooled (forward, bit for bit), and the unpool
    then the nine dot products per phase (backward, to rounding)."""
    from minicnn.backend.numba_kernels import direct, planes as pl
    from minicnn.ops.workspace import Workspace
    g = window(11, 9, (3, 3), (1, 1), "same")
    p = pl.plane_geometry(g, 2, 11, 9)
    x = rng.standard_normal((1, 3, 11, 9)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    planes = pl.phase_planes(x, p, Workspace(np))
    for f, n in ((0, 0), (1, 2)):
        views = direct._sixteen_views(planes[0, n], p.ww)
        bias = np.float32(0.3)
        acc = np.full((4, p.length), bias, np.float32)
        direct._accumulate(planes, w, f, n, 2, p.ww, p.length, acc)
        y_ref, arg_ref = np.empty(p.length, np.float32), np.empty(p.length, np.uint8)
        pl.relu_pool_2x2(acc, y_ref, arg_ref)
        y, arg = np.empty_like(y_ref), np.empty_like(arg_ref)
        direct._pooled_one_channel_3x3(y, arg, p.length, bias, *w[f, 0].ravel(), *views)
        assert np.array_equal(y, y_ref) and np.array_equal(arg, arg_ref)
        real = pl.window_mask(p.rows, p.cols, p.hh, p.ww, 1)
        # zero between windows, as backward's expand leaves it
        dy = rng.standard_normal(p.length).astype(np.float32) * real[:p.length]
        dz = np.empty((4, p.length), np.float32)
        pl.unpool_relu(dy, y_ref, arg_ref, dz)
        want = sum(np.array(direct._dots_3x3(dz[k], p.length, *[
            views[(k // 2 + ky) * 4 + k % 2 + kx] for ky in range(3) for kx in range(3)]))
            for k in range(4))
        scratch = np.empty(p.length, np.float32)
        got = direct._pooled_grad_one_channel_3x3(dy, y_ref, arg_ref, p.length, scratch, real,
                                                  *views)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(scratch, dy * (y_ref > 0))   # masked, for db's sum


def test_resolve_falls_back_to_the_reference_where_a_fused_kernel_does_not_apply():
    """Numba's fused conv+ReLU+pool through im2col runs stride 1 only; a stride-2 convolution
    gets the reference composition."""
    name, numba = "conv_relu_pool/im2col", get_backend("numba")
    fused = numba.fused[name]
    stride1 = window(8, 8, (3, 3), (1, 1), "same")
    stride2 = window(8, 8, (3, 3), (2, 2), "same")
    assert ops.resolve(name, numba, stride1) is fused
    assert ops.resolve(name, numba, stride2) is ops.REFERENCE[name]
    assert ops.resolve(name, numba) is fused


def lab_like(algorithm="auto"):
    return [minicnn.Conv2D(3, 3, padding="same", algorithm=algorithm), minicnn.ReLU(),
            minicnn.MaxPool2D(2),
            minicnn.Conv2D(5, 3, padding="same", algorithm=algorithm), minicnn.ReLU(),
            minicnn.MaxPool2D(2), minicnn.Conv2D(4, 2, padding="valid"), minicnn.ReLU(),
            minicnn.Flatten(), minicnn.Dense(6), minicnn.ReLU(), minicnn.Dense(4)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_plan_matches_layer_by_layer(backend, dtype):
    """The same weights run three ways: the fused plan with the backend's own algorithms, every
    layer on its own with the same algorithms, and every layer on its own by im2col (the
    oracle: on numba the first two are direct and Winograd, the third is not).  Logits, every
    gradient and dL/dx agree."""
    shape, results, plans = (2, 13, 12), [], []
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, *shape)).astype(dtype)
    labels = rng.integers(0, 4, 3)
    for fuse, algorithm in ((True, "auto"), (False, "auto"), (False, "im2col")):
        model = minicnn.Sequential(lab_like(algorithm), shape, backend=backend.name, dtype=dtype,
                                   seed=5, fuse=fuse)
        loss, dlogits, logits = model.loss(backend.asarray(x), backend.asarray(labels))
        dx = model.backward(dlogits)
        results.append([backend.to_numpy(logits), backend.to_numpy(dx)]
                       + [backend.to_numpy(g) for _, g in model.grads()])
        plans.append([step.name for step in model.plan])
    assert plans[0][:2] == ["conv2d+relu+maxpool2d", "conv2d_1+relu_1+maxpool2d_1"]
    assert len(plans[1]) == len(plans[2]) == len(model.layers)
    for other, what in ((results[1], "fused vs unfused"), (results[2], "fused vs im2col")):
        for got, want in zip(results[0], other):
            agree(got, want, np.dtype(dtype).type, what)
