"""CIFAR-10's binary batches (minicnn/data/cifar10.py), on files the tests write in the
official format (tests/cifar_files.py): the splits, the channels-first decoding, the two
places the files may be, the refusals of a truncated, resized or mislabelled file and of a
wrong checksum, the stamp that skips the hash, the archive's download and unpacking (from a
fake network, with a member that tries to escape the folder), the unchecked synthetic set,
and the command line: bad CIFAR data and a crop larger than the images are one line and
exit 2 before training, and a tiny network learns a synthetic set through crops and
augmentation."""
import hashlib
import io
import json
import re
import tarfile

import numpy as np
import pytest

from cifar_files import FILES, PER_FILE, RECORD, colour_set, random_set, records, write_set
from conftest import Response, assert_one_line_error, call_main, run_module
from minicnn.data import DataError, cifar10, files, info, load_dataset

SMALL = 40          # records per file where the test shrinks cifar10.RECORDS_PER_FILE


@pytest.fixture
def small(monkeypatch):
    """Files of SMALL records: cifar10 reads RECORDS_PER_FILE when it parses a file."""
    monkeypatch.setattr(cifar10, "RECORDS_PER_FILE", SMALL)
    return SMALL


def checked(monkeypatch, sums):
    """Make ``sums`` the published SHA-256 of the six files for this test."""
    monkeypatch.setattr(cifar10, "SHA256", dict(sums))


def offline(monkeypatch):
    """Any download attempt fails the test."""
    def urlopen(*args, **kwargs):
        raise AssertionError(f"unexpected download: {args}")
    monkeypatch.setattr(files.urllib.request, "urlopen", urlopen)


def small_load(root, name="cifar10"):
    return load_dataset(name, root, progress=False, validation_size=10)


# -- the official layout and sizes ------------------------------------------------------
def test_full_size_files_give_the_published_splits_decoded_channels_first(tmp_path, monkeypatch):
    parts = random_set()
    checked(monkeypatch, write_set(tmp_path / "cifar10" / "cifar-10-batches-bin", parts))
    offline(monkeypatch)
    data = load_dataset("cifar10", tmp_path, progress=False)
    assert (len(data.train.y), len(data.val.y), len(data.test.y)) == (45_000, 5_000, 10_000)
    assert info("cifar10").shape == (3, 32, 32) and info("cifar10").train_images == 50_000
    for split in data:
        assert split.x.dtype == np.float32 and split.x.shape[1:] == (3, 32, 32)
        assert split.y.dtype == np.int64
        assert 0 <= np.min(split.x) and np.max(split.x) <= 1
    images = np.concatenate([p[0] for p in parts[:5]])
    labels = np.concatenate([p[1] for p in parts[:5]])
    np.testing.assert_array_equal(data.train.y, labels[:45_000])
    np.testing.assert_array_equal(data.val.y, labels[45_000:])       # the last 5,000
    np.testing.assert_array_equal(data.test.y, parts[5][1])
    for split, expected in ((data.train, images[:45_000]), (data.val, images[45_000:]),
                            (data.test, parts[5][0])):
        pick = np.r_[0:3, len(expected) - 3:len(expected), 1234, 4321]
        np.testing.assert_array_equal(split.x[pick], expected[pick].astype(np.float32) / 255)
    # record 0: its red plane is 255, the others 0 -> pure red; record 1: green grows down
    # the rows, blue along the columns
    red = data.train.x[0]
    assert (red[0] == 1).all() and (red[1:] == 0).all()
    rows, cols = np.mgrid[0:32, 0:32]
    np.testing.assert_array_equal(data.train.x[1, 1], (8 * rows).astype(np.float32) / 255)
    np.testing.assert_array_equal(data.train.x[1, 2], (8 * cols).astype(np.float32) / 255)


@pytest.mark.parametrize("where", ["cifar10/cifar-10-batches-bin", "cifar10"])
@pytest.mark.parametrize("root", ["root", "dataset folder"])
def test_files_are_found_unpacked_or_straight_in_the_dataset_folder(tmp_path, monkeypatch,
                                                                    small, where, root):
    parts = random_set(SMALL, seed=3)
    checked(monkeypatch, write_set(tmp_path / where, parts))
    offline(monkeypatch)
    data = small_load(tmp_path if root == "root" else tmp_path / "cifar10")
    np.testing.assert_array_equal(data.test.y, parts[5][1])
    np.testing.assert_array_equal(data.test.x, parts[5][0].astype(np.float32) / 255)
    assert len(data.train.y) == 5 * SMALL - 10


# -- refused files ------------------------------------------------------------------------
def _truncated(data):
    return data[:-100]


def _one_record_more(data):
    return data + data[:RECORD]


def _label_10(data):
    b = bytearray(data)
    b[7 * RECORD] = 10                         # record 7's label byte
    return bytes(b)


@pytest.mark.parametrize("damage,match", [
    (_truncated, r"truncated or not a CIFAR-10 file"),
    (_one_record_more, r"truncated or not a CIFAR-10 file"),
    (_label_10, r"record 7 has the label 10, CIFAR-10 has classes 0-9"),
])
@pytest.mark.parametrize("bad", ["data_batch_3.bin", "test_batch.bin"])
def test_a_damaged_file_is_refused_naming_it(tmp_path, monkeypatch, small, damage, match, bad):
    """The checksum table is given the damaged file's own sum, so it is the format checks that
    refuse it."""
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    sums = write_set(folder, random_set(SMALL))
    (folder / bad).write_bytes(damage((folder / bad).read_bytes()))
    sums[bad] = hashlib.sha256((folder / bad).read_bytes()).hexdigest()
    checked(monkeypatch, sums)
    offline(monkeypatch)
    with pytest.raises(DataError, match=match) as caught:
        small_load(tmp_path)
    assert str(folder / bad) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_full_size_file_with_a_label_above_9_is_refused(tmp_path, monkeypatch):
    """Without shrinking RECORDS_PER_FILE: the real record count and record size."""
    folder = tmp_path / "cifar10"
    parts = random_set()
    parts[4][1][PER_FILE - 1] = 200                 # the very last record of data_batch_5
    checked(monkeypatch, write_set(folder, parts))
    with pytest.raises(DataError, match=r"data_batch_5.bin: record 9,999 has the label 200"):
        load_dataset("cifar10", tmp_path, progress=False)


def test_a_wrong_checksum_is_refused_naming_the_file(tmp_path, monkeypatch, small):
    folder = tmp_path / "cifar10"
    sums = write_set(folder, random_set(SMALL))
    sums["data_batch_2.bin"] = "0" * 64
    checked(monkeypatch, sums)
    offline(monkeypatch)
    with pytest.raises(DataError, match=r"data_batch_2.bin is corrupt: the SHA-256"):
        small_load(tmp_path)
    assert not (folder / "data_batch_2.bin.verified").exists()


def test_a_stamp_skips_the_hash_until_the_file_changes(tmp_path, monkeypatch, small):
    folder = tmp_path / "cifar10"
    checked(monkeypatch, write_set(folder, random_set(SMALL)))
    offline(monkeypatch)
    hashed = []
    real = files.sha256
    monkeypatch.setattr(files, "sha256", lambda data: hashed.append(len(data)) or real(data))
    first = small_load(tmp_path)
    assert len(hashed) == 6
    assert all((folder / f"{name}.verified").is_file() for name in FILES)
    hashed.clear()
    second = small_load(tmp_path)
    assert hashed == []                               # the stamps say: checked before
    np.testing.assert_array_equal(first.train.x, second.train.x)
    # the same size, other bytes, a new modification time: hashed again, and refused
    path = folder / "data_batch_1.bin"
    data = bytearray(path.read_bytes())
    data[5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="data_batch_1.bin is corrupt"):
        small_load(tmp_path)
    assert hashed


def test_a_missing_file_without_download_is_named(tmp_path, small):
    write_set(tmp_path / "cifar10", random_set(SMALL)[:5], FILES[:5])
    folder = re.escape(str(tmp_path / "cifar10" / "cifar-10-batches-bin"))
    with pytest.raises(DataError, match=rf"cifar10: missing test_batch.bin in {folder}/$"):
        load_dataset("cifar10", tmp_path, download=False, progress=False)


# -- the archive and its download ----------------------------------------------------------
def archive(parts, extra=(), prefix="cifar-10-batches-bin/"):
    """A cifar-10-binary.tar.gz like the published one: its folder holds the six files and the
    readme and class names; ``extra``: (member name, bytes) added after them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        members = [(prefix + name, records(*p)) for name, p in zip(FILES, parts)]
        members += [(prefix + "batches.meta.txt", b"airplane\nautomobile\n"),
                    (prefix + "readme.html", b"<html></html>"), *extra]
        for name, data in members:
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def serve(monkeypatch, payload):
    """urlopen serving ``payload`` for the archive's URL; returns the URLs asked for."""
    asked = []

    def urlopen(url, timeout=None):
        asked.append(url)
        assert url == cifar10.MIRRORS[0] + cifar10.ARCHIVE
        return Response(payload)
    monkeypatch.setattr(files.urllib.request, "urlopen", urlopen)
    return asked


def test_a_missing_set_is_downloaded_as_the_archive_and_unpacked(tmp_path, monkeypatch, small):
    parts = random_set(SMALL, seed=5)
    payload = archive(parts)
    monkeypatch.setattr(cifar10, "ARCHIVE_SHA256", hashlib.sha256(payload).hexdigest())
    checked(monkeypatch, {name: hashlib.sha256(records(*p)).hexdigest()
                          for name, p in zip(FILES, parts)})
    asked = serve(monkeypatch, payload)
    data = small_load(tmp_path)
    assert asked == [cifar10.MIRRORS[0] + cifar10.ARCHIVE]
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    assert sorted(p.name for p in folder.glob("*.bin")) == sorted(FILES)
    assert not list(folder.glob(".*.part"))               # no temporary file left
    for name, p in zip(FILES, parts):
        assert (folder / name).read_bytes() == records(*p)
    np.testing.assert_array_equal(data.test.y, parts[5][1])
    np.testing.assert_array_equal(data.train.x[0], parts[0][0][0].astype(np.float32) / 255)
    # the next run finds the files: no second download
    offline(monkeypatch)
    np.testing.assert_array_equal(small_load(tmp_path).test.x, data.test.x)


def test_the_download_shows_its_progress(tmp_path, monkeypatch, small, capsys):
    parts = random_set(SMALL, seed=6)
    payload = archive(parts)
    monkeypatch.setattr(cifar10, "ARCHIVE_SHA256", hashlib.sha256(payload).hexdigest())
    checked(monkeypatch, {name: hashlib.sha256(records(*p)).hexdigest()
                          for name, p in zip(FILES, parts)})
    serve(monkeypatch, payload)
    load_dataset("cifar10", tmp_path, progress=True, validation_size=10)
    assert f"{cifar10.ARCHIVE}: 100%" in capsys.readouterr().err


def test_an_archive_with_the_wrong_checksum_is_refused_in_one_line(tmp_path, monkeypatch,
                                                                   small, capsys):
    from minicnn import train
    payload = archive(random_set(SMALL))
    monkeypatch.setattr(cifar10, "ARCHIVE_SHA256", "f" * 64)
    serve(monkeypatch, payload)
    with pytest.raises(DataError, match=r"cifar-10-binary.tar.gz is corrupt") as caught:
        small_load(tmp_path)
    assert "\n" not in str(caught.value)
    assert not list((tmp_path / "cifar10").rglob("*.bin"))       # nothing unpacked
    result = call_main(train.main, ["--dataset", "cifar10", "--data-dir", str(tmp_path),
                                    "--epochs", "1", "--quiet"], capsys)
    assert_one_line_error(result, r"cannot read cifar10: .*cifar-10-binary.tar.gz is corrupt")
    assert not list((tmp_path / "cifar10").rglob("*.bin"))


def test_archive_members_cannot_write_outside_the_folder(tmp_path, monkeypatch, small):
    parts = random_set(SMALL, seed=2)
    root = tmp_path / "deep" / "root"
    payload = archive(parts, extra=[("../../evil.bin", b"evil"),
                                    ("cifar-10-batches-bin/../../../../evil2.bin", b"evil"),
                                    ("/tmp/../" + str(tmp_path / "evil3.bin"), b"evil")])
    monkeypatch.setattr(cifar10, "ARCHIVE_SHA256", hashlib.sha256(payload).hexdigest())
    checked(monkeypatch, {name: hashlib.sha256(records(*p)).hexdigest()
                          for name, p in zip(FILES, parts)})
    serve(monkeypatch, payload)
    data = small_load(root)
    np.testing.assert_array_equal(data.test.y, parts[5][1])
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert not [p for p in written if "evil" in p], written
    assert all(p.startswith("deep/root/cifar10/") for p in written), written


def test_an_archive_whose_batch_is_a_link_is_refused(tmp_path, monkeypatch, small):
    """A member that is a symbolic link (to a file outside) is not a data file."""
    parts = random_set(SMALL)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, p in zip(FILES[1:], parts[1:]):
            data = records(*p)
            member = tarfile.TarInfo("cifar-10-batches-bin/" + name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        link = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    payload = buffer.getvalue()
    monkeypatch.setattr(cifar10, "ARCHIVE_SHA256", hashlib.sha256(payload).hexdigest())
    serve(monkeypatch, payload)
    with pytest.raises(DataError, match=r"lacks data_batch_1.bin"):
        small_load(tmp_path)
    assert not list(tmp_path.rglob("*.bin"))


def test_an_unreachable_mirror_says_where_to_put_the_archive(tmp_path, monkeypatch, small):
    def urlopen(*args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(files.urllib.request, "urlopen", urlopen)
    with pytest.raises(DataError, match=r"could not download cifar10 .*network unreachable.*"
                                        r"Put cifar-10-binary.tar.gz in"):
        small_load(tmp_path)


# -- the synthetic set ------------------------------------------------------------------------
def test_the_synthetic_set_loads_without_checksums_and_is_never_downloaded(tmp_path,
                                                                           monkeypatch, small):
    parts = random_set(SMALL, seed=9)
    write_set(tmp_path / cifar10.SYNTHETIC, parts)      # sums in no table
    offline(monkeypatch)
    data = small_load(tmp_path, cifar10.SYNTHETIC)
    np.testing.assert_array_equal(data.test.x, parts[5][0].astype(np.float32) / 255)
    assert not list((tmp_path / cifar10.SYNTHETIC).glob("*.verified"))
    assert info(cifar10.SYNTHETIC).shape == (3, 32, 32)
    (tmp_path / cifar10.SYNTHETIC / "test_batch.bin").unlink()
    with pytest.raises(DataError, match=r"missing test_batch.bin.*synthetic_cifar.py"):
        small_load(tmp_path, cifar10.SYNTHETIC)


def test_the_synthetic_set_is_checked_for_its_format(tmp_path, monkeypatch, small):
    folder = tmp_path / cifar10.SYNTHETIC
    write_set(folder, random_set(SMALL))
    (folder / "data_batch_4.bin").write_bytes(_label_10((folder / "data_batch_4.bin")
                                                        .read_bytes()))
    with pytest.raises(DataError, match=r"data_batch_4.bin: record 7 has the label 10"):
        small_load(tmp_path, cifar10.SYNTHETIC)


# -- the command line -------------------------------------------------------------------------
def train(*args, **kwargs):
    return run_module("minicnn.train", *args, **kwargs)


TINY = ["--arch", "conv:4:3:same,relu,pool,dense:10", "--epochs", "1"]


def assert_nothing_trained(result, runs):
    assert "epoch" not in result.stdout
    assert list(runs.iterdir()) == [], "a failed start left a run folder"


def bad_first_file(folder, damage):
    """data_batch_1.bin a full-size file damaged by ``damage``; the other five merely present
    (data_batch_1 is read first)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = records(rng.integers(0, 256, (PER_FILE, 3, 32, 32)), rng.integers(0, 10, PER_FILE))
    (folder / "data_batch_1.bin").write_bytes(damage(data))
    for name in FILES[1:]:
        (folder / name).write_bytes(b"")


@pytest.mark.parametrize("damage,match", [
    (_one_record_more, r"data_batch_1.bin: 30,733,073 bytes, a CIFAR-10 batch file has "
                       r"30,730,000"),
    (_truncated, r"data_batch_1.bin: 30,729,900 bytes"),
    (_label_10, r"data_batch_1.bin: record 7 has the label 10"),
])
def test_train_refuses_a_bad_synthetic_file_in_one_line(tmp_path, damage, match):
    """In a subprocess (nothing patched): the synthetic set has no checksums, so the format
    checks speak."""
    runs = tmp_path / "runs"
    runs.mkdir()
    bad_first_file(tmp_path / "data" / cifar10.SYNTHETIC, damage)
    result = train("--dataset", cifar10.SYNTHETIC, "--data-dir", tmp_path / "data", *TINY,
                   env={"MINICNN_RUNS": str(runs)})
    assert_one_line_error(result, r"cannot read cifar10-synthetic: .*" + match)
    assert_nothing_trained(result, runs)


def test_train_refuses_cifar10_files_that_are_not_the_published_ones(tmp_path):
    """In a subprocess: files of the right size, but not CIFAR-10's bytes."""
    runs = tmp_path / "runs"
    runs.mkdir()
    bad_first_file(tmp_path / "data" / "cifar10" / "cifar-10-batches-bin", lambda data: data)
    result = train("--dataset", "cifar10", "--data-dir", tmp_path / "data", *TINY,
                   env={"MINICNN_RUNS": str(runs)})
    assert_one_line_error(result, r"cannot read cifar10: .*data_batch_1.bin is corrupt: the "
                                  r"SHA-256")
    assert_nothing_trained(result, runs)


@pytest.mark.parametrize("damage,match", [
    (_one_record_more, r"data_batch_2.bin: 125,993 bytes, a CIFAR-10 batch file has 122,920 "
                       r"\(40 records"),
    (_label_10, r"data_batch_2.bin: record 7 has the label 10, CIFAR-10 has classes 0-9"),
])
def test_train_refuses_bad_cifar10_files_in_one_line(tmp_path, monkeypatch, small, capsys,
                                                     damage, match):
    """In this process, the damaged file's sum in the table: the format checks refuse it."""
    from minicnn import train as train_module
    folder = tmp_path / "cifar10"
    sums = write_set(folder, random_set(SMALL))
    bad = folder / "data_batch_2.bin"
    bad.write_bytes(damage(bad.read_bytes()))
    sums[bad.name] = hashlib.sha256(bad.read_bytes()).hexdigest()
    checked(monkeypatch, sums)
    offline(monkeypatch)
    out = tmp_path / "out"
    result = call_main(train_module.main, ["--dataset", "cifar10", "--data-dir", str(tmp_path),
                                           "--out", str(out), *TINY], capsys)
    assert_one_line_error(result, match)
    assert "epoch" not in result.stdout
    assert not out.exists()


def test_a_crop_larger_than_the_images_is_refused_before_the_data():
    result = train("--dataset", "cifar10", "--crop", "40", *TINY, data=False)
    assert_one_line_error(result, r"--crop 40 is larger than the 32x32 images; give at most 32")


def test_a_tiny_network_learns_synthetic_cifar_through_crops_and_augmentation(tmp_path):
    """End to end in a subprocess: six colour classes, 24x24 augmented crops (lr 0.01: at the
    default 0.1 this network's loss grows and the run is stopped)."""
    write_set(tmp_path / "data" / cifar10.SYNTHETIC, colour_set())
    out = tmp_path / "run"
    result = train("--dataset", cifar10.SYNTHETIC, "--data-dir", tmp_path / "data",
                   "--arch", "conv:4:3:same,relu,pool,dense:10", "--crop", "24", "--augment",
                   "--epochs", "2", "--train-limit", "2000", "--lr", "0.01", "--out", out,
                   "--quiet")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["architecture"]["input_shape"] == [3, 24, 24]
    assert metrics["config"]["crop"] == 24 and metrics["config"]["augment"] is True
    assert metrics["training_images"] == 2000 and len(metrics["epochs"]) == 2
    assert metrics["epochs"][-1]["val_accuracy"] > 0.8, metrics["epochs"]
    assert metrics["test_accuracy"] > 0.8
