"""Max pooling over (C, N, H, W) planes, any window, stride and padding (the 2x2 pool after a
convolution is fused into the convolution instead: planes.py)."""
from . import first_max, kernel
from .windows import window_maps


@kernel
def _maxpool_forward(x, window_reads, y, argmax):
    """y[c, n, q] = max over the taps of window q; argmax its flat input pixel.

    window_reads (OH*OW, KH*KW) lists each window's input pixels (-1: padding)
    in row-major window order: the first maximum wins ties, padding never
    wins, and the first NaN wins over numbers, as numpy.argmax does.
    """
    c_, n_ = x.shape[:2]
    windows, taps = window_reads.shape
    for c in range(c_):
        for n in range(n_):
            plane = x[c, n].reshape(x.shape[2] * x.shape[3])
            best, arg = y[c, n].reshape(windows), argmax[c, n].reshape(windows)
            for q in range(windows):
                index = window_reads[q]
                b, a = plane[0], -1
                for k in range(taps):
                    i = index[k]
                    if i < 0:
                        continue
                    b, a = first_max(b, a, plane[i], i) if a >= 0 else (plane[i], i)
                best[q], arg[q] = b, a


@kernel
def _maxpool_backward(dy, argmax, dx):
    """dx = 0, then dy[c, n, q] added at argmax[c, n, q] of its plane (windows may overlap,
    so this scatter is sequential)."""
    c_, n_ = dx.shape[:2]
    for c in range(c_):
        for n in range(n_):
            plane = dx[c, n].reshape(dx.shape[2] * dx.shape[3])
            plane[:] = 0
            d, a = dy[c, n].ravel(), argmax[c, n].ravel()
            for q in range(d.size):
                plane[a[q]] += d[q]


def maxpool_forward(x, g, y, argmax):
    _maxpool_forward(x, window_maps(g, *x.shape[2:]).window_reads, y, argmax)
    return y, argmax


def maxpool_backward(dy, argmax, out):
    _maxpool_backward(dy, argmax, out)
    return out
