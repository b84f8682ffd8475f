"""The ``--arch`` text specification: a preset's name, or a comma-separated stack of layers.

    NAME                              a preset (python -m minicnn.train --arch list); 'lab'
                                      takes its width from --filters and --units
    conv:F:K[:S][:P]                  Conv2D, F filters, kernel K ('5' or '5x3'),
                                      stride S ('2' or '2x1', default 1),
                                      padding P ('valid' default, 'same', or an int;
                                      'same'/'valid' may stand in any position);
                                      algo=A picks its algorithm (default: --conv-algo)
    dense:U                           Dense with U units
      conv and dense also take wd=RATE (L2 weight decay of the weights), std=S (weights
      from a truncated normal of standard deviation S) and bias=B (biases start at B)
    pool[:K[:S][:P]]                  MaxPool2D, window K (default 2), stride S (default K)
    avgpool[:K[:S][:P]]               AvgPool2D, the same options
    relu | sigmoid | tanh | flatten
    dropout:RATE                      Dropout, RATE in [0, 1)
    bn[:MOMENTUM[:EPSILON]]           BatchNorm (Keras's defaults 0.99 and 0.001)
    lrn[:R[:BIAS[:ALPHA[:BETA]]]]     LocalResponseNorm, TensorFlow's definition and defaults
                                      (5, 1.0, 1.0, 0.5)

Options may also be named: conv:16:4:stride=2:pad=same:algo=im2col.  A Flatten is
inserted before the first dense layer when none was given.  Examples:

    conv:6:5:same,relu,pool:2,dense:128,sigmoid,dense:10
    conv:16:4:stride=2,relu,dense:10
    conv:32:3:same,bn,relu,pool,dropout:0.25,dense:128,relu,dense:10
"""
import math

from .layers import (CONV_ALGORITHMS, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU,
                     Sigmoid, Tanh)
from .regularization import BatchNorm, Dropout, LocalResponseNorm

TOKENS = ("conv", "dense", "pool", "avgpool", "relu", "sigmoid", "tanh", "flatten", "dropout",
          "bn", "lrn")
_ALIASES = {"maxpool": "pool", "fc": "dense", "batchnorm": "bn"}
_PLAIN = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "flatten": Flatten}
_WEIGHTS = ("wd", "std", "bias")


class ArchError(ValueError):
    pass


def _size(text, what, token):
    parts = text.lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ArchError(f"--arch: {what} must be a positive int or HxW (e.g. 5x3) in {token!r}, "
                        f"got {text!r}")
    return int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1]))


def _padding(text, token):
    if text in ("same", "valid"):
        return text
    if text.isdigit():
        return int(text)
    raise ArchError(f"--arch: padding must be 'same', 'valid' or an int in {token!r}, got {text!r}")


def _number(text, what, token, low=0.0, high=math.inf, low_inclusive=True):
    """float(text) in the range [low, high) (or (low, high)); ArchError saying which else."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    above = value >= low if low_inclusive else value > low
    if not (math.isfinite(value) and above and value < high):
        if high < math.inf:
            wanted = f"in [{low:g}, {high:g})"
        elif low == -math.inf:
            wanted = "a finite number"
        else:
            wanted = f"a number {'>=' if low_inclusive else '>'} {low:g}"
        raise ArchError(f"--arch: {what} must be {wanted} in {token!r}, got {text!r}")
    return value


def _options(args, token, names, named_only=()):
    """Positional then key=value options, in the order of names; the options in named_only
    can only be given as key=value; 'same'/'valid' are the padding wherever they stand."""
    values, position = {}, 0
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq and arg in ("same", "valid") and "pad" in names:
            key, value = "pad", arg
        elif not eq:
            if values.keys() - set(names[:position]) - {"pad"}:
                raise ArchError(f"--arch: positional option after a named one in {token!r}")
            if position >= len(names):
                raise ArchError(f"--arch: too many options in {token!r}")
            key, value = names[position], arg
            position += 1
        key = {"padding": "pad", "kernel": "k", "size": "k", "eps": "epsilon"}.get(key, key)
        if key not in names + named_only:
            raise ArchError(f"--arch: unknown option {key!r} in {token!r}; use "
                            f"{', '.join(names + named_only)}")
        if key in values:
            raise ArchError(f"--arch: {key} given twice in {token!r}")
        values[key] = value
    return values


def _weights(v, token):
    """The initialiser and decay arguments of a conv or dense token."""
    kwargs = {}
    if "wd" in v:
        kwargs["weight_decay"] = _number(v["wd"], "wd", token)
    if "std" in v:
        kwargs["kernel_initializer"] = {"type": "truncated_normal",
                                        "stddev": _number(v["std"], "std", token, 0, low_inclusive=False)}
    if "bias" in v:
        kwargs["bias_initializer"] = {"type": "constant",
                                      "value": _number(v["bias"], "bias", token, -math.inf)}
    return kwargs


def _conv(args, token, algorithm):
    v = _options(args, token, ("filters", "k", "stride", "pad"), ("algo", *_WEIGHTS))
    if "filters" not in v or "k" not in v:
        raise ArchError(f"--arch: conv needs filters and kernel, e.g. conv:16:3, got {token!r}")
    if not v["filters"].isdigit() or int(v["filters"]) <= 0:
        raise ArchError(f"--arch: filters must be a positive int in {token!r}, "
                        f"got {v['filters']!r}")
    conv_algorithm = v.get("algo", algorithm)
    if conv_algorithm not in CONV_ALGORITHMS:
        raise ArchError(f"--arch: algo must be one of {', '.join(CONV_ALGORITHMS)} in "
                        f"{token!r}, got {conv_algorithm!r}")
    return Conv2D(int(v["filters"]), _size(v["k"], "kernel", token),
                  stride=_size(v.get("stride", "1"), "stride", token),
                  padding=_padding(v.get("pad", "valid"), token), algorithm=conv_algorithm,
                  **_weights(v, token))


def _layer(token, algorithm):
    name, *args = token.strip().split(":")
    name = _ALIASES.get(name.lower(), name.lower())
    if name not in TOKENS:
        raise ArchError(f"--arch: unknown layer {name!r} in {token!r}; use one of "
                        f"{', '.join(TOKENS)} (or a preset: --arch list)")
    if name in _PLAIN:
        if args:
            raise ArchError(f"--arch: {name} takes no options, got {token!r}")
        return _PLAIN[name]()
    if name == "conv":
        return _conv(args, token, algorithm)
    if name == "dense":
        v = _options(args, token, ("units",), _WEIGHTS)
        if not v.get("units", "").isdigit() or int(v["units"]) <= 0:
            raise ArchError(f"--arch: dense needs a positive unit count, e.g. dense:128, got {token!r}")
        return Dense(int(v["units"]), **_weights(v, token))
    if name == "dropout":
        v = _options(args, token, ("rate",))
        if "rate" not in v:
            raise ArchError(f"--arch: dropout needs a rate in [0, 1), e.g. dropout:0.4, got {token!r}")
        return Dropout(_number(v["rate"], "the dropout rate", token, 0, 1))
    if name == "bn":
        v = _options(args, token, ("momentum", "epsilon"))
        return BatchNorm(_number(v.get("momentum", "0.99"), "momentum", token, 0, 1),
                         _number(v.get("epsilon", "0.001"), "epsilon", token, 0,
                                 low_inclusive=False))
    if name == "lrn":
        v = _options(args, token, ("radius", "bias", "alpha", "beta"))
        radius = v.get("radius", "5")
        if not radius.isdigit():
            raise ArchError(f"--arch: the lrn depth radius must be an int >= 0 in {token!r}, "
                            f"got {radius!r}")
        try:
            return LocalResponseNorm(int(radius), *(_number(v.get(k, d), k, token) for k, d in
                                                    (("bias", "1"), ("alpha", "1"), ("beta", "0.5"))))
        except ValueError as exc:
            raise ArchError(f"--arch: {exc} in {token!r}") from None
    v = _options(args, token, ("k", "stride", "pad"))
    k = _size(v.get("k", "2"), "pool size", token)
    stride = _size(v["stride"], "stride", token) if "stride" in v else None
    cls = MaxPool2D if name == "pool" else AvgPool2D
    return cls(k, stride=stride, padding=_padding(v.get("pad", "valid"), token))


def parse_arch(spec, filters=16, units=128, classes=10, algorithm="auto"):
    """The layer list for an --arch string (see the module docstring); ``algorithm`` is the
    convolution algorithm of every conv layer that does not name its own."""
    from .presets import PRESETS
    spec = (spec or "").strip()
    if spec.lower() in PRESETS:
        return PRESETS[spec.lower()].layers(filters=filters, units=units, classes=classes,
                                            algorithm=algorithm)
    tokens = [t for t in spec.replace(" ", "").split(",")]
    if not spec or any(not t for t in tokens):
        raise ArchError(f"--arch: empty layer in {spec!r}; separate layers with single commas")
    layers = [_layer(t, algorithm) for t in tokens]
    first_dense = next((i for i, l in enumerate(layers) if isinstance(l, Dense)), None)
    if first_dense is not None and not any(isinstance(l, Flatten) for l in layers[:first_dense]):
        layers.insert(first_dense, Flatten())
    return layers
