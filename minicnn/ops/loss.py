"""Softmax cross-entropy on logits."""


def softmax_cross_entropy(logits, labels, backend):
    """logits (N, K), integer labels (N,) -> (loss, dlogits (N, K)).

    loss = mean_n(-log softmax(logits)[n, labels[n]]), computed after
    subtracting each row's maximum so exp cannot overflow.
    dlogits = (softmax(logits) - onehot(labels)) / N.
    """
    return backend.softmax_cross_entropy(logits, labels)
