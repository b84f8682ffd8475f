"""NaN is never hidden: every op and every fused kernel on every backend propagates it exactly
where the NumPy reference does, a model fed NaN reports a NaN loss, and training stops."""
import numpy as np
import pytest

import minicnn
from conftest import ALL_BACKENDS, CPU_BACKENDS
from minicnn import ops
from minicnn.backend import get_backend
from minicnn.ops.geometry import window
from minicnn.nn.fit import DivergenceCheck, NonFiniteLoss, fit

REF = get_backend("numpy")
G = window(9, 8, (3, 3), (1, 1), "same")
POOL_G = window(9, 8, (2, 2), (2, 2), "valid")


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


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
def test_convolutions(backend_name, rng):
    b = get_backend(backend_name)
    x = with_nan(rng, (2, 3, 9, 8), (1, 2, 4, 5))           # one NaN pixel of one image
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    for name, fwd, bwd, static in conv_ops(b):
        ref_fwd, ref_bwd = ops.reference_of(name)[:2]
        y, cache = fwd(*map(b.asarray, (x, w, bias)), *static, b)
        want, ref_cache = ref_fwd(x, w, bias, *static, REF)
        same_nan_pattern(b.to_numpy(y), want, f"{name} forward")
        assert np.isnan(want).any()
        dy = with_nan(rng, want.shape, (0, 1, 1, 1))          # and a NaN in the gradient
        for got, wanted, part in zip(bwd(b.asarray(dy), cache), ref_bwd(dy, ref_cache),
                                     ("dx", "dw", "db")):
            same_nan_pattern(b.to_numpy(got), wanted, f"{name} {part}")


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
def test_pool_activations_dense_loss(backend_name, rng):
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


@pytest.mark.parametrize("backend_name", ALL_BACKENDS)
def test_dead_units_send_a_nan_gradient_where_the_reference_does(backend_name, rng):
    """Windows whose four conv outputs are all negative (a dead unit: bias -100) tie at 0
    after the ReLU, so the pool's first position wins; a NaN in the gradient must follow it
    through every fused conv + ReLU + pool kernel."""
    b = get_backend(backend_name)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    bias = np.full(4, -100, np.float32)
    for name, fwd, bwd, static in conv_ops(b):
        if "pool" not in name:
            continue
        ref_fwd, ref_bwd = ops.reference_of(name)[:2]
        y, cache = fwd(*map(b.asarray, (x, w, bias)), *static, b)
        want, ref_cache = ref_fwd(x, w, bias, *static, REF)
        dy = with_nan(rng, want.shape, (1, 0, 2, 1))
        for got, wanted, part in zip(bwd(b.asarray(dy), cache), ref_bwd(dy, ref_cache),
                                     ("dx", "dw", "db")):
            same_nan_pattern(b.to_numpy(got), wanted, f"{name} {part}")
