"""What ``python -m minicnn.train`` builds from its flags, checked before the data is read.

The preset's training defaults, the model (shapes, backend, threads, memory, batch norm's
needs), the learning-rate schedule, the weight average, the optimizer, the output folder
and TensorBoard's, then the data as the run sees it (crops, augmentation).  Each problem
is one line on stderr and exit code 2 (``cli.fail``).
"""
from .cli import fail, load_data, resolve_backend
from .nn import spec as arch_spec

PROG = "python -m minicnn.train"
# What a run uses when neither the flags nor the --arch preset say (see apply_defaults).
DEFAULTS = {"epochs": 10, "lr": 0.1, "batch_size": 50, "dataset": "mnist",
            "lr_schedule": "constant", "ema": None, "optimizer": "sgd", "crop": None,
            "augment": False}


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
    from .parallel.shards import shard_count
    from .parallel.threads import configure
    from .data.augment import check_crop
    from .nn.regularization import BatchNorm
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
        shard_count(threads, args.shards, any(isinstance(layer, BatchNorm) for layer in layers),
                    "--shards: ")
    except ValueError as exc:
        fail(PROG, str(exc))
    try:
        model = Sequential(layers, shape, backend=backend, seed=args.seed, threads=threads,
                           shards=args.shards, comm=comm)
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
    data_bytes = kept * int(np.prod(info(args.dataset).shape))     # uint8 pixels (Images)
    if args.crop or args.augment:       # and float32 crops of the splits not augmented
        cropped = kept - (training_images(args) if args.augment else 0)
        data_bytes += 4 * cropped * int(np.prod(model.input_shape))
    parts = memory.training_estimate(
        model.layers, model.input_shape, args.batch_size, model.threads,
        optimizer_slots={"sgd": 0, "momentum": 1, "adam": 2}[args.optimizer],
        data_bytes=data_bytes, shards=model.shards)
    memory.check(sum(parts.values()), f"training this model (batch {args.batch_size}, "
                                      f"{model.threads} thread{'s' if model.threads > 1 else ''})")


def prepare_output(args):
    """The --out folder (default: a fresh runs/train-NNN), checked and claimed before any
    work (results/run_dir.py): a RunDir, or exit 2 in one line if it cannot be used."""
    from .results.run_dir import OutputError, claim_output_dir, fresh_run_dir
    try:
        run_dir = claim_output_dir(args.out, args.overwrite) if args.out else fresh_run_dir()
    except OutputError as exc:
        fail(PROG, str(exc))
    args.out = str(run_dir.path)
    return run_dir


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
