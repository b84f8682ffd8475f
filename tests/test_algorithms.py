"""Every convolution algorithm a backend has, alone and fused with ReLU and the 2x2 pool:
against naive loops, against finite differences (float64), and the choices auto makes."""
import numpy as np
import pytest

import minicnn
import reference
from conftest import CPU_BACKENDS, cnhw, nchw
from minicnn import ops
from minicnn.ops import algorithms
from minicnn.nn.presets import PRESETS
from minicnn.backend import get_backend
from minicnn.ops.geometry import window
from minicnn.gradcheck import numerical_gradient, rel_error

# (N, C, H, W), filters, kernel, padding: stride 1 (what direct and Winograd need), odd sizes
CASES = [((2, 1, 9, 7), 3, 3, "same"), ((1, 3, 8, 11), 2, 3, "valid"),
         ((3, 2, 7, 7), 4, 3, (2, 2)), ((2, 2, 10, 9), 3, 2, "same"),
         ((1, 4, 6, 5), 2, 5, (1, 1))]


def entries():
    """(backend, algorithm, pattern) for every algorithm of every CPU backend."""
    params = []
    for name in CPU_BACKENDS:
        for algorithm in algorithms.available(get_backend(name)):
            for pattern in ("conv2d", "conv_relu_pool"):
                params.append(pytest.param(name, algorithm, pattern,
                                           id=f"{name}-{algorithm}-{pattern}"))
    return params


def pair_and_inputs(backend_name, algorithm, pattern, case, rng):
    b = get_backend(backend_name)
    x_shape, f, k, padding = case
    g = window(*x_shape[2:], (k, k), (1, 1), padding)
    pool_g = window(g.oh, g.ow, (2, 2), (2, 2), "valid") if min(g.oh, g.ow) >= 2 else None
    pair = ops.resolve(f"{pattern}/{algorithm}", b, g)
    if algorithms.why_not(algorithm, g) or pair is None or (pattern != "conv2d" and pool_g is None):
        pytest.skip(f"{pattern}/{algorithm} does not apply here")
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((f, x_shape[1], k, k))
    bias = rng.standard_normal(f) * 0.1
    static = (g,) if pattern == "conv2d" else (g, pool_g)
    return b, pair, static, x, w, bias, g, pool_g


def naive(pattern, x, w, bias, g, pool_g):
    """The oracle: reference loops in NCHW, ReLU and pool written out."""
    y = reference.conv_forward(x, w, bias, g)
    if pattern == "conv2d":
        return y
    return reference.maxpool_forward(np.maximum(y, 0), pool_g)


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("backend_name,algorithm,pattern", entries())
def test_matches_naive_loops(backend_name, algorithm, pattern, case, rng):
    b, pair, static, x, w, bias, g, pool_g = pair_and_inputs(backend_name, algorithm, pattern,
                                                             case, rng)
    y, cache = pair.forward(b.asarray(cnhw(x)), b.asarray(w), b.asarray(bias), *static, b)
    want = naive(pattern, x, w, bias, g, pool_g)
    np.testing.assert_allclose(nchw(b.to_numpy(y)), want, rtol=1e-10, atol=1e-10)
    if pattern == "conv2d":    # backward against the loops too (the pooled one: next test)
        dy = rng.standard_normal(want.shape)
        dx, dw, db = pair.backward(b.asarray(cnhw(dy)), cache)
        for got, wanted in zip((nchw(b.to_numpy(dx)), dw, db),
                               reference.conv_backward(dy, x, w, g)):
            np.testing.assert_allclose(b.to_numpy(got), wanted, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES[:3], ids=[str(c) for c in CASES[:3]])
@pytest.mark.parametrize("backend_name,algorithm,pattern", entries())
def test_finite_differences(backend_name, algorithm, pattern, case, rng):
    b, pair, static, x, w, bias, g, pool_g = pair_and_inputs(backend_name, algorithm, pattern,
                                                             case, rng)
    x, w, bias = b.asarray(cnhw(x)), b.asarray(w), b.asarray(bias)
    y, cache = pair.forward(x, w, bias, *static, b)
    if pattern != "conv2d":      # keep the pre-activations and the pool's maxima clear of kinks
        pre = b.to_numpy(ops.conv2d_forward(x, w, bias, g, b)[0])
        if np.min(np.abs(pre)) < 1e-3:
            pytest.skip("a pre-activation too close to ReLU's kink for finite differences")
    dy = b.asarray(rng.standard_normal(y.shape))
    grads = pair.backward(dy, cache)
    f = lambda: pair.forward(x, w, bias, *static, b)[0]
    for arr, analytic in zip((x, w, bias), grads):
        err = rel_error(numerical_gradient(f, arr, dy, to_numpy=b.to_numpy), b.to_numpy(analytic))
        assert err < 1e-6, f"relative error {err:.2e}"


def test_auto_choices_follow_the_rules():
    model = minicnn.lab_model(64, backend="numba")
    assert algorithms.available(model.backend) == ["im2col", "direct", "winograd"]
    # 1 input channel: direct; 64 channels, 3x3 stride 1: winograd
    assert [step.algorithm for step in model.plan[:2]] == ["direct", "winograd"]
    assert [s.algorithm for s in minicnn.lab_model(16, backend="numpy").plan[:2]] == ["im2col"] * 2


@pytest.mark.parametrize("channels,expected", [
    (algorithms.DIRECT_MAX_CHANNELS, "direct"), (algorithms.DIRECT_MAX_CHANNELS + 1, "winograd"),
    (algorithms.WINOGRAD_MIN_CHANNELS, "winograd"), (algorithms.WINOGRAD_MIN_CHANNELS - 1,
                                                     "direct")])
def test_auto_at_the_edges_of_its_channel_rules(channels, expected):
    model = minicnn.Sequential([minicnn.Conv2D(4, 3, padding="same"), minicnn.Flatten(),
                                minicnn.Dense(2)], (channels, 6, 6), backend="numba")
    assert model.plan[0].algorithm == expected


@pytest.mark.parametrize("channels,expected", [
    (1, "im2col"), (algorithms.DIRECT_MAX_CHANNELS, "im2col"),
    (algorithms.WINOGRAD_5X5_MIN_CHANNELS - 1, "im2col"),
    (algorithms.WINOGRAD_5X5_MIN_CHANNELS, "winograd")])
def test_auto_for_5x5_kernels(channels, expected):
    """Winograd F(4x4, 5x5) from WINOGRAD_5X5_MIN_CHANNELS input channels, im2col below, and
    at one or two channels too (direct is for 3x3 kernels)."""
    model = minicnn.Sequential([minicnn.Conv2D(4, 5, padding="same"), minicnn.Flatten(),
                                minicnn.Dense(2)], (channels, 8, 8), backend="numba")
    assert model.plan[0].algorithm == expected


def test_tutorial_models_take_winograd_for_their_5x5_layers():
    """tf-mnist's second convolution (32 channels) and cifar10's (64); the first ones (1 and 3
    input channels, 5x5): im2col."""
    models = [minicnn.Sequential(PRESETS[name].layers(), PRESETS[name].input_shape,
                                 backend="numba")
              for name in ("tf-mnist-tutorial", "cifar10-tutorial")]
    convs = [[s.algorithm for s in m.plan if "conv" in s.name] for m in models]
    assert convs == [["im2col", "winograd"], ["im2col", "winograd"]]
    # cifar10's second convolution and its ReLU run as one Winograd step (conv_relu/winograd)
    assert [s.name for s in models[1].plan if s.algorithm == "winograd"] == ["conv2d_1+relu_1"]


@pytest.mark.parametrize("layer,match", [
    (minicnn.Conv2D(4, 7, padding="same", algorithm="winograd"),
     "conv2d: algorithm 'winograd' cannot run this layer: it needs a 3x3 or 5x5 kernel with "
     "stride 1, this layer has a 7x7 kernel"),
    (minicnn.Conv2D(4, 3, stride=2, algorithm="winograd"),
     "needs a 3x3 or 5x5 kernel with stride 1"),
    (minicnn.Conv2D(4, 5, stride=2, algorithm="winograd"), "this layer has a 5x5 kernel with "
                                                           "stride 2x2"),
    (minicnn.Conv2D(4, 3, stride=2, algorithm="direct"),
     "conv2d: algorithm 'direct' cannot run this layer: it needs stride 1"),
])
def test_forcing_an_algorithm_that_cannot_run_names_the_layer(layer, match):
    with pytest.raises(ValueError, match=match):
        minicnn.Sequential([layer, minicnn.Flatten(), minicnn.Dense(2)], (1, 12, 12),
                           backend="numba")


def test_forcing_an_algorithm_the_backend_lacks():
    with pytest.raises(ValueError, match="algorithm 'direct' is not available on backend "
                                         "'numpy' \\(it has: im2col\\)"):
        minicnn.Sequential([minicnn.Conv2D(2, 3, algorithm="direct")], (1, 5, 5))


def test_summary_names_each_algorithm(capsys):
    model = minicnn.lab_model(8, backend="numba", algorithm="im2col")
    assert [s.algorithm for s in model.plan[:2]] == ["im2col", "im2col"]
    text = model.summary(print_fn=None)
    assert sum(line.rstrip().endswith("im2col") for line in text.splitlines()) == 2
