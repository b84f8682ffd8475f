"""MNIST and Fashion-MNIST: four IDX files each, their mirrors and checksums.

Both hold 60,000 training and 10,000 test images of 28x28 grey pixels in 10
classes, in the same four file names.
"""
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .files import DataError, dataset_dir, fetch_missing, find, read_verified
from .idx import IdxError, parse_idx
from .images import Images

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
IMAGE_SHAPE = (1, 28, 28)
CLASSES = 10
TRAIN_IMAGES, TEST_IMAGES = 60_000, 10_000


class IdxDataset(NamedTuple):
    mirrors: tuple
    sha256: dict          # file -> sha256 of the decompressed bytes
    system_dirs: tuple    # read-only places a system package may have put the files


DATASETS = {
    "mnist": IdxDataset(
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        sha256={
            "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        system_dirs=()),
    "fashion-mnist": IdxDataset(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"),
        # SHA-256 of the decompressed files as shipped by Debian's dataset-fashion-mnist.
        sha256={
            "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        system_dirs=("/usr/share/datasets/fashion-mnist",)),
}


def ensure_files(name="mnist", data_dir=None, download=True, progress=True):
    """Paths of the four files, downloading the missing ones.  Raises DataError."""
    info, folder = DATASETS[name], dataset_dir(name, data_dir)
    folders = (folder, *map(Path, info.system_dirs))
    paths = {f: p for f in FILES if (p := find(f, folders)) is not None}
    missing = [f for f in FILES if f not in paths]
    if missing and not download:
        raise DataError(f"{name}: missing {', '.join(missing)} in {folder}/")
    if missing:
        paths.update(fetch_missing(name, missing, folder, info.mirrors, info.sha256, progress))
    return [paths[f] for f in FILES]


def _known(path):
    """The name in FILES of a data file found as .gz or raw."""
    return path.name if path.name.endswith(".gz") else path.name + ".gz"


def _pair(name, images_path, labels_path):
    """Images (N, 1, 28, 28), read as float32 in [0, 1], and int64 labels (N,) in [0, 10)."""
    sums = DATASETS[name].sha256
    try:
        images = parse_idx(read_verified(images_path, sums.get(_known(images_path))),
                           str(images_path), expect_ndim=3)
        labels = parse_idx(read_verified(labels_path, sums.get(_known(labels_path))),
                           str(labels_path), expect_ndim=1)
    except IdxError as exc:
        raise DataError(str(exc)) from None
    if len(images) != len(labels):
        raise DataError(f"{images_path.name} has {len(images)} images but "
                        f"{labels_path.name} has {len(labels)} labels; the files do not belong "
                        "together, replace them")
    if tuple(images.shape[1:]) != IMAGE_SHAPE[1:]:
        raise DataError(f"{images_path}: images of {images.shape[1]}x{images.shape[2]} pixels, "
                        f"{name} has 28x28; replace the file with the original")
    if len(labels) and int(labels.max()) >= CLASSES:
        raise DataError(f"{labels_path}: label {int(labels.max())} is not a class of {name} "
                        f"(0-{CLASSES - 1}); the file is corrupt, delete it so it is "
                        "downloaded again, or replace it with the original")
    return Images(images[:, None]), labels.astype(np.int64)


def load(name="mnist", data_dir=None, download=True, progress=True):
    """(train images, train labels, test images, test labels) of ``name``."""
    tr_img, tr_lbl, te_img, te_lbl = ensure_files(name, data_dir, download, progress)
    return (*_pair(name, tr_img, tr_lbl), *_pair(name, te_img, te_lbl))
