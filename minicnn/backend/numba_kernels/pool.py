"""Max pooling over (C, N, H, W) planes, any window, stride and padding."""
from . import kernel


@kernel
def maxpool_forward(x, kh, kw, sh, sw, pt, pl, y, argmax):
    """y[c, n, i, j] = max of window (i, j) of plane x[c, n]; argmax = its flat h * W + w.

    The first maximum in row-major window order wins ties, padding never wins,
    and the first NaN wins over numbers, as numpy.argmax does.
    """
    c_, n_, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    for c in range(c_):
        for n in range(n_):
            plane = x[c, n]
            for i in range(oh):
                for j in range(ow):
                    best, best_value = -1, plane[0, 0]
                    for ky in range(kh):
                        r = i * sh - pt + ky
                        if r < 0 or r >= h:
                            continue
                        for kx in range(kw):
                            s = j * sw - pl + kx
                            if s < 0 or s >= w:
                                continue
                            v = plane[r, s]
                            if best < 0 or v > best_value or (v != v and best_value == best_value):
                                best, best_value = r * w + s, v
                    y[c, n, i, j] = best_value
                    argmax[c, n, i, j] = best
    return y, argmax


@kernel
def maxpool_backward(dy, argmax, dx):
    """dx (C, N, H, W) = 0, then dy[c, n, i, j] added at argmax[c, n, i, j] of its plane."""
    c_, n_, h, w = dx.shape
    for c in range(c_):
        for n in range(n_):
            plane = dx[c, n].reshape(h * w)
            plane[:] = 0
            d, a = dy[c, n].ravel(), argmax[c, n].ravel()
            for k in range(d.size):
                plane[a[k]] += d[k]
    return dx
