"""Sequential model: a list of layers run forward and then backward in reverse."""
import io
import json

import numpy as np

from ._atomic import atomic_open
from .backend import get_backend
from .layers import LAYER_TYPES, Conv2D, Dense, Layer, ReLU

FORMAT = "minicnn-model"
FORMAT_VERSION = 1
_DTYPES = ("float32", "float64")


class Sequential:
    """``Sequential(layers, input_shape=(C, H, W), backend="numpy", dtype="float32", seed=0)``.

    The last layer's output are the logits.  Where a Conv2D or Dense layer is
    followed by ReLU, the model runs the pair as one fused step (bias, ReLU and
    the NCHW transpose in one pass); the results are identical to running them
    one after the other.
    """

    def __init__(self, layers, input_shape, backend="numpy", dtype="float32", seed=0):
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("Sequential: layers must be a non-empty list of minicnn layers")
        if str(dtype) not in _DTYPES:
            raise TypeError(f"Sequential: dtype must be one of {_DTYPES}, got {dtype!r}")
        shape = tuple(input_shape)
        if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0
                            for s in shape):
            raise ValueError(f"Sequential: input_shape must be positive ints like (1, 28, 28), "
                             f"got {input_shape!r}")
        self.backend = get_backend(backend)
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.layers = layers
        self.input_shape = shape
        rng = np.random.default_rng(seed)
        counts = {}
        for layer in layers:
            base = type(layer).__name__.lower()
            layer.name = base if base not in counts else f"{base}_{counts[base]}"
            counts[base] = counts.get(base, 0) + 1
            shape = layer.build(shape, self.backend, self.dtype, rng)
        self.output_shape = shape
        self.steps = self._fuse()   # the execution plan: [(layer, relu_fused)]

    def _fuse(self):
        """[(layer, relu_fused)] with each fused ReLU folded into the layer before it."""
        steps, i = [], 0
        while i < len(self.layers):
            layer = self.layers[i]
            fuse = (isinstance(layer, (Conv2D, Dense)) and i + 1 < len(self.layers)
                    and isinstance(self.layers[i + 1], ReLU))
            steps.append((layer, fuse))
            i += 2 if fuse else 1
        return steps

    # -- running ------------------------------------------------------------
    def forward(self, x):
        """x (N, *input_shape), a backend array of the model's dtype -> logits (N, K)."""
        for layer, relu in self.steps:
            x = layer.forward(x, relu=True) if relu else layer.forward(x)
        return x

    def backward(self, dlogits):
        """Back-propagate dlogits (N, K); fills every layer's ``grads``."""
        dy = dlogits
        for i in range(len(self.steps) - 1, -1, -1):
            # The first layer's input gradient is never used: skip its col2im/GEMM.
            dy = self.steps[i][0].backward(dy, need_dx=i > 0)
        return dy

    def loss(self, x, labels):
        """Forward + softmax cross-entropy: (loss, dlogits, logits)."""
        logits = self.forward(x)
        loss, dlogits = self.backend.softmax_cross_entropy(logits, labels)
        return loss, dlogits, logits

    def train_step(self, x, labels, optimizer):
        """One SGD step on a batch already on the backend: returns (loss, number correct)."""
        loss, dlogits, logits = self.loss(x, labels)
        self.backward(dlogits)
        optimizer.step(self)
        return loss, int((logits.argmax(axis=1) == labels).sum())

    def _host_batches(self, x, batch_size):
        x = np.asarray(self.backend.to_numpy(x)) if self.backend.is_array(x) else np.asarray(x)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"Sequential: expected inputs of shape (N, "
                             f"{', '.join(map(str, self.input_shape))}), got {x.shape}")
        for start in range(0, len(x), batch_size):
            yield start, self.backend.asarray(x[start:start + batch_size], dtype=self.dtype)

    def predict(self, x, batch_size=500):
        """Class indices (numpy int64, (N,)) for host or backend inputs (N, *input_shape)."""
        out = [self.backend.to_numpy(self.forward(xb).argmax(axis=1))
               for _, xb in self._host_batches(x, batch_size)]
        return np.concatenate(out).astype(np.int64)

    def evaluate(self, x, labels, batch_size=250):
        """(mean loss, accuracy) over host or backend inputs."""
        labels = np.asarray(self.backend.to_numpy(labels))
        total_loss, correct = 0.0, 0
        for start, xb in self._host_batches(x, batch_size):
            yb = labels[start:start + len(xb)]
            logits = self.forward(xb)
            loss, _ = self.backend.softmax_cross_entropy(logits, self.backend.asarray(yb))
            total_loss += loss * len(xb)
            correct += int((self.backend.to_numpy(logits.argmax(axis=1)) == yb).sum())
        return total_loss / len(labels), correct / len(labels)

    # -- parameters ---------------------------------------------------------
    def params(self):
        """[(name, array)] of every parameter, e.g. ('conv2d.w', w)."""
        return [(f"{layer.name}.{k}", p) for layer in self.layers for k, p in layer.params.items()]

    def grads(self):
        """[(name, array)] aligned with params()."""
        return [(f"{layer.name}.{k}", layer.grads[k]) for layer in self.layers
                for k in layer.params]

    def num_params(self):
        return sum(layer.num_params() for layer in self.layers)

    def summary(self, print_fn=print):
        """A table of layer, output shape and parameter count, like Keras; returned and printed."""
        rows = [(f"{layer.name} ({type(layer).__name__})",
                 str((None,) + layer.output_shape), f"{layer.num_params():,}")
                for layer in self.layers]
        heads = ("Layer (type)", "Output Shape", "Param #")
        widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(heads)]
        line = lambda cells: "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        rule = "=" * sum(widths)
        text = "\n".join([
            f'Model: "sequential"  input {(None,) + self.input_shape}  backend {self.backend.name}'
            f"  dtype {self.dtype}",
            rule, line(heads), rule, *(line(r) for r in rows), rule,
            f"Total params: {self.num_params():,}",
            f"Trainable params: {self.num_params():,}",
            "Non-trainable params: 0",
        ])
        if print_fn:
            print_fn(text)
        return text

    def __repr__(self):
        return f"Sequential({self.layers!r}, input_shape={self.input_shape})"

    # -- persistence --------------------------------------------------------
    def architecture(self):
        return {"format": FORMAT, "version": FORMAT_VERSION, "input_shape": list(self.input_shape),
                "dtype": str(self.dtype), "seed": self.seed,
                "layers": [{"type": type(layer).__name__, **layer.config()}
                           for layer in self.layers]}

    def save(self, path):
        """Write architecture and weights to one .npz file, atomically."""
        arrays = {f"param:{name}": self.backend.to_numpy(p) for name, p in self.params()}
        arrays["architecture"] = np.array(json.dumps(self.architecture()))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        with atomic_open(path, "wb") as f:
            f.write(buffer.getvalue())


def from_architecture(arch, backend="numpy", dtype=None):
    """Rebuild a freshly initialised model from an ``architecture()`` dict."""
    layers = []
    for spec in arch["layers"]:
        spec = dict(spec)
        cls = LAYER_TYPES.get(spec.pop("type"))
        if cls is None:
            raise ValueError(f"unknown layer type in architecture: {spec}")
        layers.append(cls(**spec))
    return Sequential(layers, tuple(arch["input_shape"]), backend=backend,
                      dtype=dtype or arch["dtype"], seed=arch.get("seed", 0))


def load(path, backend="numpy", dtype=None):
    """Load a model written by ``Sequential.save``; raises ValueError for any other file."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            arch = json.loads(str(data["architecture"]))
            if arch.get("format") != FORMAT:
                raise ValueError("no minicnn format marker")
            if arch.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {arch.get('version')} is not supported")
            weights = {k[len("param:"):]: data[k] for k in data.files if k.startswith("param:")}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zip, JSON and key errors all mean "not one of ours"
        raise ValueError(f"{path}: not a minicnn model file ({exc}); "
                         "save one with Sequential.save()") from None
    model = from_architecture(arch, backend=backend, dtype=dtype)
    for name, p in model.params():
        if name not in weights or weights[name].shape != p.shape:
            raise ValueError(f"{path}: weights for {name} are missing or have the wrong shape")
        p[...] = model.backend.asarray(weights[name], dtype=model.dtype)
    return model
