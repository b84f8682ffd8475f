"""Sequential: parameter counts, the summary, the plan of steps, initialisation, the flat
parameter buffers, and learning (a small model overfits 20 samples with each optimizer, on
every backend).  Saving and loading: test_model_file.py; the optimizers' formulas:
test_optim.py."""
import numpy as np
import pytest

import minicnn
from minicnn import SGD, Adam, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid

LAB_PARAMS = {8: 52_258, 16: 104_250, 32: 211_690, 64: 440_394, 128: 953_098, 256: 2_199_690}


@pytest.mark.parametrize("filters", sorted(LAB_PARAMS))
def test_lab_model_parameter_counts(filters):
    model = minicnn.lab_model(filters)
    assert model.num_params() == LAB_PARAMS[filters]
    assert model.output_shape == (10,)


def test_summary_lists_layers_shapes_and_totals(capsys):
    text = minicnn.lab_model(16).summary()
    assert text in capsys.readouterr().out
    lines = text.splitlines()
    assert any("conv2d (Conv2D)" in l and "(None, 16, 28, 28)" in l and "160" in l
               and l.rstrip().endswith("im2col") for l in lines)
    assert any("conv2d_1 (Conv2D)" in l and "(None, 16, 14, 14)" in l and "2,320" in l
               for l in lines)
    assert any("maxpool2d_1" in l and "(None, 16, 7, 7)" in l for l in lines)
    assert any("dense (Dense)" in l and "100,480" in l for l in lines)
    assert "Total params: 104,250" in text


def small_model(backend="numpy", dtype="float32", seed=0):
    return Sequential([Conv2D(4, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(6, 3, stride=2),
                       Sigmoid(), Flatten(), Dense(16), ReLU(), Dense(10)],
                      input_shape=(1, 12, 11), backend=backend, dtype=dtype, seed=seed)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = small_model(seed=1), small_model(seed=1), small_model(seed=2)
    for (_, pa), (_, pb), (_, pc) in zip(a.params(), b.params(), c.params()):
        np.testing.assert_array_equal(pa, pb)
        if pa.ndim > 1:
            assert not np.array_equal(pa, pc)


def test_glorot_uniform_initialisation():
    params = dict(minicnn.lab_model(64, seed=0).params())
    for name, fan_in, fan_out in [("dense.w", 3136, 128), ("conv2d_1.w", 64 * 9, 64 * 9)]:
        limit = np.sqrt(6 / (fan_in + fan_out))
        w = params[name]
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
        assert w.std() == pytest.approx(limit / np.sqrt(3), rel=0.02)
    assert np.all(params["dense.b"] == 0)


@pytest.mark.parametrize("make_optimizer", [lambda: SGD(0.3), lambda: SGD(0.05, momentum=0.9),
                                            lambda: Adam(0.01)], ids=["sgd", "momentum", "adam"])
def test_small_model_overfits_20_samples(backend, make_optimizer):
    optimizer = make_optimizer()        # a fresh state for each backend
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.random((20, 1, 12, 11)).astype(np.float32))
    y = backend.asarray(np.arange(20) % 10)
    model = small_model(backend.name)
    for _ in range(300):
        model.train_step(x, y, optimizer)
    assert (model.predict(x) == backend.to_numpy(y)).mean() == 1.0


def test_plan_is_public_and_names_its_steps():
    model = minicnn.lab_model(8)
    assert [step.name for step in model.plan] == [
        "conv2d+relu+maxpool2d", "conv2d_1+relu_1+maxpool2d_1", "flatten", "dense", "relu_2",
        "dense_1"]
    assert [step.algorithm for step in model.plan][:2] == ["im2col", "im2col"]
    assert all(step.algorithm is None for step in model.plan[2:])


def test_parameters_live_in_one_flat_buffer():
    model = small_model()
    assert model.flat_params.size == model.num_params() == sum(p.size for _, p in model.params())
    for (name, p), (_, g) in zip(model.params(), model.grads()):
        assert np.shares_memory(p, model.flat_params) and np.shares_memory(g, model.flat_grads)
    model.flat_params[:] = 7
    assert all(np.all(p == 7) for _, p in model.params())
