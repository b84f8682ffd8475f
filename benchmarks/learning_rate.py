"""Study 1: how the learning rate shapes the learning curve.

    python benchmarks/learning_rate.py                        # 0.1, 0.01, 0.001, 0.0001; 10 epochs
    python benchmarks/learning_rate.py --train-limit 5000 --epochs 3 --out runs/lr-quick

Trains the lab model (16 filters, batch 50, plain SGD) once per learning rate,
records validation loss and accuracy after every epoch and the final test
accuracy, prints a table, and writes learning_curves.png, learning_curves.csv
and learning_rate.json to the output folder.  Finished rates are kept in
<out>/points/, so an interrupted study picks up where it stopped.

Each rate is a trial on Dask distributed (minicnn/sweeps/): by default a local
cluster packs the trials, one per core (--threads 1 each); --scheduler
tcp://HOST:8786 sends them to a running cluster (docs/distributed.md).  A
trial's numbers depend on its seed and --threads, not on where it ran.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_study_flags  # noqa: E402

from minicnn.backend import get_backend  # noqa: E402
from minicnn.cli import (ArgumentParser, add_backend_flag, add_cluster_flags,  # noqa: E402
                         add_tensorboard_flag, load_data, number_list, positive_int, resumable,
                         sweep_errors, tensorboard_folder, trial_backend)
from minicnn.results.figures import finish_figure, new_figure  # noqa: E402
from minicnn.results.files import write_csv, write_json  # noqa: E402
from minicnn.results.sysinfo import system_info  # noqa: E402
from minicnn.sweeps.cluster import GPU_BACKENDS, Cluster  # noqa: E402
from minicnn.sweeps.points import Points, run_points  # noqa: E402
from minicnn.sweeps.trial import trial  # noqa: E402

PROG = "benchmarks/learning_rate.py"
COLUMNS = ("lr", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
           "val_error", "seconds")


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=number_list(float), default=[0.1, 0.01, 0.001, 0.0001],
                   help="comma-separated learning rates (default 0.1,0.01,0.001,0.0001)")
    add_backend_flag(p)
    p.add_argument("--filters", type=positive_int, default=16)
    p.add_argument("--yscale", choices=["log", "linear"], default="log",
                   help="y axis of the figure (validation error); default log")
    add_study_flags(p, "runs/learning_rate")
    add_tensorboard_flag(p)
    add_cluster_flags(p)
    return p.parse_args(argv)


def study_point(lr, result):
    """A trial's result (minicnn.sweeps.trial.run_trial) as this study keeps it."""
    epochs = [dict(h, lr=lr, val_error=1 - h["val_accuracy"]) for h in result["epochs"]]
    point = {"lr": lr, "epochs": epochs, "diverged": result["diverged"],
             "runtime_seconds": result["with_validation_seconds"],
             "placement": result["placement"]}
    if "test_accuracy" in result:
        point["test_loss"], point["test_accuracy"] = result["test_loss"], result["test_accuracy"]
    return point


def plot(results, path, yscale):
    fig, ax = new_figure(figsize=(7, 4.5))
    for r in results:
        if r["epochs"]:
            ax.plot([e["epoch"] for e in r["epochs"]], [100 * e["val_error"] for e in r["epochs"]],
                    "o-", label=f"lr = {r['lr']:g}")
    ax.set(xlabel="epoch", ylabel="validation error (%)", yscale=yscale,
           title="Lab CNN on MNIST: learning rate vs. learning curve")
    finish_figure(fig, [ax], path)


def main(argv=None):
    args = parse_args(argv)
    backend = trial_backend(PROG, args.backend, bool(args.scheduler))
    images = "" if args.scheduler else f"{len(load_data(PROG, args).train.y):,} training images, "
    local = None if args.scheduler else get_backend(backend)      # its device, for the record
    settings = {k: getattr(args, k) for k in ("epochs", "batch_size", "seed", "train_limit",
                                              "dataset", "filters", "threads")}
    settings["backend"] = backend
    points = Points(args.out, settings, args.force)
    print(f"learning-rate study: lab model ({args.filters} filters), SGD, batch {args.batch_size}, "
          f"{args.epochs} epochs, {images}backend {backend}, {args.threads} thread(s) per rate")
    board = tensorboard_folder(PROG, args)
    tasks = [(f"lr_{lr:g}", trial(lr, args.filters, args.batch_size, args.seed, backend,
                                   args.epochs, args.threads, args.dataset, args.data_dir,
                                   args.train_limit, keep=True,
                                   tensorboard=f"{board}/lr_{lr:g}" if board else None),
              f"lr {lr:g}") for lr in args.rates]
    gpu = backend in GPU_BACKENDS
    rate = {key: lr for (key, _, _), lr in zip(tasks, args.rates)}
    with resumable(PROG, points, "rates"), sweep_errors(PROG):
        found = run_points(lambda todo: Cluster(args.scheduler, args.workers, args.threads,
                                                cpu=not gpu, gpu=gpu),
                           points, tasks, on_new=lambda key, r: study_point(rate[key], r),
                           reuse_note="reusing the finished run")
    results = [found[key] for key, _, _ in tasks]
    out = Path(args.out)
    rows = [e for r in results for e in r["epochs"]]
    write_csv(out / "learning_curves.csv", rows, COLUMNS)
    write_json(out / "learning_rate.json", {"settings": settings, "results": results,
                                            "system": system_info(local)})
    plot(results, out / "learning_curves.png", args.yscale)
    print(f"\n{'lr':>8s} {'val acc':>8s} {'val loss':>9s} {'test acc':>9s} {'test err':>9s}")
    for r in results:
        if r["diverged"]:
            print(f"{r['lr']:8g}  diverged: {r['diverged']}")
            continue
        last = r["epochs"][-1]
        print(f"{r['lr']:8g} {100 * last['val_accuracy']:7.2f}% {last['val_loss']:9.4f} "
              f"{100 * r['test_accuracy']:8.2f}% {100 * (1 - r['test_accuracy']):8.2f}%")
    finished = [r for r in results if not r["diverged"]]
    if finished:
        best = max(finished, key=lambda r: r["epochs"][-1]["val_accuracy"])
        print(f"best learning rate: {best['lr']:g} (by final validation accuracy)")
    print(f"wrote {out / 'learning_curves.png'}, learning_curves.csv, learning_rate.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
