"""Pure NumPy backend: the reference every other backend is tested against."""
import numpy as np

from .base import Backend, Window


def _padded(x, g: Window, fill):
    """x padded so that every window of g lies inside it."""
    n, c, h, w = x.shape
    hp = max(h + g.pad_top, (g.oh - 1) * g.sh + g.kh)
    wp = max(w + g.pad_left, (g.ow - 1) * g.sw + g.kw)
    out = np.full((n, c, hp, wp), fill, dtype=x.dtype)
    rows = min(h, hp - g.pad_top)
    cols = min(w, wp - g.pad_left)
    out[:, :, g.pad_top:g.pad_top + rows, g.pad_left:g.pad_left + cols] = x[:, :, :rows, :cols]
    return out


def _window_view(xpad, g: Window, ky, kx):
    """(N, C, OH, OW) view of the elements at offset (ky, kx) of every window."""
    return xpad[:, :, ky:ky + g.sh * (g.oh - 1) + 1:g.sh, kx:kx + g.sw * (g.ow - 1) + 1:g.sw]


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def im2col(self, x, g):
        n, c = x.shape[:2]
        xpad = _padded(x, g, 0)
        col = np.empty((c, g.kh, g.kw, n, g.oh, g.ow), dtype=x.dtype)
        for ky in range(g.kh):
            for kx in range(g.kw):
                col[:, ky, kx] = _window_view(xpad, g, ky, kx).transpose(1, 0, 2, 3)
        return col.reshape(c * g.kh * g.kw, n * g.oh * g.ow)

    def col2im(self, col, x_shape, g):
        n, c, h, w = x_shape
        col6 = col.reshape(c, g.kh, g.kw, n, g.oh, g.ow)
        dxpad = _padded(np.zeros(x_shape, dtype=col.dtype), g, 0)
        for ky in range(g.kh):
            for kx in range(g.kw):
                _window_view(dxpad, g, ky, kx)[...] += col6[:, ky, kx].transpose(1, 0, 2, 3)
        return np.ascontiguousarray(dxpad[:, :, g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + w])

    def maxpool_forward(self, x, g):
        n, c, h, w = x.shape
        xpad = _padded(x, g, -np.inf)
        windows = np.stack([_window_view(xpad, g, ky, kx)
                            for ky in range(g.kh) for kx in range(g.kw)])  # (KH*KW, N, C, OH, OW)
        k = windows.argmax(axis=0)   # first maximum in row-major window order
        y = np.take_along_axis(windows, k[None], axis=0)[0]
        rows = np.arange(g.oh).reshape(-1, 1) * g.sh - g.pad_top + k // g.kw
        cols = np.arange(g.ow) * g.sw - g.pad_left + k % g.kw
        return np.ascontiguousarray(y), (rows * w + cols).astype(np.int32)

    def maxpool_backward(self, dy, argmax, x_shape, g):
        n, c, h, w = x_shape
        plane = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
        flat = (plane + argmax).ravel()
        dx = np.bincount(flat, weights=dy.ravel(), minlength=n * c * h * w)
        return dx.astype(dy.dtype).reshape(x_shape)
