"""The reference ops of minicnn.ops on every backend: im2col convolution, max-pool and softmax
cross-entropy against the naive loops of reference.py, forward and backward; the window
geometry ('same' as TensorFlow pads); pool ties and padding; need_dx=False; the layout
conversions and flatten.  The fused kernels against these references: test_fused.py."""
import numpy as np
import pytest

import reference
from conftest import cnhw, nchw
from minicnn import ops
from minicnn.backend import get_backend
from minicnn.ops.geometry import window
from shapes import CONV_CASES, POOL_CASES, case_id


@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv_matches_naive_loops(backend, rng, case):
    x_shape, f, kernel, stride, padding = case
    g = window(*x_shape[2:], kernel, stride, padding)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((f, x_shape[1], *kernel))
    b = rng.standard_normal(f)
    to = backend.asarray
    y, cache = ops.conv2d_forward(to(cnhw(x)), to(w), to(b), g, backend)
    np.testing.assert_allclose(nchw(backend.to_numpy(y)), reference.conv_forward(x, w, b, g),
                               rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal((x_shape[0], f, g.oh, g.ow))
    dx, dw, db = ops.conv2d_backward(to(cnhw(dy)), cache)
    want = reference.conv_backward(dy, x, w, g)
    for got, wanted in zip((nchw(backend.to_numpy(dx)), dw, db), want):
        np.testing.assert_allclose(backend.to_numpy(got), wanted, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_maxpool_matches_naive_loops(backend, rng, case):
    x_shape, pool, stride, padding = case
    g = window(*x_shape[2:], pool, stride, padding)
    x = rng.standard_normal(x_shape)
    y, cache = ops.maxpool_forward(backend.asarray(cnhw(x)), g, backend)
    np.testing.assert_array_equal(nchw(backend.to_numpy(y)), reference.maxpool_forward(x, g))
    dy = rng.standard_normal(reference.maxpool_forward(x, g).shape)
    dx = ops.maxpool_backward(backend.asarray(cnhw(dy)), cache)
    np.testing.assert_allclose(nchw(backend.to_numpy(dx)), reference.maxpool_backward(dy, x, g),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_avgpool_matches_naive_loops(backend, rng, case):
    x_shape, pool, stride, padding = case
    g = window(*x_shape[2:], pool, stride, padding)
    x = rng.standard_normal(x_shape)
    y, cache = ops.avgpool_forward(backend.asarray(cnhw(x)), g, backend)
    np.testing.assert_allclose(nchw(backend.to_numpy(y)), reference.avgpool_forward(x, g),
                               rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal((x_shape[0], x_shape[1], g.oh, g.ow))
    dx = ops.avgpool_backward(backend.asarray(cnhw(dy)), cache)
    np.testing.assert_allclose(nchw(backend.to_numpy(dx)),
                               reference.avgpool_backward(dy, x_shape, g), rtol=1e-12, atol=1e-12)


def test_tanh_matches_the_definition(backend, rng):
    x = rng.standard_normal((3, 2, 5, 4)) * 3
    y, cache = ops.tanh_forward(backend.asarray(x), backend)
    np.testing.assert_allclose(backend.to_numpy(y), reference.tanh_forward(x), rtol=1e-14)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_allclose(backend.to_numpy(ops.tanh_backward(backend.asarray(dy), cache)),
                               dy * (1 - np.tanh(x) ** 2), rtol=1e-12, atol=1e-15)


def test_maxpool_ties_go_to_the_first_maximum(backend):
    x = np.zeros((1, 1, 4, 4))
    g = window(4, 4, (2, 2), (2, 2), "valid")
    y, cache = ops.maxpool_forward(backend.asarray(x), g, backend)
    dx = backend.to_numpy(ops.maxpool_backward(backend.asarray(np.ones((1, 1, 2, 2))), cache))
    assert dx[0, 0].tolist() == [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]


def test_softmax_cross_entropy_matches_loops(backend, rng):
    logits = rng.standard_normal((5, 7)) * 10
    labels = rng.integers(0, 7, 5)
    loss, d = ops.softmax_cross_entropy(backend.asarray(logits), backend.asarray(labels), backend)
    want_loss, want_d = reference.softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(backend.to_numpy(d), want_d, rtol=1e-10, atol=1e-15)


def test_softmax_cross_entropy_is_stable_for_huge_logits(backend):
    logits = backend.asarray(np.array([[1000.0, 0.0, -1000.0], [-5e4, 5e4, 0.0]]))
    loss, d = ops.softmax_cross_entropy(logits, backend.asarray(np.array([0, 0])), backend)
    assert np.isfinite(loss) and loss == pytest.approx(1e5 / 2)
    assert np.all(np.isfinite(backend.to_numpy(d)))


@pytest.mark.parametrize("padding,expected", [
    # TensorFlow/Keras 'same': out = ceil(in / s), extra padding at the bottom/right.
    (((28, 28), (3, 3), (1, 1), "same"), (1, 1, 1, 1, 28, 28)),
    (((28, 28), (2, 2), (1, 1), "same"), (0, 1, 0, 1, 28, 28)),
    (((28, 28), (4, 4), (1, 1), "same"), (1, 2, 1, 2, 28, 28)),
    (((7, 6), (3, 3), (2, 2), "same"), (1, 1, 0, 1, 4, 3)),
    (((6, 6), (3, 3), (2, 2), "same"), (0, 1, 0, 1, 3, 3)),
    (((5, 5), (1, 1), (2, 2), "same"), (0, 0, 0, 0, 3, 3)),
    (((7, 7), (2, 2), (2, 2), "valid"), (0, 0, 0, 0, 3, 3)),
    (((7, 9), (3, 3), (2, 2), (1, 2)), (1, 1, 2, 2, 4, 6)),
    (((5, 3), (5, 5), (1, 1), (0, 1)), (0, 0, 1, 1, 1, 1)),     # exactly the padded input
])
def test_window_geometry(padding, expected):
    (h, w), kernel, stride, pad = padding
    g = window(h, w, kernel, stride, pad)
    assert (g.pad_top, g.pad_bottom, g.pad_left, g.pad_right, g.oh, g.ow) == expected


@pytest.mark.parametrize("case", [((1, 1, 5, 7), (3, 3), (2, 2), (1, 1)),
                                  ((2, 1, 4, 5), (2, 3), (2, 1), "same")], ids=case_id)
def test_padded_pool_windows_with_ties(backend, case):
    """Windows that reach into the padding, over values that tie (and negative ones, which the
    padding must not beat): the first real maximum of each window wins, forward and backward."""
    x_shape, pool, stride, padding = case
    g = window(*x_shape[2:], pool, stride, padding)
    x = np.round(np.random.default_rng(0).standard_normal(x_shape)) - 1.0     # ties, negatives
    y, cache = ops.maxpool_forward(backend.asarray(cnhw(x)), g, backend)
    np.testing.assert_array_equal(nchw(backend.to_numpy(y)), reference.maxpool_forward(x, g))
    dy = np.arange(1.0, y.size + 1).reshape(nchw(backend.to_numpy(y)).shape)
    np.testing.assert_array_equal(
        nchw(backend.to_numpy(ops.maxpool_backward(backend.asarray(cnhw(dy)), cache))),
        reference.maxpool_backward(dy, x, g))


@pytest.mark.parametrize("scale", [1e3, 1e4])
def test_softmax_cross_entropy_with_huge_logits(backend, rng, scale):
    """Logits of magnitude 1e3 and 1e4 (exp would overflow without the max shift), through the
    loss this backend actually trains with (its fused kernel where it has one)."""
    logits = rng.standard_normal((6, 10)) * scale
    labels = rng.integers(0, 10, 6)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    want_loss = -log_p[np.arange(6), labels].mean()
    want_d = (np.exp(log_p) - np.eye(10)[labels]) / 6
    loss_fn = ops.resolve("softmax_cross_entropy", backend)
    loss, d = loss_fn(backend.asarray(logits), backend.asarray(labels), backend)
    assert np.isfinite(loss) and loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(backend.to_numpy(d), want_d, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("h,w,k,s", [(28, 28, 3, 1), (28, 28, 2, 1), (28, 28, 4, 1), (7, 6, 3, 2),
                                     (6, 6, 3, 2), (9, 4, 5, 3), (5, 8, 1, 2)])
def test_same_padding_is_tensorflows(backend, rng, h, w, k, s):
    """'same' against TensorFlow's rule, written here from its documentation (out =
    ceil(in / s), total padding max((out - 1) * s + k - in, 0), the odd one at the end),
    applied with np.pad and a 'valid' convolution: nothing read back from minicnn."""
    def pads(size):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        return total // 2, total - total // 2
    x = rng.standard_normal((2, 1, h, w))
    wt = rng.standard_normal((3, 1, k, k))
    b = rng.standard_normal(3)
    padded = np.pad(x, ((0, 0), (0, 0), pads(h), pads(w)))
    want = reference.conv_forward(padded, wt, b, window(*padded.shape[2:], (k, k), (s, s),
                                                         "valid"))
    g = window(h, w, (k, k), (s, s), "same")
    got, _ = ops.conv2d_forward(backend.asarray(cnhw(x)), backend.asarray(wt), backend.asarray(b),
                                g, backend)
    assert want.shape[2:] == (-(-h // s), -(-w // s))
    np.testing.assert_allclose(nchw(backend.to_numpy(got)), want, rtol=1e-10, atol=1e-12)


def test_padding_never_wins_even_over_minus_infinity(backend):
    """A padded window whose real pixels are all -inf: the maximum is -inf at the first real
    pixel, never a padding tap (whose argmax would point outside the plane)."""
    g = window(3, 3, (3, 3), (1, 1), (1, 1))
    x = np.full((2, 1, 3, 3), -np.inf)
    x[1] = np.arange(9.0).reshape(3, 3)               # the second plane: ordinary numbers
    y, cache = ops.maxpool_forward(backend.asarray(x), g, backend)
    assert np.all(backend.to_numpy(y)[0] == -np.inf)
    argmax = backend.to_numpy(cache.argmax)
    assert argmax.min() >= 0 and argmax.max() < 9
    dx = backend.to_numpy(ops.maxpool_backward(backend.asarray(np.ones((2, 1, 3, 3))), cache))
    assert dx[0].sum() == 9 and dx[1].sum() == 9      # every gradient stays in its own plane


# -- need_dx, the layout and flatten (on numba: the reference ops with its kernels) ----------
NUMBA = get_backend("numba")


def test_need_dx_false_returns_no_dx():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 2, 3, 3)), np.zeros(4)
    g = window(6, 6, (3, 3), (1, 1), "same")
    pool_g = window(6, 6, (2, 2), (2, 2), "valid")
    dy = rng.standard_normal((4, 3, 6, 6))
    for forward, backward, static, grad in [
            (ops.conv2d_forward, ops.conv2d_backward, (g,), dy),
            (ops.conv_relu_forward, ops.conv_relu_backward, (g,), dy),
            (ops.conv_relu_pool_forward, ops.conv_relu_pool_backward, (g, pool_g),
             dy[:, :, :3, :3])]:
        _, cache = forward(x, w, b, *static, NUMBA)
        assert backward(grad, cache, False)[0] is None
    _, cache = ops.dense_forward(rng.standard_normal((3, 8)), rng.standard_normal((8, 5)),
                                 np.zeros(5), NUMBA)
    assert ops.dense_backward(rng.standard_normal((3, 5)), cache, False)[0] is None


def test_layout_conversions_are_free_with_one_channel_and_skip_other_shapes():
    x = np.random.default_rng(0).standard_normal((5, 1, 4, 4))
    for convert in (ops.to_internal, ops.to_public):
        assert np.shares_memory(convert(x, NUMBA), x)
        flat = x.reshape(5, 16)
        assert convert(flat, NUMBA) is flat


def test_flatten_backward_restores_a_three_dimensional_input():
    x = np.arange(24.0).reshape(2, 3, 4)
    y, cache = ops.flatten_forward(x, NUMBA)
    assert y.shape == (2, 12)
    np.testing.assert_array_equal(ops.flatten_backward(y, cache), x)
