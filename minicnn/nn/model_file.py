"""A model on disk: one .npz file holding the architecture (JSON), the weights and metadata.

    architecture   a JSON string: {"format": "minicnn-model", "version": 1, "input_shape": [...],
                   "dtype": "float32", "seed": 0, "layers": [{"type": "Conv2D", ...}, ...],
                   "metadata": {...}}
    param:<name>   one array per parameter, e.g. "param:conv2d.w"
    state:<name>   one array per non-trainable state buffer (batch norm's running statistics)

The format marker and version let any other file be refused in one line; the
file is written atomically (a temporary file renamed over the target), so an
interrupted save never leaves half a model.  This module is the codec only:
``Sequential.save`` writes through it and ``minicnn.load`` (nn/loading.py) reads.
"""
import io
import json

import numpy as np

from ..results.files import write_bytes

FORMAT = "minicnn-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """The file is not a usable minicnn model file; the message says what is wrong."""


def write(path, architecture, metadata, params, state=None):
    """Write one model file: ``architecture`` (JSON dict), ``metadata`` (JSON dict) and
    {name: host array} of parameters and of state buffers, atomically (or into ``path``
    when it is a writable binary file object)."""
    arrays = {f"param:{name}": a for name, a in params.items()}
    arrays.update({f"state:{name}": a for name, a in (state or {}).items()})
    arrays["architecture"] = np.array(json.dumps(
        {"format": FORMAT, "version": FORMAT_VERSION, **architecture, "metadata": metadata}))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    if hasattr(path, "write"):
        path.write(buffer.getvalue())
    else:
        write_bytes(path, buffer.getvalue())


def read(path):
    """(architecture dict, {name: parameter array}, {name: state array}) of a model file.
    Raises FileNotFoundError, or ModelFileError for any file that is not one of ours."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            arch = json.loads(str(data["architecture"]))
            params = {k[len("param:"):]: data[k] for k in data.files if k.startswith("param:")}
            state = {k[len("state:"):]: data[k] for k in data.files if k.startswith("state:")}
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a folder, not a model file") from None
    except Exception:  # zip, pickle, JSON and key errors all mean "not one of ours"
        raise ModelFileError(f"{path}: not a minicnn model file (one written by "
                             "Sequential.save() or python -m minicnn.train --out)") from None
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a minicnn model file (no minicnn format marker)")
    if arch.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: not a usable minicnn model file: format version "
                             f"{arch.get('version')!r} is not supported (this minicnn reads "
                             f"version {FORMAT_VERSION})")
    return arch, params, state
