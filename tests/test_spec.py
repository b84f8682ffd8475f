"""The --arch grammar (nn/spec.py, parse_arch): presets, layer specs and their options, and
an ArchError saying what is wrong.  The same errors on the command line: test_cli_faults.py."""
import pytest

import minicnn
from minicnn.nn.spec import ArchError, parse_arch
from minicnn.nn.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid


def test_lab_preset_uses_filters_and_units():
    model = minicnn.Sequential(parse_arch("lab", filters=8, units=64), (1, 28, 28))
    assert model.num_params() == 8 * 9 + 8 + 8 * 8 * 9 + 8 + 392 * 64 + 64 + 650


def test_lenet_like_spec():
    layers = parse_arch("conv:6:5:same,relu,pool:2,dense:128,sigmoid,dense:10")
    assert [type(l) for l in layers] == [Conv2D, ReLU, MaxPool2D, Flatten, Dense, Sigmoid, Dense]
    conv = layers[0]
    assert (conv.filters, conv.kernel_size, conv.padding) == (6, (5, 5), "same")
    assert minicnn.Sequential(layers, (1, 28, 28)).output_shape == (10,)


def test_strided_even_kernel_and_named_options():
    conv = parse_arch("conv:16:4:stride=2,relu,dense:10")[0]
    assert (conv.kernel_size, conv.stride, conv.padding) == ((4, 4), (2, 2), "valid")
    conv = parse_arch("conv:8:5x3:2x1:1,flatten,dense:10")[0]
    assert (conv.kernel_size, conv.stride, conv.padding) == ((5, 3), (2, 1), (1, 1))
    pool = parse_arch("conv:2:3,pool:3:stride=2:pad=same,dense:10")[1]
    assert (pool.pool_size, pool.stride, pool.padding) == ((3, 3), (2, 2), "same")


def test_flatten_is_not_doubled():
    layers = parse_arch("conv:2:3,flatten,dense:10")
    assert sum(isinstance(l, Flatten) for l in layers) == 1


@pytest.mark.parametrize("spec,match", [
    ("conv:6:5,softmax", "unknown layer 'softmax'"),
    ("conv:6", "conv needs filters and kernel"),
    ("conv:0:3", "filters must be a positive int"),
    ("conv:6:3:stride=0", "stride must be a positive int"),
    ("conv:6:3:pad=full", "padding must be 'same', 'valid' or an int"),
    ("conv:6:3:dilation=2", "unknown option 'dilation'"),
    ("conv:6:3:1:1:1", "too many options"),
    ("dense", "dense needs a positive unit count"),
    ("dense:-4", "dense needs a positive unit count"),
    ("relu:3", "relu takes no options"),
    ("conv:6:3,,dense:10", "empty layer"),
    ("", "empty layer"),
])
def test_errors_say_what_is_wrong(spec, match):
    with pytest.raises(ArchError, match=match):
        parse_arch(spec)
