"""``minicnn.load``: a model file (nn/model_file.py) back into a ``Sequential``.

A model file may have been edited by hand or may come from anyone, so every
field is checked before anything is built: the input shape, each layer's type
and arguments (through the layers' own checks), the memory the parameters
need, and every weight's shape.  Any problem is one ``ModelFileError`` line:
"<path>: not a usable minicnn model file: <what is wrong>".
"""
import inspect

from . import model_file
from .layers import AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid, Tanh
from .memory import NotEnoughMemory
from .model import Sequential
from .model_file import ModelFileError
from .regularization import BatchNorm, Dropout, LocalResponseNorm

LAYER_TYPES = {cls.__name__: cls for cls in (Conv2D, MaxPool2D, AvgPool2D, ReLU, Sigmoid, Tanh,
                                             Flatten, Dense, Dropout, BatchNorm,
                                             LocalResponseNorm)}


def _layer(spec, index):
    """The layer described by one entry of the architecture's "layers" list."""
    if not isinstance(spec, dict):
        raise ValueError(f"layer {index} is {spec!r}, not a {{\"type\": ...}} object")
    spec = dict(spec)
    kind = spec.pop("type", None)
    cls = LAYER_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"layer {index} has the unknown type {kind!r}; minicnn knows "
                         f"{', '.join(LAYER_TYPES)}")
    allowed = set(inspect.signature(cls).parameters)
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"layer {index} ({kind}) has the unknown argument(s) "
                         f"{', '.join(unknown)}; {kind} takes {', '.join(sorted(allowed)) or 'none'}")
    return cls(**spec)


def from_architecture(arch, backend="numpy", dtype=None, threads=1, comm=None, fuse=True):
    """Rebuild a freshly initialised model from an ``architecture()`` dict; ValueError (or
    TypeError, NotEnoughMemory) says what does not fit."""
    if "input_shape" not in arch:
        raise ValueError("the architecture has no input_shape")
    if not isinstance(arch.get("layers"), list):
        raise ValueError("the architecture has no list of layers")
    layers = [_layer(spec, i) for i, spec in enumerate(arch["layers"])]
    shape = arch["input_shape"]
    if not isinstance(shape, list):
        raise ValueError(f"input_shape must be a list of positive ints, got {shape!r}")
    seed = arch.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return Sequential(layers, tuple(shape), backend=backend, dtype=dtype or arch.get("dtype"),
                      seed=seed, threads=threads, comm=comm, fuse=fuse)


def load(path, backend="numpy", dtype=None, threads=1, comm=None, fuse=True):
    """Load a model written by ``Sequential.save`` (weights, batch norm's running statistics
    and metadata); ``fuse=False`` runs every layer as its own step (the report shows each
    convolution's own output).  Raises FileNotFoundError, or
    ModelFileError (a ValueError) saying why the file cannot be used."""
    arch, weights, state = model_file.read(path)
    try:
        model = from_architecture(arch, backend=backend, dtype=dtype, threads=threads, comm=comm,
                                  fuse=fuse)
    except (ValueError, TypeError, NotEnoughMemory) as exc:
        raise ModelFileError(f"{path}: not a usable minicnn model file: {exc}") from None
    metadata = arch.get("metadata", {})
    model.metadata = dict(metadata) if isinstance(metadata, dict) else {}
    for what, stored, views in (("weights", weights, model.params()),
                                ("state", state, model.state())):
        for name, view in views:
            view[...] = model.backend.asarray(_array(path, what, name, stored, view.shape),
                                              dtype=model.dtype)
    return model


def _array(path, what, name, stored, shape):
    """The stored array ``name``, checked: present, of ``shape``, real numbers."""
    a = stored.get(name)
    problem = ("missing" if a is None else f"shaped {a.shape}" if a.shape != shape else
               f"of type {a.dtype}, not numbers" if a.dtype.kind not in "biuf" else None)
    if problem:
        raise ModelFileError(f"{path}: not a usable minicnn model file: the {what} of {name} "
                             f"are {problem}, the architecture needs {shape} numbers")
    return a
