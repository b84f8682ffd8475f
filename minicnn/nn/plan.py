"""A model's execution plan: its layers as a list of steps, neighbours fused where they can be.

Each ``Step`` runs one op pair from ``minicnn.ops`` (or a backend's fused
kernel for it) over one or more consecutive layers:

    Conv2D, ReLU, MaxPool2D(2)  ->  conv_relu_pool/<algorithm>   (2x2 pool, stride 2, no padding)
    Conv2D, ReLU                ->  conv_relu/<algorithm>
    Conv2D                      ->  conv2d/<algorithm>
    any other layer             ->  its own op

The algorithm of each convolution comes from ``ops/algorithms.py``.  A step
keeps the op's cache between forward and backward, owns a workspace (its
buffers are reused from batch to batch) and writes its parameter gradients
into the gradient views it was given: each shard of a batch has its own plan
and its own gradients, while the parameters are shared.
"""
from .. import ops
from ..ops import algorithms
from ..ops.workspace import Workspace
from .layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid

_PLAIN = {
    MaxPool2D: (ops.OpPair(ops.maxpool_forward, ops.maxpool_backward), lambda l: (l.g,)),
    ReLU: (ops.OpPair(ops.relu_forward, ops.relu_backward), lambda l: ()),
    Sigmoid: (ops.OpPair(ops.sigmoid_forward, ops.sigmoid_backward), lambda l: ()),
    Flatten: (ops.OpPair(ops.flatten_forward, ops.flatten_backward), lambda l: ()),
    Dense: (ops.OpPair(ops.dense_forward, ops.dense_backward), lambda l: ()),
}


class Step:
    """One entry of a plan.  ``name`` joins its layers' names ("conv2d+relu+maxpool2d");
    ``algorithm`` is the convolution algorithm of a convolution step, else None."""

    def __init__(self, layers, pair, static, backend, grads, algorithm=None):
        self.layers = tuple(layers)
        self.name = "+".join(layer.name for layer in self.layers)
        self.algorithm = algorithm
        self._forward, self._backward = pair.forward, pair.backward
        self._params = [p for layer in self.layers for p in layer.params.values()]
        self._args = (*self._params, *static, backend)
        self._grads = grads
        self.ws = Workspace(backend.xp)
        self._cache = None

    def forward(self, x):
        y, self._cache = self._forward(x, *self._args, self.ws)
        return y

    def backward(self, dy, need_dx=True):
        """dy -> dx (None when not need_dx); parameter gradients go to this step's views."""
        if not self._params:
            return self._backward(dy, self._cache, self.ws) if need_dx else None
        dx, *grads = self._backward(dy, self._cache, need_dx, self.ws)
        for view, g in zip(self._grads, grads):
            view[...] = g
        return dx

    def __repr__(self):
        return f"<Step {self.name}" + (f" ({self.algorithm})>" if self.algorithm else ">")


def _fusable_pool(layer):
    return (isinstance(layer, MaxPool2D) and layer.pool_size == (2, 2) and layer.stride == (2, 2)
            and layer.padding in ("valid", (0, 0)))


def _conv_step(layers, i, backend, grad_views, fuse):
    """The longest convolution step starting at layers[i], and how many layers it covers."""
    conv = layers[i]
    algorithm = algorithms.choose(conv, backend)
    after = layers[i + 1:i + 3] if fuse else []
    patterns = []
    if len(after) == 2 and isinstance(after[0], ReLU) and _fusable_pool(after[1]):
        patterns.append(("conv_relu_pool", 3, (conv.g, after[1].g)))
    if after and isinstance(after[0], ReLU):
        patterns.append(("conv_relu", 2, (conv.g,)))
    patterns.append(("conv2d", 1, (conv.g,)))
    for pattern, count, static in patterns:
        pair = ops.resolve(f"{pattern}/{algorithm}", backend, conv.g)
        if pair is not None:
            return Step(layers[i:i + count], pair, static, backend,
                        list(grad_views[conv].values()), algorithm), count
    raise ValueError(f"{conv.name}: backend {backend.name!r} has no {algorithm} convolution")


def build_plan(layers, backend, grad_views, fuse=True):
    """[Step] for built ``layers``; grad_views maps each layer to {param name: gradient view}."""
    steps, i = [], 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv2D):
            step, count = _conv_step(layers, i, backend, grad_views, fuse)
        else:
            pair, static = _PLAIN[type(layer)]
            step, count = Step([layer], pair, static(layer), backend,
                               list(grad_views[layer].values())), 1
        steps.append(step)
        i += count
    return steps


class ShardPlan:
    """One shard's copy of a model's plan: the shared parameters; its own steps, buffers and
    flat gradient buffer (a model with k threads has k of them, see parallel/shards.py)."""

    def __init__(self, layers, backend, grad_views, flat_grads, fuse=True):
        self.flat_grads = flat_grads
        self.backend = backend
        self.steps = build_plan(layers, backend, grad_views, fuse)
        self.ws = Workspace(backend.xp)
        self.loss_fn = ops.resolve("softmax_cross_entropy", backend)

    def forward(self, x):
        """x (N, ...) public layout -> the last step's output, internal layout."""
        h = ops.to_internal(x, self.backend, self.ws)
        for step in self.steps:
            h = step.forward(h)
        return h

    def backward(self, dy, input_grad):
        for i in range(len(self.steps) - 1, -1, -1):
            dy = self.steps[i].backward(dy, need_dx=input_grad or i > 0)
        return dy

    def train(self, x, labels, total):
        """Forward and backward of one shard; (summed loss / total, number correct)."""
        logits = self.forward(x)
        loss, dlogits = self.loss_fn(logits, labels, self.backend, total, self.ws)
        self.backward(dlogits, input_grad=False)
        return loss, int((logits.argmax(axis=1) == labels).sum())

    def score(self, x, labels):
        """Forward only; (sum of the per-sample losses, number correct)."""
        logits = self.forward(x)
        loss, _ = self.loss_fn(logits, labels, self.backend, 1, self.ws)
        return loss, int((logits.argmax(axis=1) == labels).sum())
