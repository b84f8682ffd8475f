"""What the command-line tools share: one-line errors, exit code 2, common flags."""
import argparse
import sys


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line on stderr and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog, message, code=2):
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def add_data_flags(parser):
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--data-dir", help="data root (default: $MINICNN_DATA, else "
                        "~/.cache/minicnn/data); the files go in <root>/<dataset>/")


def backend_choices():
    from .backend import backend_names
    return ["auto", *backend_names()]


def resolve_backend(prog, name, threads=None):
    """The backend, or a one-line error and exit 2 when it cannot run here."""
    from .backend import BackendUnavailable, get_backend
    try:
        backend = get_backend(name)
    except (BackendUnavailable, RuntimeError) as exc:
        fail(prog, str(exc))
    if threads:
        from .threads import configure
        configure(backend.name, threads)
    return backend
