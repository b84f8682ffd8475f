"""A model's execution plan: its layers as a list of steps, neighbours fused where they can be.

Each ``Step`` runs one op pair from ``minicnn.ops`` (or a backend's fused
kernel for it) over one or more consecutive layers:

    Conv2D, ReLU, MaxPool2D(2)  ->  conv_relu_pool/<algorithm>   (2x2 pool, stride 2, no padding:
                                                                  what the fused kernels compute)
    Conv2D, ReLU                ->  conv_relu/<algorithm>
    Conv2D                      ->  conv2d/<algorithm>
    any other layer             ->  its own op

The algorithm of each convolution comes from ``ops/algorithms.py``.  A step
keeps the op's cache between forward and backward, owns a workspace (its
buffers are reused from batch to batch) and writes its parameter gradients
into the gradient views each backward is given: each thread has its own plan
(``ShardPlan``), each shard of a batch its own gradients (``targets``), and
the parameters are shared.

Every forward gets the batch's ``Context``: training or inference, the
training step and where the shard's samples start in the whole batch (the
dropout masks depend on both), and ``reduce``, which adds an array over all
the shards of the batch (batch norm's statistics; parallel/shards.py).
"""
from typing import Callable, NamedTuple

from .. import ops
from ..ops import algorithms
from ..ops.normalization import running_average
from ..ops.workspace import Workspace
from .layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid, Tanh
from .regularization import BatchNorm, Dropout, LocalResponseNorm


def alone(a):
    """The ``reduce`` of a shard that is the whole batch: the sum over one shard."""
    return a


class Context(NamedTuple):
    training: bool
    step: int = 0           # the model's training step: dropout masks change with it
    first: int = 0          # index of the shard's first sample in the whole batch
    reduce: Callable = alone


INFERENCE = Context(False)

_PLAIN = {
    MaxPool2D: ("maxpool", lambda l: (l.g,)),
    AvgPool2D: ("avgpool", lambda l: (l.g,)),
    ReLU: ("relu", lambda l: ()),
    Sigmoid: ("sigmoid", lambda l: ()),
    Tanh: ("tanh", lambda l: ()),
    Flatten: ("flatten", lambda l: ()),
    Dense: ("dense", lambda l: ()),
    LocalResponseNorm: ("lrn", lambda l: (l.depth_radius, l.bias, l.alpha, l.beta)),
}


class Step:
    """One entry of a plan.  ``name`` joins its layers' names ("conv2d+relu+maxpool2d");
    ``algorithm`` is the convolution algorithm of a convolution step, else None."""

    def __init__(self, layers, pair, static, backend, algorithm=None):
        self.layers = tuple(layers)
        self.name = "+".join(layer.name for layer in self.layers)
        self.algorithm = algorithm
        self.backend = backend
        self._forward, self._backward = pair.forward, pair.backward
        self._params = [p for layer in self.layers for p in layer.params.values()]
        self._args = (*self._params, *static, backend)
        self.ws = Workspace(backend.xp, huge_pages=True)
        self._cache = None

    def forward(self, x, ctx=INFERENCE):
        y, self._cache = self._forward(x, *self._args, self.ws)
        return y

    def backward(self, dy, need_dx=True, grads=()):
        """dy -> dx (None when not need_dx); the parameter gradients are written into
        ``grads``, one view per parameter (``ShardPlan.targets``)."""
        return self._finish(self._backward, dy, need_dx, grads)

    def _finish(self, backward, dy, need_dx, grads):
        if not self._params:
            return backward(dy, self._cache, self.ws) if need_dx else None
        dx, *computed = backward(dy, self._cache, need_dx, self.ws)
        for view, g in zip(grads, computed, strict=True):
            view[...] = g
        return dx

    def idle_forward(self, reduce, dtype):
        """A training forward without samples (a process with no part of this batch): take
        part in the sums the other processes' steps take, adding zeros."""

    def idle_backward(self, reduce, dtype, need_dx):
        """The same for the backward pass."""

    def __repr__(self):
        return f"<Step {self.name}" + (f" ({self.algorithm})>" if self.algorithm else ">")


class DropoutStep(Step):
    """Dropout: the mask drawn for the shard's samples in training, the identity at inference."""

    def __init__(self, layer, backend, seed):
        super().__init__([layer], ops.REFERENCE["dropout"], (), backend)
        self.layer, self.seed = layer, seed

    def forward(self, x, ctx=INFERENCE):
        if not ctx.training or self.layer.rate == 0:
            self._cache = None
            return x
        n = x.shape[0] if x.ndim == 2 else x.shape[1]     # (N, D) or (C, N, H, W)
        u = self.layer.uniforms(self.seed, ctx.step, ctx.first, n)
        u = ops.to_internal(self.backend.asarray(u, dtype=x.dtype), self.backend, self.ws)
        y, self._cache = self._forward(x, u, self.layer.rate, self.backend, self.ws)
        return y

    def backward(self, dy, need_dx=True, grads=()):
        if self._cache is None:
            return dy if need_dx else None
        return super().backward(dy, need_dx, grads)


class BatchNormStep(Step):
    """Batch norm: the whole batch's statistics in training (summed with ctx.reduce), the
    running statistics at inference.  The shard that ``keeps_state`` also updates the running
    statistics (once per training step)."""

    def __init__(self, layer, backend, keeps_state):
        super().__init__([layer], ops.REFERENCE["batchnorm"], (layer.epsilon,), backend)
        self.layer, self.keeps_state = layer, keeps_state
        self._infer = ops.REFERENCE["batchnorm_inference"]
        self._training_cache = False

    def forward(self, x, ctx=INFERENCE):
        gamma, beta = self.layer.params["gamma"], self.layer.params["beta"]
        state, eps = self.layer.state, self.layer.epsilon
        self._training_cache = ctx.training
        if not ctx.training:
            y, self._cache = self._infer.forward(x, gamma, beta, state["moving_mean"],
                                                 state["moving_variance"], eps, self.backend,
                                                 self.ws.part("inference"))
            return y
        y, self._cache = self._forward(x, gamma, beta, eps, ctx.reduce, self.backend, self.ws)
        if self.keeps_state:
            running_average(state["moving_mean"], self._cache.mean, self.layer.momentum)
            running_average(state["moving_variance"], self._cache.var, self.layer.momentum)
        return y

    def backward(self, dy, need_dx=True, grads=()):
        if self._training_cache:
            return self._finish(self._backward, dy, need_dx, grads)
        return self._finish(self._infer.backward, dy, need_dx, grads)

    def idle_forward(self, reduce, dtype):
        """Zeros into the batch's two sums; the running statistics still take the batch's
        (the other processes' samples), so that every process keeps the same state."""
        xp, c = self.backend.xp, self.layer.input_shape[0]
        sums = reduce(xp.zeros(c + 1, dtype))
        count = int(sums[c])
        mean = sums[:c] / count
        var = reduce(xp.zeros(c, dtype)) / count
        if self.keeps_state:
            state = self.layer.state
            running_average(state["moving_mean"], mean, self.layer.momentum)
            running_average(state["moving_variance"], var, self.layer.momentum)

    def idle_backward(self, reduce, dtype, need_dx):
        if need_dx:
            reduce(self.backend.xp.zeros((2, self.layer.input_shape[0]), dtype))


def _fusable_pool(layer):
    """True for the pool the fused conv + ReLU + pool kernels compute: 2x2, stride 2, unpadded."""
    return (isinstance(layer, MaxPool2D) and layer.pool_size == (2, 2) and layer.stride == (2, 2)
            and layer.padding in ("valid", (0, 0)))


def _conv_step(layers, i, backend, fuse):
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
            return Step(layers[i:i + count], pair, static, backend, algorithm), count
    raise ValueError(f"{conv.name}: backend {backend.name!r} has no {algorithm} convolution")


def build_plan(layers, backend, fuse=True, seed=0, keeps_state=True):
    """[Step] for built ``layers``.  ``seed``: the model's (dropout masks); ``keeps_state``:
    this plan's batch-norm steps update the running statistics (one thread's plan does)."""
    steps, i = [], 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv2D):
            step, count = _conv_step(layers, i, backend, fuse)
        elif isinstance(layer, Dropout):
            step, count = DropoutStep(layer, backend, seed), 1
        elif isinstance(layer, BatchNorm):
            step, count = BatchNormStep(layer, backend, keeps_state), 1
        else:
            op, static = _PLAIN[type(layer)]
            step, count = Step([layer], ops.resolve(op, backend), static(layer), backend), 1
        steps.append(step)
        i += count
    return steps


class ShardPlan:
    """One thread's copy of a model's plan: the shared parameters; its own steps and buffers
    (a model with k threads has k of them).  It runs one shard of a batch at a time, writing
    that shard's gradients wherever the call says (``targets``), so that any thread can run
    any shard (parallel/shards.py)."""

    def __init__(self, layers, backend, fuse=True, seed=0, keeps_state=True):
        self.backend = backend
        self.steps = build_plan(layers, backend, fuse, seed, keeps_state)
        self.ws = Workspace(backend.xp, huge_pages=True)
        self.loss_fn = ops.resolve("softmax_cross_entropy", backend)

    def forward(self, x, ctx=INFERENCE, capture=None):
        """x (N, ...) public layout -> the last step's output, internal layout.  ``capture``:
        a list that gets (step, its output) of every step."""
        h = ops.to_internal(x, self.backend, self.ws)
        for step in self.steps:
            h = step.forward(h, ctx)
            if capture is not None:
                capture.append((step, h))
        return h

    def targets(self, grad_views):
        """Where backward writes the gradients: per step, the views of its parameters'
        gradients in ``grad_views`` ({layer: {name: view}}, FlatLayout.views)."""
        return [[view for layer in step.layers for view in grad_views[layer].values()]
                for step in self.steps]

    def backward(self, dy, input_grad, targets):
        """dy of the last step -> dL/dx of the first (None without input_grad); the parameter
        gradients go to ``targets``."""
        for i in range(len(self.steps) - 1, -1, -1):
            dy = self.steps[i].backward(dy, input_grad or i > 0, targets[i])
        return dy

    def train(self, x, labels, total, ctx, targets):
        """Forward and backward of one shard, its gradients into ``targets``; (summed loss /
        total, number correct)."""
        logits = self.forward(x, ctx)
        loss, dlogits = self.loss_fn(logits, labels, self.backend, total, self.ws)
        self.backward(dlogits, False, targets)
        return loss, int((logits.argmax(axis=1) == labels).sum())

    def idle(self, reduce, dtype):
        """Take part in a training step without samples: add zeros to every sum the other
        processes' steps take (forward order, then backward), so that theirs can complete."""
        for step in self.steps:
            step.idle_forward(reduce, dtype)
        for i in range(len(self.steps) - 1, -1, -1):
            self.steps[i].idle_backward(reduce, dtype, need_dx=i > 0)

    def score(self, x, labels):
        """Inference forward only; (sum of the per-sample losses, number correct)."""
        logits = self.forward(x)
        loss, _ = self.loss_fn(logits, labels, self.backend, 1, self.ws)
        return loss, int((logits.argmax(axis=1) == labels).sum())
