"""Sequential model: layers run as a plan of steps, forward and then backward in reverse.

Public arrays are NCHW (or ``Images``, converted a batch at a time); inside, images are (C, N,
H, W) (``ops/layout.py``), converted on the way in and at the flatten.  Every parameter lives in
one flat buffer (``flat_params``) and every gradient in another (``flat_grads``), so an
optimizer update is one call; ``layer.params`` and ``layer.grads`` are views into them
(nn/buffers.py), and ``layer.state`` (batch norm's running statistics) views into
``flat_state``.  With ``threads=k`` a training step cuts its batch into ``shards`` parts
(default: one per thread), each with its own gradient buffer; each of the k threads has its own
plan (``ShardPlan``) and takes the next shard as it comes free (parallel/shards.py), and the
shards' gradients are summed in shard order before the one update, so the numbers depend on the
shard count, never on which thread ran what.

Training and inference: ``train_step`` trains (dropout drops, batch norm uses
and updates the batch's statistics); ``forward``, ``evaluate`` and ``predict``
infer (dropout off, batch norm on its running statistics), unless
``forward(x, training=True)`` asks for the training forward, as Keras's
``training=`` does.
"""
import numpy as np

from .. import ops
from ..backend import get_backend
from ..data.images import Images, rows
from ..ops.workspace import Workspace
from ..parallel.shards import (ShardSums, SingleProcess, ThreadShards, part_of, shard_bounds,
                               shard_count, sum_gradients)
from . import memory, model_file, validate
from .buffers import FlatLayout
from .layers import Layer
from .plan import INFERENCE, Context, ShardPlan, alone
from .regularization import BatchNorm, Dropout
from .summary import summary_text

_DTYPES = ("float32", "float64")


class Sequential:
    """``Sequential(layers, input_shape=(C, H, W), backend="numpy", dtype="float32", seed=0,
    threads=1, shards=None, fuse=True, comm=None)``.

    The last layer's outputs are the logits.  ``fuse=False`` runs every layer
    as its own step (same numbers; the tests compare the two).  ``comm``: the
    communicator of a run over several processes (parallel/mpi.py);
    every process then holds process 0's weights, trains its part of each
    batch, and all apply the same summed gradients.
    """

    def __init__(self, layers, input_shape, backend="numpy", dtype="float32", seed=0,
                 threads=1, shards=None, fuse=True, comm=None):
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("Sequential: layers must be a non-empty list of minicnn layers")
        shape, self.threads, shards = validate.model_settings(input_shape, dtype, _DTYPES, seed,
                                                              threads, shards)
        self.shards = shard_count(self.threads, shards, any(isinstance(layer, BatchNorm)
                                                            for layer in layers), "Sequential: ")
        self.comm = comm or SingleProcess()
        self.backend = get_backend(backend)
        self.dtype = np.dtype(dtype)
        self.seed, self.layers, self.input_shape, self.fuse = int(seed), layers, shape, fuse
        self.metadata = {}          # saved with the model: what it was trained on
        self.steps_taken = 0        # training steps so far: the dropout masks change with it
        counts = {}
        for index, layer in enumerate(layers):
            base = type(layer).__name__.lower()
            layer.name = base if base not in counts else f"{base}_{counts[base]}"
            counts[base] = counts.get(base, 0) + 1
            if isinstance(layer, Dropout):
                layer.stream = index
            shape = layer.build(shape)
        self.output_shape = shape
        parameters = sum(layer.num_params() for layer in layers)
        memory.check(memory.parameter_bytes(parameters, self.dtype.itemsize, self.shards),
                     f"Sequential: a model of {parameters:,} parameters", "fewer shards")
        rng = np.random.default_rng(self.seed)
        self._params = FlatLayout(layers, [layer.initial_params(rng) for layer in layers])
        self._state = FlatLayout(layers, [layer.initial_state() for layer in layers])
        xp = self.backend.xp
        self.flat_params = self.comm.broadcast(self.backend.asarray(self._params.initial,
                                                                    dtype=self.dtype))
        # The dropout streams of every process are process 0's (after the weights are drawn,
        # so that a broadcast that failed to reach a process would show in its weights).
        self.seed = int(self.comm.broadcast(np.array([self.seed], dtype=np.int64))[0])
        self.flat_state = self.backend.asarray(self._state.initial, dtype=self.dtype)
        for layer, views in self._params.views(self.flat_params).items():
            layer.params = views
        for layer, views in self._state.views(self.flat_state).items():
            layer.state = views
        self._plans = [ShardPlan(layers, self.backend, fuse, self.seed, keeps_state=i == 0)
                       for i in range(self.threads)]
        # One flat gradient buffer per shard (the first is flat_grads), and where each
        # plan's steps write into it.
        self._shard_grads = [xp.zeros(self._params.size, dtype=self.dtype)
                             for _ in range(self.shards)]
        self._targets = [self._plans[0].targets(self._params.views(g))
                         for g in self._shard_grads]
        self.flat_grads = self._shard_grads[0]
        for layer, views in self._params.views(self.flat_grads).items():
            layer.grads = views
        self._decayed = [(layer.params[k], layer.grads[k], rate) for layer in layers
                         for k, rate in getattr(layer, "decayed", dict)().items()]
        self._per_unit_norm = any(isinstance(l, BatchNorm) and l.per_unit for l in layers)
        self._sums = ShardSums(self.comm)
        self._runner = ThreadShards(self.threads)
        self._ws = Workspace(xp)

    @property
    def plan(self):
        """The execution plan, [Step]: the layers grouped into fused steps (each thread runs a
        copy)."""
        return self._plans[0].steps

    # -- checks at the edge -------------------------------------------------
    def _check_batch(self, x, allow_empty=False):
        return validate.batch(x, self.backend, self.dtype, self.input_shape, allow_empty)

    def _check_training_batch(self, total):
        validate.training_batch(total, self._per_unit_norm)

    def _check_labels(self, labels, n):
        return validate.labels(labels, n, self.output_shape[0], self.backend.xp)

    # -- running ------------------------------------------------------------
    def _context(self, training, n):
        if not training:
            return INFERENCE
        self._check_training_batch(n)
        return Context(True, self.steps_taken, 0, alone)

    def forward(self, x, training=False):
        """x (N, *input_shape), a backend array of the model's dtype -> logits (N, K), a new
        array.  ``training=True`` runs the training forward of the next step (dropout masks
        drawn, batch norm on the batch's statistics, its running averages updated)."""
        x = self._check_batch(x)
        out = self._plans[0].forward(x, self._context(training, x.shape[0]))
        return ops.to_public(out, self.backend).copy()

    def activations(self, x):
        """[(step name, output)] of an inference forward of x, every step's output a NumPy
        array in the public layout (N, C, H, W) or (N, D): what TensorBoard's histograms and
        the report's feature maps show."""
        captured = []
        self._plans[0].forward(self._check_batch(x), capture=captured)
        return [(step.name, self.backend.to_numpy(ops.to_public(h, self.backend)).copy())
                for step, h in captured]

    def backward(self, dlogits, input_grad=True):
        """Back-propagate dlogits (N, K) through the last ``forward`` or ``loss`` (``evaluate``
        and ``predict`` run forwards too: call backward right after the forward it belongs
        to); fills ``flat_grads`` (``layer.grads``) and returns dL/dx (N, *input_shape), or
        None with input_grad=False (training skips the first layer's input gradient)."""
        dx = self._plans[0].backward(self.backend.xp.ascontiguousarray(dlogits), input_grad,
                                     self._targets[0])
        return ops.to_public(dx, self.backend).copy() if input_grad else None

    def loss(self, x, labels, training=False):
        """Forward + softmax cross-entropy of one batch: (mean loss, dlogits, logits), without
        weight decay (``backward`` then gives the gradients of this loss)."""
        shard = self._plans[0]
        x = self._check_batch(x)
        logits = shard.forward(x, self._context(training, x.shape[0]))
        labels = self._check_labels(labels, x.shape[0])
        loss, dlogits = shard.loss_fn(logits, labels, self.backend, None, shard.ws)
        return loss, dlogits.copy(), logits.copy()

    def train_step(self, x, labels, optimizer):
        """One step on a batch already on the backend: forward, backward, one update of every
        parameter.  Returns (mean loss with the weight decay, number correct).  Over several
        processes, x is this process's part of the batch (``part_of``) and the results are
        the whole batch's."""
        x = self._check_batch(x, allow_empty=self.comm.size > 1)
        labels = self._check_labels(labels, x.shape[0])
        loss, correct = self._train_step(x, labels)
        optimizer.step(self)
        return loss, correct

    def _train_step(self, x, labels):
        """Each thread shard's forward and backward, their gradients summed in flat_grads, then
        summed over the processes; then the weight decay."""
        n = x.shape[0]
        total = int(self.comm.sum_scalars(n)[0]) if self.comm.size > 1 else n
        self._check_training_batch(total)
        first = part_of(total, self.comm)[0]
        loss, correct = 0.0, 0
        if n:
            bounds = shard_bounds(n, self.shards)
            self._sums.start(len(bounds))
            calls = [(x[a:b], labels[a:b], self._targets[i],
                      Context(True, self.steps_taken, first + a, self._sums.for_shard(i)))
                     for i, (a, b) in enumerate(bounds)]
            results = self._runner.map(
                lambda thread, xs, ys, targets, ctx: self._plans[thread].train(
                    xs, ys, total, ctx, targets), calls, on_error=self._sums.abort)
            sum_gradients(self.flat_grads, self._shard_grads[1:len(results)])
            loss, correct = sum(r[0] for r in results), sum(r[1] for r in results)
        else:                       # a process with no part of this batch still takes part
            self.flat_grads[...] = 0
            self._sums.start(1)
            self._plans[0].idle(self._sums.for_shard(0), self.dtype)
        if self.comm.size > 1:
            self.comm.allreduce_sum(self.flat_grads)
            loss, correct = self.comm.sum_scalars(loss, correct)
        self.steps_taken += 1
        return loss + self._weight_decay(add_gradients=True), int(correct)

    def _weight_decay(self, add_gradients):
        """The L2 penalty rate/2 * sum(w^2) of the decayed weights; with add_gradients,
        rate * w is added to their gradients (once, after the sums over shards)."""
        if not add_gradients:
            return sum(0.5 * rate * float(self.backend.xp.vdot(w.reshape(-1), w.reshape(-1)))
                       for w, _, rate in self._decayed)
        penalty = ops.resolve("l2_penalty", self.backend)
        return sum(penalty(w, g, rate, self.backend, self._ws) for w, g, rate in self._decayed)

    def _batches(self, x, batch_size):
        """(start, backend batch) over host or backend inputs."""
        if not isinstance(x, (self.backend.xp.ndarray, Images)):    # Images: batch by batch
            x = np.asarray(x)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"Sequential: expected inputs of shape (N, "
                             f"{', '.join(map(str, self.input_shape))}), got {tuple(x.shape)}")
        for start in range(0, len(x), batch_size):
            yield start, self.backend.asarray(x[start:start + batch_size], dtype=self.dtype)

    def _on_shards(self, fn, *arrays):
        """[fn(plan, *its part of each array)] of an inference pass, the batch cut into one
        part per shard and the parts run on the threads, each on its thread's plan."""
        bounds = shard_bounds(len(arrays[0]), self.shards)
        calls = [tuple(a[start:stop] for a in arrays) for start, stop in bounds]
        return self._runner.map(lambda thread, *parts: fn(self._plans[thread], *parts), calls)

    def predict(self, x, batch_size=500):
        """Class indices (numpy int64, (N,)) for host or backend inputs (N, *input_shape)."""
        out = []
        for _, xb in self._batches(x, batch_size):
            out += self._on_shards(
                lambda shard, xs: self.backend.to_numpy(shard.forward(xs).argmax(axis=1)), xb)
        return np.concatenate(out).astype(np.int64)

    def evaluate(self, x, labels, batch_size=250):
        """(mean loss with the weight decay, accuracy) over host or backend inputs, inference
        mode; the same for any batch size.  Over several processes each takes its part of the
        data and the sums are combined."""
        n = len(x)
        if n == 0:
            raise ValueError("Sequential: nothing to evaluate; pass at least one sample")
        labels = self._check_labels(self.backend.asarray(labels), n)
        a, b = part_of(n, self.comm)
        total_loss, correct = 0.0, 0
        for start, xb in self._batches(rows(x, a, b), batch_size):
            for loss, hits in self._on_shards(lambda shard, xs, ys: shard.score(xs, ys), xb,
                                              labels[a + start:a + start + len(xb)]):
                total_loss, correct = total_loss + loss, correct + hits
        total_loss, correct = self.comm.sum_scalars(total_loss, correct)
        return total_loss / n + self._weight_decay(add_gradients=False), correct / n

    # -- parameters ---------------------------------------------------------
    def params(self):
        """[(name, array)] of every parameter, e.g. ('conv2d.w', w): views of flat_params."""
        return self._params.named(self.flat_params)

    def grads(self):
        """[(name, array)] aligned with params(): views of flat_grads."""
        return self._params.named(self.flat_grads)

    def state(self):
        """[(name, array)] of the non-trainable state (batch norm's moving_mean and
        moving_variance): views of flat_state."""
        return self._state.named(self.flat_state)

    def num_params(self):
        """Trainable parameters (the state is not counted: see summary())."""
        return int(self.flat_params.size)

    def summary(self, print_fn=print):
        """A table of layer, output shape, parameter count and convolution algorithm, like
        Keras's; returned and printed."""
        text = summary_text(self)
        if print_fn:
            print_fn(text)
        return text

    def __repr__(self):
        return f"Sequential({self.layers!r}, input_shape={self.input_shape})"

    # -- persistence (nn/model_file.py; minicnn.load reads it back) ---------------
    def architecture(self):
        """The JSON description save() writes: input shape, dtype, seed and every layer's config."""
        return {"input_shape": list(self.input_shape), "dtype": str(self.dtype), "seed": self.seed,
                "layers": [{"type": type(layer).__name__, **layer.config()}
                           for layer in self.layers]}

    def save(self, path, **metadata):
        """Write architecture, weights, state and ``metadata`` (JSON values, e.g.
        dataset="mnist", kept in ``model.metadata`` when loaded) to one .npz file, atomically."""
        to_host = self.backend.to_numpy
        model_file.write(path, self.architecture(), {**self.metadata, **metadata},
                         {name: to_host(p) for name, p in self.params()},
                         {name: to_host(s) for name, s in self.state()})
