"""TensorBoard event files of a training run, written with tensorboardX.

Why tensorboardX: it writes every kind of summary TensorBoard shows (scalars,
histograms, images, text) with nothing but NumPy and protobuf; the
``tensorboard`` package's own writer is the low-level event file (its
summary API needs TensorFlow), and neither TensorFlow nor PyTorch is a
dependency of minicnn.  ``tensorboard --logdir DIR`` shows the files.

    every --log-every steps   train/loss, train/accuracy (their means over those steps),
                              train/learning_rate                       (x: training step)
    every epoch               epoch/train_loss, epoch/train_accuracy, epoch/val_loss,
                              epoch/val_accuracy, epoch/seconds, epoch/images_per_second;
                              weights/<param>, gradients/<param> and activations/<step>
                              histograms, sparsity/<step> (fraction of zeros)  (x: epoch)
    once                      input/images (a few training inputs, after augmentation),
                              model/summary and run/command (text)
"""
from pathlib import Path

import numpy as np

SAMPLE = 64             # validation images whose activations are logged each epoch
IMAGES = 8              # training inputs shown once
# Uniform bins: NumPy counts them in one pass, where tensorboardX's default exponential
# edges sort every value (5x slower, the bulk of an epoch's logging cost).
BINS = 64


class LogDirError(ValueError):
    """The --tensorboard folder cannot be used; the message says why."""


def check_log_dir(path, flag="--tensorboard"):
    """The folder ``path`` (made if needed) when event files can be written there."""
    path = Path(path).expanduser()
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise LogDirError(f"{flag} {path}: {part} is a file, not a folder; choose another "
                              "path for the event files")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LogDirError(f"{flag} {path} cannot be made ({exc.strerror or exc}); choose a "
                          "folder you can write to") from None
    return path


def display_images(x):
    """Images (N, C, H, W) of any range as [0, 1] for display, each scaled on its own."""
    x = np.asarray(x, dtype=np.float64)
    low = x.min(axis=(1, 2, 3), keepdims=True)
    span = x.max(axis=(1, 2, 3), keepdims=True) - low
    return (x - low) / np.where(span > 0, span, 1)


class TensorBoardLog:
    """Event files in ``folder`` for one run; ``log_every`` steps between training scalars."""

    def __init__(self, folder, log_every=100):
        from tensorboardX import SummaryWriter
        self.writer = SummaryWriter(str(check_log_dir(folder)))
        self.log_every = log_every
        self._losses, self._accuracies, self._inputs_shown = [], [], False

    def start(self, model, command):
        """The text summaries, once."""
        self.writer.add_text("model/summary", "    " + model.summary(print_fn=None)
                             .replace("\n", "\n    "), 0)
        self.writer.add_text("run/command", "    " + command, 0)

    def step(self, step, loss, accuracy, lr, x):
        """After training step ``step`` (1 for the first): the scalars every log_every steps,
        the first batch's inputs once."""
        if not self._inputs_shown and x.ndim == 4:
            sample = np.asarray(x[:IMAGES].get() if hasattr(x, "get") else x[:IMAGES])
            self.writer.add_images("input/images", display_images(sample), 0)
            self._inputs_shown = True
        self._losses.append(loss)
        self._accuracies.append(accuracy)
        if step % self.log_every == 0:
            self.writer.add_scalar("train/loss", float(np.mean(self._losses)), step)
            self.writer.add_scalar("train/accuracy", float(np.mean(self._accuracies)), step)
            self.writer.add_scalar("train/learning_rate", float(lr), step)
            self._losses, self._accuracies = [], []

    def epoch(self, stats, model, sample_x, images):
        """After an epoch: its numbers (EpochStats), the histograms of every parameter and
        gradient and of each step's output on ``sample_x``, and each output's sparsity."""
        e = stats.epoch
        for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"):
            self.writer.add_scalar(f"epoch/{name}", float(getattr(stats, name)), e)
        self.writer.add_scalar("epoch/images_per_second", images / stats.train_seconds, e)
        to_host = model.backend.to_numpy
        for name, p in model.params():
            self.writer.add_histogram(f"weights/{name}", to_host(p), e, bins=BINS)
        for name, g in model.grads():
            self.writer.add_histogram(f"gradients/{name}", to_host(g), e, bins=BINS)
        for name, out in model.activations(sample_x):
            self.writer.add_histogram(f"activations/{name}", out, e, bins=BINS)
            self.writer.add_scalar(f"sparsity/{name}", float(np.mean(out == 0)), e)
        self.writer.flush()

    def close(self):
        self.writer.close()
