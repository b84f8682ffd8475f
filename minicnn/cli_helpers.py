"""What the command-line tools share: one-line errors with exit code 2, flag types, common flags.

The flag types wrap the same checks as the Python API (``minicnn.validate``),
so ``--lr 0`` and ``SGD(0)`` are refused in the same words.
"""
import argparse
import sys

from . import validate


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line on stderr and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog, message, code=2):
    """Print ``prog: error: message`` on stderr and exit (2: bad input)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _flag_type(parse, check, kind):
    def convert(text):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        try:
            return check(value)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = kind      # argparse names the type in some messages
    return convert


positive_int = _flag_type(int, lambda v: validate.positive_int(v, ""), "an integer")
positive_float = _flag_type(float, lambda v: validate.number(v, ""), "a number")


def number_list(kind):
    """Flag type: a comma-separated list of positive numbers of ``kind`` (int or float)."""
    check = validate.positive_int if kind is int else validate.number

    def parse(text):
        try:
            values = [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                             f"{kind.__name__}s") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r}: give at least one value")
        for v in values:
            try:
                check(v, "")
            except (TypeError, ValueError):
                raise argparse.ArgumentTypeError(f"{text!r}: every value must be positive") from None
        return values
    return parse


def add_data_flags(parser, dataset_help=None):
    parser.add_argument("--dataset", default=None if dataset_help else "mnist",
                        choices=["mnist", "fashion-mnist"], help=dataset_help)
    parser.add_argument("--data-dir", help="data root (default: $MINICNN_DATA, else "
                        "~/.cache/minicnn/data); the files go in <root>/<dataset>/")


def backend_choices():
    from .backend import backend_names
    return ["auto", *backend_names()]


def resolve_backend(prog, name):
    """The backend, or a one-line error and exit 2 when it cannot run here."""
    from .backend import BackendUnavailable, get_backend
    try:
        return get_backend(name)
    except (BackendUnavailable, RuntimeError) as exc:
        fail(prog, str(exc))
