"""CIFAR-10, binary version: 50,000 training and 10,000 test images, 32x32 RGB, 10 classes.

The files of cifar-10-binary.tar.gz, in <root>/cifar10/cifar-10-batches-bin/
(where the archive unpacks) or straight in <root>/cifar10/:

    data_batch_1.bin .. data_batch_5.bin, test_batch.bin
        10,000 records each of 1 label byte (0-9) and 3,072 pixel bytes: the 1,024 red,
        then green, then blue values of a 32x32 image, row by row (channels first)

Missing files are fetched as the archive from the mirrors, checked against the
archive's SHA-256, and the six .bin files are unpacked atomically; every file
is checked against its own SHA-256 the first time it is read (data/files.py).

Where the checksums come from (CIFAR-10 cannot be downloaded on the machines
that built minicnn, so they were not computed here): the archive's SHA-256 is
the one TensorFlow Datasets' checksum registry and several other projects
record for https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
(170,052,171 bytes); the six files' SHA-256 are those of the torchvision port
for Ruby (ankane/torchvision-ruby, datasets/cifar10.rb), test_batch.bin's
confirmed by a second, independent project.

``cifar10-synthetic`` is a folder of the same six files that
benchmarks/synthetic_cifar.py makes (coloured shapes, one kind per class):
read in the same format, without checksums and never downloaded, so that the
whole CIFAR-10 path can be tried where the real set cannot be fetched.
"""
import io
import tarfile
from pathlib import Path

import numpy as np

from ..results.files import atomic_open
from .files import DataError, dataset_dir, download as fetch, read_verified, sha256
from .images import Images

ARCHIVE = "cifar-10-binary.tar.gz"
ARCHIVE_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
FILES = TRAIN_FILES + TEST_FILES
SHA256 = {
    "data_batch_1.bin": "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5",
    "data_batch_2.bin": "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed",
    "data_batch_3.bin": "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67",
    "data_batch_4.bin": "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48",
    "data_batch_5.bin": "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add",
    "test_batch.bin": "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b",
}
IMAGE_SHAPE = (3, 32, 32)
CLASSES = 10
RECORDS_PER_FILE = 10_000
RECORD_BYTES = 1 + 3 * 32 * 32
TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000


def _folders(name, data_dir):
    top = dataset_dir(name, data_dir)
    return top / FOLDER, top


def _find(filename, folders):
    return next((f / filename for f in folders if (f / filename).is_file()), None)


def _unpack(archive_bytes, folder):
    """Write the six .bin members of the archive into ``folder``, each atomically; nothing
    outside it is written (member paths are not trusted)."""
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers()
                   if m.isfile() and Path(m.name).name in FILES}
        missing = [f for f in FILES if f not in members]
        if missing:
            raise DataError(f"{ARCHIVE} lacks {', '.join(missing)}; it is not the CIFAR-10 "
                            "binary archive")
        for filename, member in members.items():
            with atomic_open(folder / filename) as f:
                f.write(tar.extractfile(member).read())


SYNTHETIC = "cifar10-synthetic"


def ensure_files(name="cifar10", data_dir=None, download=True, progress=True):
    """Paths of the six .bin files, fetching and unpacking the archive if any is missing."""
    folders = _folders(name, data_dir)
    paths = {f: p for f in FILES if (p := _find(f, folders)) is not None}
    missing = [f for f in FILES if f not in paths]
    if not missing:
        return [paths[f] for f in FILES]
    if name == SYNTHETIC:
        raise DataError(f"{name}: missing {', '.join(missing)} in {folders[1]}/; make them with "
                        f"python benchmarks/synthetic_cifar.py --data-dir {folders[1].parent}")
    if not download:
        raise DataError(f"{name}: missing {', '.join(missing)} in {folders[0]}/")
    archive = folders[1] / ARCHIVE
    errors = []
    for mirror in MIRRORS:
        if archive.is_file():
            break
        try:
            fetch(mirror + ARCHIVE, archive, None, progress)
        except Exception as exc:          # network or HTTP: the next mirror
            errors.append(f"{mirror}{ARCHIVE}: {exc}")
    if not archive.is_file():
        raise DataError(f"could not download {name} ({errors[-1] if errors else 'no mirror'}). "
                        f"Put {ARCHIVE} in {folders[1]}/, or its unpacked {FOLDER}/ folder "
                        f"(data_batch_1..5.bin, test_batch.bin) there")
    data = archive.read_bytes()
    if sha256(data) != ARCHIVE_SHA256:
        raise DataError(f"{archive} is corrupt (its SHA-256 is not the published one); delete "
                        "it so it is downloaded again")
    try:
        _unpack(data, folders[0])
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive} cannot be unpacked ({exc}); delete it so it is downloaded "
                        "again") from None
    return [_find(f, folders) for f in FILES]


def parse_records(data, name):
    """uint8 images (n, 3, 32, 32) and int64 labels of one binary file's bytes."""
    if len(data) != RECORDS_PER_FILE * RECORD_BYTES:
        raise DataError(f"{name}: {len(data):,} bytes, a CIFAR-10 batch file has "
                        f"{RECORDS_PER_FILE * RECORD_BYTES:,} ({RECORDS_PER_FILE:,} records of "
                        f"{RECORD_BYTES:,} bytes); it is truncated or not a CIFAR-10 file: "
                        "delete it so it is downloaded again")
    records = np.frombuffer(data, np.uint8).reshape(RECORDS_PER_FILE, RECORD_BYTES)
    labels = records[:, 0].astype(np.int64)
    if int(labels.max()) >= CLASSES:
        bad = int(np.argmax(labels >= CLASSES))
        raise DataError(f"{name}: record {bad:,} has the label {int(labels[bad])}, CIFAR-10 "
                        f"has classes 0-{CLASSES - 1}; the file is corrupt, delete it so it is "
                        "downloaded again")
    return records[:, 1:].reshape(-1, *IMAGE_SHAPE), labels


def load_uint8(name="cifar10", data_dir=None, download=True, progress=True):
    """(train images, train labels, test images, test labels), images as uint8."""
    paths = ensure_files(name, data_dir, download, progress)
    sums = {} if name == SYNTHETIC else SHA256
    parts = [parse_records(read_verified(p, sums.get(p.name)), str(p)) for p in paths]
    train, test = parts[:len(TRAIN_FILES)], parts[len(TRAIN_FILES):]
    return (np.concatenate([p[0] for p in train]), np.concatenate([p[1] for p in train]),
            np.concatenate([p[0] for p in test]), np.concatenate([p[1] for p in test]))


def load(name="cifar10", data_dir=None, download=True, progress=True):
    """As load_uint8, the images as Images: read as float32 in [0, 1]."""
    x, y, x_test, y_test = load_uint8(name, data_dir, download, progress)
    return Images(x), y, Images(x_test), y_test
