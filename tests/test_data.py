"""The data (minicnn/data/): the IDX format (idx.py) and its errors; where the data root and a
dataset's folder are, finding and downloading the files, their SHA-256 verification and
stamps (files.py); the MNIST files, their checks and the splits (mnist.py, __init__.py).
Every problem is a DataError (or IdxError for the bytes alone) whose message says what to
do, and python -m minicnn.train turns it into one line.  No MNIST needed except for the
real splits: fake data (conftest.fake_mnist) and a fake network (conftest.Response)."""
import gzip
import math
import os
import re
import struct

import numpy as np
import pytest

from conftest import (REAL_ROOT, Response, assert_one_line_error, call_main, fake_mnist,
                      needs_mnist)
from minicnn.data import (FILES, NAMES, DataError, IdxError, data_root, dataset_dir,
                          encode_idx, ensure_files, load_dataset, parse_idx, read_idx,
                          read_verified)
from minicnn.data import Dataset, Images, Split, files, mnist


# -- IDX files ---------------------------------------------------------------------------
def idx(code, shape, payload):
    return struct.pack(">HBB", 0, code, len(shape)) + struct.pack(f">{len(shape)}I",
                                                                 *shape) + payload


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("shape", [(3, 4, 5), (7,), (1, 28, 28)])
def test_idx_round_trip(tmp_path, compress, shape):
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = encode_idx(a)
    path = tmp_path / ("f.gz" if compress else "f")
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(path), a)


def test_idx_keeps_the_type_and_reads_big_endian_values():
    assert parse_idx(encode_idx(np.arange(3, dtype=np.uint8))).dtype == np.uint8
    values = np.array([1, -2, 70000], dtype=">i4")
    a = parse_idx(idx(0x0C, (3,), values.tobytes()))
    assert a.dtype == np.dtype("int32") and a.dtype.isnative
    assert a.tolist() == [1, -2, 70000]


def test_idx_of_zero_items_is_an_empty_array():
    assert parse_idx(encode_idx(np.zeros(0, np.uint8))).shape == (0,)


def test_encode_idx_converts_to_bytes():
    assert parse_idx(encode_idx(np.array([0, 7, 255]))).tolist() == [0, 7, 255]


IMAGES = encode_idx(np.zeros((2, 3, 3), np.uint8))      # a 16-byte header and 18 pixels
MAGIC = "(expected 0x0000 + type + dimensions, e.g. 0x00000803 for images)"


@pytest.mark.parametrize("data,name,message", [
    (IMAGES[:-3], "x", "x: truncated: header says (2, 3, 3) (34 bytes), file has 31 bytes"),
    (IMAGES + b"\0", "x", "x: trailing data: header says (2, 3, 3) (34 bytes), file has 35 "
                          "bytes"),
    (idx(0x08, (2,), b"abc"), None, "<bytes>: trailing data: header says (2,) (10 bytes), "
                                    "file has 11 bytes"),
    (b"\x12\x34" + IMAGES[2:], "x", f"x: bad IDX magic number 0x12340803 {MAGIC}"),
    (b"\x12\x34\x08\x01\x00", None, f"<bytes>: bad IDX magic number 0x12340801 {MAGIC}"),
    (IMAGES[:2] + b"\x42" + IMAGES[3:], "x", f"x: bad IDX magic number 0x00004203 {MAGIC}"),
    (IMAGES[:2], "x", "x: too short to be an IDX file (2 bytes)"),
    (b"\x00", None, "<bytes>: too short to be an IDX file (1 bytes)"),
    (IMAGES[:9], "x", "x: truncated header"),
    (b"\x00\x00\x08\x01", None, "<bytes>: truncated header"),
    (b"\x00\x00\x08\xff", None, "<bytes>: truncated header"),          # 255 dimensions
])
def test_idx_errors_say_what_is_wrong(data, name, message):
    with pytest.raises(IdxError, match=f"^{re.escape(message)}$"):
        parse_idx(data) if name is None else parse_idx(data, name)


def test_read_idx_checks_the_dimensions_and_names_the_file(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(encode_idx(np.zeros(4, np.uint8)))
    with pytest.raises(IdxError, match=f"^{re.escape(str(path))}: expected 3 dimensions, "
                                       "the header says 1$"):
        read_idx(path, expect_ndim=3)


def test_a_truncated_gzip_says_to_delete_the_file(tmp_path):
    path = tmp_path / "x.gz"
    noise = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    path.write_bytes(gzip.compress(encode_idx(noise))[:1000])
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: corrupt or truncated gzip "
                                        r"data \(.*\); delete the file so it is downloaded "
                                        r"again$"):
        read_idx(path)


# -- where the data is ---------------------------------------------------------------------
def test_the_default_data_root_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "minicnn" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "minicnn" / "data"


def test_env_variable_sets_the_root(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path))
    assert ensure_files("mnist", download=False)[0].parent == tmp_path / "mnist"


def test_a_data_root_that_is_a_file_is_said(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data"
    root.write_text("not a folder")
    message = (f"the data root {root} is a file, not a folder; point --data-dir (or "
               "MINICNN_DATA) at the folder that holds mnist/")
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        load_dataset("mnist", root)
    monkeypatch.setenv("MINICNN_DATA", str(root))
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        dataset_dir("mnist")
    from minicnn import train
    result = call_main(train.main, ["--data-dir", str(root), "--backend", "numpy"], capsys)
    assert_one_line_error(result, re.escape(f"cannot read mnist: {message}"))


def test_a_data_root_that_is_the_dataset_folder_itself_is_accepted(tmp_path, monkeypatch,
                                                                     capsys):
    """--data-dir .../mnist (the folder of the files, not the one that holds mnist/) works;
    a root named mnist that holds a mnist/ folder of its own is still a root."""
    arrays = fake_mnist(tmp_path, monkeypatch=monkeypatch)
    folder = tmp_path / "mnist"
    assert dataset_dir("mnist", folder) == folder
    assert ensure_files("mnist", folder, download=False) == [folder / f for f in FILES]
    np.testing.assert_array_equal(load_dataset("mnist", folder, download=False).test.y,
                                  arrays[3])
    import minicnn
    from minicnn import evaluate
    minicnn.lab_model(4).save(tmp_path / "m.npz")
    result = call_main(evaluate.main, [str(tmp_path / "m.npz"), "--data-dir", str(folder),
                                       "--backend", "numpy"], capsys)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mnist test accuracy") and "(7 images" in result.stdout
    (folder / "mnist").mkdir()
    assert dataset_dir("mnist", folder) == folder / "mnist"


UNKNOWN = f"^unknown dataset 'nope'; choose one of: {re.escape(', '.join(NAMES))}$"


def test_an_unknown_dataset_lists_the_known_ones(tmp_path):
    assert NAMES[:2] == ("mnist", "fashion-mnist")
    with pytest.raises(ValueError, match=UNKNOWN):
        load_dataset("nope", tmp_path, download=False)


def test_ensure_files_of_an_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=UNKNOWN):
        ensure_files("nope", tmp_path, download=False)


def test_files_in_a_system_folder_are_found(tmp_path, monkeypatch):
    folder = tmp_path / "system"
    folder.mkdir()
    for f in FILES:
        (folder / f).write_bytes(b"")
    info = mnist.DATASETS["fashion-mnist"]._replace(system_dirs=(str(folder),))
    monkeypatch.setitem(mnist.DATASETS, "fashion-mnist", info)
    assert ensure_files("fashion-mnist", tmp_path / "root", download=False) == [
        folder / f for f in FILES]


def test_missing_files_without_download_are_named(tmp_path, monkeypatch):
    monkeypatch.setattr(files.urllib.request, "urlopen", no_network)
    (tmp_path / "mnist").mkdir()
    for f in FILES[:2]:
        (tmp_path / "mnist" / f).write_bytes(b"")
    with pytest.raises(DataError, match=f"^mnist: missing {FILES[2]}, {FILES[3]} in "
                                        f"{re.escape(str(tmp_path / 'mnist'))}/$"):
        ensure_files("mnist", tmp_path, download=False)


# -- the MNIST files and the splits ----------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_load_dataset_splits_and_scales(tmp_path, compress, monkeypatch):
    arrays = fake_mnist(tmp_path, compress=compress, monkeypatch=monkeypatch)
    d = load_dataset("mnist", tmp_path, download=False, validation_size=5)
    assert [len(s.y) for s in d] == [15, 5, 7]
    assert d.train.x.shape == (15, 1, 28, 28) and d.train.x.dtype == np.float32
    assert d.test.x.shape == (7, 1, 28, 28) and d.test.x.dtype == np.float32
    assert d.train.y.dtype == d.test.y.dtype == np.int64
    np.testing.assert_allclose(d.train.x[:, 0] * 255, arrays[0][:15], atol=1e-4)
    np.testing.assert_allclose(d.val.x[:, 0] * 255, arrays[0][15:], atol=1e-4)
    np.testing.assert_allclose(d.test.x[:, 0] * 255, arrays[2], atol=1e-4)
    np.testing.assert_array_equal(d.test.y, arrays[3])
    limited = load_dataset("mnist", tmp_path, download=False, validation_size=5, train_limit=4)
    assert [len(s.y) for s in limited] == [4, 5, 7]
    np.testing.assert_array_equal(limited.val.y, d.val.y)
    # the splits keep the files' uint8 pixels, not float32 copies of them
    assert all(isinstance(s.x, Images) and s.x.pixels.dtype == np.uint8 for s in d)


# -- Images: uint8 pixels read as float32 --------------------------------------------------
def old_float_copy(pixels):
    """What the loaders kept before Images: a float32 copy divided by 255 in place."""
    x = pixels.astype(np.float32)
    x /= 255.0
    return x


def test_every_read_of_images_is_the_float_copy_bit_for_bit():
    pixels = np.random.default_rng(3).integers(0, 256, (9, 2, 5, 7), dtype=np.uint8)
    pixels[0, 0, 0, :3] = (0, 1, 255)
    images, expected = Images(pixels), old_float_copy(pixels)
    assert images.shape == (9, 2, 5, 7) and images.ndim == 4 and len(images) == 9
    assert images.dtype == np.float32
    reads = {"slice": (images[2:7], expected[2:7]),
             "fancy": (images[[8, 0, 8]], expected[[8, 0, 8]]),
             "tuple": (images[:, 1, 1:4, ::2], expected[:, 1, 1:4, ::2]),
             "one pixel": (images[4, 1, 2, 3], expected[4, 1, 2, 3]),
             "asarray": (np.asarray(images), expected),
             "asarray float64": (np.asarray(images, dtype=np.float64),
                                 expected.astype(np.float64))}
    for name, (got, want) in reads.items():
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name, strict=True)
    out = np.full((3, 2, 5, 7), np.nan, np.float32)
    assert images.gather(np.array([5, 1, 5]), out, np.empty(out.shape, np.uint8)) is out
    np.testing.assert_array_equal(out, expected[[5, 1, 5]], strict=True)
    with pytest.raises(ValueError, match="makes a copy"):
        np.asarray(images, copy=False)
    assert images[0, 0, 0, 2] == 1.0 and images[0, 0, 0, 0] == 0.0


def test_gathering_a_batch_allocates_nothing():
    from conftest import NO_ALLOCATION, traced_peak
    pixels = np.random.default_rng(6).integers(0, 256, (500, 3, 32, 32), dtype=np.uint8)
    out, scratch = np.empty((128, 3, 32, 32), np.float32), np.empty((128, 3, 32, 32), np.uint8)
    indices = np.random.default_rng(7).permutation(500)[:128]
    Images(pixels).gather(indices, out, scratch)
    peak, _ = traced_peak(lambda: Images(pixels).gather(indices, out, scratch))
    assert peak < NO_ALLOCATION


def test_rows_share_the_pixels_and_other_dtypes_are_refused():
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(6, 1, 2, 2)
    part = Images(pixels).rows(2, 5)
    assert isinstance(part, Images) and len(part) == 3 and np.shares_memory(part.pixels, pixels)
    np.testing.assert_array_equal(np.asarray(part), old_float_copy(pixels[2:5]), strict=True)
    with pytest.raises(TypeError, match="expected uint8 pixels, got float32"):
        Images(pixels.astype(np.float32))


class BatchesOnly(Images):
    """Images that refuse to be read whole or in parts larger than a prediction batch."""

    def __getitem__(self, key):
        out = super().__getitem__(key)
        assert out.ndim < 4 or len(out) <= 500, f"read {len(out)} images at once"
        return out

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("converted the whole split")

    def rows(self, start, stop):
        return BatchesOnly(self.pixels[start:stop])


def test_fit_evaluate_and_predict_read_images_a_batch_at_a_time():
    """No float32 copy of a whole split: training gathers batches, evaluation and prediction
    convert one batch at a time."""
    import minicnn
    from minicnn.nn.fit import fit
    rng = np.random.default_rng(9)
    images = BatchesOnly(rng.integers(0, 256, (1200, 1, 8, 8), dtype=np.uint8))
    split = Split(images, rng.integers(0, 10, 1200))
    model = minicnn.Sequential([minicnn.Flatten(), minicnn.Dense(10)], (1, 8, 8),
                               backend="numba", threads=2)
    fit(model, minicnn.SGD(0.1), Dataset(split, split, split), 1, 50)
    model.evaluate(images, split.y)
    assert model.predict(images).shape == (1200,)


@pytest.mark.parametrize("threads", [1, 2])
def test_training_on_images_gives_the_bits_of_training_on_their_float_copy(threads):
    """fit() gathers and converts each batch from the pixels: the same weights, loss and
    accuracy as from the float32 copy, on one thread and two."""
    import minicnn
    from minicnn.nn.fit import fit
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (70, 1, 8, 8), dtype=np.uint8)
    labels = rng.integers(0, 10, 70)
    results = []
    for x in (Images(pixels), old_float_copy(pixels)):
        split = Split(x, labels)
        model = minicnn.Sequential([minicnn.Conv2D(3, 3, padding="same"), minicnn.ReLU(),
                                    minicnn.MaxPool2D(2), minicnn.Flatten(), minicnn.Dense(10)],
                                   (1, 8, 8), backend="numba", threads=threads)
        history = fit(model, minicnn.SGD(0.1), Dataset(split, split, split), 2, 16)
        results.append((model.flat_params.copy(), [tuple(h)[1:5] for h in history]))
    np.testing.assert_array_equal(results[0][0], results[1][0], strict=True)
    assert results[0][1] == results[1][1]


@pytest.mark.parametrize("which,content,expected", [
    (0, np.zeros(20, np.uint8), "expected 3 dimensions, the header says 1"),
    (1, np.zeros((20, 28, 28), np.uint8), "expected 1 dimensions, the header says 3"),
    (0, np.zeros((20, 27, 28), np.uint8), "images of 27x28 pixels, mnist has 28x28; replace "
                                          "the file with the original"),
    (2, np.zeros((7, 28, 14), np.uint8), "images of 28x14 pixels, mnist has 28x28; replace "
                                         "the file with the original"),
    (1, np.full(20, 10, np.uint8), "label 10 is not a class of mnist (0-9); the file is "
                                   "corrupt, delete it so it is downloaded again, or replace "
                                   "it with the original"),
    (3, np.array([0, 1, 2, 3, 255, 5, 6], np.uint8), "label 255 is not a class of mnist "
                                                     "(0-9); the file is corrupt, delete it "
                                                     "so it is downloaded again, or replace "
                                                     "it with the original"),
], ids=["images 1-d", "labels 3-d", "images 27x28", "test images 28x14", "label 10",
        "test label 255"])
def test_a_file_that_is_not_what_mnist_holds_is_named(tmp_path, monkeypatch, which, content,
                                                      expected):
    """The checksums are left out, so that these checks, not the hash, see the file."""
    fake_mnist(tmp_path)
    monkeypatch.setitem(mnist.DATASETS, "mnist", mnist.DATASETS["mnist"]._replace(
        sha256={}))
    path = tmp_path / "mnist" / FILES[which]
    path.write_bytes(encode_idx(content))
    with pytest.raises(DataError, match=f"^{re.escape(f'{path}: {expected}')}$"):
        load_dataset("mnist", tmp_path, download=False)


def test_a_label_out_of_range_stops_training_in_one_line(tmp_path, monkeypatch, capsys):
    fake_mnist(tmp_path)
    monkeypatch.setitem(mnist.DATASETS, "mnist", mnist.DATASETS["mnist"]._replace(
        sha256={}))
    labels = np.zeros(20, np.uint8)
    labels[13] = 10
    (tmp_path / "mnist" / FILES[1]).write_bytes(gzip.compress(encode_idx(labels)))
    from minicnn import train
    result = call_main(train.main, ["--data-dir", str(tmp_path), "--backend", "numpy"], capsys)
    assert_one_line_error(result, re.escape(f"cannot read mnist: {tmp_path / 'mnist' / FILES[1]}"
                                            ": label 10 is not a class of mnist (0-9)"))


def test_images_and_labels_that_do_not_belong_together(tmp_path, monkeypatch):
    fake_mnist(tmp_path, n_labels=21, monkeypatch=monkeypatch)
    with pytest.raises(DataError, match=f"^{FILES[0]} has 20 images but {FILES[1]} has 21 "
                                        "labels; the files do not belong together, replace "
                                        "them$"):
        load_dataset("mnist", tmp_path, download=False)


@needs_mnist
def test_real_mnist_splits_and_label_counts():
    d = load_dataset("mnist", REAL_ROOT, download=False)
    assert [len(s.y) for s in d] == [55_000, 5_000, 10_000]
    assert d.train.x.shape[1:] == (1, 28, 28)
    labels = np.concatenate([d.train.y, d.val.y])
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265,
                                            5851, 5949]
    assert float(np.concatenate([d.train.x, d.val.x]).mean()) * 255 == pytest.approx(33.318,
                                                                                       abs=1e-3)
    assert d.train.y[0] == 5 and 0.0 <= np.min(d.train.x) and np.max(d.train.x) <= 1.0


# -- verification and its stamps ---------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_a_flipped_byte_in_a_local_file_is_refused(tmp_path, monkeypatch, compress):
    """Local files get the same SHA-256 check as downloads, before any training."""
    fake_mnist(tmp_path, compress=compress, monkeypatch=monkeypatch)
    name = FILES[0] if compress else FILES[0][:-3]
    path = tmp_path / "mnist" / name
    raw = bytearray(gzip.decompress(path.read_bytes()) if compress else path.read_bytes())
    raw[1000] ^= 0x40                                   # one pixel of one image
    path.write_bytes(gzip.compress(bytes(raw)) if compress else bytes(raw))
    with pytest.raises(DataError, match=f"{name} is corrupt: the SHA-256 of its content is "
                                        ".*delete it so it is downloaded again"):
        load_dataset("mnist", tmp_path, download=False)


def count_hashes(monkeypatch):
    """[the bytes of every files.sha256 call] from now on."""
    hashed, real = [], files.sha256
    monkeypatch.setattr(files, "sha256", lambda data: hashed.append(bytes(data)) or real(data))
    return hashed


def test_verified_files_get_a_stamp_and_are_not_hashed_again(tmp_path, monkeypatch):
    fake_mnist(tmp_path, monkeypatch=monkeypatch)
    load_dataset("mnist", tmp_path, download=False)
    stamps = sorted(p.name for p in (tmp_path / "mnist").glob("*.verified"))
    assert stamps == sorted(f + ".verified" for f in FILES)
    hashed = count_hashes(monkeypatch)
    load_dataset("mnist", tmp_path, download=False)
    assert hashed == []                                 # stamps matched: nothing re-hashed
    path = tmp_path / "mnist" / FILES[1]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    load_dataset("mnist", tmp_path, download=False)
    assert len(hashed) == 1                             # a touched file is checked again


def a_data_file(tmp_path):
    path = tmp_path / "data" / "f"
    path.parent.mkdir()
    path.write_bytes(b"some bytes")
    return path, files.sha256(b"some bytes")


def test_a_stamp_is_for_one_checksum(tmp_path):
    path, right = a_data_file(tmp_path)
    read_verified(path, right)
    assert path.with_name("f.verified").is_file()
    wrong = "0" * 64
    with pytest.raises(DataError, match=rf"is corrupt: the SHA-256 of its content is "
                                        rf"{right[:16]}\.\.\., expected {wrong[:16]}\.\.\.;"):
        read_verified(path, wrong)


def test_read_only_data_folder_keeps_its_stamps_in_the_cache(tmp_path, monkeypatch):
    fake_mnist(tmp_path, monkeypatch=monkeypatch)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(files.os, "access", lambda path, mode: False)
    load_dataset("mnist", tmp_path, download=False)
    assert len(list((tmp_path / "cache" / "verified").glob("*.json"))) == 4
    assert not list((tmp_path / "mnist").glob("*.verified"))


def test_stamps_of_a_read_only_folder_go_to_the_xdg_cache(tmp_path, monkeypatch):
    path, right = a_data_file(tmp_path)
    monkeypatch.delenv("MINICNN_CACHE", raising=False)
    monkeypatch.setattr(files.os, "access", lambda path, mode: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    read_verified(path, right)
    assert len(list((tmp_path / "xdg" / "minicnn" / "verified").glob("*.json"))) == 1
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    read_verified(path, right)
    assert len(list((tmp_path / "home" / ".cache" / "minicnn" / "verified").glob("*.json"))) == 1


# -- downloads -------------------------------------------------------------------------------
def no_network(*args, **kwargs):
    raise AssertionError("no download expected")


def serve(monkeypatch, served, length=True):
    """Fake urlopen serving served[name] from any mirror; returns the timeouts it was given."""
    timeouts = []

    def urlopen(url, timeout=None):
        timeouts.append(timeout)
        return Response(served[url.rsplit("/", 1)[1]], length)
    monkeypatch.setattr(files.urllib.request, "urlopen", urlopen)
    return timeouts


def all_but_the_first_file(root):
    (root / "mnist").mkdir(parents=True)
    for f in FILES[1:]:
        (root / "mnist" / f).write_bytes(b"")


def test_no_network_names_the_files_and_leaves_nothing(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(files.urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as err:
        ensure_files("mnist", tmp_path, progress=False)
    message = str(err.value)
    assert all(f in message for f in FILES) and str(tmp_path / "mnist") in message
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_download_tries_mirrors_and_verifies_checksums(tmp_path, monkeypatch):
    """The first mirror fails, the second serves a corrupt file, the third the right one."""
    payload = {f: gzip.compress(encode_idx(np.full((2, 2, 2) if "images" in f else (2,), i,
                                                   np.uint8)))
               for i, f in enumerate(FILES)}
    sums = {f: files.sha256(gzip.decompress(d)) for f, d in payload.items()}
    info = mnist.IdxDataset(("http://a/", "http://b/", "http://c/"), sums, ())
    monkeypatch.setitem(mnist.DATASETS, "mnist", info)
    calls = []

    def fake_urlopen(url, timeout):
        calls.append(url)
        mirror, name = url.rsplit("/", 1)
        if mirror == "http://a":
            raise OSError("connection refused")
        if mirror == "http://b":
            return Response(gzip.compress(b"not the right bytes"))
        return Response(payload[name])
    monkeypatch.setattr(files.urllib.request, "urlopen", fake_urlopen)
    paths = ensure_files("mnist", tmp_path, progress=False)
    assert [p.read_bytes() for p in paths] == [payload[f] for f in FILES]
    assert calls[:3] == [f"http://{m}/{FILES[0]}" for m in "abc"]
    # each verified download gets its stamp at once: reading it will not hash it again
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(
        [*FILES, *(f + ".verified" for f in FILES)])


def test_a_fresh_download_is_hashed_once(tmp_path, monkeypatch):
    """Verified as it arrives, stamped at once: reading it does not hash it a second time
    (the three local files are hashed once each, on their first reading)."""
    fake_mnist_with_one_file_to_download(tmp_path, monkeypatch)
    content = {f: gzip.decompress((tmp_path / "mnist" / f).read_bytes()) for f in FILES[:3]}
    hashed = count_hashes(monkeypatch)
    load_dataset("mnist", tmp_path, progress=False)
    downloaded = gzip.decompress((tmp_path / "mnist" / FILES[3]).read_bytes())
    assert hashed.count(downloaded) == 1
    assert sorted(hashed, key=len) == sorted([*content.values(), downloaded], key=len)
    assert (tmp_path / "mnist" / (FILES[3] + ".verified")).is_file()
    hashed.clear()
    load_dataset("mnist", tmp_path, download=False)
    assert hashed == []


@pytest.mark.parametrize("length,shown", [
    (True, [" 48%", " 97%", "100%"]),             # 102,399 bytes in reads of 50,000
    (False, ["48 KiB", "97 KiB", "99 KiB"]),      # no Content-Length: KiB, rounded down
])
def test_download_progress(tmp_path, monkeypatch, capsys, length, shown):
    payload = np.random.default_rng(0).integers(0, 256, 102_399, dtype=np.uint8).tobytes()
    monkeypatch.setitem(mnist.DATASETS, "mnist", mnist.IdxDataset(("http://m/",), {}, ()))
    timeouts = serve(monkeypatch, {FILES[0]: payload}, length)
    all_but_the_first_file(tmp_path)
    paths = ensure_files("mnist", tmp_path)
    assert paths[0].read_bytes() == payload
    assert 0 < timeouts[0] < math.inf
    out, err = capsys.readouterr()
    updates = "".join(f"\r  {FILES[0]}: {s}" for s in shown)
    assert out == "" and err == f"downloading http://m/{FILES[0]}\n{updates}\n"


def test_each_progress_update_is_flushed(tmp_path, monkeypatch):
    """stderr is line-buffered and an update ends in no newline: unflushed, a terminal would
    show the percentage only when the download ends."""
    class Stderr:
        def __init__(self):
            self.pending, self.seen = "", []

        def write(self, text):                   # line-buffered: a newline flushes
            self.pending += text
            if "\n" in self.pending:
                line, self.pending = self.pending.rsplit("\n", 1)
                self.seen.append(line + "\n")

        def flush(self):
            self.seen.append(self.pending)
            self.pending = ""

    payload = bytes(102_399)
    monkeypatch.setitem(mnist.DATASETS, "mnist", mnist.IdxDataset(("http://m/",), {}, ()))
    serve(monkeypatch, {FILES[0]: payload})
    all_but_the_first_file(tmp_path)
    monkeypatch.setattr(files.sys, "stderr", Stderr())
    ensure_files("mnist", tmp_path)
    assert files.sys.stderr.seen == [f"downloading http://m/{FILES[0]}\n"] + [
        f"\r  {FILES[0]}: {s}" for s in (" 48%", " 97%", "100%")] + ["\n"]


def test_a_failed_download_names_the_last_error(tmp_path, monkeypatch):
    """Mirror a refuses, b times out, c serves the wrong bytes: the message gives c's error."""
    info = mnist.IdxDataset(("http://a/", "http://b/", "http://c/"), {FILES[0]: "0" * 64}, ())
    monkeypatch.setitem(mnist.DATASETS, "mnist", info)

    def urlopen(url, timeout=None):
        if url.startswith("http://a/"):
            raise OSError("connection refused")
        if url.startswith("http://b/"):
            raise OSError("timed out")
        return Response(gzip.compress(b"not the right bytes"))
    monkeypatch.setattr(files.urllib.request, "urlopen", urlopen)
    with pytest.raises(DataError) as err:
        ensure_files("mnist", tmp_path, progress=False)
    url = f"http://c/{FILES[0]}"
    assert str(err.value) == (
        f"could not download mnist ({url}: checksum mismatch for {url}). Put "
        f"{', '.join(FILES)} in {tmp_path / 'mnist'}/ (or point --data-dir / MINICNN_DATA at a "
        "folder that has them in a 'mnist' subfolder)")


def test_ensure_files_defaults_to_mnist_with_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(mnist.DATASETS, "mnist", mnist.IdxDataset(("http://m/",), {}, ()))
    serve(monkeypatch, {FILES[0]: b"x"})
    all_but_the_first_file(tmp_path)
    assert ensure_files(data_dir=tmp_path) == [tmp_path / "mnist" / f for f in FILES]
    assert capsys.readouterr().err.startswith(f"downloading http://m/{FILES[0]}\n")


def fake_mnist_with_one_file_to_download(tmp_path, monkeypatch):
    fake_mnist(tmp_path, monkeypatch=monkeypatch)
    path = tmp_path / "mnist" / FILES[3]
    serve(monkeypatch, {FILES[3]: path.read_bytes()})
    path.unlink()


def test_load_dataset_defaults_to_mnist_downloading_with_progress(tmp_path, monkeypatch,
                                                                  capsys):
    fake_mnist_with_one_file_to_download(tmp_path, monkeypatch)
    assert len(load_dataset(data_dir=tmp_path).test.y) == 7
    assert f"downloading {mnist.DATASETS['mnist'].mirrors[0]}{FILES[3]}\n" in (
        capsys.readouterr().err)


def test_load_dataset_downloads_quietly_when_asked(tmp_path, monkeypatch, capsys):
    fake_mnist_with_one_file_to_download(tmp_path, monkeypatch)
    assert len(load_dataset("mnist", tmp_path, download=True, progress=False).test.y) == 7
    assert capsys.readouterr() == ("", "")


def test_load_dataset_without_download_does_not_download(tmp_path, monkeypatch):
    fake_mnist_with_one_file_to_download(tmp_path, monkeypatch)
    monkeypatch.setattr(files.urllib.request, "urlopen", no_network)
    with pytest.raises(DataError, match=f"^mnist: missing {FILES[3]} in "):
        load_dataset("mnist", tmp_path, download=False, progress=True)
