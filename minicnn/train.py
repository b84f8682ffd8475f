"""python -m minicnn.train: train a CNN on MNIST (or Fashion-MNIST, CIFAR-10) and keep its
learning curve.

    python -m minicnn.train                       # the lab model, 10 epochs, SGD 0.1, batch 50
    python -m minicnn.train --epochs 2 --filters 32 --out runs/f32
    python -m minicnn.train --arch "conv:6:5:same,relu,pool:2,dense:128,sigmoid,dense:10"
    python -m minicnn.train --arch tf-mnist-tutorial      # a preset and its training settings
    python -m minicnn.train --arch list                   # the presets

Everything that can be checked without the data (flags, --arch, the model's
shapes, the backend, the schedule) is checked before the data is read.
"""
import argparse
import shlex
import signal
import sys

from .cli import (ArgumentParser, add_backend_flag, add_training_flags, fail, positive_float,
                  positive_int, seed)
from .nn import spec as arch_spec
from .nn.layers import CONV_ALGORITHMS
from .results.run_log import Progress, epoch_line, summary_lines, write_outputs
from .results.tensorboard import SAMPLE
from .run_setup import (PROG, apply_defaults, build_model, list_presets, make_ema,
                        make_optimizer, make_schedule, open_tensorboard, prepare_output,
                        read_data, training_images)
OPTIMIZERS = ("sgd", "momentum", "adam")


def build_parser():
    p = ArgumentParser(prog=PROG, description="Train a CNN on MNIST with minicnn.",
                       epilog="--arch grammar:\n" + arch_spec.__doc__.split("\n", 2)[2],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_backend_flag(p)
    p.add_argument("--lr", type=positive_float, help="learning rate (default 0.1, or the "
                   "preset's)")
    p.add_argument("--lr-schedule", metavar="SPEC", help="constant (default), "
                   "staircase:RATE:EPOCHS, exponential:RATE:EPOCHS, step:E1,E2:FACTOR or cosine "
                   "(see minicnn/nn/schedules.py); each epoch's rates go to metrics.json")
    p.add_argument("--batch-size", type=positive_int, help="default 50, or the preset's")
    p.add_argument("--filters", type=positive_int, default=16, help="filters per conv layer (lab)")
    p.add_argument("--units", type=positive_int, default=128, help="hidden dense units (lab)")
    p.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="sgd (default), momentum (SGD with momentum 0.9) or adam")
    p.add_argument("--ema", type=positive_float, metavar="DECAY",
                   help="evaluate an exponential moving average of the weights (e.g. 0.9999, "
                        "as the CIFAR-10 tutorial)")
    p.add_argument("--seed", type=seed, default=0, help="initialisation, shuffling, dropout and "
                   "augmentation seed")
    add_training_flags(p, epochs=None, dataset=None)
    p.add_argument("--crop", type=positive_int, metavar="N", help="train and evaluate on N x N "
                   "crops, standardised per image (the CIFAR-10 tutorial: 24); central crops "
                   "unless --augment")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="the CIFAR-10 tutorial's augmentation of the training images: random "
                        "crop, flip, brightness and contrast (see minicnn/data/augment.py); on "
                        "for the cifar10-tutorial preset")
    p.add_argument("--arch", default="lab", help="a preset (--arch list shows them) or a layer "
                   "spec (see below); default lab")
    p.add_argument("--conv-algo", default="auto", choices=CONV_ALGORITHMS,
                   help="convolution algorithm of every conv layer (default: auto, chosen per "
                        "layer; model.summary() shows the choice)")
    p.add_argument("--threads", type=positive_int,
                   help="threads training the shards of every batch (default: one per core)")
    p.add_argument("--shards", type=positive_int,
                   help="shards of every batch, each taken by whichever thread is free "
                        "(default: one per thread; more can keep a busy core from holding "
                        "up every step, but cost 7-19%% on a quiet machine: docs/results.md)")
    p.add_argument("--out", metavar="DIR", help="write metrics.json, metrics.csv, "
                   "learning_curve.png and model.npz here (checked before training starts; "
                   "default: a new folder runs/train-NNN, or under $MINICNN_RUNS)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results an earlier run left in --out")
    p.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard event files here "
                   "(tensorboard --logdir DIR): training scalars, and each epoch's numbers, "
                   "histograms and sparsity")
    p.add_argument("--log-every", type=positive_int, default=100, metavar="N",
                   help="training steps between TensorBoard's training scalars (default 100)")
    p.add_argument("--report", action="store_true",
                   help="write the run's report page, <out>/report/index.html, at the end "
                        "(python -m minicnn.report)")
    p.add_argument("--quiet", action="store_true", help="only the final summary")
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cluster scheduler, timeout): stopped like Ctrl-C, exit status 143."""


class Signals:
    """Ctrl-C (SIGINT) and SIGTERM stop a run between two training steps, never inside one:
    an exception raised by a signal handler in the middle of a Numba kernel's call would
    come out of Numba as a SystemError.  Outside the training loop they stop at once."""

    def __init__(self):
        self.pending, self.training, self._previous = None, False, {}

    def __enter__(self):
        import threading
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.training:
            self.pending = signum
        else:
            self._raise(signum)

    @staticmethod
    def _raise(signum):
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    def check(self, *_):
        """After each training step: stop here if a signal came during it."""
        if self.pending is not None:
            self._raise(self.pending)


class OutOfSpace(Exception):
    """The results could not be written: the device is full (the message says how full)."""


def save(args, metrics, model, ema):
    """Write the run's files (the averaged weights where --ema asks); a full disk becomes
    OutOfSpace."""
    import errno
    from .results.run_dir import space_message
    try:
        with averaged(ema, model):
            write_outputs(args.out, metrics, model)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise OutOfSpace(space_message(args.out, 8 * model.num_params() + 2**20)) from None
        raise


def train(args, model, data, metrics, ema, augment, board, signals):
    """Run fit() with progress, per-epoch outputs and TensorBoard logs; returns the exit
    status."""
    from .nn.fit import NonFiniteLoss, fit
    progress = Progress(args.epochs, args.quiet)
    sample = model.backend.asarray(data.val.x[:SAMPLE], dtype=model.dtype) if board else None

    def on_step(*step):
        if board:
            board.step(*step)
        signals.check()

    def on_epoch(stats):
        progress.close()
        if not args.quiet:
            print(epoch_line(stats, args.epochs), flush=True)
        metrics["epochs"].append(stats._asdict())
        if board:
            with averaged(ema, model):
                board.epoch(stats, model, sample, len(data.train.y))
        if args.out:       # after every epoch, so an interrupted run keeps what it finished
            try:
                save(args, metrics, model, ema)
            except OutOfSpace:
                metrics["epochs"].pop()       # not in the files: not kept
                raise

    signals.training = True
    try:
        fit(model, make_optimizer(args.optimizer, args.lr), data, args.epochs, args.batch_size,
            args.seed, on_batch=progress.batch, on_epoch=on_epoch,
            schedule=make_schedule(args, len(data.train.y)), ema=ema, augment=augment,
            on_step=on_step)
        return 0
    except NonFiniteLoss as exc:
        progress.close()
        if model.comm.rank == 0:
            print(f"{PROG}: stopped: {exc}; the learning rate {args.lr} is too high for this "
                  f"model, try --lr {args.lr / 10:g}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        progress.close()
        if model.comm.rank == 0:
            print(f"{PROG}: {stopped(exc)}; {len(metrics['epochs'])} finished epoch(s) kept"
                  + (f" in {args.out}" if args.out else ""), file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except OutOfSpace as exc:
        progress.close()
        print(f"{PROG}: error: {exc}; {len(metrics['epochs'])} finished epoch(s) kept",
              file=sys.stderr)
        return 2
    finally:
        signals.training = False


def stopped(exc):
    return "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"


def averaged(ema, model):
    """The block runs with the weights the run evaluates: the average where --ema asks."""
    import contextlib
    return ema.applied(model) if ema is not None else contextlib.nullcontext()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.arch.strip().lower() == "list":
        list_presets()
        return 0
    apply_defaults(args)
    from .parallel import mpi
    try:
        comm = mpi.communicator()              # SingleProcess unless started by mpiexec
    except mpi.MPIError as exc:
        fail(PROG, str(exc))
    model = build_model(args, comm)
    make_schedule(args, training_images(args))  # a bad --lr-schedule is said before the data
    ema = make_ema(args)
    run_dir, board, metrics = None, None, {"epochs": []}
    if comm.rank == 0:                         # rank 0 alone prints and writes
        run_dir = prepare_output(args)
    else:
        args.quiet, args.out, args.report = True, None, False
    try:
        if comm.rank == 0:
            board = open_tensorboard(args)     # a failure here still releases the folder
        with Signals() as signals:
            return run(args, argv, model, ema, board, metrics, signals)
    except KeyboardInterrupt as exc:           # before training or after it
        print(f"{PROG}: {stopped(exc)}; {len(metrics['epochs'])} finished epoch(s) kept",
              file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if board:
            board.close()
        if run_dir:
            run_dir.release(len(metrics["epochs"]))


def run(args, argv, model, ema, board, metrics, signals):
    """Read the data, train, test, write; returns the exit status.  ``metrics`` is filled
    in place (its epochs say what was finished, whatever happens)."""
    from .results.sysinfo import system_info
    data, augment = read_data(args)
    command = " ".join([PROG, *map(shlex.quote, argv)])
    metrics.update({"config": dict(vars(args)), "command": command,
                    "architecture": model.architecture(), "epochs": [],
                    "parameters": model.num_params(), "backend": model.backend.name,
                    "threads": model.threads, "shards": model.shards,
                    "processes": model.comm.size,
                    "training_images": len(data.train.y),
                    "system": system_info(model.backend), "completed": False})
    if board:
        board.start(model, command)
    if not args.quiet:
        model.summary()
        print(f"training on {len(data.train.y):,} images, validating on {len(data.val.y):,}, "
              f"backend {model.backend.name}, {args.optimizer} lr {args.lr}, "
              f"batch {args.batch_size}")
    status = train(args, model, data, metrics, ema, augment, board, signals)
    # training time: every finished epoch's steps and validation, not the reporting
    metrics["runtime_seconds"] = metrics["epochs"][-1]["elapsed"] if metrics["epochs"] else 0.0
    if status == 0:
        with averaged(ema, model):
            test_loss, test_acc = model.evaluate(data.test.x, data.test.y)
        metrics.update(test_loss=test_loss, test_accuracy=test_acc, test_error=1 - test_acc,
                       completed=True)
        if args.out:
            try:
                save(args, metrics, model, ema)
            except OutOfSpace as exc:
                print(f"{PROG}: error: {exc}; {len(metrics['epochs'])} finished epoch(s) kept "
                      "without the test result", file=sys.stderr)
                status = 2
    if model.comm.rank == 0:
        print("\n".join(summary_lines(args, model, metrics, status)))
    if status == 0 and args.report:
        from .report import ReportError, write_report
        try:
            print(f"report           {write_report(args.out, data=data, quiet=args.quiet)}")
        except (ReportError, OSError) as exc:
            print(f"{PROG}: error: the report could not be written: {exc}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
