"""Datasets: MNIST, Fashion-MNIST (IDX files) and CIFAR-10 (binary records), their download,
verification and splits; crops and the CIFAR-10 tutorial's augmentation in augment.py.

``load_dataset(name)`` gives a ``Dataset`` of three ``Split``s: training,
validation (the last 5,000 images of the training file) and test: images (N, C, H,
W) in [0, 1], kept as their uint8 pixels and read as float32 (``Images``, images.py),
and int64 labels.  ``info(name)`` gives
a dataset's shape and sizes without reading it.
"""
from typing import Any, NamedTuple

import numpy as np

from . import cifar10, mnist
from .files import DataError, data_root, dataset_dir, read_verified
from .idx import IdxError, encode_idx, parse_idx, read_idx
from .images import Images, rows
from .mnist import FILES

VALIDATION_SIZE = 5000


class DatasetInfo(NamedTuple):
    shape: tuple          # (C, H, W) of an image
    classes: int
    train_images: int     # in the training file, validation set included
    test_images: int
    class_names: tuple = ()


_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
            "Bag", "Ankle boot")
_CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_SHAPES = ("disc", "ring", "square", "frame", "triangle", "cross", "h-bars", "v-bars",
           "diagonal", "checker")
INFO = {
    "mnist": DatasetInfo(mnist.IMAGE_SHAPE, mnist.CLASSES, mnist.TRAIN_IMAGES, mnist.TEST_IMAGES,
                         tuple(str(d) for d in range(10))),
    "fashion-mnist": DatasetInfo(mnist.IMAGE_SHAPE, mnist.CLASSES, mnist.TRAIN_IMAGES,
                                 mnist.TEST_IMAGES, _FASHION),
    "cifar10": DatasetInfo(cifar10.IMAGE_SHAPE, cifar10.CLASSES, cifar10.TRAIN_IMAGES,
                           cifar10.TEST_IMAGES, _CIFAR),
    cifar10.SYNTHETIC: DatasetInfo(cifar10.IMAGE_SHAPE, cifar10.CLASSES, cifar10.TRAIN_IMAGES,
                                   cifar10.TEST_IMAGES, _SHAPES),
}
_MODULES = {"mnist": mnist, "fashion-mnist": mnist, "cifar10": cifar10,
            cifar10.SYNTHETIC: cifar10}
NAMES = tuple(INFO)


class Split(NamedTuple):
    x: Any              # (N, C, H, W) in [0, 1]: Images (the loaders': uint8 pixels read
                        # as float32) or a float32 array
    y: np.ndarray       # int64 (N,)


class Dataset(NamedTuple):
    train: Split
    val: Split
    test: Split


def info(name):
    """The DatasetInfo of ``name``; ValueError naming the known datasets for any other."""
    if name not in INFO:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(NAMES)}")
    return INFO[name]


def ensure_files(name="mnist", data_dir=None, download=True, progress=True):
    """Paths of the files of dataset ``name``, downloading the missing ones (DataError if
    that fails; ValueError naming the known datasets for an unknown name)."""
    info(name)
    return _MODULES[name].ensure_files(name, data_dir, download, progress)


def load_dataset(name="mnist", data_dir=None, download=True, progress=True,
                 validation_size=VALIDATION_SIZE, train_limit=None) -> Dataset:
    """Train / validation / test splits: the validation set is the last
    ``validation_size`` images of the training files (55,000 / 5,000 / 10,000 for MNIST,
    45,000 / 5,000 / 10,000 for CIFAR-10).
    ``train_limit`` keeps only the first N training images (quick runs).  Raises DataError
    (or ValueError for an unknown name) with a message saying what to do."""
    info(name)
    x, y, x_test, y_test = _MODULES[name].load(name, data_dir, download, progress)
    cut = len(x) - validation_size
    keep = min(cut, train_limit) if train_limit else cut
    return Dataset(Split(rows(x, 0, keep), y[:keep]), Split(rows(x, cut, len(x)), y[cut:]),
                   Split(x_test, y_test))


__all__ = ["FILES", "NAMES", "INFO", "VALIDATION_SIZE", "DataError", "Dataset", "DatasetInfo",
           "Images", "Split", "data_root", "dataset_dir", "ensure_files", "info", "load_dataset",
           "read_verified", "IdxError", "encode_idx", "parse_idx", "read_idx", "mnist", "cifar10"]
