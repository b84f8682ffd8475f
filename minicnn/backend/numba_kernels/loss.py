"""Softmax cross-entropy, one pass per row."""
import math

import numpy as np

from . import kernel


@kernel
def softmax_cross_entropy(logits, labels, total, dlogits):
    """The fused version of ops.loss.softmax_cross_entropy: returns the summed row losses
    divided by ``total`` and writes dlogits = (softmax - onehot) / total."""
    n, k = logits.shape
    loss = 0.0
    for i in range(n):
        row = logits[i]
        m = row[0]
        for j in range(1, k):
            if row[j] > m or row[j] != row[j]:      # NaN propagates
                m = row[j]
        s = 0.0
        for j in range(k):
            s += math.exp(row[j] - m)
        loss += math.log(s) - (row[labels[i]] - m)
        for j in range(k):
            dlogits[i, j] = math.exp(row[j] - m) / s / total
        dlogits[i, labels[i]] -= 1.0 / total
    return loss / total


def _softmax_cross_entropy_op(logits, labels, backend, total=None, ws=None):
    dlogits = (ws.empty("dlogits", logits.shape, logits.dtype) if ws is not None
               else np.empty_like(logits))
    total = logits.shape[0] if total is None else total
    return float(softmax_cross_entropy(logits, labels, total, dlogits)), dlogits


FUSED = {"softmax_cross_entropy": _softmax_cross_entropy_op}
