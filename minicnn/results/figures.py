"""Figures with matplotlib (headless), saved atomically as PNG."""
import io

from .files import write_bytes


def new_figure(**kwargs):
    """``plt.subplots(**kwargs)`` on the Agg backend: no screen needed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(**kwargs)


def save_figure(fig, path):
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    write_bytes(path, buffer.getvalue())


def finish_figure(fig, axes, path):
    """Grid and legend on every axis, then save atomically and free the figure."""
    import matplotlib.pyplot as plt
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    save_figure(fig, path)
    plt.close(fig)


def plot_learning_curve(history, path, title):
    """Accuracy (train and validation) and loss against epoch (whole epochs on the axis)."""
    from matplotlib.ticker import MaxNLocator
    fig, (ax_acc, ax_loss) = new_figure(ncols=2, figsize=(11, 4), layout="constrained")
    epochs = [h["epoch"] for h in history]
    for ax in (ax_acc, ax_loss):
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], "s-", label="validation")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title=title)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", yscale="log")
    finish_figure(fig, (ax_acc, ax_loss), path)
