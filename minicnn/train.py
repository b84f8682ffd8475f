"""python -m minicnn.train: train a CNN on MNIST and keep its learning curve.

    python -m minicnn.train                       # the lab model, 10 epochs, SGD 0.1, batch 50
    python -m minicnn.train --backend numba --epochs 2 --filters 32 --out runs/f32
    python -m minicnn.train --arch "conv:6:5:same,relu,pool:2,dense:128,sigmoid,dense:10"
"""
import argparse
import sys
import time

from . import arch as arch_module
from .cli import (ArgumentParser, add_data_flags, backend_choices, fail, positive_float,
                  positive_int, resolve_backend)

PROG = "python -m minicnn.train"
OPTIMIZERS = ("sgd", "momentum", "adam")
EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                 "seconds", "elapsed", "train_seconds")


def build_parser():
    p = ArgumentParser(prog=PROG, description="Train a CNN on MNIST with minicnn.",
                       epilog="--arch grammar:\n" + arch_module.__doc__.split("\n", 2)[2],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", default="auto", choices=backend_choices(),
                   help="array backend; auto picks the fastest available (default: auto)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--lr", type=positive_float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--batch-size", type=positive_int, default=50)
    p.add_argument("--filters", type=positive_int, default=16, help="filters per conv layer (lab)")
    p.add_argument("--units", type=positive_int, default=128, help="hidden dense units (lab)")
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS,
                   help="sgd, momentum (SGD with momentum 0.9) or adam")
    p.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed")
    add_data_flags(p)
    p.add_argument("--train-limit", type=positive_int, metavar="N",
                   help="train on the first N training images only (quick runs)")
    p.add_argument("--arch", default="lab", help="'lab' or a layer spec (see below)")
    p.add_argument("--threads", type=positive_int, help="CPU threads for Numba and BLAS")
    p.add_argument("--out", metavar="DIR", help="write metrics.json, metrics.csv, "
                   "learning_curve.png and model.npz here")
    p.add_argument("--quiet", action="store_true", help="only the final summary")
    return p


def make_optimizer(name, lr):
    from .optim import SGD, Adam
    return {"sgd": lambda: SGD(lr), "momentum": lambda: SGD(lr, momentum=0.9),
            "adam": lambda: Adam(lr)}[name]()


class Progress:
    """A one-line progress bar on stderr, only on a terminal."""

    def __init__(self, epochs, enabled):
        self.epochs, self.enabled, self.last = epochs, enabled and sys.stderr.isatty(), 0.0

    def batch(self, epoch, done, total, loss):
        now = time.monotonic()
        if not self.enabled or (done < total and now - self.last < 0.1):
            return
        self.last = now
        filled = 30 * done // total
        sys.stderr.write(f"\repoch {epoch}/{self.epochs} [{'=' * filled}{'.' * (30 - filled)}] "
                         f"{done}/{total} loss {loss:.4f}")
        sys.stderr.flush()

    def clear(self):
        if self.enabled:
            sys.stderr.write("\r\033[K")


def epoch_line(s, epochs):
    return (f"epoch {s.epoch:2d}/{epochs}  loss {s.train_loss:.4f}  acc {100 * s.train_accuracy:6.2f}%"
            f"  val_loss {s.val_loss:.4f}  val_acc {100 * s.val_accuracy:6.2f}%  {s.seconds:6.1f}s")


def write_outputs(out, metrics, model):
    from .report import plot_learning_curve, write_csv, write_json
    from pathlib import Path
    out = Path(out)
    write_json(out / "metrics.json", metrics)
    write_csv(out / "metrics.csv", metrics["epochs"], EPOCH_COLUMNS)
    if metrics["epochs"]:
        plot_learning_curve(metrics["epochs"], out / "learning_curve.png",
                            f"{metrics['config']['arch']} lr={metrics['config']['lr']}")
    model.save(out / "model.npz")


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .data import DataError, load_dataset
    from .model import Sequential
    from .sysinfo import system_info
    from .trainer import NonFiniteLoss, fit

    try:
        layers = arch_module.parse_arch(args.arch, args.filters, args.units)
    except (ValueError, TypeError) as exc:
        fail(PROG, str(exc))
    backend = resolve_backend(PROG, args.backend, args.threads)
    try:
        data = load_dataset(args.dataset, args.data_dir, progress=not args.quiet,
                            train_limit=args.train_limit)
    except (DataError, OSError, ValueError) as exc:
        fail(PROG, f"cannot read {args.dataset}: {exc}")
    try:
        model = Sequential(layers, data.train.x.shape[1:], backend=backend, seed=args.seed)
    except (ValueError, TypeError) as exc:
        fail(PROG, f"--arch {args.arch!r} does not fit {data.train.x.shape[1:]} images: {exc}")
    if model.output_shape != (10,):
        fail(PROG, f"--arch must end in 10 outputs (the classes), it ends in {model.output_shape}")
    optimizer = make_optimizer(args.optimizer, args.lr)
    config = {k: v for k, v in vars(args).items()}
    metrics = {"config": config, "architecture": model.architecture(), "epochs": [],
               "parameters": model.num_params(), "backend": backend.name,
               "system": system_info(backend), "completed": False}
    if not args.quiet:
        model.summary()
        print(f"training on {len(data.train.y):,} images, validating on {len(data.val.y):,}, "
              f"backend {backend.name}, {args.optimizer} lr {args.lr}, batch {args.batch_size}")
    progress = Progress(args.epochs, not args.quiet)

    def on_epoch(stats):
        progress.clear()
        metrics["epochs"].append(stats._asdict())
        if not args.quiet:
            print(epoch_line(stats, args.epochs), flush=True)
        if args.out:       # after every epoch, so an interrupted run keeps what it finished
            write_outputs(args.out, metrics, model)

    status = 0
    try:
        fit(model, optimizer, data, args.epochs, args.batch_size, args.seed,
            on_batch=progress.batch, on_epoch=on_epoch)
    except NonFiniteLoss as exc:
        progress.clear()
        print(f"{PROG}: stopped: {exc}; the learning rate {args.lr} is too high for this model, "
              f"try --lr {args.lr / 10:g}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        progress.clear()
        print(f"{PROG}: interrupted; {len(metrics['epochs'])} finished epoch(s) kept"
              + (f" in {args.out}" if args.out else ""), file=sys.stderr)
        status = 130
    # training time: every finished epoch's steps and validation, not the reporting
    runtime = metrics["epochs"][-1]["elapsed"] if metrics["epochs"] else 0.0
    metrics["runtime_seconds"] = runtime
    if status == 0:
        test_loss, test_acc = model.evaluate(data.test.x, data.test.y)
        metrics.update(test_loss=test_loss, test_accuracy=test_acc, test_error=1 - test_acc,
                       completed=True)
        if args.out:
            write_outputs(args.out, metrics, model)
    last = metrics["epochs"][-1] if metrics["epochs"] else None
    print("\n".join([
        "-" * 44,
        f"epochs           {len(metrics['epochs'])}/{args.epochs}",
        f"batch size       {args.batch_size}",
        f"learning rate    {args.lr:g} ({args.optimizer})",
        f"filters          {args.filters if args.arch == 'lab' else args.arch}",
        f"backend          {backend.name}",
        f"val accuracy     {100 * last['val_accuracy']:.2f}%" if last else "val accuracy     -",
        f"test error       {100 * metrics['test_error']:.2f}%" if status == 0 else
        "test error       - (not evaluated)",
        f"runtime          {runtime:.1f} s",
        f"parameters       {model.num_params():,}",
    ] + ([f"outputs          {args.out}"] if args.out else [])))
    return status


if __name__ == "__main__":
    sys.exit(main())
