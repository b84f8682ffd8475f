"""How a layer's weights and biases start: drawn in float64 on the host from the model's
seeded generator, so every backend and dtype starts from the same numbers.

A layer names its initialisers as Keras does: a string, or a dict with a
"type" and its arguments, which is also what the model file records:

    "glorot_uniform"                          U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (default)
    "zeros", "ones"
    {"type": "constant", "value": 0.1}
    {"type": "truncated_normal", "stddev": 0.05}    N(0, stddev), values beyond 2 stddev drawn
                                                    again (tf.truncated_normal_initializer)
"""
import math

import numpy as np

from . import validate

KINDS = ("glorot_uniform", "zeros", "ones", "constant", "truncated_normal")
_ARGUMENTS = {"constant": ("value",), "truncated_normal": ("stddev",)}


def check(spec, owner):
    """The cleaned initialiser spec (str, or dict with "type"); TypeError/ValueError else."""
    kind, args = (spec, {}) if isinstance(spec, str) else (
        (spec.get("type"), {k: v for k, v in spec.items() if k != "type"})
        if isinstance(spec, dict) else (None, None))
    if kind not in KINDS:
        raise ValueError(f"{owner}: initializer must be one of {', '.join(KINDS)} (a name, or "
                         f"a dict with 'type'), got {spec!r}")
    wanted = _ARGUMENTS.get(kind, ())
    if set(args) != set(wanted):
        raise ValueError(f"{owner}: initializer {kind!r} takes "
                         f"{', '.join(wanted) or 'no arguments'}, got {spec!r}")
    if kind == "truncated_normal":
        args["stddev"] = validate.number(args["stddev"], "stddev", owner)
    if kind == "constant":
        args["value"] = validate.number(args["value"], "value", owner, low=-math.inf)
    return kind if not wanted else {"type": kind, **args}


def truncated_normal(rng, shape, stddev):
    """N(0, stddev) with every value beyond two standard deviations drawn again."""
    values = rng.standard_normal(shape)
    while True:
        outside = np.abs(values) > 2.0
        if not outside.any():
            return values * stddev
        values[outside] = rng.standard_normal(int(outside.sum()))


def draw(spec, rng, shape, fan_in, fan_out):
    """A float64 array of ``shape`` drawn as ``spec`` (checked) says."""
    kind = spec if isinstance(spec, str) else spec["type"]
    if kind == "glorot_uniform":
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape)
    if kind == "truncated_normal":
        return truncated_normal(rng, shape, spec["stddev"])
    value = {"zeros": 0.0, "ones": 1.0}.get(kind) if kind != "constant" else spec["value"]
    return np.full(shape, value)
