"""Shards of a batch on threads (parallel/shards.py): a free thread takes the next shard, the
numbers depend on the shard count and never on which thread ran which shard, and counts
that cannot work are refused in words."""
import threading

import numpy as np
import pytest

import minicnn
from minicnn import SGD
from minicnn.nn.regularization import BatchNorm
from minicnn.parallel.shards import ThreadShards, shard_bounds, shard_count

from conftest import NO_ALLOCATION, traced_peak


def test_a_free_thread_takes_the_shards_a_busy_one_cannot():
    """Shard 0 blocks its thread until every other shard is done: only a runner whose free
    thread takes the next shard finishes (a fixed half per thread would wait forever)."""
    others_done, ran_on, finished, lock = threading.Event(), {}, [], threading.Lock()
    calls = [(i,) for i in range(6)]

    def run(thread, i):
        ran_on[i] = thread
        if i == 0:
            assert others_done.wait(timeout=30), "the other thread did not take shards 1-5"
        else:
            with lock:
                finished.append(i)
                if len(finished) == 5:
                    others_done.set()
        return i * i

    runner = ThreadShards(2)
    results = runner.map(run, calls)
    assert results == [i * i for i in range(6)]                 # in call order
    assert set(ran_on.values()) == {0, 1}
    assert sum(thread == ran_on[0] for thread in ran_on.values()) == 1


def test_no_shard_starts_after_one_failed():
    started = []

    def run(thread, i):
        started.append(i)
        if i == 0:
            raise RuntimeError("shard 0 broke")
        return i

    with pytest.raises(RuntimeError, match="shard 0 broke"):
        ThreadShards(1).map(run, [(i,) for i in range(5)])
    assert started == [0]


def test_a_failed_shard_releases_the_others_and_its_own_error_is_raised():
    """Shard 1 waits at a barrier for shard 0, which fails: on_error breaks the barrier, and
    the failure reported is shard 0's, not the broken barrier's."""
    barrier, released = threading.Barrier(2), []

    def run(thread, i):
        if i == 0:
            raise RuntimeError("shard 0 broke")
        barrier.wait(timeout=30)

    def on_error():
        released.append(True)
        barrier.abort()

    with pytest.raises(RuntimeError, match="shard 0 broke"):
        ThreadShards(2).map(run, [(0,), (1,)], on_error=on_error)
    assert released


def test_batch_norm_on_two_threads_trains_as_one_and_keeps_one_running_average():
    rng = np.random.default_rng(4)
    models = [minicnn.Sequential([minicnn.Conv2D(3, 3), BatchNorm(), minicnn.ReLU(),
                                  minicnn.Flatten(), minicnn.Dense(10)], (1, 8, 8),
                                 backend="numba", threads=t) for t in (1, 2)]
    opts = [SGD(0.1) for _ in models]
    for _ in range(3):
        x, y = rng.random((9, 1, 8, 8), dtype=np.float32), rng.integers(0, 10, 9)
        losses = [m.train_step(x, y, o)[0] for m, o in zip(models, opts)]
        assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    one, two = models
    np.testing.assert_allclose(two.flat_params, one.flat_params, rtol=1e-5, atol=1e-6)
    # the running statistics took each step once (twice would move them further from 0/1)
    np.testing.assert_allclose(two.flat_state, one.flat_state, rtol=1e-5, atol=1e-6)


def test_every_shard_runs_once_on_a_thread_of_the_runner():
    seen = []
    runner = ThreadShards(3)
    out = runner.map(lambda thread, i: seen.append((i, thread)) or i, [(i,) for i in range(20)])
    assert out == list(range(20))
    assert sorted(i for i, _ in seen) == list(range(20))
    assert {thread for _, thread in seen} <= {0, 1, 2}


@pytest.mark.parametrize("threads,shards,synchronised,message", [
    (2, 1, False, "1 shards leave some of the 2 threads idle; use at least 2 shards"),
    (2, 4, True, "a model with batch norm needs one shard per thread, 2, got 4"),
])
def test_counts_that_cannot_work_are_refused_in_words(threads, shards, synchronised, message):
    with pytest.raises(ValueError, match=message):
        shard_count(threads, shards, synchronised)


def test_the_default_is_one_shard_per_thread():
    assert shard_count(3, None) == 3
    assert shard_count(2, 5) == 5
    assert shard_count(2, 2, synchronised=True) == 2
    assert [b - a for a, b in shard_bounds(50, 4)] == [13, 13, 12, 12]


def test_sequential_names_the_bad_shard_count():
    with pytest.raises(ValueError, match="Sequential: 1 shards leave"):
        minicnn.lab_model(4, threads=2, shards=1)
    with pytest.raises(TypeError, match="Sequential: shards must be a positive int"):
        minicnn.lab_model(4, shards="4")
    with pytest.raises(ValueError, match="Sequential: a model with batch norm"):
        minicnn.Sequential([minicnn.Conv2D(4, 3), BatchNorm(), minicnn.Flatten(),
                            minicnn.Dense(10)], (1, 8, 8), threads=2, shards=4)


def _trained(threads, shards, steps=4, backend="numba"):
    rng = np.random.default_rng(3)
    model = minicnn.lab_model(6, backend=backend, threads=threads, shards=shards)
    opt = SGD(0.1, momentum=0.9)
    losses = []
    for _ in range(steps):
        x = rng.random((23, 1, 28, 28), dtype=np.float32)     # 23: shards of unequal size
        losses.append(model.train_step(x, rng.integers(0, 10, 23), opt))
    return model, losses


@pytest.mark.parametrize("shards", [2, 4])
def test_the_numbers_depend_on_the_shard_count_not_on_the_threads(shards):
    one, one_losses = _trained(1, shards)
    two, two_losses = _trained(2, shards)
    assert one_losses == two_losses
    assert np.array_equal(one.flat_params, two.flat_params)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_more_shards_than_threads_train_as_one_batch(backend):
    whole, whole_losses = _trained(1, None, backend=backend)
    sharded, sharded_losses = _trained(2, 5, backend=backend)
    assert [c for _, c in sharded_losses] == [c for _, c in whole_losses]
    assert [l for l, _ in sharded_losses] == pytest.approx([l for l, _ in whole_losses], rel=1e-6)
    scale = np.max(np.abs(whole.flat_params))
    assert np.max(np.abs(sharded.flat_params - whole.flat_params)) <= 1e-6 * scale


@pytest.mark.parametrize("threads", [1, 2])
def test_shards_of_two_sizes_in_any_order_allocate_nothing_once_warm(threads):
    """50 images in 4 shards are 13, 13, 12, 12, taken by whichever thread is free (one
    thread takes them in turn): each thread's buffers keep both sizes."""
    rng = np.random.default_rng(0)
    model = minicnn.lab_model(4, backend="numba", threads=threads, shards=4)
    x, y = rng.random((50, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 50)
    opt = SGD(0.01)
    for _ in range(6):
        model.train_step(x, y, opt)
    peak, _ = traced_peak(lambda: [model.train_step(x, y, opt) for _ in range(4)])
    assert peak < NO_ALLOCATION


def test_evaluate_and_predict_are_the_same_with_any_shard_count():
    rng = np.random.default_rng(5)
    x, y = rng.random((37, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 37)
    models = [minicnn.lab_model(4, backend="numba", threads=t, shards=s)
              for t, s in ((1, 1), (2, 2), (2, 7))]
    assert len({m.evaluate(x, y, batch_size=20)[1] for m in models}) == 1
    losses = [m.evaluate(x, y, batch_size=20)[0] for m in models]
    assert losses == pytest.approx([losses[0]] * 3, rel=1e-6)
    assert all(np.array_equal(m.predict(x), models[0].predict(x)) for m in models)
