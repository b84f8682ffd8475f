"""MNIST and Fashion-MNIST: where the files live, downloading them, and the splits.

Data root: ``--data-dir``, else $MINICNN_DATA, else ~/.cache/minicnn/data
(XDG_CACHE_HOME respected); each dataset in ``<root>/<name>/``.  Missing files
are downloaded from the public mirrors in turn, atomically.  Every file, local
or downloaded, is verified by the SHA-256 of its *decompressed* content the
first time it is read; a small stamp (beside the file, or in the cache folder
where the data folder is read-only) remembers the verified size and
modification time, so later runs skip the hash.
"""
import gzip
import hashlib
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._atomic import atomic_open
from .idx import IdxError, parse_idx, read_bytes

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class DatasetInfo(NamedTuple):
    mirrors: tuple
    sha256: dict          # file -> sha256 of the decompressed bytes
    system_dirs: tuple    # read-only places a system package may have put the files


DATASETS = {
    "mnist": DatasetInfo(
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
    "fashion-mnist": DatasetInfo(
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

VALIDATION_SIZE = 5000


class DataError(RuntimeError):
    """The data cannot be found, fetched or read; the message says what to do."""


def data_root(data_dir=None) -> Path:
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("MINICNN_DATA"):
        return Path(os.environ["MINICNN_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(cache) / "minicnn" / "data"


def _info(name):
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def _known(path):
    """The name in FILES of a data file found as .gz or raw."""
    return path.name if path.name.endswith(".gz") else path.name + ".gz"


def _find(name, filename, root):
    """An existing copy of filename (gz or raw), in the data root first."""
    for directory in (root / name, *map(Path, _info(name).system_dirs)):
        for candidate in (directory / filename, directory / filename[:-3]):
            if candidate.is_file():
                return candidate
    return None


def _download(url, dest, expected_sha256, progress):
    """Fetch url to dest atomically; verify the decompressed content."""
    with urllib.request.urlopen(url, timeout=30) as response:
        total = int(response.headers.get("Content-Length") or 0)
        chunks, done = [], 0
        while chunk := response.read(1 << 16):
            chunks.append(chunk)
            done += len(chunk)
            if progress:
                pct = f"{100 * done // total:3d}%" if total else f"{done >> 10} KiB"
                print(f"\r  {dest.name}: {pct}", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    data = b"".join(chunks)
    if expected_sha256:
        actual = hashlib.sha256(gzip.decompress(data)).hexdigest()
        if actual != expected_sha256:
            raise DataError(f"checksum mismatch for {url}")
    with atomic_open(dest) as f:
        f.write(data)


def ensure_files(name="mnist", data_dir=None, download=True, progress=True):
    """Paths of the four files, downloading the missing ones. Raises DataError."""
    info, root = _info(name), data_root(data_dir)
    paths, missing = {}, []
    for filename in FILES:
        found = _find(name, filename, root)
        if found is None:
            missing.append(filename)
        else:
            paths[filename] = found
    if missing and download:
        target = root / name
        errors = []
        for filename in missing:
            for mirror in info.mirrors:
                try:
                    if progress:
                        print(f"downloading {mirror}{filename}", file=sys.stderr)
                    _download(mirror + filename, target / filename, info.sha256.get(filename),
                              progress)
                    paths[filename] = target / filename
                    break
                except Exception as exc:      # network, HTTP, gzip or checksum: next mirror
                    errors.append(f"{mirror}{filename}: {exc}")
            if filename not in paths:
                break     # every mirror failed: the others would too (and may each time out)
        missing = [f for f in FILES if f not in paths]
        if missing:
            raise DataError(
                f"could not download {name} ({errors[-1] if errors else 'no mirror'}). "
                f"Put {', '.join(missing)} in {target}/ (or point --data-dir / MINICNN_DATA "
                "at a folder that has them in a '" + name + "' subfolder)")
    elif missing:
        raise DataError(f"{name}: missing {', '.join(missing)} in {root / name}/")
    return [paths[f] for f in FILES]


class Split(NamedTuple):
    x: np.ndarray       # float32 (N, 1, 28, 28) in [0, 1]
    y: np.ndarray       # int64 (N,)


class Dataset(NamedTuple):
    train: Split
    val: Split
    test: Split


def _stamp_path(path):
    """Where the stamp of a verified file lives: beside it, or in the cache if it is read-only."""
    if os.access(path.parent, os.W_OK):
        return path.with_name(path.name + ".verified")
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    cache = os.environ.get("MINICNN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "minicnn")
    return Path(cache) / "verified" / f"{key}.json"


def _file_state(path):
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_verified(path, expected_sha256):
    """The decompressed bytes of a data file, checked against the published SHA-256 unless a
    stamp says this very file (same size and modification time) was checked before."""
    data = read_bytes(path)
    if not expected_sha256:
        return data
    stamp = _stamp_path(path)
    state = dict(_file_state(path), sha256=expected_sha256)
    try:
        if json.loads(stamp.read_text()) == state:
            return data
    except (OSError, ValueError):
        pass
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise DataError(f"{path} is corrupt: the SHA-256 of its content is {actual[:16]}..., "
                        f"expected {expected_sha256[:16]}...; delete it so it is downloaded "
                        "again, or replace it with the original file")
    try:
        with atomic_open(stamp, "w") as f:
            f.write(json.dumps(state))
    except OSError:
        pass                        # no stamp: the file is hashed again next time
    return data


def _pair(name, images_path, labels_path):
    sums = _info(name).sha256
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
    x = images.astype(np.float32)[:, None]
    x /= 255.0            # in place: one float32 copy of the images, not two
    return x, labels.astype(np.int64)


def load_dataset(name="mnist", data_dir=None, download=True, progress=True,
                 validation_size=VALIDATION_SIZE, train_limit=None) -> Dataset:
    """Train / validation / test splits: the validation set is the last
    ``validation_size`` images of the training file (55,000 / 5,000 / 10,000).
    ``train_limit`` keeps only the first N training images (quick runs)."""
    tr_img, tr_lbl, te_img, te_lbl = ensure_files(name, data_dir, download, progress)
    x, y = _pair(name, tr_img, tr_lbl)
    x_test, y_test = _pair(name, te_img, te_lbl)
    cut = len(x) - validation_size
    keep = min(cut, train_limit) if train_limit else cut
    return Dataset(Split(x[:keep], y[:keep]), Split(x[cut:], y[cut:]), Split(x_test, y_test))
