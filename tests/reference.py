"""Naive loop implementations: test oracles only, written for clarity, not speed."""
import numpy as np


def pad_nchw(x, g, fill=0.0):
    n, c, h, w = x.shape
    hp = max(h + g.pad_top + g.pad_bottom, (g.oh - 1) * g.sh + g.kh)
    wp = max(w + g.pad_left + g.pad_right, (g.ow - 1) * g.sw + g.kw)
    out = np.full((n, c, hp, wp), fill, dtype=np.float64)
    out[:, :, g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + w] = x
    return out


def conv_forward(x, w, b, g):
    n, c, h, wd = x.shape
    f = w.shape[0]
    xp = pad_nchw(x, g)
    y = np.zeros((n, f, g.oh, g.ow))
    for i in range(n):
        for k in range(f):
            for r in range(g.oh):
                for s in range(g.ow):
                    patch = xp[i, :, r * g.sh:r * g.sh + g.kh, s * g.sw:s * g.sw + g.kw]
                    y[i, k, r, s] = np.sum(patch * w[k]) + b[k]
    return y


def conv_backward(dy, x, w, g):
    n, c, h, wd = x.shape
    f = w.shape[0]
    xp = pad_nchw(x, g)
    dxp, dw = np.zeros_like(xp), np.zeros(w.shape)
    for i in range(n):
        for k in range(f):
            for r in range(g.oh):
                for s in range(g.ow):
                    rows = slice(r * g.sh, r * g.sh + g.kh)
                    cols = slice(s * g.sw, s * g.sw + g.kw)
                    dw[k] += dy[i, k, r, s] * xp[i, :, rows, cols]
                    dxp[i, :, rows, cols] += dy[i, k, r, s] * w[k]
    dx = dxp[:, :, g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + wd]
    return dx, dw, dy.sum(axis=(0, 2, 3))


def maxpool_forward(x, g):
    n, c, h, w = x.shape
    xp = pad_nchw(x, g, fill=-np.inf)
    y = np.zeros((n, c, g.oh, g.ow))
    for i in range(n):
        for k in range(c):
            for r in range(g.oh):
                for s in range(g.ow):
                    y[i, k, r, s] = xp[i, k, r * g.sh:r * g.sh + g.kh, s * g.sw:s * g.sw + g.kw].max()
    return y


def maxpool_backward(dy, x, g):
    """Each dy goes to the first (row-major) maximum of its window."""
    n, c, h, w = x.shape
    xp = pad_nchw(x, g, fill=-np.inf)
    dxp = np.zeros_like(xp)
    for i in range(n):
        for k in range(c):
            for r in range(g.oh):
                for s in range(g.ow):
                    win = xp[i, k, r * g.sh:r * g.sh + g.kh, s * g.sw:s * g.sw + g.kw]
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    dxp[i, k, r * g.sh + a, s * g.sw + b] += dy[i, k, r, s]
    return dxp[:, :, g.pad_top:g.pad_top + h, g.pad_left:g.pad_left + w]


def avgpool_forward(x, g):
    """The mean of each window's real pixels (padding not counted, TensorFlow's rule)."""
    n, c, h, w = x.shape
    y = np.zeros((n, c, g.oh, g.ow))
    for r in range(g.oh):
        for s in range(g.ow):
            rows = range(max(r * g.sh - g.pad_top, 0), min(r * g.sh - g.pad_top + g.kh, h))
            cols = range(max(s * g.sw - g.pad_left, 0), min(s * g.sw - g.pad_left + g.kw, w))
            for i in range(n):
                for k in range(c):
                    y[i, k, r, s] = np.mean([x[i, k, a, b] for a in rows for b in cols])
    return y


def avgpool_backward(dy, x_shape, g):
    """Each window's dy shared equally among its real pixels."""
    n, c, h, w = x_shape
    dx = np.zeros(x_shape)
    for r in range(g.oh):
        for s in range(g.ow):
            rows = range(max(r * g.sh - g.pad_top, 0), min(r * g.sh - g.pad_top + g.kh, h))
            cols = range(max(s * g.sw - g.pad_left, 0), min(s * g.sw - g.pad_left + g.kw, w))
            for a in rows:
                for b in cols:
                    dx[:, :, a, b] += dy[:, :, r, s] / (len(rows) * len(cols))
    return dx


def tanh_forward(x):
    return np.array([np.tanh(v) for v in x.ravel()]).reshape(x.shape)


def softmax_cross_entropy(logits, labels):
    n = logits.shape[0]
    loss, d = 0.0, np.zeros(logits.shape)
    for i in range(n):
        row = logits[i] - logits[i].max()
        p = np.exp(row) / np.exp(row).sum()
        loss -= np.log(p[labels[i]])
        d[i] = p
        d[i, labels[i]] -= 1
    return loss / n, d / n


def relu_forward(x):
    """max(x, 0) element by element; NaN stays NaN (the promise the ops make)."""
    y = np.zeros(x.shape)
    for i, v in np.ndenumerate(x):
        y[i] = v if v > 0 or np.isnan(v) else 0.0
    return y


def relu_backward(dy, y):
    """The chain rule as a product, dy * (1 if y > 0 else 0): a NaN in dy stays NaN even where
    the unit is off."""
    dx = np.zeros(dy.shape)
    for i, d in np.ndenumerate(dy):
        dx[i] = d * (1.0 if y[i] > 0 else 0.0)
    return dx


def sigmoid_forward(x):
    y = np.zeros(x.shape)
    for i, v in np.ndenumerate(x):
        y[i] = 1.0 / (1.0 + np.exp(-float(v)))
    return y


def sigmoid_backward(dy, y):
    dx = np.zeros(dy.shape)
    for i, d in np.ndenumerate(dy):
        dx[i] = d * y[i] * (1.0 - y[i])
    return dx


def dense_forward(x, w, b):
    n, d = x.shape
    y = np.zeros((n, w.shape[1]))
    for i in range(n):
        for j in range(w.shape[1]):
            y[i, j] = b[j] + sum(float(x[i, k]) * float(w[k, j]) for k in range(d))
    return y


def dense_backward(dy, x, w):
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for i in range(x.shape[0]):
        for j in range(w.shape[1]):
            for k in range(x.shape[1]):
                dx[i, k] += dy[i, j] * w[k, j]
                dw[k, j] += x[i, k] * dy[i, j]
    return dx, dw, dy.sum(axis=0)
