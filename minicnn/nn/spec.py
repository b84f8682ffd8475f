"""The ``--arch`` text specification: a comma-separated stack of layers.

    lab                               the lab model (width from --filters and --units)
    conv:F:K[:S][:P]                  Conv2D, F filters, kernel K ('5' or '5x3'),
                                      stride S ('2' or '2x1', default 1),
                                      padding P ('valid' default, 'same', or an int;
                                      'same'/'valid' may stand in any position);
                                      algo=A picks its algorithm (default: --conv-algo)
    pool[:K[:S][:P]]                  MaxPool2D, window K (default 2), stride S (default K)
    relu | sigmoid | flatten
    dense:U                           Dense with U units

Options may also be named: conv:16:4:stride=2:pad=same:algo=im2col.  A Flatten is
inserted before the first dense layer when none was given.  Examples:

    conv:6:5:same,relu,pool:2,dense:128,sigmoid,dense:10
    conv:16:4:stride=2,relu,dense:10
"""
from .layers import CONV_ALGORITHMS, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sigmoid
from .presets import lab_layers

TOKENS = ("conv", "pool", "relu", "sigmoid", "flatten", "dense")


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


def _window_args(args, token, names, named_only=()):
    """Positional then key=value options for conv/pool, in the order of names; the options
    in named_only can only be given as key=value."""
    values, position = {}, 0
    for arg in args:
        key, eq, value = arg.partition("=")
        if not eq and arg in ("same", "valid"):      # padding is recognisable anywhere
            key, value = "pad", arg
        elif not eq:
            if values.keys() - set(names[:position]) - {"pad"}:
                raise ArchError(f"--arch: positional option after a named one in {token!r}")
            if position >= len(names):
                raise ArchError(f"--arch: too many options in {token!r}")
            key, value = names[position], arg
            position += 1
        key = {"padding": "pad", "kernel": "k", "size": "k"}.get(key, key)
        if key not in names + named_only:
            raise ArchError(f"--arch: unknown option {key!r} in {token!r}; use "
                            f"{', '.join(names + named_only)}")
        if key in values:
            raise ArchError(f"--arch: {key} given twice in {token!r}")
        values[key] = value
    return values


def _layer(token, algorithm):
    name, *args = token.strip().split(":")
    name = {"maxpool": "pool", "fc": "dense"}.get(name.lower(), name.lower())
    if name not in TOKENS:
        raise ArchError(f"--arch: unknown layer {name!r} in {token!r}; use one of "
                        f"{', '.join(TOKENS)} (or the preset 'lab')")
    if name in ("relu", "sigmoid", "flatten"):
        if args:
            raise ArchError(f"--arch: {name} takes no options, got {token!r}")
        return {"relu": ReLU, "sigmoid": Sigmoid, "flatten": Flatten}[name]()
    if name == "dense":
        if len(args) != 1 or not args[0].isdigit() or int(args[0]) <= 0:
            raise ArchError(f"--arch: dense needs a positive unit count, e.g. dense:128, got {token!r}")
        return Dense(int(args[0]))
    if name == "conv":
        v = _window_args(args, token, ("filters", "k", "stride", "pad"), ("algo",))
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
                      padding=_padding(v.get("pad", "valid"), token), algorithm=conv_algorithm)
    v = _window_args(args, token, ("k", "stride", "pad"))
    k = _size(v.get("k", "2"), "pool size", token)
    stride = _size(v["stride"], "stride", token) if "stride" in v else None
    return MaxPool2D(k, stride=stride, padding=_padding(v.get("pad", "valid"), token))


def parse_arch(spec, filters=16, units=128, classes=10, algorithm="auto"):
    """The layer list for an --arch string (see the module docstring); ``algorithm`` is the
    convolution algorithm of every conv layer that does not name its own."""
    spec = (spec or "").strip()
    if spec.lower() == "lab":
        return lab_layers(filters, units, classes, algorithm)
    tokens = [t for t in spec.replace(" ", "").split(",")]
    if not spec or any(not t for t in tokens):
        raise ArchError(f"--arch: empty layer in {spec!r}; separate layers with single commas")
    layers = [_layer(t, algorithm) for t in tokens]
    first_dense = next((i for i, l in enumerate(layers) if isinstance(l, Dense)), None)
    if first_dense is not None and not any(isinstance(l, Flatten) for l in layers[:first_dense]):
        layers.insert(first_dense, Flatten())
    return layers
