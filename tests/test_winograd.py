"""The numba backend's Winograd convolutions, F(2x2, 3x3) and F(4x4, 5x5), against the im2col
reference, on what test_fused.py does not cover: the lab model's and the tutorial models'
shapes, odd sizes and paddings, one image, NaN, ties in the pool, finite differences, and a
steady state that allocates nothing."""

import numpy as np
import pytest

from conftest import traced_peak
from minicnn import ops
from minicnn.backend import get_backend
from minicnn.ops.geometry import window
from minicnn.gradcheck import numerical_gradient, rel_error
from minicnn.ops.workspace import Workspace

NUMBA = get_backend("numba")
REF = get_backend("numpy")
PATTERNS = ["conv2d", "conv_relu", "conv_relu_pool"]
KERNELS = [3, 5]
# float32: F(4x4, 5x5)'s transforms (entries up to 21/4, divisions by 9, 45 and 90) round
# about 6x as much as direct summation (benchmarks/winograd_error.py --kernel 5); F(2x2,
# 3x3)'s as little.
TOL = {(np.float32, 3): 2e-5, (np.float32, 5): 1e-4, (np.float64, 3): 1e-12,
       (np.float64, 5): 1e-12}


def static(pattern, g):
    """The geometry arguments of ``pattern``: (g,) or (g, the 2x2 stride-2 pool's window)."""
    if pattern != "conv_relu_pool":
        return (g,)
    return (g, window(g.oh, g.ow, (2, 2), (2, 2), "valid"))


def run(pattern, backend, x, w, b, g, dy=None, need_dx=True, ws=None):
    """(y, (dx, dw, db)) of the Winograd pair (numba) or of the reference (numpy);
    dy=None: a seeded random upstream gradient."""
    pair = (NUMBA.fused[f"{pattern}/winograd"] if backend is NUMBA
            else ops.REFERENCE[f"{pattern}/im2col"])
    y, cache = pair.forward(x, w, b, *static(pattern, g), backend, ws)
    if dy is None:
        dy = np.random.default_rng(7).standard_normal(y.shape).astype(x.dtype)
    return y, pair.backward(dy, cache, need_dx, ws)


def inputs(x_shape, f, dtype, seed=0, k=3):
    """x (C, N, H, W), w (F, C, k, k) scaled to keep outputs ~1, b (F,)."""
    rng = np.random.default_rng(seed)
    c = x_shape[0]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = (rng.standard_normal((f, c, k, k)) / np.sqrt(k * k * c)).astype(dtype)
    return x, w, rng.standard_normal(f).astype(dtype)


def assert_matches_reference(pattern, x, w, b, padding, need_dx=True):
    k = w.shape[2]
    g = window(*x.shape[2:], (k, k), (1, 1), padding)
    y, grads = run(pattern, NUMBA, x, w, b, g, need_dx=need_dx)
    want_y, want_grads = run(pattern, REF, x, w, b, g, need_dx=need_dx)
    tol = TOL[x.dtype.type, k]
    assert y.shape == want_y.shape and y.dtype == x.dtype
    assert rel_error(y, want_y) < tol, "y"
    assert (grads[0] is None) == (not need_dx)
    for name, got, want in zip(("dx", "dw", "db"), grads, want_grads):
        if want is not None:
            assert got.shape == want.shape and got.dtype == x.dtype, name
            assert rel_error(got, want) < tol, name


@pytest.mark.parametrize("k, pattern, tile", [(3, "conv2d", 2), (3, "conv_relu_pool", 2),
                                              (5, "conv2d", 4), (5, "conv_relu", 4),
                                              (5, "conv_relu_pool", 4)])
def test_each_layer_takes_its_tile_size(k, pattern, tile):
    """3x3 kernels run F(2x2, 3x3), 5x5 ones F(4x4, 5x5), pooled or not (a 4x4 tile holds
    four pool windows)."""
    x, w, b = inputs((3, 2, 9, 9), 4, np.float64, k=k)
    g = window(9, 9, (k, k), (1, 1), "same")
    _, cache = NUMBA.fused[f"{pattern}/winograd"].forward(x, w, b, *static(pattern, g), NUMBA)
    assert (cache.t.TILE, cache.t.ALPHA) == (tile, tile + k - 1)


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("channels", [16, 64])
def test_lab_model_shapes(pattern, channels):
    """The lab model's second convolution: 14x14 'same', C = F, a shard of 7 images."""
    x, w, b = inputs((channels, 7, 14, 14), channels, np.float32)
    assert_matches_reference(pattern, x, w, b, "same")


@pytest.mark.parametrize("pattern,x_shape,filters", [
    ("conv_relu", (64, 5, 12, 12), 64),         # cifar10-tutorial's second convolution
    ("conv_relu_pool", (32, 5, 14, 14), 64),    # tf-mnist-tutorial's second convolution
])
def test_tutorial_model_shapes(pattern, x_shape, filters):
    """The 5x5 'same' layers of the tutorial models, a shard of 5 images, float32."""
    x, w, b = inputs(x_shape, filters, np.float32, k=5)
    assert_matches_reference(pattern, x, w, b, "same")


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding", ["valid", "same", (1, 1), (2, 2), (0, 2), (2, 1), (3, 4)])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_odd_sizes_and_paddings(pattern, padding, dtype, k):
    """13x11: odd output sizes, so partial tiles (conv2d) and a dropped row and column (pool);
    paddings wider than a 3x3 kernel's own."""
    x, w, b = inputs((3, 2, 13, 11), 5, dtype, k=k)
    assert_matches_reference(pattern, x, w, b, padding)


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("shape", [(2, 1, 5, 5), (1, 1, 3, 4), (4, 1, 2, 3), (3, 1, 8, 9)])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_one_image_and_tiny_outputs(pattern, shape, need_dx, k):
    """N = 1, down to a single output pixel (conv2d) or a single pool window."""
    padding = "valid" if min(shape[2:]) >= k else "same"
    g = window(*shape[2:], (k, k), (1, 1), padding)
    if pattern == "conv_relu_pool" and min(g.oh, g.ow) < 2:
        pytest.skip("no pool window fits")
    x, w, b = inputs(shape, 3, np.float64, k=k)
    assert_matches_reference(pattern, x, w, b, padding, need_dx)


def nan_agree(got, want):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(np.nan_to_num(got, nan=0.0), np.nan_to_num(want, nan=0.0),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("where", ["x", "w", "dy"])
@pytest.mark.parametrize("pixel", [(0, 0), (2, 3), (4, 6), (5, 1), (12, 10)])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_nan_propagates_like_the_reference(pattern, pixel, where, k):
    """A NaN in x, w or dy makes exactly the same outputs and gradients NaN.  (12, 10) lies in
    the row and column the 'valid' pool drops."""
    x, w, b = inputs((2, 2, 13, 11), 3, np.float64, k=k)
    g = window(13, 11, (k, k), (1, 1), "valid" if pixel == (12, 10) else (1, k // 2 + 1))
    if where == "x":
        x[1, 1][pixel] = np.nan
    if where == "w":
        w[1, 0][tuple(min(p, k - 1) for p in pixel)] = np.nan
    dy = np.random.default_rng(7).standard_normal(
        run(pattern, REF, x, w, b, g)[0].shape)
    if where == "dy":
        dy[1, 0][tuple(min(p, s - 1) for p, s in zip(pixel, dy.shape[2:]))] = np.nan
    y, grads = run(pattern, NUMBA, x, w, b, g, dy)
    want_y, want_grads = run(pattern, REF, x, w, b, g, dy)
    nan_agree(y, want_y)
    assert np.isnan(want_y).any() or where == "dy" or pixel == (12, 10)
    for got, want in zip(grads, want_grads):
        nan_agree(got, want)


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_ties_go_to_the_first_maximum(dtype, k):
    """Small integers make the convolution exact in both algorithms, so the four outputs of a
    window tie often (at 0 after the ReLU most of all); the gradient must go where the
    reference's goes.  (F(4x4, 5x5)'s G divides by 9, 45 and 90: weights that are multiples
    of 2025 = 45^2 leave only powers of two in U's denominators, so that it too is exact.)"""
    rng = np.random.default_rng(3)
    scale = 1 if k == 3 else 2025
    x = rng.integers(-1, 2, (2, 3, 8, 10)).astype(dtype)
    w = (rng.integers(-1, 2, (4, 2, k, k)) * scale).astype(dtype)
    b = np.array([0, 1, -1, 2], dtype) * scale
    g = window(8, 10, (k, k), (1, 1), "same")
    y, grads = run("conv_relu_pool", NUMBA, x, w, b, g)
    want_y, want_grads = run("conv_relu_pool", REF, x, w, b, g)
    np.testing.assert_array_equal(y, want_y)
    for got, want in zip(grads, want_grads):
        assert rel_error(got, want) < TOL[dtype, k]
    flat = np.zeros_like(w), np.ones(4, dtype)       # all four outputs tie everywhere
    y, grads = run("conv_relu_pool", NUMBA, x, *flat, g)
    want_y, want_grads = run("conv_relu_pool", REF, x, *flat, g)
    np.testing.assert_array_equal(y, want_y)
    for got, want in zip(grads, want_grads):
        assert rel_error(got, want) < TOL[dtype, k]


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("padding", ["same", "valid", (2, 1)])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_gradients_by_finite_differences(pattern, padding, k):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 2, 7, 6))
    w = rng.standard_normal((3, 2, k, k))
    b = rng.standard_normal(3)
    g = window(7, 6, (k, k), (1, 1), padding)
    pair = NUMBA.fused[f"{pattern}/winograd"]

    def forward():
        return pair.forward(x, w, b, *static(pattern, g), NUMBA)[0]

    y, cache = pair.forward(x, w, b, *static(pattern, g), NUMBA)
    dy = rng.standard_normal(y.shape)
    grads = pair.backward(dy, cache)
    for name, array, grad in zip(("x", "w", "b"), (x, w, b), grads):
        assert rel_error(numerical_gradient(forward, array, dy), grad) < 1e-6, name


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_steady_state_allocates_nothing(pattern, k):
    """With one workspace, the second step returns the first step's buffers and allocates no
    array (the Winograd blocks alone are hundreds of kilobytes here)."""
    x, w, b = inputs((16, 7, 14, 14), 16, np.float32, k=k)
    g = window(14, 14, (k, k), (1, 1), "same")
    dy = np.ones(run(pattern, REF, x, w, b, g)[0].shape, np.float32)
    ws = Workspace(np)
    first = run(pattern, NUMBA, x, w, b, g, dy, ws=ws)
    peak, second = traced_peak(lambda: run(pattern, NUMBA, x, w, b, g, dy, ws=ws))
    assert second[0] is first[0]
    assert all(a is c for a, c in zip(second[1], first[1]))
    assert peak < 16 * 1024, f"{peak} bytes allocated in the steady state"


@pytest.mark.parametrize("k", KERNELS)
def test_float64_stays_float64_and_inputs_are_not_changed(k):
    x, w, b = inputs((3, 2, 7, 6), 4, np.float64, k=k)
    copies = [a.copy() for a in (x, w, b)]
    for pattern in PATTERNS:
        y, grads = run(pattern, NUMBA, x, w, b, window(7, 6, (k, k), (1, 1), "same"))
        assert y.dtype == np.float64 and all(gr.dtype == np.float64 for gr in grads)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("k", KERNELS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_non_finite_inputs_take_the_im2col_path(pattern, k):
    """Finite x and w run Winograd; a NaN or infinity in either runs the reference instead
    (whose NaN pattern in dw and dx Winograd's transforms would not keep)."""
    x, w, b = inputs((2, 1, 6, 6), 3, np.float64, k=k)
    g = window(6, 6, (k, k), (1, 1), "same")
    pair = NUMBA.fused[f"{pattern}/winograd"]
    assert type(pair.forward(x, w, b, *static(pattern, g), NUMBA)[1]).__name__ == "WinogradCache"
    x[0, 0, 2, 2] = np.inf
    assert type(pair.forward(x, w, b, *static(pattern, g), NUMBA)[1]).__name__ != "WinogradCache"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_only_a_non_finite_dy_takes_the_reference_backward(pattern, monkeypatch):
    """With 4x4 tiles (5x5 kernels) a finite dy runs the Winograd backward; an infinity in dy
    runs the reference from the cached x and w, whose gradients it then gives (NaN and
    infinities where the reference puts them)."""
    from minicnn.backend.numba_kernels import winograd
    calls = []
    for module, name in ((winograd.im2col_conv, "conv2d_backward"),
                         (winograd.im2col_fused, "conv_relu_pool_backward")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name,
                            lambda *a, real=real, **kw: calls.append(1) or real(*a, **kw))
    x, w, b = inputs((3, 2, 9, 9), 4, np.float64, k=5)
    g = window(9, 9, (5, 5), (1, 1), "same")
    y, grads = run(pattern, NUMBA, x, w, b, g)
    assert not calls and np.isfinite(grads[0]).all()
    dy = np.random.default_rng(7).standard_normal(y.shape)
    dy[1, 0, 1, 2] = np.inf
    with np.errstate(invalid="ignore"):         # inf * 0 in the reference's sums
        _, grads = run(pattern, NUMBA, x, w, b, g, dy)
        _, want = run(pattern, REF, x, w, b, g, dy)
    assert calls
    for got, expected in zip(grads, want):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))


@pytest.mark.parametrize("kernel,stride", [((7, 7), (1, 1)), ((3, 3), (2, 2)), ((5, 5), (2, 2)),
                                           ((3, 2), (1, 1)), ((5, 3), (1, 1))])
def test_other_geometries_are_refused(kernel, stride):
    x = np.zeros((2, 1, 9, 9))
    w = np.zeros((3, 2, *kernel))
    g = window(9, 9, kernel, stride, "same")
    for pattern in PATTERNS:
        with pytest.raises(ValueError, match="winograd"):
            NUMBA.fused[f"{pattern}/winograd"].forward(x, w, np.zeros(3), *static(pattern, g),
                                                       NUMBA)
