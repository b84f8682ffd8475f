"""What a training run shows and keeps: the progress bar, each epoch's line, the closing
summary, and its files (metrics.json, metrics.csv, learning_curve.png, model.npz).

Each file is written atomically, metrics.json last: it says which epoch the set holds, so
an interrupted run leaves a consistent set of finished epochs.
"""
import sys
from pathlib import Path

EPOCH_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                 "seconds", "elapsed", "train_seconds", "lr", "lr_end")


class Progress:
    """A tqdm bar per epoch on stderr: rate and ETA; off when stderr is not a terminal."""

    def __init__(self, epochs, quiet):
        self.epochs, self.disable, self.bar = epochs, True if quiet else None, None

    def batch(self, epoch, done, total, loss):
        if self.bar is None:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=f"epoch {epoch}/{self.epochs}", unit="batch",
                            leave=False, disable=self.disable, file=sys.stderr)
        self.bar.update(1)
        if done == total or done % 20 == 0:
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def epoch_line(s, epochs):
    return (f"epoch {s.epoch:2d}/{epochs}  loss {s.train_loss:.4f}  acc {100 * s.train_accuracy:6.2f}%"
            f"  val_loss {s.val_loss:.4f}  val_acc {100 * s.val_accuracy:6.2f}%  {s.seconds:6.1f}s")


def write_outputs(out, metrics, model):
    """model.npz, the learning curve, metrics.csv and metrics.json in ``out``."""
    from .figures import plot_learning_curve
    from .files import write_csv, write_json
    out = Path(out)
    model.save(out / "model.npz", dataset=metrics["config"]["dataset"],
               ema=metrics["config"]["ema"])
    if metrics["epochs"]:
        plot_learning_curve(metrics["epochs"], out / "learning_curve.png",
                            f"{metrics['config']['arch']} lr={metrics['config']['lr']}")
    write_csv(out / "metrics.csv", metrics["epochs"], EPOCH_COLUMNS)
    write_json(out / "metrics.json", metrics)


def summary_lines(args, model, metrics, status):
    last = metrics["epochs"][-1] if metrics["epochs"] else None
    return [
        "-" * 44,
        f"epochs           {len(metrics['epochs'])}/{args.epochs}",
        f"training images  {metrics['training_images']:,}" + (
            f" (--train-limit {args.train_limit:,} asked for more)"
            if args.train_limit and args.train_limit > metrics["training_images"] else ""),
        f"batch size       {args.batch_size}",
        f"learning rate    {args.lr:g} ({args.optimizer}"
        + (f", {args.lr_schedule}" if args.lr_schedule != "constant" else "")
        + (f", weights averaged {args.ema:g}" if args.ema else "") + ")",
        f"filters          {args.filters}" if args.arch == "lab" else
        f"architecture     {args.arch}",
        f"backend          {model.backend.name} ("
        + (f"{model.comm.size} processes x " if model.comm.size > 1 else "")
        + f"{model.threads} thread{'s' if model.threads > 1 else ''})",
        f"val accuracy     {100 * last['val_accuracy']:.2f}%" if last else "val accuracy     -",
        f"test error       {100 * metrics['test_error']:.2f}%" if status == 0 else
        "test error       - (not evaluated)",
        f"runtime          {metrics['runtime_seconds']:.1f} s",
        f"parameters       {model.num_params():,}",
    ] + ([f"outputs          {args.out}"] if args.out and metrics["epochs"] else [])
