"""Which layers the plan fuses (minicnn/nn/plan.py), and that fusing never changes the numbers.

Conv + ReLU + max-pool is fused only for a 2x2, stride-2, unpadded pool (what the fused
kernels compute): for the CIFAR-10 tutorial's MaxPool2D(3, 2, 'same'), MaxPool2D(2, 1),
MaxPool2D(2, 2, 'same') over an odd input and AvgPool2D(2) the pool is its own step, and
each model equals the same model built with fuse=False (forward, parameter and input
gradients) on numpy, numba and cudasim.  Also: 'auto' never picks a convolution algorithm
for a stride it cannot run (stride (1, 2) with a 3x3 kernel gives im2col on numba, and the
model trains as on the numpy backend).
"""
import numpy as np
import pytest

import minicnn
from minicnn.gradcheck import rel_error
from minicnn.nn.layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU
from minicnn.nn.model import Sequential
from minicnn.nn.presets import PRESETS
from minicnn.ops import algorithms

CPU = ["numpy", "numba", "cudasim"]

# (id, the first pool, input (C, H, W), the name of the first pool's step)
CASES = [
    ("3x3s2same", lambda: MaxPool2D(3, 2, padding="same"), (2, 9, 9), "maxpool2d"),
    ("2x2s1", lambda: MaxPool2D(2, 1), (2, 9, 9), "maxpool2d"),
    ("2x2s2same-odd", lambda: MaxPool2D(2, 2, padding="same"), (2, 9, 9), "maxpool2d"),
    ("avg2x2", lambda: AvgPool2D(2), (2, 8, 8), "avgpool2d"),
]


def layers_with(pool):
    """conv+ReLU+<pool>, then conv+ReLU+2x2/2 max-pool (the fusable one), then dense."""
    return [Conv2D(4, 3, padding="same"), ReLU(), pool,
            Conv2D(3, 3, padding="same"), ReLU(), MaxPool2D(2), Flatten(), Dense(3)]


def build(make_pool, shape, backend, fuse):
    return Sequential(layers_with(make_pool()), shape, backend=backend, dtype="float64",
                      seed=6, fuse=fuse)


@pytest.mark.parametrize("backend_name", CPU)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_only_the_2x2_stride_2_pool_is_fused(case, backend_name):
    _, make_pool, shape, pool_step = case
    model = build(make_pool, shape, backend_name, fuse=True)
    second_pool = "maxpool2d_1" if pool_step == "maxpool2d" else "maxpool2d"
    names = [s.name for s in model.plan]
    # the conv and its ReLU are one step where the algorithm has a conv+ReLU kernel (numba's
    # direct convolution, auto's choice for two input channels, has none): never the pool
    before = names[:names.index(pool_step)]
    assert before == (["conv2d+relu"] if backend_name != "numba" else ["conv2d", "relu"])
    assert names[len(before):] == [pool_step, f"conv2d_1+relu_1+{second_pool}", "flatten",
                                   "dense"]
    unfused = build(make_pool, shape, backend_name, fuse=False)
    assert [s.name for s in unfused.plan] == [
        "conv2d", "relu", pool_step, "conv2d_1", "relu_1", second_pool, "flatten", "dense"]


@pytest.mark.parametrize("backend_name", CPU)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fused_model_equals_the_unfused_one(case, backend_name):
    _, make_pool, shape, _ = case
    fused, plain = (build(make_pool, shape, backend_name, fuse) for fuse in (True, False))
    backend = fused.backend
    np.testing.assert_array_equal(backend.to_numpy(fused.flat_params),
                                  backend.to_numpy(plain.flat_params))
    rng = np.random.default_rng(2)
    x = backend.asarray(rng.standard_normal((3, *shape)))
    labels = backend.asarray(rng.integers(0, 3, 3))
    out = []
    for model in (fused, plain):
        loss, dlogits, logits = model.loss(x, labels)
        dx = model.backward(dlogits)
        out.append((loss, backend.to_numpy(logits), backend.to_numpy(model.flat_grads).copy(),
                    backend.to_numpy(dx)))
    (l1, y1, g1, dx1), (l2, y2, g2, dx2) = out
    assert l1 == pytest.approx(l2, rel=1e-12)
    assert rel_error(y1, y2) < 1e-12
    assert rel_error(g1, g2) < 1e-12 and np.abs(g1).max() > 0
    assert rel_error(dx1, dx2) < 1e-12 and np.abs(dx1).max() > 0


@pytest.mark.parametrize("padding", ["valid", 0, (0, 0)])
def test_an_unpadded_2x2_stride_2_pool_is_fused(padding):
    model = Sequential([Conv2D(2, 3), ReLU(), MaxPool2D(2, 2, padding=padding), Flatten(),
                        Dense(3)], (1, 8, 8))
    assert model.plan[0].name == "conv2d+relu+maxpool2d"
    assert model.plan[0].algorithm == "im2col"


def test_the_cifar10_tutorial_pools_are_their_own_steps():
    preset = PRESETS["cifar10-tutorial"]
    model = Sequential(preset.layers(), preset.input_shape)
    assert [s.name for s in model.plan] == [
        "conv2d+relu", "maxpool2d", "localresponsenorm", "conv2d_1+relu_1",
        "localresponsenorm_1", "maxpool2d_1", "flatten", "dense", "relu_2", "dense_1",
        "relu_3", "dense_2"]


def test_a_pool_after_a_conv_without_relu_is_not_fused():
    model = Sequential([Conv2D(2, 3), MaxPool2D(2), Flatten(), Dense(3)], (1, 8, 8))
    assert [s.name for s in model.plan] == ["conv2d", "maxpool2d", "flatten", "dense"]


# -- the algorithm 'auto' picks for strides ------------------------------------------------------
def strided_layers():
    """One input channel (auto would pick direct at stride 1) and four channels with a 3x3
    kernel (winograd at stride 1): both strided, both must be im2col."""
    return [Conv2D(4, 3, stride=(1, 2)), ReLU(), MaxPool2D(2),
            Conv2D(3, 3, stride=(2, 1), padding="same"), ReLU(), Flatten(), Dense(3)]


def test_auto_picks_im2col_for_strides_it_cannot_run_otherwise():
    numba = Sequential(strided_layers(), (1, 8, 9), backend="numba", dtype="float64", seed=1)
    assert [(s.name, s.algorithm) for s in numba.plan if s.algorithm] == [
        ("conv2d+relu+maxpool2d", "im2col"), ("conv2d_1+relu_1", "im2col")]
    # the same layers at stride 1 would get the other algorithms: the stride is the reason
    unstrided = Sequential([Conv2D(4, 3), ReLU(), MaxPool2D(2), Conv2D(3, 3, padding="same"),
                            ReLU(), Flatten(), Dense(3)], (1, 8, 9), backend="numba")
    assert [s.algorithm for s in unstrided.plan if s.algorithm] == ["direct", "winograd"]
    for conv in numba.layers:
        if isinstance(conv, Conv2D):
            assert algorithms.why_not("direct", conv.g) is not None
            assert algorithms.why_not("winograd", conv.g) is not None


def test_strided_conv_on_numba_trains_as_on_numpy():
    models = [Sequential(strided_layers(), (1, 8, 9), backend=b, dtype="float64", seed=1)
              for b in ("numpy", "numba")]
    rng = np.random.default_rng(4)
    optimizers = [minicnn.SGD(0.2, momentum=0.9) for _ in models]
    for _ in range(3):
        x = rng.standard_normal((5, 1, 8, 9))
        y = rng.integers(0, 3, 5)
        losses = [m.train_step(x, y, o)[0] for m, o in zip(models, optimizers)]
        assert losses[1] == pytest.approx(losses[0], rel=1e-12)
    np.testing.assert_allclose(models[1].flat_params, models[0].flat_params, rtol=0,
                               atol=1e-12)
    assert not np.allclose(models[0].flat_params,
                           Sequential(strided_layers(), (1, 8, 9), dtype="float64",
                                      seed=1).flat_params)


@pytest.mark.parametrize("algorithm", ["direct", "winograd"])
def test_naming_an_algorithm_that_cannot_run_the_stride_is_refused(algorithm):
    with pytest.raises(ValueError, match=f"{algorithm}.*stride"):
        Sequential([Conv2D(4, 3, stride=(1, 2), algorithm=algorithm), Flatten(), Dense(2)],
                   (4, 8, 9), backend="numba")
