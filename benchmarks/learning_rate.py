"""Study 1: how the learning rate shapes the learning curve.

    python benchmarks/learning_rate.py                        # 0.1, 0.01, 0.001, 0.0001; 10 epochs
    python benchmarks/learning_rate.py --train-limit 5000 --epochs 3 --out runs/lr-quick

Trains the lab model (16 filters, batch 50, plain SGD) once per learning rate,
records validation loss and accuracy after every epoch and the final test
accuracy, prints a table, and writes learning_curves.png, learning_curves.csv
and learning_rate.json to the output folder.  Finished rates are kept in
<out>/points/, so an interrupted study picks up where it stopped.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ArgumentParser, Points, add_common_flags, fail, load_data,  # noqa: E402
                    number_list)

import minicnn  # noqa: E402
from minicnn.report import finish_figure, new_figure, write_csv, write_json  # noqa: E402
from minicnn.sysinfo import system_info  # noqa: E402
from minicnn.trainer import NonFiniteLoss, fit  # noqa: E402

PROG = "benchmarks/learning_rate.py"
COLUMNS = ("lr", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
           "val_error", "seconds")


def parse_args(argv=None):
    p = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=number_list(float), default=[0.1, 0.01, 0.001, 0.0001],
                   help="comma-separated learning rates (default 0.1,0.01,0.001,0.0001)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--yscale", choices=["log", "linear"], default="log",
                   help="y axis of the figure (validation error); default log")
    add_common_flags(p, "runs/learning_rate")
    return p.parse_args(argv)


def train_one(lr, args, data, backend, progress):
    model = minicnn.lab_model(args.filters, backend=backend, seed=args.seed, threads=args.threads)
    try:
        history = fit(model, minicnn.SGD(lr), data, args.epochs, args.batch_size, args.seed,
                      on_epoch=progress)
        diverged = None
    except NonFiniteLoss as exc:
        history, diverged = [], str(exc)
    epochs = [dict(h._asdict(), lr=lr, val_error=1 - h.val_accuracy) for h in history]
    result = {"lr": lr, "epochs": epochs, "diverged": diverged,
              "runtime_seconds": history[-1].elapsed if history else None}
    if not diverged:
        result["test_loss"], result["test_accuracy"] = model.evaluate(data.test.x, data.test.y)
    return result


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
    from minicnn.cli_helpers import resolve_backend
    backend = resolve_backend(PROG, args.backend)
    args.threads = minicnn.configure_threads()
    data = load_data(PROG, args)
    settings = {k: getattr(args, k) for k in ("epochs", "batch_size", "seed", "train_limit",
                                              "dataset", "filters")}
    settings["backend"] = backend.name
    points = Points(args.out, settings, args.force)
    print(f"learning-rate study: lab model ({args.filters} filters), SGD, batch {args.batch_size}, "
          f"{args.epochs} epochs, {len(data.train.y):,} training images, backend {backend.name}")
    results = []
    try:
        for lr in args.rates:
            key = f"lr_{lr:g}"
            result = points.get(key)
            if result is not None:
                print(f"lr {lr:g}: reusing the finished run in {points.dir}")
            else:
                t0 = time.perf_counter()
                result = points.put(key, train_one(lr, args, data, backend, lambda s, lr=lr: print(
                    f"  lr {lr:<7g} epoch {s.epoch:2d}/{args.epochs}  val_loss {s.val_loss:.4f}  "
                    f"val_acc {100 * s.val_accuracy:6.2f}%  {s.seconds:5.1f}s", flush=True)))
                print(f"lr {lr:g}: done in {time.perf_counter() - t0:.0f} s")
            results.append(result)
    except KeyboardInterrupt:
        fail(PROG, f"interrupted; finished rates are kept in {points.dir}, run again to resume", 130)
    out = Path(args.out)
    rows = [e for r in results for e in r["epochs"]]
    write_csv(out / "learning_curves.csv", rows, COLUMNS)
    write_json(out / "learning_rate.json", {"settings": settings, "results": results,
                                            "system": system_info(backend)})
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
