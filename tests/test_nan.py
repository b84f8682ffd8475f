"""NaN is never hidden.  Two comparisons, so that every backend is checked against something
other than itself: the NumPy reference ops (minicnn.ops on the numpy backend) against the
naive loops of reference.py, and every other backend's ops and fused kernels (numba,
cudasim, cupy: their own kernels under the same ops, and their Backend.fused entries)
against the NumPy reference.  In both, a NaN pixel, a NaN in the gradient and a dead unit's
tie must give NaN in exactly the same places, and the same numbers beside them.  Then: a
model fed NaN reports a NaN loss, and training stops."""
import numpy as np
import pytest

import minicnn
import reference
from conftest import ALL_BACKENDS, CPU_BACKENDS, cnhw, nchw
from minicnn import ops
from minicnn.backend import get_backend
from minicnn.ops.geometry import window
from minicnn.nn.fit import DivergenceCheck, NonFiniteLoss, fit

REF = get_backend("numpy")
G = window(9, 8, (3, 3), (1, 1), "same")
POOL_G = window(9, 8, (2, 2), (2, 2), "valid")
# The backends whose ops are not the NumPy reference itself.
OTHER_BACKENDS = [p for p in ALL_BACKENDS if p != "numpy"]


def with_nan(rng, shape, where):
    a = rng.standard_normal(shape).astype(np.float32)
    a[where] = np.nan
    return a


def same_nan_pattern(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN pattern")
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=2e-5, atol=2e-5,
                               err_msg=f"{what}: the numbers beside the NaN")


def conv_ops(backend):
    """(name, forward, backward, static) of every convolution op of this backend: the
    references and its fused kernels."""
    found = [(n, p) for n, p in ops.REFERENCE.items() if "/" in n]
    found += [(n, p) for n, p in backend.fused.items() if "/" in n]
    return [(name, pair.forward, pair.backward, (G, POOL_G) if "pool" in name else (G,))
            for name, pair in found if not (pair.applies and not pair.applies(G))]


def naive_conv(name, x, w, b, static):
    """The convolution pattern of op ``name`` (conv2d, conv_relu, conv_relu_pool) by the
    loops of reference.py, on (C, N, H, W) arrays like the ops: (y, backward(dy) -> (dx, dw,
    db))."""
    pattern, g = name.split("/")[0], static[0]
    xn = nchw(x).astype(np.float64)
    y = z = reference.conv_forward(xn, w, b, g)
    if pattern != "conv2d":
        y = z = reference.relu_forward(z)
    if pattern == "conv_relu_pool":
        y = reference.maxpool_forward(z, static[1])

    def backward(dy):
        d = nchw(dy).astype(np.float64)
        if pattern == "conv_relu_pool":
            d = reference.maxpool_backward(d, z, static[1])
        if pattern != "conv2d":
            d = reference.relu_backward(d, z)
        dx, dw, db = reference.conv_backward(d, xn, w, g)
        return cnhw(dx), dw, db
    return cnhw(y), backward


def check_convolutions(b, x, w, bias, dy_nan, rng, only_pool=False, expect_nan=True):
    """Every convolution op of backend ``b`` against its oracle: the naive loops for the
    numpy backend, the NumPy reference for the others.  dy_nan: where the gradient gets its
    NaN."""
    checked = 0
    for name, fwd, bwd, static in conv_ops(b):
        if only_pool and "pool" not in name:
            continue
        y, cache = fwd(*map(b.asarray, (x, w, bias)), *static, b)
        if b.name == "numpy":
            want, want_backward = naive_conv(name, x, w, bias, static)
        else:
            ref_fwd, ref_bwd = ops.reference_of(name)[:2]
            want, ref_cache = ref_fwd(x, w, bias, *static, REF)
            want_backward = lambda dy, ref_cache=ref_cache, ref_bwd=ref_bwd: ref_bwd(dy, ref_cache)
        same_nan_pattern(b.to_numpy(y), want, f"{name} forward")
        assert np.isnan(want).any() == expect_nan
        dy = with_nan(rng, want.shape, dy_nan)
        for got, wanted, part in zip(bwd(b.asarray(dy), cache), want_backward(dy),
                                     ("dx", "dw", "db")):
            same_nan_pattern(b.to_numpy(got), wanted, f"{name} {part}")
        checked += 1
    return checked


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
def test_convolutions(backend_name, rng):
    """One NaN pixel of one image, and a NaN in the gradient: every convolution op (numpy:
    the three references against the loops; the others: their ops and fused kernels against
    the NumPy reference)."""
    b = get_backend(backend_name)
    x = with_nan(rng, (2, 3, 9, 8), (1, 2, 4, 5))           # one NaN pixel of one image
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    assert check_convolutions(b, x, w, bias, (0, 1, 1, 1), rng) >= 3


@pytest.mark.filterwarnings("ignore:invalid value encountered")     # inf * 0, on purpose
@pytest.mark.parametrize("pixel", [(0, 7, 7), (1, 0, 3), (1, 3, 7), (2, 7, 0), (2, 0, 0)])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_the_first_layers_batch_pass_reads_no_pixel_the_reference_does_not(pixel, bad, rng):
    """The direct kernel's one-channel path runs one pass over a batch's phase planes laid
    image after image: entries between windows read pixels of the edge and of the next image.
    Their gradient is 0, and 0 times a NaN or an infinity is NaN: a NaN or an infinity at an
    image's edge must reach dw exactly where it reaches the reference's."""
    b = get_backend("numba")
    g, pool = window(8, 8, (3, 3), (1, 1), "same"), window(8, 8, (2, 2), (2, 2), "valid")
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    x[(0, *pixel)] = bad
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(2).astype(np.float32)
    pair = b.fused["conv_relu_pool/direct"]
    y, cache = pair.forward(x, w, bias, g, pool, b)
    assert cache.batched
    want, ref_cache = ops.reference_of("conv_relu_pool/direct")[0](x, w, bias, g, pool, REF)
    same_nan_pattern(y, want, "forward")
    dy = rng.standard_normal(want.shape).astype(np.float32)
    _, dw, db = pair.backward(dy, cache, need_dx=False)
    _, want_dw, want_db = ops.reference_of("conv_relu_pool/direct")[1](dy, ref_cache, False)
    same_nan_pattern(dw, want_dw, "dw")
    same_nan_pattern(db, want_db, "db")


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
def test_dead_units_send_a_nan_gradient_where_the_reference_does(backend_name, rng):
    """Windows whose four conv outputs are all negative (a dead unit: bias -100) tie at 0
    after the ReLU, so the pool's first position wins; a NaN in the gradient must follow it
    through every conv + ReLU + pool op (numpy: the reference against the loops; the others:
    every fused kernel against the NumPy reference)."""
    b = get_backend(backend_name)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    bias = np.full(4, -100, np.float32)
    assert check_convolutions(b, x, w, bias, (1, 0, 2, 1), rng, only_pool=True,
                              expect_nan=False) >= 1


def test_pool_activations_dense_loss_of_the_reference_match_the_loops(rng):
    """The NumPy reference of max-pool, ReLU, sigmoid, dense and softmax cross-entropy
    against the naive loops of reference.py, a NaN in the input and in the gradient."""
    g = window(6, 7, (2, 2), (2, 2), "valid")
    x = with_nan(rng, (2, 3, 6, 7), (0, 1, 2, 3))
    xn = nchw(x).astype(np.float64)
    y, cache = ops.maxpool_forward(x, g, REF)
    same_nan_pattern(y, cnhw(reference.maxpool_forward(xn, g)), "maxpool forward")
    dy = with_nan(rng, y.shape, (1, 0, 0, 0))
    same_nan_pattern(ops.maxpool_backward(dy, cache),
                     cnhw(reference.maxpool_backward(nchw(dy), xn, g)), "maxpool backward")
    for name, fwd, bwd, naive_fwd, naive_bwd in [
            ("relu", ops.relu_forward, ops.relu_backward, reference.relu_forward,
             reference.relu_backward),
            ("sigmoid", ops.sigmoid_forward, ops.sigmoid_backward, reference.sigmoid_forward,
             reference.sigmoid_backward)]:
        y, cache = fwd(x, REF)
        want = naive_fwd(x.astype(np.float64))
        same_nan_pattern(y, want, f"{name} forward")
        dy = with_nan(rng, y.shape, (1, 0, 0, 0))
        same_nan_pattern(bwd(dy, cache), naive_bwd(dy, want), f"{name} backward")
    xd, w = with_nan(rng, (3, 5), (1, 2)), rng.standard_normal((5, 4)).astype(np.float32)
    bias = np.zeros(4, np.float32)
    y, cache = ops.dense_forward(xd, w, bias, REF)
    same_nan_pattern(y, reference.dense_forward(xd, w, bias), "dense forward")
    dy = with_nan(rng, y.shape, (0, 3))
    for got, wanted, part in zip(ops.dense_backward(dy, cache),
                                 reference.dense_backward(dy, xd, w), ("dx", "dw", "db")):
        same_nan_pattern(got, wanted, f"dense {part}")
    logits = with_nan(rng, (4, 10), (2, 3))
    labels = np.array([1, 2, 3, 4])
    loss, d = ops.softmax_cross_entropy(logits, labels, REF)
    want_loss, want_d = reference.softmax_cross_entropy(logits.astype(np.float64), labels)
    assert np.isnan(loss) and np.isnan(want_loss)
    same_nan_pattern(d, want_d, "softmax cross-entropy gradient")


@pytest.mark.parametrize("backend_name", OTHER_BACKENDS)
def test_pool_activations_dense_loss(backend_name, rng):
    """The same ops on every other backend (its kernels, its fused loss) against the NumPy
    reference."""
    b = get_backend(backend_name)
    g = window(6, 7, (2, 2), (2, 2), "valid")
    x = with_nan(rng, (2, 3, 6, 7), (0, 1, 2, 3))
    for name, fwd, bwd, static in [("maxpool", ops.maxpool_forward, ops.maxpool_backward, (g,)),
                                   ("relu", ops.relu_forward, ops.relu_backward, ()),
                                   ("sigmoid", ops.sigmoid_forward, ops.sigmoid_backward, ())]:
        y, cache = fwd(b.asarray(x), *static, b)
        want, ref_cache = fwd(x, *static, REF)
        same_nan_pattern(b.to_numpy(y), want, f"{name} forward")
        dy = with_nan(rng, want.shape, (1, 0, 0, 0))
        same_nan_pattern(b.to_numpy(bwd(b.asarray(dy), cache)), bwd(dy, ref_cache),
                         f"{name} backward")
    xd, w, bias = with_nan(rng, (3, 5), (1, 2)), rng.standard_normal((5, 4)), np.zeros(4)
    y, _ = ops.dense_forward(*(b.asarray(a.astype(np.float32)) for a in (xd, w, bias)), b)
    same_nan_pattern(b.to_numpy(y), ops.dense_forward(xd, w, bias, REF)[0], "dense")
    logits = with_nan(rng, (4, 10), (2, 3))
    labels = np.array([1, 2, 3, 4])
    loss_fn = ops.resolve("softmax_cross_entropy", b)
    loss, d = loss_fn(b.asarray(logits), b.asarray(labels), b)
    want_loss, want_d = ops.softmax_cross_entropy(logits, labels, REF)
    assert np.isnan(loss) and np.isnan(want_loss)
    same_nan_pattern(b.to_numpy(d), want_d, "softmax cross-entropy gradient")


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
def test_a_model_fed_nan_reports_nan(backend_name):
    model = minicnn.lab_model(4, backend=backend_name)
    x = np.random.default_rng(0).random((6, 1, 28, 28), dtype=np.float32)
    x[3, 0, 10, 10] = np.nan
    loss, _ = model.train_step(model.backend.asarray(x), model.backend.asarray(np.arange(6)),
                               minicnn.SGD(0.1))
    assert np.isnan(loss)
    clean = np.zeros_like(x[:4])                 # no NaN of its own: only the weights can be
    assert np.isnan(model.evaluate(clean, np.arange(4))[0])


def test_divergence_check_rule():
    check = DivergenceCheck(window=3, growth=10)
    for loss in (2.3, 1.9, 2.5, 9.0, 0.4):      # noisy but learning: the mean stays below 23
        check(loss, 1, 1)
    with pytest.raises(NonFiniteLoss, match="the loss grew from 2.3 to"):
        for loss in (60.0, 80.0, 100.0):
            check(loss, 1, 2)
    with pytest.raises(NonFiniteLoss, match="the loss became nan in epoch 2, step 7"):
        DivergenceCheck()(float("nan"), 2, 7)


@pytest.mark.parametrize("lr", [1000.0, 1e30])
@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
def test_fit_stops_a_diverging_run_without_numpy_warnings(tmp_path, monkeypatch, recwarn,
                                                         backend_name, lr):
    """lr 1000 grows the loss tenfold (the growth rule stops it); lr 1e30 overflows within a
    step or two (inf, then NaN: the overflow, invalid and divide warnings NumPy would print
    on the way must not reach the user)."""
    from conftest import fake_mnist
    from minicnn.data import load_dataset
    fake_mnist(tmp_path, n_train=300, n_test=10, monkeypatch=monkeypatch)
    data = load_dataset("mnist", tmp_path, download=False, validation_size=50)
    model = minicnn.lab_model(4, backend=backend_name)
    with pytest.raises(NonFiniteLoss, match="epoch 1, step [1-9]\\b"):
        fit(model, minicnn.SGD(lr), data, epochs=2, batch_size=10)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
