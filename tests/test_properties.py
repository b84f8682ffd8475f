"""Properties over drawn geometries (hypothesis): im2col convolution and max-pool against the
naive loops, forward and backward, on every CPU backend."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import reference
from conftest import CPU_BACKENDS, cnhw, nchw
from minicnn import ops
from minicnn.backend import get_backend
from minicnn.ops.geometry import window

EXAMPLES = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def geometries(draw, max_kernel=4):
    """((N, C, H, W), kernel, stride, padding) with a window that fits."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)),
             draw(st.integers(1, 10)), draw(st.integers(1, 10)))
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = draw(st.one_of(st.sampled_from(["valid", "same"]),
                             st.tuples(st.integers(0, kernel[0] - 1),
                                       st.integers(0, kernel[1] - 1))))
    try:
        g = window(*shape[2:], kernel, stride, padding)
    except ValueError:            # the window does not fit: not a geometry
        assume(False)
    return shape, g


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
@EXAMPLES
@given(geometry=geometries(), filters=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_convolution(backend_name, geometry, filters, seed):
    b = get_backend(backend_name)
    (n, c, h, w), g = geometry
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((filters, c, g.kh, g.kw))
    bias = rng.standard_normal(filters)
    y, cache = ops.conv2d_forward(b.asarray(cnhw(x)), b.asarray(wt), b.asarray(bias), g, b)
    np.testing.assert_allclose(nchw(b.to_numpy(y)), reference.conv_forward(x, wt, bias, g),
                               rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal((n, filters, g.oh, g.ow))
    got = ops.conv2d_backward(b.asarray(cnhw(dy)), cache)
    for part, mine, want in zip(("dx", "dw", "db"), got, reference.conv_backward(dy, x, wt, g)):
        mine = b.to_numpy(mine)
        np.testing.assert_allclose(nchw(mine) if part == "dx" else mine, want, rtol=1e-10,
                                   atol=1e-10, err_msg=part)


@pytest.mark.parametrize("backend_name", CPU_BACKENDS)
@EXAMPLES
@given(geometry=geometries(max_kernel=3), seed=st.integers(0, 2**16), ties=st.booleans())
def test_max_pool(backend_name, geometry, seed, ties):
    b = get_backend(backend_name)
    (n, c, h, w), g = geometry
    assume(g.pad_top < g.kh and g.pad_left < g.kw and g.pad_bottom < g.kh and g.pad_right < g.kw)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    if ties:
        x = np.round(x)
    y, cache = ops.maxpool_forward(b.asarray(cnhw(x)), g, b)
    np.testing.assert_array_equal(nchw(b.to_numpy(y)), reference.maxpool_forward(x, g))
    dy = rng.standard_normal((n, c, g.oh, g.ow))
    np.testing.assert_allclose(nchw(b.to_numpy(ops.maxpool_backward(b.asarray(cnhw(dy)), cache))),
                               reference.maxpool_backward(dy, x, g), rtol=1e-12, atol=1e-12)
