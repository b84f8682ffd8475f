"""IDX reading, corruption errors, dataset lookup and download, and the real MNIST splits."""
import gzip
import os

import numpy as np
import pytest

from conftest import REAL_ROOT, Response, fake_mnist, needs_mnist
from minicnn.data import (FILES, DataError, IdxError, encode_idx, ensure_files, load_dataset,
                          parse_idx, read_idx)
from minicnn.data import files, mnist


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("shape", [(3, 4, 5), (7,), (1, 28, 28)])
def test_idx_round_trip(tmp_path, compress, shape):
    a = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = encode_idx(a)
    path = tmp_path / ("f.gz" if compress else "f")
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(path), a)


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d[:-3], "truncated: header says"),
    (lambda d: d + b"\0", "trailing data"),
    (lambda d: b"\x12\x34" + d[2:], "bad IDX magic number 0x1234"),
    (lambda d: d[:2] + b"\x42" + d[3:], "bad IDX magic number"),
    (lambda d: d[:2], "too short to be an IDX file"),
    (lambda d: d[:9], "truncated header"),
])
def test_idx_corruption_is_named(mutate, match):
    data = encode_idx(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(IdxError, match=match):
        parse_idx(mutate(data), "x")


def test_idx_wrong_dimensions():
    with pytest.raises(IdxError, match="expected 3 dimensions, the header says 1"):
        parse_idx(encode_idx(np.zeros(4, np.uint8)), "labels", expect_ndim=3)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "x.gz"
    noise = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    path.write_bytes(gzip.compress(encode_idx(noise))[:1000])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(path)


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "raw"])
def test_load_dataset_splits_and_scales(tmp_path, compress, monkeypatch):
    arrays = fake_mnist(tmp_path, compress=compress, monkeypatch=monkeypatch)
    d = load_dataset("mnist", tmp_path, download=False, validation_size=5)
    assert [len(s.y) for s in d] == [15, 5, 7]
    assert d.train.x.shape == (15, 1, 28, 28) and d.train.x.dtype == np.float32
    np.testing.assert_allclose(d.val.x[:, 0] * 255, arrays[0][15:], atol=1e-4)
    np.testing.assert_array_equal(d.test.y, arrays[3])
    limited = load_dataset("mnist", tmp_path, download=False, validation_size=5, train_limit=4)
    assert [len(s.y) for s in limited] == [4, 5, 7]
    np.testing.assert_array_equal(limited.val.y, d.val.y)


def test_mismatched_counts_are_named(tmp_path, monkeypatch):
    fake_mnist(tmp_path, n_labels=19, monkeypatch=monkeypatch)
    with pytest.raises(DataError, match="has 20 images but train-labels-idx1-ubyte.gz has 19"):
        load_dataset("mnist", tmp_path, download=False)


def test_env_variable_sets_the_root(tmp_path, monkeypatch):
    fake_mnist(tmp_path)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path))
    assert ensure_files("mnist", download=False)[0].parent == tmp_path / "mnist"


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
    import hashlib
    sums = {f: hashlib.sha256(gzip.decompress(d)).hexdigest() for f, d in payload.items()}
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
    assert d.train.y[0] == 5 and 0.0 <= d.train.x.min() and d.train.x.max() <= 1.0


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


def test_verified_files_get_a_stamp_and_are_not_hashed_again(tmp_path, monkeypatch):
    fake_mnist(tmp_path, monkeypatch=monkeypatch)
    load_dataset("mnist", tmp_path, download=False)
    stamps = sorted(p.name for p in (tmp_path / "mnist").glob("*.verified"))
    assert stamps == sorted(f + ".verified" for f in FILES)
    calls = []
    real = files.sha256
    monkeypatch.setattr(files, "sha256", lambda *a: calls.append(a) or real(*a))
    load_dataset("mnist", tmp_path, download=False)
    assert calls == []                                  # stamps matched: nothing re-hashed
    path = tmp_path / "mnist" / FILES[1]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    load_dataset("mnist", tmp_path, download=False)
    assert len(calls) == 1                              # a touched file is checked again


def test_read_only_data_folder_keeps_its_stamps_in_the_cache(tmp_path, monkeypatch):
    fake_mnist(tmp_path, monkeypatch=monkeypatch)
    monkeypatch.setenv("MINICNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(files.os, "access", lambda path, mode: False)
    load_dataset("mnist", tmp_path, download=False)
    assert len(list((tmp_path / "cache" / "verified").glob("*.json"))) == 4
    assert not list((tmp_path / "mnist").glob("*.verified"))
