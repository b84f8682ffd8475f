"""Window geometry: where a convolution kernel or a pooling window lands, and the padding rules.

Computed once per layer, when the model is built; every backend and kernel
receives the resulting ``Window``.  Kernels get the top/left padding and the
output size; the bottom/right padding is implied by their bounds checks.
"""
import math
from typing import NamedTuple


class Window(NamedTuple):
    """Geometry of a sliding window (convolution kernel or pooling window)."""
    kh: int
    kw: int
    sh: int
    sw: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    oh: int
    ow: int


def _axis(size, k, s, padding, axis, owner):
    """(pad_before, pad_after, out) along one axis."""
    if padding == "same":
        # TensorFlow/Keras: out = ceil(in / s); odd total padding puts the extra row at the end.
        out = math.ceil(size / s)
        total = max((out - 1) * s + k - size, 0)
        return total // 2, total - total // 2, out
    pad = 0 if padding == "valid" else padding[axis]
    if k > size + 2 * pad:
        raise ValueError(f"{owner}: window {k} is larger than the padded input {size + 2 * pad} "
                         f"along {'HW'[axis]}; use a smaller kernel, more padding or a larger input")
    return pad, pad, (size + 2 * pad - k) // s + 1


def window(h, w, kernel, stride, padding, owner="window") -> Window:
    """Output geometry of a (kh, kw) window sliding over an (h, w) input.

    'valid': out = floor((in - k) / s) + 1; int p: out = floor((in + 2p - k) / s) + 1;
    'same': out = ceil(in / s) with TensorFlow's asymmetric padding.
    """
    kh, kw = kernel
    sh, sw = stride
    pt, pb, oh = _axis(h, kh, sh, padding, 0, owner)
    pl, pr, ow = _axis(w, kw, sw, padding, 1, owner)
    return Window(kh, kw, sh, sw, pt, pb, pl, pr, oh, ow)
