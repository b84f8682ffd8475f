"""The figures of a run's report page (results/report_page.py), each a PNG written atomically.

Images are NCHW: one channel is shown in grey, three as RGB, each image scaled to its own
range (standardised CIFAR-10 crops included).
"""
import numpy as np

from .figures import finish_figure, new_figure, save_figure
from .tensorboard import display_images


def _show(ax, image):
    """One (C, H, W) image on ``ax``: grey for one channel, colour for three."""
    image = display_images(image[None])[0]
    if image.shape[0] == 3:
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
    else:
        ax.imshow(image[0], cmap="gray", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _close(fig, path):
    import matplotlib.pyplot as plt
    save_figure(fig, path)
    plt.close(fig)


def learning_curves(epochs, path, title):
    """Loss and accuracy per epoch (training and validation), and the learning rate where
    it changes."""
    rates = [e.get("lr") for e in epochs] + [epochs[-1].get("lr_end")]
    changes = len({r for r in rates if r is not None}) > 1
    fig, axes = new_figure(ncols=3 if changes else 2, figsize=(15 if changes else 11, 4),
                           layout="constrained")
    x = [e["epoch"] for e in epochs]
    for ax in axes:
        if len(x) <= 12:
            ax.set_xticks(x)
        ax.set_xlim(min(x) - 0.5, max(x) + 0.5)
    for ax, key, label in ((axes[0], "loss", "cross-entropy loss"),
                           (axes[1], "accuracy", "accuracy")):
        ax.plot(x, [e[f"train_{key}"] for e in epochs], "o-", label="training")
        ax.plot(x, [e[f"val_{key}"] for e in epochs], "s-", label="validation")
        ax.set(xlabel="epoch", ylabel=label)
    axes[0].set(yscale="log", title=title)
    if changes:
        axes[2].step(x, [e["lr"] for e in epochs], where="post", label="learning rate")
        axes[2].set(xlabel="epoch", ylabel="learning rate (first step)", yscale="log")
    finish_figure(fig, list(axes), path)


def confusion(matrix, names, path):
    """The confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    k = len(names)
    fig, ax = new_figure(figsize=(1.0 + 0.6 * k, 0.8 + 0.6 * k), layout="constrained")
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if i == j else "black")
    ax.set_xticks(range(k), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true")
    _close(fig, path)


def mistakes(images, true, predicted, probability, names, path):
    """The most confidently wrong images, 5 per row, titled 'true -> predicted (p)'."""
    rows = max(1, -(-len(images) // 5))
    fig, axes = new_figure(nrows=rows, ncols=5, figsize=(7.5, 1.7 * rows), squeeze=False,
                           layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, t, p, prob in zip(axes.ravel(), images, true, predicted, probability):
        ax.axis("on")
        _show(ax, image)
        ax.set_title(f"{names[t]} → {names[p]} ({prob:.2f})", fontsize=8)
    _close(fig, path)


def filters(w, path):
    """The first convolution's filters w (F, C, KH, KW), one tile each."""
    f = w.shape[0]
    cols = min(16, f)
    rows = -(-f // cols)
    fig, axes = new_figure(nrows=rows, ncols=cols, figsize=(cols * 0.7, rows * 0.7),
                           squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, kernel in zip(axes.ravel(), w):
        ax.axis("on")
        _show(ax, kernel if kernel.shape[0] in (1, 3) else kernel[:1])
    _close(fig, path)


def feature_maps(image, maps, path, channels=12):
    """One input image and, a row each, the first ``channels`` feature maps of every
    convolution ([(name, (C, H, W))])."""
    rows = len(maps)
    fig, axes = new_figure(nrows=rows, ncols=channels + 1, figsize=((channels + 1) * 0.8,
                                                                   rows * 0.9), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (name, m) in enumerate(maps):
        axes[r, 0].axis("on")
        _show(axes[r, 0], image)
        axes[r, 0].set_ylabel(name, fontsize=7)
        for c in range(min(channels, m.shape[0])):
            axes[r, c + 1].imshow(m[c], cmap="viridis", interpolation="nearest")
    _close(fig, path)


def saliency(images, grads, titles, path):
    """Each image beside |d score / d input| (its largest over the channels)."""
    fig, axes = new_figure(nrows=len(images), ncols=2, figsize=(4.4, 2.2 * len(images)),
                           squeeze=False, layout="constrained")
    for row, image, grad, title in zip(axes, images, grads, titles):
        _show(row[0], image)
        row[0].set_title(title, fontsize=8)
        row[1].imshow(np.abs(grad).max(axis=0), cmap="hot", interpolation="nearest")
        row[1].set_xticks([])
        row[1].set_yticks([])
        row[1].set_title("saliency", fontsize=8)
    _close(fig, path)
