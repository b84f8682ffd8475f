"""Softmax cross-entropy on logits."""
from .workspace import Workspace


def softmax_cross_entropy(logits, labels, backend, total=None, ws=None):
    """logits (N, K), integer labels (N,) in [0, K) -> (loss, dlogits (N, K)).

    loss = sum_n(-log softmax(logits)[n, labels[n]]) / total and
    dlogits = (softmax(logits) - onehot(labels)) / total, with total = N by
    default (the mean).  A shard of a larger batch passes the batch's size, so
    the shards' losses and gradients add up to the whole batch's.  Each row's
    maximum is subtracted first, so exp cannot overflow.  Labels are trusted:
    the model checks them where they enter.
    """
    xp = backend.xp
    ws = ws or Workspace(xp)
    n, k = logits.shape
    total = n if total is None else total
    z = xp.subtract(logits, logits.max(axis=1, keepdims=True),
                    out=ws.empty("dlogits", logits.shape, logits.dtype))
    log_sum = xp.log(xp.exp(z).sum(axis=1))
    rows = xp.arange(n)
    loss = float((log_sum - z[rows, labels]).sum()) / total
    xp.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    z[rows, labels] -= 1
    z /= total
    return loss, z
