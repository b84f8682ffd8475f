"""What the commands share: one-line failures, flag types, and the flags several of them take.

Every command (``train``, ``evaluate``, ``sweep``, ``report``) and every
benchmark script builds its parser from these pieces, so a flag that several
take is defined once and refused in the same words everywhere.  The flag types
wrap the checks of the Python API (``nn/validate.py``), so ``--lr 0`` and
``SGD(0)`` are refused alike.  A bad flag, bad data or an unusable backend is
one line on stderr and exit code 2.
"""
import argparse
import contextlib
import os
import sys

from .nn import validate


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line on stderr and exits 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def fail(prog, message, code=2):
    """Print ``prog: error: message`` on stderr and exit (2: bad input)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


# -- flag types ------------------------------------------------------------------------
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


def _at_least_zero(value, name=""):
    if value < 0:
        raise ValueError(f"must be an integer >= 0, got {value}")
    return value


positive_int = _flag_type(int, lambda v: validate.positive_int(v, ""), "an integer")
positive_float = _flag_type(float, lambda v: validate.number(v, ""), "a number")
seed = _flag_type(int, _at_least_zero, "an integer >= 0")


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


def seed_list(text):
    """Flag type: comma-separated seeds, integers >= 0."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds "
                                         "(integers >= 0)")
    return values


def backend_name(text):
    """Flag type: 'auto' or the name of a backend (whether it can run here is checked later,
    by resolve_backend: a sweep may send trials to machines that have it)."""
    from .backend import backend_names
    if text != "auto" and text not in backend_names():
        raise argparse.ArgumentTypeError(f"unknown backend {text!r}; choose from auto, "
                                         f"{', '.join(backend_names())}")
    return text


def backend_list(text):
    """Flag type: comma-separated backend names, each checked as backend_name."""
    names = [backend_name(b.strip()) for b in text.split(",") if b.strip()]
    if not names:
        raise argparse.ArgumentTypeError("give at least one backend")
    return list(dict.fromkeys(names))


# -- flags several commands take ---------------------------------------------------------
def add_backend_flag(p, flag="--backend", default="auto", several=False, help=None):
    p.add_argument(flag, default=default, type=backend_list if several else backend_name,
                   help=help or ("comma-separated backends" if several else "array backend")
                   + f"; auto picks the fastest available (default: {default})")


def add_data_flags(parser, dataset_help=None, default="mnist"):
    from .data import NAMES
    parser.add_argument("--dataset", default=None if dataset_help else default,
                        choices=NAMES, help=dataset_help or f"default {default or 'mnist'}")
    parser.add_argument("--data-dir", help="data root (default: $MINICNN_DATA, else "
                        "~/.cache/minicnn/data); the files go in <root>/<dataset>/")


def add_training_flags(p, epochs=10, dataset="mnist"):
    """--epochs, --train-limit and the data flags (None defaults: the command fills them)."""
    p.add_argument("--epochs", type=positive_int, default=epochs,
                   help=f"default {epochs or 10}")
    p.add_argument("--train-limit", type=positive_int, metavar="N",
                   help="train on the first N training images only (quick runs)")
    add_data_flags(p, default=dataset)


def add_study_output_flags(p, out_default):
    """--out and --force of a study or sweep, whose finished points are kept in <out>/points."""
    p.add_argument("--out", default=out_default, help=f"output folder (default {out_default})")
    p.add_argument("--force", action="store_true",
                   help="recompute points that an earlier (interrupted) run already finished")


def add_tensorboard_flag(p):
    """--tensorboard DIR of a sweep or study: each trial writes to DIR/<its key>/."""
    p.add_argument("--tensorboard", metavar="DIR", help="TensorBoard event files, one "
                   "sub-folder per trial (tensorboard --logdir DIR)")


def tensorboard_folder(prog, args):
    """The --tensorboard folder checked (made if needed), as a string, or None; one line and
    exit 2 if it cannot be used."""
    if not getattr(args, "tensorboard", None):
        return None
    from .results.tensorboard import LogDirError, check_log_dir
    try:
        return str(check_log_dir(args.tensorboard).resolve())
    except LogDirError as exc:
        fail(prog, str(exc))


def add_cluster_flags(p, threads_default=1, threads_help=None):
    """Where the trials of a sweep or study run (sweeps/cluster.py)."""
    p.add_argument("--scheduler", metavar="tcp://HOST:8786",
                   default=os.environ.get("DASK_SCHEDULER_ADDRESS"),
                   help="send the trials to this running Dask scheduler (default: "
                        "$DASK_SCHEDULER_ADDRESS, else a local cluster on this machine)")
    p.add_argument("--workers", type=positive_int,
                   help="workers of the local cluster (default: cores // --threads)")
    p.add_argument("--threads", type=positive_int, default=threads_default,
                   help=threads_help or "threads (and cores) of each trial (default "
                   f"{threads_default}: one trial per core)")


# -- what the flags lead to -------------------------------------------------------------
def resolve_backend(prog, name):
    """The backend, or a one-line error and exit 2 when it cannot run here."""
    from .backend import BackendUnavailable, get_backend
    try:
        return get_backend(name)
    except (BackendUnavailable, RuntimeError, ValueError) as exc:
        fail(prog, str(exc))


def load_data(prog, args, progress=False):
    """The dataset the flags name (--dataset, --data-dir, --train-limit), or one line, exit 2."""
    from .data import DataError, load_dataset
    try:
        return load_dataset(args.dataset, args.data_dir, progress=progress,
                            train_limit=getattr(args, "train_limit", None))
    except (DataError, OSError, ValueError) as exc:
        fail(prog, f"cannot read {args.dataset}: {exc}")


@contextlib.contextmanager
def resumable(prog, points, what="points"):
    """Ctrl-C becomes one line saying that the finished ``what`` are kept (exit 130)."""
    try:
        yield
    except KeyboardInterrupt:
        fail(prog, f"interrupted; finished {what} are kept in {points.dir}, run again to resume",
             130)


def trial_backend(prog, name, remote):
    """A concrete backend name for the trials: resolved here, except for a named backend
    that cannot run here while the trials go to another machine's workers."""
    return name if remote and name != "auto" else resolve_backend(prog, name).name


@contextlib.contextmanager
def sweep_errors(prog):
    """A SweepError becomes the command's one line: exit 1 for a failed trial, else 2."""
    from .sweeps import SweepError, TrialFailed
    try:
        yield
    except SweepError as exc:
        fail(prog, str(exc), 1 if isinstance(exc, TrialFailed) else 2)
