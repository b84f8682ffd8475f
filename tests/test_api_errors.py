"""Mistakes made through the Python API: bad constructor arguments of the layers, optimizers
and Sequential, architectures that cannot be built, a model too large for this machine, and
batches of the wrong shape, dtype or type or with labels out of range.  Each raises
ValueError or TypeError (MemoryError for the size) naming the layer or the call and what was
expected, before anything runs or changes.  The same mistakes on the command line:
test_cli_faults.py; model files that cannot be used: test_model_file.py."""
import numpy as np
import pytest

import minicnn
from minicnn import SGD, Adam, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential


def lab():
    return minicnn.lab_model(8)


@pytest.mark.parametrize("make,match", [
    (lambda: Conv2D(0, 3), "Conv2D: filters must be a positive int, got 0"),
    (lambda: Conv2D(4, -1), "Conv2D: kernel_size must be a positive int or a pair"),
    (lambda: Conv2D(4, 3, stride=0), "Conv2D: stride must be a positive int or a pair"),
    (lambda: Conv2D(4, 3, padding="full"), "Conv2D: padding must be 'valid', 'same'"),
    (lambda: Conv2D(4, 3, padding=-1), "Conv2D: padding must be >= 0"),

    (lambda: MaxPool2D(0), "MaxPool2D: pool_size must be a positive int"),
    (lambda: MaxPool2D(2, padding="reflect"), "MaxPool2D: padding must be 'valid', 'same'"),
    (lambda: MaxPool2D(2, padding=2), "MaxPool2D: padding 2 must be smaller"),
    (lambda: Dense(0), "Dense: units must be a positive int, got 0"),
    (lambda: SGD(0), "SGD: lr must be a positive finite number, got 0"),
    (lambda: SGD(float("nan")), "SGD: lr must be"),
    (lambda: SGD(0.1, momentum=1.0), r"SGD: momentum must be in \[0, 1\), got 1.0"),
    (lambda: Adam(beta1=1.5), r"Adam: beta1 must be in \[0, 1\)"),
    (lambda: Conv2D(4, 3, algorithm="fft"), "Conv2D: algorithm must be one of"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_int_sizes_are_type_errors():
    with pytest.raises(TypeError, match="Conv2D: filters must be a positive int, got 2.5"):
        Conv2D(2.5, 3)
    with pytest.raises(TypeError, match=r"Conv2D: kernel_size must be a positive int or a pair "
                                        r"of them, got \(3, 3, 3\)"):
        Conv2D(4, (3, 3, 3))


@pytest.mark.parametrize("layers,shape,match", [
    ([Conv2D(2, 5)], (1, 4, 9), "conv2d: window 5 is larger than the padded input 4 along H"),
    ([Conv2D(2, 4, padding=1)], (1, 9, 1), "conv2d: window 4 is larger than the padded input 3 along W"),
    ([MaxPool2D(3)], (1, 2, 2), "maxpool2d: window 3 is larger than the padded input 2"),
    ([Dense(3)], (1, 4, 4), "dense: needs flat"),
    ([Flatten(), Conv2D(1, 1)], (1, 4, 4), "conv2d: needs \\(C, H, W\\) input"),
])
def test_impossible_architectures(layers, shape, match):
    with pytest.raises(ValueError, match=match):
        Sequential(layers, shape)


def test_same_padding_never_too_small():
    assert Sequential([Conv2D(1, 5, padding="same")], (1, 2, 2)).output_shape == (1, 2, 2)


def test_wrong_input_shape():
    with pytest.raises(ValueError, match=r"Sequential: expected input of shape \(N, 1, 28, 28\), "
                                         r"got \(2, 28, 28\)"):
        lab().forward(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, 28, 28\)"):
        lab().forward(np.zeros((2, 3, 28, 28), np.float32))


def test_wrong_dtype():
    with pytest.raises(TypeError, match="Sequential: expected float32 input, got uint8"):
        lab().forward(np.zeros((2, 1, 28, 28), np.uint8))


def test_not_an_array():
    with pytest.raises(TypeError, match="Sequential: expected a numpy array"):
        lab().forward([[0.0]])


def test_predict_checks_shape():
    with pytest.raises(ValueError, match=r"expected inputs of shape \(N, 1, 28, 28\)"):
        lab().predict(np.zeros((2, 28, 28)))


def test_a_model_too_large_is_refused_before_allocating():
    with pytest.raises(MemoryError, match="a model of 90,628,301,418 parameters needs about"):
        minicnn.lab_model(100000)


def test_bad_model_arguments():
    with pytest.raises(TypeError, match="dtype must be one of"):
        Sequential([ReLU()], (1, 2, 2), dtype="float16")
    with pytest.raises(TypeError, match="dtype must be one of"):
        Sequential([ReLU()], (1, 2, 2), dtype=np.float16)
    for dtype in (np.float32, np.dtype("float64"), "float64"):     # NumPy's spellings too
        assert Sequential([ReLU()], (1, 2, 2), dtype=dtype).dtype == np.dtype(dtype)
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        Sequential([ReLU()], (1, 2, 2), backend="tpu")
    with pytest.raises(ValueError, match="input_shape must be positive"):
        Sequential([ReLU()], (1, 0, 2))
    with pytest.raises(TypeError, match="non-empty list of minicnn layers"):
        Sequential([], (1, 2, 2))


@pytest.mark.parametrize("labels,match", [
    (np.array([0, 10]), "label 10 is out of range: this model has 10 outputs"),
    (np.array([-1, 3]), "label -1 is out of range"),
    (np.array([1_000_000, 3]), "label 1000000 is out of range"),
    (np.array([0.0, 3.0]), "labels must be 2 integer class indices"),
    (np.eye(10)[[1, 3]].astype(np.int64), r"labels must be 2 integer class indices, shape \(2,\)"),
    (np.array([1, 2, 3]), r"labels must be 2 integer class indices, shape \(2,\), got int64 "
                          r"of shape \(3,\)"),
])
@pytest.mark.parametrize("entry", ["train_step", "loss", "evaluate"])
def test_bad_labels_are_refused_where_they_enter(backend, labels, match, entry):
    """Checked once on the host side, the same on every backend, before any kernel runs."""
    model = minicnn.lab_model(4, backend=backend.name)
    x = backend.asarray(np.zeros((2, 1, 28, 28), np.float32))
    before = model.flat_params.copy()
    with pytest.raises(ValueError, match=match):
        if entry == "train_step":
            model.train_step(x, backend.asarray(labels), SGD(0.1))
        elif entry == "loss":
            model.loss(x, backend.asarray(labels))
        else:
            model.evaluate(backend.to_numpy(x), labels)
    np.testing.assert_array_equal(backend.to_numpy(model.flat_params), backend.to_numpy(before))


def test_empty_batch(backend):
    model = minicnn.lab_model(4, backend=backend.name)
    with pytest.raises(ValueError, match="the batch is empty"):
        model.train_step(backend.asarray(np.zeros((0, 1, 28, 28), np.float32)),
                         backend.asarray(np.zeros(0, np.int64)), SGD(0.1))
