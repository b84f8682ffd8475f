"""The workspace's promises (ops/workspace.py), op by op: a float32 op keeps float32 outputs
and buffers (no float64 temporary), and an op called again with its warm workspace returns
the same buffers and allocates nothing.  The ops run on the numba backend: the reference
ops of minicnn.ops with that backend's kernels, which allocate nothing of their own.  The
same promises for a Winograd step: test_winograd.py; for an optimizer step: test_optim.py."""
import numpy as np
import pytest

from conftest import NO_ALLOCATION, traced_peak
from minicnn import ops
from minicnn.backend import get_backend
from minicnn.ops.geometry import window
from minicnn.ops.workspace import Workspace

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
    u = rng.random(x.shape).astype(dtype)               # dropout's uniform draws
    gamma, beta, units = arr(4), arr(4), arr(1024)

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
        "tanh": fwd_bwd(lambda ws: ops.tanh_forward(x, NUMBA, ws), ops.tanh_backward, x),
        "avgpool": fwd_bwd(lambda ws: ops.avgpool_forward(x, plain_pool_g, NUMBA, ws),
                           ops.avgpool_backward, dy_plain_pool),
        "dropout": fwd_bwd(lambda ws: ops.dropout_forward(x, u, 0.4, NUMBA, ws),
                           ops.dropout_backward, x),
        "lrn": fwd_bwd(lambda ws: ops.lrn_forward(x, 2, 1.0, 1e-3, 0.75, NUMBA, ws),
                       ops.lrn_backward, x),
        # dgamma and dbeta, (C,) each, are fresh copies by design (the shards' parts are
        # summed afterwards): only x-sized outputs are compared
        "batchnorm": lambda ws: _x_sized(fwd_bwd(
            lambda ws: ops.batchnorm_forward(x, gamma, beta, 1e-3, lambda a: a, NUMBA, ws),
            ops.batchnorm_backward, x, True)(ws)),
        "batchnorm_dense": lambda ws: _x_sized(fwd_bwd(
            lambda ws: ops.batchnorm_forward(d, units, units, 1e-3, lambda a: a, NUMBA, ws),
            ops.batchnorm_backward, d, True)(ws)),
        "batchnorm_inference": lambda ws: _x_sized(fwd_bwd(
            lambda ws: ops.batchnorm_inference_forward(x, gamma, beta, beta, gamma * gamma,
                                                       1e-3, NUMBA, ws),
            ops.batchnorm_inference_backward, x, True)(ws)),
    }


def _x_sized(arrays):
    return tuple(a for a in arrays if a is not None and a.ndim > 1)


def _as_tuple(result):
    return result if isinstance(result, tuple) else (result,)


def buffers(ws):
    for kept in ws._buffers.values():
        yield from kept
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
        assert peak < NO_ALLOCATION


def test_a_name_keeps_the_buffers_of_its_last_two_shapes():
    """A thread's plan runs shards of two sizes in any order: both stay; a third shape
    replaces the one used least recently."""
    ws = Workspace(np)
    a, b = ws.empty("x", (13, 4), np.float32), ws.empty("x", (12, 4), np.float32)
    assert ws.empty("x", (13, 4), np.float32) is a and ws.empty("x", (12, 4), np.float32) is b
    assert ws.empty("x", (13, 4), np.float32) is a          # a is now the latest
    c = ws.empty("x", (50, 4), np.float32)
    assert ws.empty("x", (13, 4), np.float32) is a          # b, the older, made room for c
    assert ws.empty("x", (50, 4), np.float32) is c
    assert ws.empty("x", (12, 4), np.float32) is not b
    assert ws.empty("x", (13, 4), np.float64).dtype == np.float64


# -- a plan's buffers on huge pages ----------------------------------------------------------
from minicnn.ops import workspace as workspace_module  # noqa: E402


def _address_range(a):
    return a.ctypes.data, a.ctypes.data + a.nbytes


def test_a_plans_large_buffers_are_aligned_disjoint_and_cut_from_2mib_chunks():
    ws = Workspace(np, huge_pages=True)
    assert ws.huge_pages and ws.part("conv").huge_pages
    shapes = [(300, 70), (17, 1024), (3, 5, 4099), (64, 1024), (5000, 111)]
    bufs = [ws.empty(f"b{i}", s, np.float32) for i, s in enumerate(shapes)]
    small = ws.empty("small", (100, 100), np.float32)        # 40 KB: NumPy's allocator
    assert small.flags.owndata and all(not b.flags.owndata for b in bufs)
    for i, b in enumerate(bufs):
        assert b.shape == shapes[i] and b.flags.writeable and b.ctypes.data % 64 == 0
        b[...] = i
    for i, b in enumerate(bufs):
        assert (b == i).all()                    # no buffer overlaps another
    ranges = sorted(_address_range(b) for b in bufs)
    assert all(end <= start for (_, end), (start, _) in zip(ranges, ranges[1:]))
    chunk = workspace_module._huge_chunk(3 << 20)
    assert chunk.ctypes.data % workspace_module.HUGE_PAGE == 0 and chunk.size == 4 << 20


def test_a_names_first_shapes_stay_on_the_pages_and_later_ones_do_not():
    """A name keeps the buffers of its first POOLED_SHAPES shapes for good, found again after
    other shapes; further shapes come from NumPy, so that the chunks cannot grow."""
    ws, pool = Workspace(np, huge_pages=True), workspace_module._POOL
    limit = workspace_module.POOLED_SHAPES
    first = [ws.empty("x", (n, 4096), np.float32) for n in range(13, 13 + limit)]
    later = [ws.empty("x", (n, 4096), np.float32) for n in (50, 51)]
    assert not any(b.flags.owndata for b in first) and all(b.flags.owndata for b in later)
    taken = pool.taken
    again = [ws.empty("x", (n, 4096), np.float32) for n in range(13, 13 + limit)]
    assert all(a is b for a, b in zip(first, again)) and pool.taken == taken
    assert ws.empty("x", (50, 4096), np.float32) is not later[0]      # NumPy's: not kept
    assert not Workspace(np).huge_pages


def test_a_plan_finds_its_training_buffers_on_the_pages_after_an_evaluation():
    """Training shards of 50 and a short 23, an evaluation of 250, training again: every large
    buffer of the training steps is still on the pages, and nothing more is cut."""
    import minicnn
    rng = np.random.default_rng(8)
    x, y = rng.random((250, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 250)
    model, opt, pool = minicnn.lab_model(8, backend="numba"), minicnn.SGD(0.1), \
        workspace_module._POOL
    for n in (50, 23, 50, 23):
        model.train_step(x[:n], y[:n], opt)
    model.evaluate(x, y)
    taken = pool.taken
    for n in (50, 23):
        model.train_step(x[:n], y[:n], opt)
    assert pool.taken == taken
    large = [b for s in model._plans[0].steps for b in buffers(s.ws)
             if b.nbytes >= workspace_module.POOLED_BYTES]
    assert large and not any(b.flags.owndata for b in large)


@pytest.mark.parametrize("name", sorted(op_cases(np.float32)))
def test_a_warm_plan_workspace_takes_nothing_from_the_pages(name):
    """tracemalloc does not see mmap'd chunks: the pool's own count must stay put."""
    call, ws, pool = op_cases(np.float32)[name], Workspace(np, huge_pages=True), \
        workspace_module._POOL
    call(ws)
    taken = pool.taken
    call(ws)
    assert pool.taken == taken


def test_two_threads_cutting_buffers_at_once_get_disjoint_ones():
    """Two threads' plans cut their first buffers at once.  (Under the GIL a take without the
    lock would rarely go wrong, so this checks the outcome, not the lock: that is there for
    Python without a GIL.)"""
    import sys
    import threading
    got, interval = [[], []], sys.getswitchinterval()

    def cut(k):          # many small takes, never touched (the chunks stay virtual)
        got[k] = [workspace_module._POOL.take(64 << 10) for _ in range(3000)]
    threads = [threading.Thread(target=cut, args=(k,)) for k in range(2)]
    sys.setswitchinterval(1e-6)         # switch threads as often as possible
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    ranges = sorted(_address_range(b) for b in got[0] + got[1])
    assert len(ranges) == 6000
    assert all(end <= start for (_, end), (start, _) in zip(ranges, ranges[1:]))


@pytest.mark.parametrize("threads", [1, 2])
def test_huge_page_buffers_train_to_the_same_bits(monkeypatch, threads):
    """The buffers' addresses and alignment change nothing a kernel computes."""
    import minicnn
    rng = np.random.default_rng(5)
    x = rng.random((40, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    params = []
    for pool in (workspace_module._POOL, None):
        monkeypatch.setattr(workspace_module, "_POOL", pool)
        model = minicnn.lab_model(8, backend="numba", threads=threads)
        assert model._plans[0].steps[1].ws.huge_pages == (pool is not None)
        opt = minicnn.SGD(0.1)
        for _ in range(3):
            model.train_step(x, y, opt)
        params.append(model.flat_params.copy())
    np.testing.assert_array_equal(params[0], params[1], strict=True)
