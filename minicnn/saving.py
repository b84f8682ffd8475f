"""A model on disk: one .npz file holding the architecture (JSON), the weights and metadata.

The JSON carries a format marker and a version, so any other file is refused
with one clear line; the file is written atomically (a temporary file renamed
over the target), so an interrupted save never leaves half a model.
"""
import io
import json

import numpy as np

from ._atomic import atomic_open
from .layers import LAYER_TYPES

FORMAT = "minicnn-model"
FORMAT_VERSION = 1


def architecture(model):
    return {"format": FORMAT, "version": FORMAT_VERSION, "input_shape": list(model.input_shape),
            "dtype": str(model.dtype), "seed": model.seed,
            "layers": [{"type": type(layer).__name__, **layer.config()}
                       for layer in model.layers]}


def save(model, path, **metadata):
    """Write ``model`` and ``metadata`` (merged into model.metadata) to ``path``, atomically."""
    arrays = {f"param:{name}": model.backend.to_numpy(p) for name, p in model.params()}
    arrays["architecture"] = np.array(json.dumps(dict(architecture(model),
                                                      metadata={**model.metadata, **metadata})))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())


def from_architecture(arch, backend="numpy", dtype=None, threads=1, comm=None):
    """Rebuild a freshly initialised model from an ``architecture()`` dict."""
    from .model import Sequential
    layers = []
    for spec in arch["layers"]:
        spec = dict(spec)
        cls = LAYER_TYPES.get(spec.pop("type"))
        if cls is None:
            raise ValueError(f"unknown layer type in architecture: {spec}")
        layers.append(cls(**spec))
    return Sequential(layers, tuple(arch["input_shape"]), backend=backend,
                      dtype=dtype or arch["dtype"], seed=arch.get("seed", 0), threads=threads,
                      comm=comm)


def load(path, backend="numpy", dtype=None, threads=1, comm=None):
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
    except Exception:  # zip, pickle, JSON and key errors all mean "not one of ours"
        raise ValueError(f"{path}: not a minicnn model file (one written by "
                         "Sequential.save() or python -m minicnn.train --out)") from None
    model = from_architecture(arch, backend=backend, dtype=dtype, threads=threads, comm=comm)
    model.metadata = dict(arch.get("metadata", {}))
    for name, p in model.params():
        if name not in weights or weights[name].shape != p.shape:
            raise ValueError(f"{path}: weights for {name} are missing or have the wrong shape")
        p[...] = model.backend.asarray(weights[name], dtype=model.dtype)
    return model
