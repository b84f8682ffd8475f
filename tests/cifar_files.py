"""CIFAR-10 binary batch files written by the tests, in the official format (the layout is
written out here, not taken from minicnn): each file is records of 1 label byte and 3,072
pixel bytes, the 1,024 red values row by row, then the green, then the blue.

``random_set`` gives known random pixels and labels; ``colour_set`` a set a tiny network
learns in a few steps (the class is which colour channels are bright).  ``write_set`` puts
the six files in a folder and returns their SHA-256, for tests that replace
cifar10.SHA256 with them."""
import hashlib
from pathlib import Path

import numpy as np

FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
PER_FILE = 10_000                  # records in an official file
RECORD = 1 + 3 * 32 * 32
# Colour classes of colour_set: which of red, green, blue are bright.
COLOURS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1))


def records(images, labels):
    """The bytes of records of uint8 images (n, 3, 32, 32) and labels (n,), built record by
    record from the planes (red, green, blue, each row by row)."""
    images, labels = np.asarray(images, np.uint8), np.asarray(labels, np.uint8)
    n = len(labels)
    out = np.empty((n, RECORD), np.uint8)
    out[:, 0] = labels
    for c in range(3):
        out[:, 1 + 1024 * c:1 + 1024 * (c + 1)] = images[:, c].reshape(n, 32 * 32)
    return out.tobytes()


def random_set(n=PER_FILE, seed=0):
    """Six (images, labels): random pixels and labels 0-9; data_batch_1's record 0 is pure red
    and its record 1 has green = 8 x row and blue = 8 x column (an orientation check)."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in FILES:
        parts.append((rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                      rng.integers(0, 10, n, dtype=np.uint8)))
    images = parts[0][0]
    images[0] = 0
    images[0, 0] = 255
    rows, cols = np.mgrid[0:32, 0:32]
    images[1, 0] = 0
    images[1, 1] = 8 * rows
    images[1, 2] = 8 * cols
    return parts


def colour_set(n=PER_FILE, seed=0):
    """Six (images, labels) of len(COLOURS) learnable classes: class k's bright channels are
    COLOURS[k] (about 200 against 40), with noise."""
    rng = np.random.default_rng(seed)
    table = np.array(COLOURS)
    parts = []
    for _ in FILES:
        labels = rng.integers(0, len(COLOURS), n).astype(np.uint8)
        level = np.where(table[labels], 200, 40)[:, :, None, None]
        noise = rng.integers(-30, 31, (n, 3, 32, 32))
        parts.append((np.clip(level + noise, 0, 255).astype(np.uint8), labels))
    return parts


def write_set(folder, parts, files=FILES):
    """Write each (images, labels) of ``parts`` as the matching file of ``files`` in
    ``folder`` (made); returns {file name: SHA-256 of its bytes}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name, (images, labels) in zip(files, parts):
        data = records(images, labels)
        (folder / name).write_bytes(data)
        sums[name] = hashlib.sha256(data).hexdigest()
    return sums


def file_sums(folder):
    """{file name: SHA-256} of the six files as they are now in ``folder``."""
    return {name: hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest()
            for name in FILES}
