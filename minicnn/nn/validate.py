"""Argument checks shared by the layers, the optimizers, the model's edges and the command
line.

One family with one wording: each check returns the cleaned value or raises
TypeError (wrong kind of value) or ValueError (right kind, wrong value) with a
message "<owner>: <name> must be <requirement>, got <value>".  The command line
wraps the same checks (``minicnn.cli``), so a flag and a constructor argument
are refused in the same words.  ``batch`` and ``labels`` are what Sequential
checks where data enters, so that the kernels can trust it.
"""
import math
import numbers


def _prefix(owner, name):
    return f"{owner}: {name} " if owner else f"{name} " if name else ""


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def model_settings(input_shape, dtype, dtypes, seed, threads, shards):
    """Sequential's checks of its settings: (input shape as a tuple, threads, shards or None)."""
    if getattr(dtype, "__name__", str(dtype)) not in dtypes:  # "float32", np.float32
        raise TypeError(f"Sequential: dtype must be one of {dtypes}, got {dtype!r}")
    shape = tuple(input_shape)
    if not shape or not all(_is_int(s) and s > 0 for s in shape):
        raise ValueError(f"Sequential: input_shape must be positive ints like (1, 28, 28), "
                         f"got {input_shape!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"Sequential: seed must be an int >= 0, got {seed!r}")
    return (shape, positive_int(threads, "threads", "Sequential"),
            None if shards is None else positive_int(shards, "shards", "Sequential"))


def positive_int(value, name, owner=None):
    """An int > 0."""
    if not _is_int(value):
        raise TypeError(f"{_prefix(owner, name)}must be a positive int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{_prefix(owner, name)}must be a positive int, got {value!r}")
    return int(value)


def positive_pair(value, name, owner=None):
    """An int > 0 or a pair of them (height, width) -> (int, int)."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(_is_int(v) for v in pair):
        raise TypeError(f"{_prefix(owner, name)}must be a positive int or a pair of them, "
                        f"got {value!r}")
    if min(pair) <= 0:
        raise ValueError(f"{_prefix(owner, name)}must be a positive int or a pair of them, "
                         f"got {value!r}")
    return int(pair[0]), int(pair[1])


def padding(value, owner=None):
    """'valid', 'same', an int >= 0 or a pair of them (pad_h, pad_w)."""
    if isinstance(value, str):
        if value not in ("valid", "same"):
            raise ValueError(f"{_prefix(owner, 'padding')}must be 'valid', 'same', an int >= 0 "
                             f"or a (pad_h, pad_w) pair, got {value!r}")
        return value
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2 or not all(_is_int(v) for v in pair):
        raise TypeError(f"{_prefix(owner, 'padding')}must be 'valid', 'same', an int >= 0 "
                        f"or a (pad_h, pad_w) pair, got {value!r}")
    if min(pair) < 0:
        raise ValueError(f"{_prefix(owner, 'padding')}must be >= 0, got {value!r}")
    return int(pair[0]), int(pair[1])


def number(value, name, owner=None, low=0.0, high=math.inf, low_inclusive=False):
    """A finite real number in (low, high) (or [low, high) with low_inclusive) -> float."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{_prefix(owner, name)}must be a number, got {value!r}")
    value = float(value)
    above = value >= low if low_inclusive else value > low
    if not (math.isfinite(value) and above and value < high):
        if high == math.inf:
            wanted = "a finite number >= 0" if low_inclusive else "a positive finite number"
        else:
            wanted = f"in [{low:g}, {high:g})" if low_inclusive else f"in ({low:g}, {high:g})"
        raise ValueError(f"{_prefix(owner, name)}must be {wanted}, got {value!r}")
    return value


def one_of(value, choices, name, owner=None):
    if value not in choices:
        raise ValueError(f"{_prefix(owner, name)}must be one of {', '.join(map(repr, choices))}, "
                         f"got {value!r}")
    return value


def batch(x, backend, dtype, input_shape, allow_empty=False):
    """x, a C-contiguous backend array of ``dtype`` shaped (N, *input_shape), N > 0 unless
    allow_empty; TypeError/ValueError saying how to convert it otherwise."""
    if not isinstance(x, backend.xp.ndarray):
        raise TypeError(f"Sequential: expected a {backend.xp.__name__} array for backend "
                        f"{backend.name!r}, got {type(x).__name__}; convert it with "
                        "model.backend.asarray(x)")
    if x.dtype != dtype:
        raise TypeError(f"Sequential: expected {dtype} input, got {x.dtype}; "
                        f"convert it with x.astype('{dtype}')")
    if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape:
        raise ValueError(f"Sequential: expected input of shape (N, "
                         f"{', '.join(map(str, input_shape))}), got {tuple(x.shape)}")
    if x.shape[0] == 0 and not allow_empty:
        raise ValueError("Sequential: the batch is empty; pass at least one sample")
    return backend.xp.ascontiguousarray(x)


def labels(y, n, classes, xp):
    """Integer class indices, shape (n,), in [0, classes); ValueError saying what is wrong."""
    y = xp.asarray(y)
    if y.dtype.kind not in "iu" or y.shape != (n,):
        raise ValueError(f"Sequential: labels must be {n} integer class indices, shape ({n},), "
                         f"got {y.dtype} of shape {tuple(y.shape)}; one-hot or "
                         "float labels: take labels.argmax(axis=1) or labels.astype(int)")
    if n == 0:
        return y
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise ValueError(f"Sequential: label {bad} is out of range: this model has "
                         f"{classes} outputs, so labels must be in [0, {classes - 1}]")
    return y


def training_batch(total, per_unit_norm):
    """A training batch of ``total`` samples for a model with batch norm after a dense layer
    (``per_unit_norm``) needs at least two: the variance of one sample is 0."""
    if per_unit_norm and total < 2:
        raise ValueError("Sequential: batch norm after a dense layer needs at least 2 samples "
                         "per training batch (the variance of one sample is 0)")
