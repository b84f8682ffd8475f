"""Study 3: which architecture learns MNIST best, as in the Keras report.

    python benchmarks/architectures.py                       # keras-1, keras-2, keras-3; 50 epochs
    python benchmarks/architectures.py --arch lab --arch tf-mnist-tutorial --epochs 5
    python benchmarks/architectures.py --arch "conv:8:5:same,relu,pool,dense:64,relu,dense:10"

Trains each architecture (a preset or an --arch spec; --arch may be repeated)
with the same settings (default: the report's, SGD 0.05, batch 100, 50
epochs), records validation loss and accuracy after every epoch and the test
accuracy, and writes a table (parameters, final and best validation loss,
validation and test accuracy, training time) to architectures.csv and
architectures.json, and one figure of validation loss per epoch for all of
them, architectures.png.  Finished architectures are kept in <out>/points/, so
an interrupted study resumes.  Each architecture is a trial on Dask
distributed (minicnn/sweeps/), one per core by default (--threads 1 each).
"""
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_study_flags  # noqa: E402

from minicnn.cli import (ArgumentParser, add_backend_flag, add_cluster_flags,  # noqa: E402
                         add_tensorboard_flag, fail, load_data, positive_float, resumable,
                         sweep_errors, tensorboard_folder, trial_backend)
from minicnn.nn.presets import PRESETS  # noqa: E402
from minicnn.nn.spec import parse_arch  # noqa: E402
from minicnn.results.figures import finish_figure, new_figure  # noqa: E402
from minicnn.results.files import write_csv, write_json  # noqa: E402
from minicnn.results.sysinfo import system_info  # noqa: E402
from minicnn.sweeps.cluster import GPU_BACKENDS, Cluster  # noqa: E402
from minicnn.sweeps.points import Points, run_points  # noqa: E402
from minicnn.sweeps.trial import trial  # noqa: E402

PROG = "benchmarks/architectures.py"
DEFAULT_ARCHS = ("keras-1", "keras-2", "keras-3")
COLUMNS = ("arch", "parameters", "val_loss", "best_val_loss", "best_epoch", "val_accuracy",
           "test_accuracy", "test_error", "train_seconds", "epochs")


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", action="append", metavar="ARCH",
                   help="a preset or an --arch spec; repeat for several (default: "
                        f"{', '.join(DEFAULT_ARCHS)})")
    p.add_argument("--lr", type=positive_float, default=0.05, help="SGD's rate (default 0.05)")
    add_backend_flag(p)
    add_study_flags(p, "runs/architectures")
    add_tensorboard_flag(p)
    add_cluster_flags(p)
    p.set_defaults(epochs=50, batch_size=100)
    args = p.parse_args(argv)
    args.arch = list(dict.fromkeys(args.arch or DEFAULT_ARCHS))
    return args


def point_key(arch):
    """A file name for the finished point of ``arch``: a preset's name, or a spec's hash."""
    if arch.lower() in PRESETS:
        return f"arch_{arch.lower()}"
    return "arch_" + hashlib.sha256(arch.encode()).hexdigest()[:12]


def study_point(arch, result):
    """A trial's result as this study keeps it: its epochs and its row of the table."""
    epochs = result["epochs"]
    row = {"arch": arch, "parameters": result["parameters"], "epochs": len(epochs),
           "train_seconds": result["seconds"]}
    if epochs:
        best = min(epochs, key=lambda e: e["val_loss"])
        row.update(val_loss=epochs[-1]["val_loss"], val_accuracy=epochs[-1]["val_accuracy"],
                   best_val_loss=best["val_loss"], best_epoch=best["epoch"])
    if "test_accuracy" in result:
        row.update(test_accuracy=result["test_accuracy"], test_error=1 - result["test_accuracy"])
    return {"row": row, "epochs": epochs, "diverged": result["diverged"],
            "placement": result["placement"]}


def plot(points, path, title):
    fig, ax = new_figure(figsize=(8, 5))
    for point in points:
        if point["epochs"]:
            ax.plot([e["epoch"] for e in point["epochs"]], [e["val_loss"] for e in point["epochs"]],
                    "-", marker="o", markersize=3,
                    label=f"{point['row']['arch'][:40]} ({point['row']['parameters']:,} params)")
    ax.set(xlabel="epoch", ylabel="validation loss (cross-entropy)", yscale="log", title=title)
    finish_figure(fig, [ax], path)


def main(argv=None):
    args = parse_args(argv)
    for arch in args.arch:                  # a bad spec is one line before anything runs
        try:
            parse_arch(arch)
        except ValueError as exc:
            fail(PROG, str(exc))
    backend = trial_backend(PROG, args.backend, bool(args.scheduler))
    images = "" if args.scheduler else f"{len(load_data(PROG, args).train.y):,} training images, "
    settings = {k: getattr(args, k) for k in ("epochs", "batch_size", "seed", "train_limit",
                                              "dataset", "lr", "threads")}
    settings["backend"] = backend
    points = Points(args.out, settings, args.force)
    print(f"architecture study: {len(args.arch)} architecture(s), SGD {args.lr}, batch "
          f"{args.batch_size}, {args.epochs} epochs, {images}backend {backend}")
    board = tensorboard_folder(PROG, args)
    tasks = [(point_key(arch), trial(args.lr, 16, args.batch_size, args.seed, backend,
                                     args.epochs, args.threads, args.dataset, args.data_dir,
                                     args.train_limit, arch=arch, keep=True,
                                     tensorboard=f"{board}/{point_key(arch)}" if board else None),
              arch) for arch in args.arch]
    gpu = backend in GPU_BACKENDS
    by_key = {key: arch for key, _, arch in tasks}
    with resumable(PROG, points, "architectures"), sweep_errors(PROG):
        found = run_points(lambda todo: Cluster(args.scheduler, args.workers, args.threads,
                                                cpu=not gpu, gpu=gpu),
                           points, tasks, on_new=lambda key, r: study_point(by_key[key], r),
                           reuse_note="reusing the finished run")
    results = [found[key] for key, _, _ in tasks]
    out = Path(args.out)
    rows = [r["row"] for r in results]
    write_csv(out / "architectures.csv", rows, COLUMNS)
    write_json(out / "architectures.json", {"settings": settings, "results": results,
                                            "system": system_info()})
    plot(results, out / "architectures.png",
         f"MNIST, SGD {args.lr}, batch {args.batch_size}: validation loss per epoch")
    print(f"\n{'architecture':24s} {'params':>9s} {'val loss':>9s} {'best (ep)':>12s} "
          f"{'val acc':>8s} {'test acc':>9s} {'train s':>8s}")
    for r in results:
        row = r["row"]
        if r["diverged"] or "val_loss" not in row:
            print(f"{row['arch'][:24]:24s} {row['parameters']:9,d}  diverged: {r['diverged']}")
            continue
        print(f"{row['arch'][:24]:24s} {row['parameters']:9,d} {row['val_loss']:9.4f} "
              f"{row['best_val_loss']:7.4f} ({row['best_epoch']:2d}) "
              f"{100 * row['val_accuracy']:7.2f}% {100 * row.get('test_accuracy', float('nan')):8.2f}% "
              f"{row['train_seconds']:8.1f}")
    print(f"wrote {out / 'architectures.png'}, architectures.csv, architectures.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
