"""Bad input raises ValueError/TypeError naming the layer and what was expected."""
import numpy as np
import pytest

import minicnn
from minicnn import SGD, Adam, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential


def lab():
    return minicnn.lab_model(8)


@pytest.mark.parametrize("make,match", [
    (lambda: Conv2D(0, 3), "Conv2D: filters must be positive"),
    (lambda: Conv2D(4, -1), "Conv2D: kernel_size must be positive"),
    (lambda: Conv2D(4, 3, stride=0), "Conv2D: stride must be positive"),
    (lambda: Conv2D(4, 3, padding="full"), "Conv2D: unknown padding 'full'"),
    (lambda: Conv2D(4, 3, padding=-1), "Conv2D: padding must be >= 0"),
    (lambda: Conv2D(4, (3, 3, 3)), "Conv2D: kernel_size must be an int or a pair"),
    (lambda: MaxPool2D(0), "MaxPool2D: pool_size must be positive"),
    (lambda: MaxPool2D(2, padding="reflect"), "MaxPool2D: unknown padding"),
    (lambda: MaxPool2D(2, padding=2), "MaxPool2D: padding 2 must be smaller"),
    (lambda: Dense(0), "Dense: units must be positive"),
    (lambda: SGD(0), "SGD: lr must be"),
    (lambda: SGD(float("nan")), "SGD: lr must be"),
    (lambda: SGD(0.1, momentum=1.0), "SGD: momentum must be"),
    (lambda: Adam(beta1=1.5), "Adam: beta1 must be"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_int_sizes_are_type_errors():
    with pytest.raises(TypeError, match="Conv2D: filters must be a positive int"):
        Conv2D(2.5, 3)


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


def test_wrong_input_shape_names_the_layer():
    with pytest.raises(ValueError, match=r"conv2d: expected input of shape \(N, 1, 28, 28\), "
                                         r"got \(2, 28, 28\)"):
        lab().forward(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 1, 28, 28\)"):
        lab().forward(np.zeros((2, 3, 28, 28), np.float32))


def test_wrong_dtype_names_the_layer():
    with pytest.raises(TypeError, match="conv2d: expected float32 input, got uint8"):
        lab().forward(np.zeros((2, 1, 28, 28), np.uint8))


def test_not_an_array():
    with pytest.raises(TypeError, match="conv2d: expected a numpy array"):
        lab().forward([[0.0]])


def test_predict_checks_shape():
    with pytest.raises(ValueError, match=r"expected inputs of shape \(N, 1, 28, 28\)"):
        lab().predict(np.zeros((2, 28, 28)))


def test_bad_model_arguments():
    with pytest.raises(TypeError, match="dtype must be one of"):
        Sequential([ReLU()], (1, 2, 2), dtype="float16")
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        Sequential([ReLU()], (1, 2, 2), backend="tpu")
    with pytest.raises(ValueError, match="input_shape must be positive"):
        Sequential([ReLU()], (1, 0, 2))
    with pytest.raises(TypeError, match="non-empty list of minicnn layers"):
        Sequential([], (1, 2, 2))


@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04garbage"])
def test_loading_a_file_that_is_not_ours(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a minicnn model file"):
        minicnn.load(path)


def test_loading_an_npz_that_is_not_ours(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(ValueError, match="not a minicnn model file"):
        minicnn.load(path)
