"""The ready-made models (minicnn/nn/presets.py, --arch NAME).

Every preset's parameter count written out as a number; the cifar10-tutorial network's
exact layer settings (LRN 4, 1.0, 0.001/9, 0.75; 3x3 stride-2 'same' pools giving 12x12
then 6x6; truncated-normal stddevs and constant biases of TensorFlow's cifar10.py; weight
decay 0.004 on the two hidden dense layers only); ``python -m minicnn.train --arch list``
printing each preset with its count; and the presets' training defaults applying unless a
flag overrides them (build_parser + apply_defaults).
"""
import math

import numpy as np
import pytest

import minicnn
import minicnn.train
from conftest import run_module
from minicnn.nn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid
from minicnn.nn.model import Sequential
from minicnn.nn.presets import PRESETS
from minicnn.nn.regularization import Dropout, LocalResponseNorm
from minicnn.nn.spec import parse_arch

COUNTS = {
    "lab": 104_250,
    "tf-mnist-tutorial": 3_274_634,
    "cifar10-tutorial": 1_068_298,
    "keras-1": 207_178,
    "keras-2": 449_482,
    "keras-3": 440_906,
    "keras-deep-light": 57_122,
}


def build(name, **kwargs):
    preset = PRESETS[name]
    return Sequential(preset.layers(), preset.input_shape, **kwargs)


def test_every_preset_is_counted_here():
    assert set(PRESETS) == set(COUNTS)


@pytest.mark.parametrize("name", list(COUNTS))
def test_parameter_count(name):
    model = build(name)
    assert model.num_params() == COUNTS[name]
    assert model.output_shape == (10,)
    # and the same model through --arch NAME (case and spaces ignored)
    layers = parse_arch(f" {name.upper()} ")
    assert Sequential(layers, PRESETS[name].input_shape).num_params() == COUNTS[name]


def test_input_shapes():
    assert PRESETS["cifar10-tutorial"].input_shape == (3, 24, 24)
    assert all(p.input_shape == (1, 28, 28) for n, p in PRESETS.items()
               if n != "cifar10-tutorial")


def test_lab_preset_is_the_lab_model_and_takes_its_width():
    a, b = build("lab", seed=0), minicnn.lab_model(seed=0)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    wide = Sequential(parse_arch("lab", filters=32, units=64), (1, 28, 28))
    assert wide.num_params() == (9 * 32 + 32) + (9 * 32 * 32 + 32) + (7 * 7 * 32 * 64 + 64) + (
        64 * 10 + 10)


def test_tf_mnist_tutorial_layers():
    layers = build("tf-mnist-tutorial").layers
    types = [type(l) for l in layers]
    assert types == [Conv2D, ReLU, MaxPool2D, Conv2D, ReLU, MaxPool2D, Flatten, Dense, ReLU,
                     Dropout, Dense]
    assert [l.kernel_size for l in layers if isinstance(l, Conv2D)] == [(5, 5), (5, 5)]
    assert [l.padding for l in layers if isinstance(l, Conv2D)] == ["same", "same"]
    assert layers[9].rate == 0.4 and layers[7].units == 1024


# -- the CIFAR-10 tutorial ------------------------------------------------------------------
@pytest.fixture(scope="module")
def cifar():
    return build("cifar10-tutorial", seed=0, dtype="float64")


def test_cifar10_tutorial_layer_types_and_shapes(cifar):
    types = [type(l).__name__ for l in cifar.layers]
    assert types == ["Conv2D", "ReLU", "MaxPool2D", "LocalResponseNorm", "Conv2D", "ReLU",
                     "LocalResponseNorm", "MaxPool2D", "Flatten", "Dense", "ReLU", "Dense",
                     "ReLU", "Dense"]
    shapes = [l.output_shape for l in cifar.layers]
    assert shapes == [(64, 24, 24), (64, 24, 24), (64, 12, 12), (64, 12, 12), (64, 12, 12),
                      (64, 12, 12), (64, 12, 12), (64, 6, 6), (2304,), (384,), (384,), (192,),
                      (192,), (10,)]


def test_cifar10_tutorial_lrn_and_pools(cifar):
    lrns = [l for l in cifar.layers if isinstance(l, LocalResponseNorm)]
    assert len(lrns) == 2
    for l in lrns:
        assert (l.depth_radius, l.bias, l.alpha, l.beta) == (4, 1.0, 0.001 / 9.0, 0.75)
    pools = [l for l in cifar.layers if isinstance(l, MaxPool2D)]
    assert len(pools) == 2
    for l in pools:
        assert (l.pool_size, l.stride, l.padding) == ((3, 3), (2, 2), "same")
    assert [(p.g.oh, p.g.ow) for p in pools] == [(12, 12), (6, 6)]
    # TensorFlow's 'same': 24 -> ceil(24/2) = 12 needs (12-1)*2+3-24 = 1 row of padding, at
    # the bottom/right
    g = pools[0].g
    assert (g.pad_top, g.pad_bottom, g.pad_left, g.pad_right) == (0, 1, 0, 1)
    convs = [l for l in cifar.layers if isinstance(l, Conv2D)]
    assert [(c.filters, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (64, (5, 5), (1, 1), "same")] * 2


def truncated_std(stddev):
    phi2 = math.exp(-2) / math.sqrt(2 * math.pi)
    return stddev * math.sqrt(1 - 4 * phi2 / math.erf(2 / math.sqrt(2)))


def test_cifar10_tutorial_initialisers_and_weight_decay(cifar):
    weighted = [l for l in cifar.layers if isinstance(l, (Conv2D, Dense))]
    stddevs = [5e-2, 5e-2, 0.04, 0.04, 1 / 192.0]
    biases = [0.0, 0.1, 0.1, 0.1, 0.0]
    decays = [0.0, 0.0, 0.004, 0.004, 0.0]
    assert [l.kernel_initializer for l in weighted] == [
        {"type": "truncated_normal", "stddev": s} for s in stddevs]
    assert [l.weight_decay for l in weighted] == decays
    assert [l.decayed() for l in weighted] == [{}, {}, {"w": 0.004}, {"w": 0.004}, {}]
    for layer, stddev, bias in zip(weighted, stddevs, biases):
        w, b = layer.params["w"], layer.params["b"]
        np.testing.assert_array_equal(b, np.full(b.shape, bias))
        assert np.abs(w).max() <= 2 * stddev
        assert w.std() == pytest.approx(truncated_std(stddev), rel=0.05)
    # the penalty evaluate() adds: 0.004 / 2 * sum(w^2) of the two hidden dense layers only
    x = np.zeros((1, 3, 24, 24))
    data_loss = cifar.loss(x, [0])[0]
    penalty = sum(0.002 * float(np.sum(l.params["w"] ** 2)) for l in weighted[2:4])
    assert cifar.evaluate(x, [0])[0] == pytest.approx(data_loss + penalty, rel=1e-12)


def test_cifar10_tutorial_saves_its_settings(cifar, tmp_path):
    cifar.save(tmp_path / "m.npz")
    loaded = minicnn.load(tmp_path / "m.npz")
    assert loaded.architecture() == cifar.architecture()
    np.testing.assert_array_equal(loaded.flat_params, cifar.flat_params)


def test_keras_models_use_sigmoid_dense_layers():
    for name, hidden in (("keras-1", [128]), ("keras-2", [256, 128]), ("keras-3", [256, 128])):
        layers = build(name).layers
        assert [l.units for l in layers if isinstance(l, Dense)] == hidden + [10]
        assert sum(isinstance(l, Sigmoid) for l in layers) == len(hidden)
    deep = build("keras-deep-light").layers
    assert [c.stride for c in deep if isinstance(c, Conv2D)] == [(1, 1), (2, 2), (1, 1),
                                                                 (2, 2), (1, 1)]
    assert not any(isinstance(l, MaxPool2D) for l in deep)


# -- the command line ----------------------------------------------------------------------------
def test_arch_list_prints_every_preset_with_its_count():
    result = run_module("minicnn.train", "--arch", "list", data=False, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name, count in COUNTS.items():
        row = [line for line in lines if line.split() and line.split()[0] == name]
        assert len(row) == 1, f"{name} not listed once:\n{result.stdout}"
        assert f"{count:,}" in row[0].split(), row[0]
    assert "3x24x24" in next(l for l in lines if l.startswith("cifar10-tutorial"))
    assert "staircase:0.1:350" in result.stdout and "ema=0.9999" in result.stdout
    assert result.stderr == ""


def settings(*argv):
    return minicnn.train.apply_defaults(minicnn.train.build_parser().parse_args(list(argv)))


def test_preset_training_defaults_apply():
    args = settings("--arch", "tf-mnist-tutorial")
    assert (args.batch_size, args.lr, args.epochs, args.dataset) == (100, 0.001, 10, "mnist")
    assert args.lr_schedule == "constant" and args.ema is None and args.optimizer == "sgd"
    args = settings("--arch", "keras-2")
    assert (args.epochs, args.batch_size, args.lr) == (50, 100, 0.05)
    args = settings("--arch", "cifar10-tutorial")
    assert (args.dataset, args.batch_size, args.lr, args.lr_schedule, args.ema) == (
        "cifar10", 128, 0.1, "staircase:0.1:350", 0.9999)
    for key, value in PRESETS["cifar10-tutorial"].defaults.items():
        assert getattr(args, key) == value, key
    args = settings("--arch", " Keras-Deep-Light ")          # the name as --arch reads it
    assert (args.epochs, args.batch_size, args.lr) == (50, 100, 0.05)


def test_flags_override_preset_defaults():
    args = settings("--arch", "tf-mnist-tutorial", "--lr", "0.05", "--epochs", "3")
    assert (args.lr, args.epochs, args.batch_size) == (0.05, 3, 100)
    args = settings("--arch", "cifar10-tutorial", "--lr-schedule", "constant", "--ema", "0.99",
                    "--batch-size", "32", "--dataset", "mnist")
    assert (args.lr_schedule, args.ema, args.batch_size, args.dataset, args.lr) == (
        "constant", 0.99, 32, "mnist", 0.1)
    args = settings("--arch", "keras-1", "--batch-size", "7")
    assert (args.epochs, args.batch_size, args.lr) == (50, 7, 0.05)


def test_no_preset_means_the_plain_defaults():
    for argv in ([], ["--arch", "lab"], ["--arch", "conv:4:3,relu,dense:10"]):
        args = settings(*argv)
        assert (args.epochs, args.lr, args.batch_size, args.dataset, args.lr_schedule,
                args.ema, args.optimizer) == (10, 0.1, 50, "mnist", "constant", None, "sgd")
