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
import sys

from .cli import (ArgumentParser, add_backend_flag, add_training_flags, fail, load_data,
                  positive_float, positive_int, resolve_backend, seed)
from .nn import spec as arch_spec
from .nn.layers import CONV_ALGORITHMS
from .results.run_log import Progress, epoch_line, summary_lines, write_outputs
from .results.tensorboard import SAMPLE

PROG = "python -m minicnn.train"
OPTIMIZERS = ("sgd", "momentum", "adam")
# What a run uses when neither the flags nor the --arch preset say (see apply_defaults).
DEFAULTS = {"epochs": 10, "lr": 0.1, "batch_size": 50, "dataset": "mnist",
            "lr_schedule": "constant", "ema": None, "optimizer": "sgd", "crop": None,
            "augment": False}


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
                   help="threads, each training a shard of every batch (default: one per core)")
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


def apply_defaults(args):
    """Fill the settings not given on the command line: the preset's, else DEFAULTS."""
    from .nn.presets import PRESETS
    preset = PRESETS.get(args.arch.strip().lower())
    for key, value in {**DEFAULTS, **(preset.defaults if preset else {})}.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def list_presets():
    from .nn.model import Sequential
    from .nn.presets import PRESETS
    print(f"{'preset':20s} {'input':12s} {'parameters':>11s}  description")
    for name, preset in PRESETS.items():
        model = Sequential(preset.layers(), preset.input_shape)
        shape = "x".join(map(str, preset.input_shape))
        print(f"{name:20s} {shape:12s} {model.num_params():11,d}  {preset.description}")
    print("\nA preset brings its source's training settings (flags given win): "
          + "; ".join(f"{n}: {', '.join(f'{k}={v}' for k, v in p.defaults.items())}"
                      for n, p in PRESETS.items() if p.defaults))


def make_schedule(args, images):
    """The learning-rate schedule of the flags over ``images`` training images, or a
    one-line exit 2."""
    from .nn.schedules import ScheduleError, parse_schedule
    try:
        return parse_schedule(args.lr_schedule, args.lr, images / args.batch_size, args.epochs)
    except ScheduleError as exc:
        fail(PROG, str(exc))


def make_ema(args):
    from .nn.ema import WeightAverage
    if args.ema is None:
        return None
    try:
        return WeightAverage(args.ema)
    except ValueError as exc:
        fail(PROG, str(exc))


def make_optimizer(name, lr):
    from .nn.optim import SGD, Adam
    return {"sgd": lambda: SGD(lr), "momentum": lambda: SGD(lr, momentum=0.9),
            "adam": lambda: Adam(lr)}[name]()


def build_model(args, comm=None):
    """The model the flags describe, on its backend, checked to fit in memory for the whole
    run; any problem is a one-line exit 2.  ``comm``: the communicator of a run over several
    processes (parallel/mpi.py)."""
    from .data import info
    from .nn.memory import NotEnoughMemory
    from .nn.model import Sequential
    from .parallel.threads import configure
    from .data.augment import check_crop
    shape = info(args.dataset).shape
    try:
        check_crop(args.crop, shape)
        layers = arch_spec.parse_arch(args.arch, args.filters, args.units,
                                      algorithm=args.conv_algo)
    except (ValueError, TypeError) as exc:
        fail(PROG, str(exc))
    if args.crop or args.augment:
        shape = (shape[0], args.crop or shape[1], args.crop or shape[2])
    backend = resolve_backend(PROG, args.backend)
    # CPU backends: one shard per core; a GPU is fed by one thread unless told otherwise.
    threads = configure(args.threads or (1 if backend.name == "cupy" else None))
    try:
        model = Sequential(layers, shape, backend=backend, seed=args.seed, threads=threads,
                           comm=comm)
        check_memory(args, model)
    except (ValueError, TypeError) as exc:
        fail(PROG, f"--arch {args.arch!r} does not fit {shape} images: {exc}")
    except NotEnoughMemory as exc:
        fail(PROG, str(exc))
    classes = info(args.dataset).classes
    if model.output_shape != (classes,):
        fail(PROG, f"--arch must end in {classes} outputs (the classes), it ends in "
                   f"{model.output_shape}")
    check_batch_norm(args, model)
    return model


def training_images(args):
    """How many training images the run will have (known before the data is read)."""
    from .data import VALIDATION_SIZE, info
    train = info(args.dataset).train_images - VALIDATION_SIZE
    return min(args.train_limit or train, train)


def check_batch_norm(args, model):
    """Batch norm needs more than one value per channel in every training batch."""
    from .nn.regularization import BatchNorm
    norms = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    if norms and args.batch_size == 1:
        fail(PROG, "--batch-size 1 with batch norm: the statistics of one sample are "
                   "meaningless; use a batch of at least 2")
    images = training_images(args)
    if any(layer.per_unit for layer in norms) and images % args.batch_size == 1:
        fail(PROG, f"{images:,} training images in batches of {args.batch_size} leave a last "
                   "batch of one sample, which batch norm after a dense layer cannot normalise; "
                   "change --batch-size or --train-limit")


def check_memory(args, model):
    """Refuse a run that cannot fit in memory before the data is read (nn/memory.py); the
    model's own parameters were checked before it allocated them."""
    import numpy as np
    from .data import VALIDATION_SIZE, info
    from .nn import memory
    kept = info(args.dataset).test_images + VALIDATION_SIZE + training_images(args)
    parts = memory.training_estimate(
        model.layers, model.input_shape, args.batch_size, model.threads,
        optimizer_slots={"sgd": 0, "momentum": 1, "adam": 2}[args.optimizer],
        data_bytes=kept * int(np.prod(model.input_shape)) * 4)
    memory.check(sum(parts.values()), f"training this model (batch {args.batch_size}, "
                                      f"{model.threads} thread{'s' if model.threads > 1 else ''})")


def prepare_output(args):
    """The --out folder (default: a fresh runs/train-NNN), checked before any work: exit 2
    in one line if it cannot be used."""
    from .results.run_dir import OutputError, fresh_run_dir, prepare_output_dir
    try:
        if args.out:
            prepare_output_dir(args.out, args.overwrite)
        else:
            args.out = str(fresh_run_dir())
    except OutputError as exc:
        fail(PROG, str(exc))


def read_data(args):
    """(Dataset, augment or None): the dataset, cropped and augmented as the flags say."""
    from .data.augment import crop_view
    data = load_data(PROG, args, progress=not args.quiet)
    if args.train_limit and args.train_limit > len(data.train.y) and not args.quiet:
        print(f"note: --train-limit {args.train_limit:,} is more than the {len(data.train.y):,} "
              "training images; training on all of them")
    if args.crop or args.augment:
        return crop_view(data, args.crop, args.augment, args.seed)
    return data, None


def open_tensorboard(args):
    """The run's TensorBoardLog (rank 0, with --tensorboard), or None; a folder that cannot
    be used is one line, exit 2, before the data is read."""
    if not args.tensorboard:
        return None
    from .results.tensorboard import LogDirError, TensorBoardLog
    try:
        return TensorBoardLog(args.tensorboard, args.log_every)
    except LogDirError as exc:
        fail(PROG, str(exc))


def train(args, model, data, metrics, ema, augment, board):
    """Run fit() with progress, per-epoch outputs and TensorBoard logs; returns the exit
    status."""
    from .nn.fit import NonFiniteLoss, fit
    progress = Progress(args.epochs, args.quiet)
    sample = model.backend.asarray(data.val.x[:SAMPLE], dtype=model.dtype) if board else None

    def on_epoch(stats):
        progress.close()
        metrics["epochs"].append(stats._asdict())
        if not args.quiet:
            print(epoch_line(stats, args.epochs), flush=True)
        with averaged(ema, model):
            if board:
                board.epoch(stats, model, sample, len(data.train.y))
            if args.out:   # after every epoch, so an interrupted run keeps what it finished
                write_outputs(args.out, metrics, model)

    try:
        fit(model, make_optimizer(args.optimizer, args.lr), data, args.epochs, args.batch_size,
            args.seed, on_batch=progress.batch, on_epoch=on_epoch,
            schedule=make_schedule(args, len(data.train.y)), ema=ema, augment=augment,
            on_step=board.step if board else None)
        return 0
    except NonFiniteLoss as exc:
        progress.close()
        if model.comm.rank == 0:
            print(f"{PROG}: stopped: {exc}; the learning rate {args.lr} is too high for this "
                  f"model, try --lr {args.lr / 10:g}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.close()
        if model.comm.rank == 0:
            print(f"{PROG}: interrupted; {len(metrics['epochs'])} finished epoch(s) kept"
                  + (f" in {args.out}" if args.out else ""), file=sys.stderr)
        return 130


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
    from .results.sysinfo import system_info
    try:
        comm = mpi.communicator()              # SingleProcess unless started by mpiexec
    except mpi.MPIError as exc:
        fail(PROG, str(exc))
    model = build_model(args, comm)
    make_schedule(args, training_images(args))  # a bad --lr-schedule is said before the data
    ema = make_ema(args)
    board = None
    if comm.rank == 0:                         # rank 0 alone prints and writes
        prepare_output(args)
        board = open_tensorboard(args)
    else:
        args.quiet, args.out, args.report = True, None, False
    data, augment = read_data(args)
    command = " ".join([PROG, *map(shlex.quote, argv)])
    metrics = {"config": dict(vars(args)), "command": command,
               "architecture": model.architecture(), "epochs": [],
               "parameters": model.num_params(), "backend": model.backend.name,
               "threads": model.threads, "processes": comm.size,
               "training_images": len(data.train.y),
               "system": system_info(model.backend), "completed": False}
    if board:
        board.start(model, command)
    if not args.quiet:
        model.summary()
        print(f"training on {len(data.train.y):,} images, validating on {len(data.val.y):,}, "
              f"backend {model.backend.name}, {args.optimizer} lr {args.lr}, "
              f"batch {args.batch_size}")
    status = train(args, model, data, metrics, ema, augment, board)
    # training time: every finished epoch's steps and validation, not the reporting
    metrics["runtime_seconds"] = metrics["epochs"][-1]["elapsed"] if metrics["epochs"] else 0.0
    if status == 0:
        with averaged(ema, model):
            test_loss, test_acc = model.evaluate(data.test.x, data.test.y)
            metrics.update(test_loss=test_loss, test_accuracy=test_acc, test_error=1 - test_acc,
                           completed=True)
            if args.out:
                write_outputs(args.out, metrics, model)
    if board:
        board.close()
    if comm.rank == 0:
        print("\n".join(summary_lines(args, model, metrics, status)))
    if status == 0 and args.report:
        from .report import write_report
        print(f"report           {write_report(args.out, data=data, quiet=args.quiet)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
