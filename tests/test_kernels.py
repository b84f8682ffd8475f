"""Every backend kernel against the NumPy reference: (C, N, H, W) images of odd shapes,
sizes that are not multiples of the block size, float32 and float64.  Runs the CUDA
sources on the CPU through cudasim (also with a tiny grid, so every grid-stride loop
iterates), on Numba, and on a GPU where there is one; then the launch checks; then every
fused loss and optimizer update a backend provides (Backend.fused: Numba's and the CUDA
backends') against its reference in minicnn.ops.  The fused convolutions: test_fused.py."""
import numpy as np
import pytest

from conftest import gpu_params
from minicnn import ops
from minicnn.backend import get_backend
from minicnn.backend.cuda_shared import THREADS
from minicnn.ops.geometry import window
from shapes import CONV_CASES, POOL_CASES, case_id

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
REF = get_backend("numpy")

# The shapes of shapes.py, read as (C, N, H, W), and one large enough for 3 blocks of
# 256 threads to loop several times.
BIG_CONV = ((5, 4, 17, 19), 2, (3, 3), (2, 1), "same")
BIG_POOL = ((5, 4, 17, 19), (3, 2), (2, 2), "same")


def small_grid(request, monkeypatch):
    """The backend named by request.param; "-3-blocks": a grid of 3 blocks, so that every
    grid-stride loop runs many iterations."""
    name, _, small = request.param.partition("-")
    backend = get_backend(name)
    if small:
        monkeypatch.setattr(backend, "max_blocks", 3)
    return backend


@pytest.fixture(params=["numba", "cudasim", "cudasim-3-blocks",
                        *gpu_params("cupy", "cupy-3-blocks")])
def kernel_backend(request, monkeypatch):
    return small_grid(request, monkeypatch)


def garbage(b, shape, dtype):
    """An output buffer full of values no kernel writes, so an element left unwritten shows."""
    return b.xp.full(shape, -7 if dtype == np.int32 else np.nan, dtype=dtype)


def agree(backend, got, want, dtype=None):
    got = backend.to_numpy(got)
    assert got.dtype == want.dtype and got.shape == want.shape
    if dtype is None:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES + [BIG_CONV], ids=case_id)
def test_im2col_col2im(kernel_backend, rng, case, dtype):
    b = kernel_backend
    x_shape, _, kernel, stride, padding = case
    c, n = x_shape[:2]
    g = window(*x_shape[2:], kernel, stride, padding)
    col_shape = (c * g.kh * g.kw, n * g.oh * g.ow)
    x = rng.standard_normal(x_shape).astype(dtype)
    want = REF.im2col(x, g, np.empty(col_shape, dtype))
    out = garbage(b, col_shape, dtype)
    assert b.im2col(b.asarray(x), g, out) is out
    agree(b, out, want, dtype)
    dcol = rng.standard_normal(col_shape).astype(dtype)
    out = garbage(b, x_shape, dtype)
    assert b.col2im(b.asarray(dcol), g, out) is out
    agree(b, out, REF.col2im(dcol, g, np.empty(x_shape, dtype)), dtype)


def pool_input(rng, shape, dtype, kind):
    x = rng.standard_normal(shape).astype(dtype)
    if kind == "ties":          # the first maximum must win everywhere
        x.flat[::5] = x.flat[1]
    elif kind == "nan":         # the first NaN must win, over numbers and over later NaNs
        x.flat[::4] = np.nan
        x.flat[1::7] = np.nan
    return x


@pytest.mark.parametrize("kind", ["ties", "nan"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES + [BIG_POOL], ids=case_id)
def test_maxpool(kernel_backend, rng, case, dtype, kind):
    b = kernel_backend
    x_shape, pool, stride, padding = case
    g = window(*x_shape[2:], pool, stride, padding)
    y_shape = (*x_shape[:2], g.oh, g.ow)
    x = pool_input(rng, x_shape, dtype, kind)
    want_y, want_argmax = REF.maxpool_forward(x, g, np.empty(y_shape, dtype),
                                              np.empty(y_shape, np.int32))
    y, argmax = garbage(b, y_shape, dtype), garbage(b, y_shape, np.int32)
    got = b.maxpool_forward(b.asarray(x), g, y, argmax)
    assert got[0] is y and got[1] is argmax
    agree(b, y, want_y, dtype)
    agree(b, argmax, want_argmax)
    dy = rng.standard_normal(y_shape).astype(dtype)
    dx = garbage(b, x_shape, dtype)
    assert b.maxpool_backward(b.asarray(dy), argmax, g, dx) is dx
    agree(b, dx, REF.maxpool_backward(dy, want_argmax, g, np.empty(x_shape, dtype)), dtype)


def test_a_pool_window_of_padding_alone_points_inside_its_plane(rng):
    """The layers refuse padding as wide as the window, but the op takes any window(): a
    window that holds no pixel must still point at one, so that backward writes inside."""
    b = get_backend("numba")
    g = window(4, 5, (1, 1), (1, 1), (1, 1))        # the border windows hold padding alone
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    y, argmax = b.maxpool_forward(x, g, np.empty((2, 3, 6, 7), np.float32),
                                  np.empty((2, 3, 6, 7), np.int32))
    assert np.isneginf(y[:, :, 0]).all() and np.isneginf(y[:, :, :, -1]).all()
    np.testing.assert_array_equal(y[:, :, 1:-1, 1:-1], x)
    assert argmax.min() >= 0 and argmax.max() < 4 * 5
    dx = b.maxpool_backward(np.ones_like(y), argmax, g, np.empty_like(x))
    assert dx.sum() == y.size


# -- launch: the table's names, dtypes and layout are enforced ----------------------
def test_launch_refuses_a_wrong_set_of_keywords():
    b = get_backend("cudasim")
    p = np.zeros(6, np.float32)
    with pytest.raises(TypeError, match=r"expected arguments \(p, g, total, lr\)"):
        b.launch("sgd_update", p=p, g=p, total=6)
    with pytest.raises(TypeError, match="expected arguments"):
        b.launch("sgd_update", p=p, g=p, total=6, lr=0.1, momentum=0.9)
    with pytest.raises(TypeError, match="expected arguments"):
        b.launch("sgd_update", p=p, grad=p, total=6, lr=0.1)


def test_launch_refuses_wrong_dtypes_layouts_and_scalars():
    b = get_backend("cudasim")
    p = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="g must be a C-contiguous float32 array"):
        b.launch("sgd_update", p=p, g=p.astype(np.float64), total=6, lr=0.1)
    with pytest.raises(TypeError, match="g must be a C-contiguous"):
        b.launch("sgd_update", p=p, g=np.zeros((3, 2), np.float32).T, total=6, lr=0.1)
    with pytest.raises(TypeError, match="float32 and float64, not int32"):
        b.launch("sgd_update", p=p.astype(np.int32), g=p, total=6, lr=0.1)
    with pytest.raises(TypeError, match="argmax must be a C-contiguous int32 array"):
        b.launch("maxpool_bwd", dy=p, argmax=p.astype(np.int64), dx=p, total=6, H=2, W=3,
                 KH=1, KW=1, SH=1, SW=1, PT=0, PL=0, OH=2, OW=3)
    with pytest.raises(TypeError, match="integer"):    # a float where the kernel takes an int
        b.launch("sgd_update", p=p, g=p, total=6.0, lr=0.1)
    with pytest.raises(ValueError, match="does not fit a C int"):
        b.launch("sgd_update", p=p, g=p, total=2**31, lr=0.1)


def test_backend_kernels_refuse_a_wrongly_shaped_output():
    b = get_backend("cudasim")
    g = window(5, 5, (3, 3), (1, 1), "valid")
    with pytest.raises(ValueError, match="expected an array of shape"):
        b.im2col(np.zeros((2, 1, 5, 5)), g, np.zeros((9, 9)))


# -- the fused loss and updates ---------------------------------------------------------
UPDATES = {   # op name -> (number of state buffers, hyper-parameters)
    "sgd_update": (0, (0.1,)),
    "momentum_update": (1, (0.1, 0.9)),
    "adam_update": (2, (0.01, 0.9, 0.999, 1e-3)),
}


def test_every_fused_loss_and_update_is_tested_here(kernel_backend):
    """Backend.fused entries that are one kernel, not a forward/backward OpPair (those are
    layer ops, tested with their layers: the convolutions in test_fused.py, LRN in
    test_normalization.py): each must be one the tests below compare with its reference, so
    a new one cannot go untested."""
    kernels = {op for op, k in kernel_backend.fused.items() if not isinstance(k, ops.OpPair)}
    assert kernels and kernels <= {"softmax_cross_entropy", *UPDATES}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k,total", [(1, 10, None), (3, 2, None), (2 * THREADS + 3, 10, None),
                                       (2 * THREADS + 3, 10, 1000)])
def test_fused_softmax_cross_entropy(kernel_backend, rng, n, k, total, dtype):
    b = kernel_backend
    logits = (rng.standard_normal((n, k)) * 5).astype(dtype)
    labels = rng.integers(0, k, n)
    loss, d = b.fused["softmax_cross_entropy"](b.asarray(logits), b.asarray(labels), b, total)
    want_loss, want_d = ops.softmax_cross_entropy(logits, labels, REF, total)
    assert loss == pytest.approx(want_loss, rel=TOL[dtype]["rtol"], abs=TOL[dtype]["atol"])
    agree(b, d, want_d, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_softmax_cross_entropy_propagates_nan(kernel_backend, rng, dtype):
    b = kernel_backend
    logits = rng.standard_normal((5, 4)).astype(dtype)
    logits[2, 3] = np.nan            # not in column 0: the row maximum must still become NaN
    labels = np.array([0, 1, 2, 3, 0])
    loss, d = b.fused["softmax_cross_entropy"](b.asarray(logits), b.asarray(labels), b)
    assert np.isnan(loss)
    d = b.to_numpy(d)
    assert np.isnan(d[2]).all() and not np.isnan(np.delete(d, 2, axis=0)).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", UPDATES)
def test_fused_updates(kernel_backend, rng, op, dtype):
    b = kernel_backend
    n_state, hyper = UPDATES[op]
    size = THREADS * 5 + 7
    p, g, *state = (rng.standard_normal(size).astype(dtype) for _ in range(2 + n_state))
    if op == "adam_update":
        state[1] = np.abs(state[1])   # v, a running mean of squares, is never negative
    want = [a.copy() for a in (p, *state)]
    getattr(ops, op)(want[0], g, *want[1:], *hyper, REF)
    got = [b.asarray(a.copy()) for a in (p, *state)]
    b.fused[op](got[0], b.asarray(g), *got[1:], *hyper, b)
    for got_a, want_a in zip(got, want):
        agree(b, got_a, want_a, dtype)
