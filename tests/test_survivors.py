"""Tests written for the mutants that survived a mutmut run over ops/, optim.py, trainer.py and
data/ (docs/testing.md: the score, the command, and the survivors accepted with a reason).

Each test says which promise it holds.  The first group covers the numbers a user reads: the
progress line and the per-epoch timings of fit, the defaults of Adam and of the divergence
check, the test split, the download progress, and data that is read with the wrong type or
the wrong number of dimensions.  The second covers promises the docstrings make where the
numbers stay the same: a float32 model keeps float32 buffers, an op called again with a warm
workspace allocates nothing, and need_dx=False skips dx.  No MNIST needed: fake data and a stub
model make every expected value something you can work out by hand.
"""
import gzip
import hashlib
import math
import re
import struct
from types import SimpleNamespace

import numpy as np
import pytest

import minicnn
from conftest import Response, fake_mnist, traced_peak
from minicnn import ops
from minicnn.nn import fit as trainer
from minicnn.backend import get_backend
from minicnn.data import (FILES, DataError, Dataset, IdxError, Split, data_root,
                          encode_idx, ensure_files, load_dataset, parse_idx, read_idx,
                          read_verified)
from minicnn.data import files, mnist
from minicnn.ops.geometry import window
from minicnn.parallel.shards import SingleProcess
from minicnn.nn.fit import DivergenceCheck, NonFiniteLoss, fit, train_epoch
from minicnn.ops.workspace import Workspace


# -- the training loop -------------------------------------------------------------
class StubModel:
    """What fit and train_epoch use of a model.  train_step's loss is the mean label of its
    batch and its hits the even labels, so every number the loop reports can be worked out by
    hand; the clock, when given, advances 1 s per training step and 0.25 s per evaluation."""
    dtype = "float32"

    def __init__(self, clock=None, nan_at=None):
        self.backend, self.comm = get_backend("numpy"), SingleProcess()
        self.clock, self.nan_at, self.batches = clock, nan_at, []

    def train_step(self, x, y, optimizer):
        self.batches.append((x, y, np.array(x), np.array(y)))
        if self.clock:
            self.clock.now += 1.0
        if len(self.batches) == self.nan_at:
            return float("nan"), 0
        return float(y.mean()), int((y % 2 == 0).sum())

    def evaluate(self, x, y):
        if self.clock:
            self.clock.now += 0.25
        return 0.5, 0.25

    def orders(self, steps):
        labels = [b[3] for b in self.batches]
        return [np.concatenate(labels[i:i + steps]) for i in range(0, len(labels), steps)]


def stub_data(n=10):
    """Images whose every pixel is the sample's index, labels equal to the index."""
    x = np.repeat(np.arange(n, dtype=np.float32), 4).reshape(n, 1, 2, 2)
    y = np.arange(n)
    return Dataset(Split(x, y), Split(x[:3], y[:3]), Split(x[:3], y[:3]))


def test_the_progress_line_reports_the_running_per_sample_mean():
    """on_batch(epoch, done, total, running loss): epoch 1 by default, steps counted from 1,
    and the running loss the mean over every sample seen so far (a short last batch too)."""
    data, model, calls = stub_data(10), StubModel(), []
    order = np.array([3, 9, 0, 7, 1, 8, 2, 6, 4, 5])
    loss, accuracy = train_epoch(model, None, data.train.x, data.train.y, 4, order,
                                 on_batch=lambda *args: calls.append(args))
    seen = [order[:4], order[:8], order]
    assert [c[:3] for c in calls] == [(1, 1, 3), (1, 2, 3), (1, 3, 3)]
    assert [c[3] for c in calls] == pytest.approx([s.mean() for s in seen], rel=1e-12)
    assert (loss, accuracy) == pytest.approx((4.5, 0.5), rel=1e-12)


def test_batches_reuse_their_buffers_and_keep_images_with_their_labels():
    """train_epoch takes every full batch into the same two buffers (no allocation per step)."""
    data, model = stub_data(10), StubModel()
    train_epoch(model, None, data.train.x, data.train.y, 3, np.arange(10)[::-1])
    full = model.batches[:3]
    assert all(x is full[0][0] and y is full[0][1] for x, y, _, _ in full)
    for _, _, images, labels in model.batches:
        np.testing.assert_array_equal(images[:, 0, 0, 0], labels)


def test_a_nan_loss_names_its_epoch_and_step():
    data, model = stub_data(10), StubModel(nan_at=3)
    with pytest.raises(NonFiniteLoss, match=r"^the loss became nan in epoch 1, step 3$"):
        train_epoch(model, None, data.train.x, data.train.y, 2, np.arange(10))


def test_fit_runs_the_epochs_asked_for_with_the_default_seed_0():
    data, default, seeded, other = stub_data(10), StubModel(), StubModel(), StubModel()
    calls = []
    history = fit(default, None, data, epochs=2, batch_size=4,
                  on_batch=lambda *args: calls.append(args[:3]))
    fit(seeded, None, data, epochs=2, batch_size=4, seed=0)
    fit(other, None, data, epochs=2, batch_size=4, seed=1)
    assert [h.epoch for h in history] == [1, 2] and len(default.batches) == 6
    assert calls == [(e, s, 3) for e in (1, 2) for s in (1, 2, 3)]
    assert all(np.array_equal(a, b) for a, b in zip(default.orders(3), seeded.orders(3)))
    assert not all(np.array_equal(a, b) for a, b in zip(default.orders(3), other.orders(3)))


def test_fit_reports_epoch_times_without_the_time_spent_reporting(monkeypatch):
    """3 steps of 1 s and an evaluation of 0.25 s per epoch; on_epoch takes 100 s, which
    ``elapsed`` leaves out."""
    clock = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(trainer, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    reported = []

    def on_epoch(stats):
        reported.append(stats)
        clock.now += 100.0

    history = fit(StubModel(clock), None, stub_data(10), epochs=2, batch_size=4,
                  on_epoch=on_epoch)
    assert reported == history
    assert [(h.epoch, h.train_seconds, h.seconds, h.elapsed) for h in history] == [
        (1, 3.0, 3.25, 3.25), (2, 3.0, 3.25, 6.5)]
    assert [(h.train_loss, h.train_accuracy, h.val_loss, h.val_accuracy)
            for h in history] == [(4.5, 0.5, 0.5, 0.25)] * 2


def test_the_default_divergence_rule_is_ten_times_the_first_loss_over_ten_batches():
    check = DivergenceCheck()
    check(1.0, 1, 1)
    for step in range(2, 11):                # the first loss is still in the window of 10
        check(10.5, 1, step)
    with pytest.raises(NonFiniteLoss, match=r"grew from 1 to 10\.5 \(mean of the last 10 "
                                            r"batches\) by epoch 1, step 11$"):
        check(10.5, 1, 11)
    boundary = DivergenceCheck()
    boundary(1.0, 1, 1)
    boundary(19.0, 1, 2)                     # the mean is exactly 10 times the start: no stop


# -- optimizers ------------------------------------------------------------------------
def test_adam_defaults_are_the_papers():
    adam = minicnn.Adam()
    assert (adam.lr, adam.beta1, adam.beta2, adam.eps) == (0.001, 0.9, 0.999, 1e-8)


@pytest.mark.parametrize("name,value,wanted", [
    ("lr", 0, "a positive finite number"),
    ("beta2", 1, r"in \[0, 1\)"),
    ("beta2", 2, r"in \[0, 1\)"),
    ("eps", 0, "a positive finite number"),
])
def test_adam_names_the_bad_hyper_parameter(name, value, wanted):
    with pytest.raises(ValueError, match=rf"^Adam: {name} must be {wanted}, got "):
        minicnn.Adam(**{name: value})


def test_adam_beta2_may_be_zero():
    assert minicnn.Adam(beta2=0).beta2 == 0.0


def flat_model(size, backend="numpy"):
    rng = np.random.default_rng(0)
    return SimpleNamespace(backend=get_backend(backend),
                           flat_params=rng.standard_normal(size).astype(np.float32),
                           flat_grads=rng.standard_normal(size).astype(np.float32))


def test_an_optimizer_refuses_a_model_of_another_size():
    sgd = minicnn.SGD(0.1)
    sgd.step(flat_model(1000))
    with pytest.raises(ValueError, match=r"^SGD: this optimizer was used with a model of 1,000 "
                                         r"parameters; make a new one for this model \(2,000 "
                                         r"parameters\)$"):
        sgd.step(flat_model(2000))


# Allocation checks: NumPy reports its buffers to tracemalloc.  Its own casting buffers (8192
# elements) stay under LIMIT; a full-size temporary of the arrays below is far above it.
LIMIT = 64 * 1024


@pytest.mark.parametrize("make", [lambda: minicnn.SGD(0.1), lambda: minicnn.SGD(0.1, 0.9),
                                  lambda: minicnn.Adam()], ids=["sgd", "momentum", "adam"])
def test_a_warm_optimizer_step_allocates_nothing(make):
    """Reference updates (numpy backend): the optimizer passes its workspace down."""
    model, optimizer = flat_model(300_000), make()
    optimizer.step(model)
    optimizer.step(model)
    peak, _ = traced_peak(lambda: optimizer.step(model))
    assert peak < LIMIT


def test_plain_sgd_keeps_no_state_and_momentum_one_velocity():
    """SGD without momentum needs no buffer: its first step allocates nothing the size of
    the model, where momentum's first step allocates exactly one velocity (numba: the
    updates are in-place kernels, so the state is all a first step allocates)."""
    model = flat_model(300_000, "numba")
    minicnn.SGD(0.1).step(model)                 # compile both kernels before tracing
    minicnn.SGD(0.1, 0.9).step(model)
    sgd_peak, _ = traced_peak(lambda: minicnn.SGD(0.1).step(model))
    momentum_peak, _ = traced_peak(lambda: minicnn.SGD(0.1, 0.9).step(model))
    assert sgd_peak < LIMIT
    assert model.flat_params.nbytes <= momentum_peak < model.flat_params.nbytes + LIMIT


# -- ops -------------------------------------------------------------------------------
NUMBA = get_backend("numba")


def op_cases(dtype):
    """name -> (call(ws) -> tuple of every array the op returns), on the numba backend: the
    reference ops of minicnn.ops with the backend's kernels (which allocate nothing)."""
    rng = np.random.default_rng(0)

    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x = arr(4, 64, 32, 32)                                  # (C, N, H, W)
    xc, w, b = arr(4, 16, 20, 20), arr(8, 4, 3, 3), arr(8)  # smaller for the convolutions
    g = window(20, 20, (3, 3), (1, 1), "valid")
    pool_g, plain_pool_g = window(18, 18, (2, 2), (2, 2), "valid"), window(32, 32, (2, 2),
                                                                           (2, 2), "valid")
    dy_conv, dy_pool, dy_plain_pool = arr(8, 16, 18, 18), arr(8, 16, 9, 9), arr(4, 64, 16, 16)
    d, dw, db, dy_dense = arr(256, 1024), arr(1024, 64), arr(64), arr(256, 64)
    logits, labels = arr(4096, 16), rng.integers(0, 16, 4096)
    flat_dy = arr(64, 4 * 32 * 32)

    def fwd_bwd(forward, backward, dy, *backward_args):
        def call(ws):
            y, cache = forward(ws)
            return (y, *_as_tuple(backward(dy, cache, *backward_args, ws.part("backward"))))
        return call

    return {
        "relu": fwd_bwd(lambda ws: ops.relu_forward(x, NUMBA, ws), ops.relu_backward, x),
        "sigmoid": fwd_bwd(lambda ws: ops.sigmoid_forward(x, NUMBA, ws), ops.sigmoid_backward,
                           x),
        "conv2d": fwd_bwd(lambda ws: ops.conv2d_forward(xc, w, b, g, NUMBA, ws),
                          ops.conv2d_backward, dy_conv, True),
        "conv_relu": fwd_bwd(lambda ws: ops.conv_relu_forward(xc, w, b, g, NUMBA, ws),
                             ops.conv_relu_backward, dy_conv, True),
        "conv_relu_pool": fwd_bwd(
            lambda ws: ops.conv_relu_pool_forward(xc, w, b, g, pool_g, NUMBA, ws),
            ops.conv_relu_pool_backward, dy_pool, True),
        "maxpool": fwd_bwd(lambda ws: ops.maxpool_forward(x, plain_pool_g, NUMBA, ws),
                           ops.maxpool_backward, dy_plain_pool),
        "dense": fwd_bwd(lambda ws: ops.dense_forward(d, dw, db, NUMBA, ws),
                         ops.dense_backward, dy_dense, True),
        "flatten": fwd_bwd(lambda ws: ops.flatten_forward(x, NUMBA, ws), ops.flatten_backward,
                           flat_dy),
        "to_internal": lambda ws: (ops.to_internal(x, NUMBA, ws),),
        "to_public": lambda ws: (ops.to_public(x, NUMBA, ws),),
        "softmax_cross_entropy": lambda ws: ops.softmax_cross_entropy(logits, labels, NUMBA,
                                                                      None, ws)[1:],
    }


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def buffers(ws):
    yield from ws._buffers.values()
    for part in ws._parts.values():
        yield from buffers(part)


@pytest.mark.parametrize("name", sorted(op_cases(np.float32)))
def test_float32_ops_keep_float32_outputs_and_buffers(name):
    ws = Workspace(np)
    outputs = op_cases(np.float32)[name](ws)
    assert {a.dtype for a in outputs if a is not None} == {np.dtype(np.float32)}
    assert not [a.shape for a in buffers(ws) if a.dtype == np.float64]


# softmax_cross_entropy allocates exp(z) once per call by design: its allocations are left to
# the identity check.
@pytest.mark.parametrize("name", sorted(op_cases(np.float32)))
def test_a_warm_workspace_gives_the_same_buffers_and_allocates_nothing(name):
    """Workspace's promise: once the first batch has run, nothing is allocated."""
    call, ws = op_cases(np.float32)[name], Workspace(np)
    first = call(ws)
    peak, second = traced_peak(lambda: call(ws))
    assert all(np.shares_memory(a, b) for a, b in zip(first, second))
    if name != "softmax_cross_entropy":
        assert peak < LIMIT


def test_need_dx_false_returns_no_dx():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 2, 3, 3)), np.zeros(4)
    g = window(6, 6, (3, 3), (1, 1), "same")
    pool_g = window(6, 6, (2, 2), (2, 2), "valid")
    dy = rng.standard_normal((4, 3, 6, 6))
    for forward, backward, static, grad in [
            (ops.conv2d_forward, ops.conv2d_backward, (g,), dy),
            (ops.conv_relu_forward, ops.conv_relu_backward, (g,), dy),
            (ops.conv_relu_pool_forward, ops.conv_relu_pool_backward, (g, pool_g), dy[:, :, :3, :3])]:
        _, cache = forward(x, w, b, *static, NUMBA)
        assert backward(grad, cache, False)[0] is None
    _, cache = ops.dense_forward(rng.standard_normal((3, 8)), rng.standard_normal((8, 5)),
                                 np.zeros(5), NUMBA)
    assert ops.dense_backward(rng.standard_normal((3, 5)), cache, False)[0] is None


def test_layout_conversions_are_free_with_one_channel_and_skip_other_shapes():
    x = np.random.default_rng(0).standard_normal((5, 1, 4, 4))
    for convert in (ops.to_internal, ops.to_public):
        assert np.shares_memory(convert(x, NUMBA), x)
        flat = x.reshape(5, 16)
        assert convert(flat, NUMBA) is flat


def test_flatten_backward_restores_a_three_dimensional_input():
    x = np.arange(24.0).reshape(2, 3, 4)
    y, cache = ops.flatten_forward(x, NUMBA)
    assert y.shape == (2, 12)
    np.testing.assert_array_equal(ops.flatten_backward(y, cache), x)


def test_resolve_falls_back_to_the_reference_where_a_fused_kernel_does_not_apply():
    """Numba's fused conv+ReLU+pool through im2col runs stride 1 only; a stride-2 convolution
    gets the reference composition."""
    name = "conv_relu_pool/im2col"
    fused = NUMBA.fused[name]
    stride1 = window(8, 8, (3, 3), (1, 1), "same")
    stride2 = window(8, 8, (3, 3), (2, 2), "same")
    assert ops.resolve(name, NUMBA, stride1) is fused
    assert ops.resolve(name, NUMBA, stride2) is ops.REFERENCE[name]
    assert ops.resolve(name, NUMBA) is fused


# -- IDX files ---------------------------------------------------------------------------
def idx(code, shape, payload):
    return struct.pack(">HBB", 0, code, len(shape)) + struct.pack(f">{len(shape)}I",
                                                                 *shape) + payload


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


@pytest.mark.parametrize("data,message", [
    (b"\x00", "<bytes>: too short to be an IDX file (1 bytes)"),
    (b"\x00\x00\x08\x01", "<bytes>: truncated header"),
    (b"\x00\x00\x08\xff", "<bytes>: truncated header"),          # 255 dimensions
    (b"\x12\x34\x08\x01\x00", "<bytes>: bad IDX magic number 0x12340801 (expected 0x0000 + "
                              "type + dimensions, e.g. 0x00000803 for images)"),
    (idx(0x08, (2,), b"abc"), "<bytes>: trailing data: header says (2,) (10 bytes), file has "
                              "11 bytes"),
])
def test_idx_errors_say_what_is_wrong(data, message):
    with pytest.raises(IdxError, match=f"^{re.escape(message)}$"):
        parse_idx(data)


def test_read_idx_checks_the_dimensions_and_names_the_file(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(encode_idx(np.zeros(4, np.uint8)))
    with pytest.raises(IdxError, match=f"^{re.escape(str(path))}: expected 3 dimensions, "
                                       "the header says 1$"):
        read_idx(path, expect_ndim=3)


def test_a_truncated_gzip_says_to_delete_the_file(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(bytes(range(256)) * 64)[:100])
    with pytest.raises(DataError, match=r"^.*x\.gz: corrupt or truncated gzip data \(.*\); "
                                       r"delete the file so it is downloaded again$"):
        read_idx(path)


# -- datasets: where files are, the splits ------------------------------------------------
def test_the_default_data_root_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "minicnn" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_root() == tmp_path / "home" / ".cache" / "minicnn" / "data"


def test_an_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"^unknown dataset 'nope'; choose one of: mnist, "
                                         r"fashion-mnist$"):
        load_dataset("nope", tmp_path, download=False)


@pytest.mark.xfail(strict=True, raises=KeyError,
                   reason="source bug: minicnn/data/mnist.py:55 indexes DATASETS[name] "
                          "before any check, so ensure_files('nope') is a bare KeyError")
def test_ensure_files_of_an_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"^unknown dataset 'nope'; choose one of: mnist, "
                                         r"fashion-mnist$"):
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


def test_the_test_split_has_its_images(tmp_path, monkeypatch):
    arrays = fake_mnist(tmp_path, monkeypatch=monkeypatch)
    d = load_dataset("mnist", tmp_path, download=False, validation_size=5)
    assert d.test.x.shape == (7, 1, 28, 28) and d.test.x.dtype == np.float32
    np.testing.assert_allclose(d.test.x[:, 0] * 255, arrays[2], atol=1e-4)


@pytest.mark.parametrize("which,content,expected", [
    (0, np.zeros(20, np.uint8), "expected 3 dimensions, the header says 1"),
    (1, np.zeros((20, 28, 28), np.uint8), "expected 1 dimensions, the header says 3"),
])
def test_a_file_with_the_wrong_dimensions_is_named(tmp_path, monkeypatch, which, content,
                                                   expected):
    fake_mnist(tmp_path)
    monkeypatch.setitem(mnist.DATASETS, "mnist", mnist.DATASETS["mnist"]._replace(
        sha256={}))
    path = tmp_path / "mnist" / FILES[which]
    path.write_bytes(encode_idx(content))
    with pytest.raises(DataError, match=f"^{re.escape(str(path))}: {expected}$"):
        load_dataset("mnist", tmp_path, download=False)


def test_images_and_labels_that_do_not_belong_together(tmp_path, monkeypatch):
    fake_mnist(tmp_path, n_labels=21, monkeypatch=monkeypatch)
    with pytest.raises(DataError, match=f"^{FILES[0]} has 20 images but {FILES[1]} has 21 "
                                        "labels; the files do not belong together, replace "
                                        "them$"):
        load_dataset("mnist", tmp_path, download=False)


# -- verification stamps -------------------------------------------------------------------
def a_data_file(tmp_path):
    path = tmp_path / "data" / "f"
    path.parent.mkdir()
    path.write_bytes(b"some bytes")
    return path, hashlib.sha256(b"some bytes").hexdigest()


def test_a_stamp_is_for_one_checksum(tmp_path):
    path, right = a_data_file(tmp_path)
    read_verified(path, right)
    assert path.with_name("f.verified").is_file()
    wrong = "0" * 64
    with pytest.raises(DataError, match=rf"is corrupt: the SHA-256 of its content is "
                                        rf"{right[:16]}\.\.\., expected {wrong[:16]}\.\.\.;"):
        read_verified(path, wrong)


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
