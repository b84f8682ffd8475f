"""Pure NumPy backend: the reference every other backend is tested against."""
import numpy as np

from .base import Backend


def _padded(x, g, fill):
    """x (C, N, H, W) padded so that every window of g lies inside it."""
    c, n, h, w = x.shape
    hp = max(h + g.pad_top, (g.oh - 1) * g.sh + g.kh)
    wp = max(w + g.pad_left, (g.ow - 1) * g.sw + g.kw)
    out = np.full((c, n, hp, wp), fill, dtype=x.dtype)
    rows = min(h, hp - g.pad_top)
    cols = min(w, wp - g.pad_left)
    out[:, :, g.pad_top:g.pad_top + rows, g.pad_left:g.pad_left + cols] = x[:, :, :rows, :cols]
    return out


def _window_view(xpad, g, ky, kx):
    """(C, N, OH, OW) view of the elements at offset (ky, kx) of every window."""
    return xpad[:, :, ky:ky + g.sh * (g.oh - 1) + 1:g.sh, kx:kx + g.sw * (g.ow - 1) + 1:g.sw]


class NumpyBackend(Backend):
    name = "numpy"
    xp = np

    def im2col(self, x, g, out):
        c, n = x.shape[:2]
        xpad = _padded(x, g, 0)
        col = out.reshape(c, g.kh, g.kw, n, g.oh, g.ow)
        for ky in range(g.kh):
            for kx in range(g.kw):
                col[:, ky, kx] = _window_view(xpad, g, ky, kx)
        return out

    def col2im(self, col, g, out):
        c, n, h, w = out.shape
        col6 = col.reshape(c, g.kh, g.kw, n, g.oh, g.ow)
        dxpad = _padded(np.zeros_like(out), g, 0)
        for ky in range(g.kh):
            for kx in range(g.kw):
                _window_view(dxpad, g, ky, kx)[...] += col6[:, ky, kx]
        out[...] = dxpad[:, :, g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + w]
        return out

    def maxpool_forward(self, x, g, out, argmax, ws=None):
        h, w = x.shape[2:]
        xpad = _padded(x, g, -np.inf)
        real = _padded(np.ones((1, 1, h, w), bool), g, False)
        windows = np.stack([_window_view(xpad, g, ky, kx)
                            for ky in range(g.kh) for kx in range(g.kw)])  # (KH*KW, C, N, OH, OW)
        inside = np.stack([_window_view(real, g, ky, kx)
                           for ky in range(g.kh) for kx in range(g.kw)])   # (KH*KW, 1, 1, OH, OW)
        k = windows.argmax(axis=0)   # first maximum in row-major window order; a NaN wins
        # A padding tap wins only by tying real pixels that are all -inf: take the first real one.
        k = np.where(np.take_along_axis(inside, k[None], axis=0)[0], k, inside.argmax(axis=0))
        out[...] = np.take_along_axis(windows, k[None], axis=0)[0]
        rows = np.arange(g.oh).reshape(-1, 1) * g.sh - g.pad_top + k // g.kw
        cols = np.arange(g.ow) * g.sw - g.pad_left + k % g.kw
        argmax[...] = rows * w + cols
        return out, argmax

    def maxpool_backward(self, dy, argmax, g, out):
        c, n, h, w = out.shape
        plane = np.arange(c * n, dtype=np.int64).reshape(c, n, 1, 1) * (h * w)
        flat = (plane + argmax).ravel()
        out.reshape(-1)[...] = np.bincount(flat, weights=dy.ravel(), minlength=out.size)
        return out
