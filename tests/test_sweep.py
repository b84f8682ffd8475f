"""Sweeps (python -m minicnn.sweep and minicnn/sweeps/) on Dask distributed: the same numbers
as a sequential run, resuming, a killed worker's trial retried, a trial's warm-up, and
one-line errors."""
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from minicnn import sweep
from minicnn.sweeps import trial as trial_module
from minicnn.sweeps.cluster import Cluster
from minicnn.sweeps.points import Points, run_points
from minicnn.sweeps.trial import run_trial, trial

from conftest import REAL_ROOT, assert_one_line_error, gpu_params, needs_mnist, run_module

TIMING = ("seconds", "elapsed", "train_seconds")


def run_cli(*args, timeout=300, data=True):
    return run_module("minicnn.sweep", *args, timeout=timeout, data=data)


def numbers(result):
    """Everything a trial computed, without its clock readings and placement, as a flat dict."""
    flat = {f"epoch {e['epoch']} {k}": v for e in result["epochs"] for k, v in e.items()
            if k not in TIMING}
    flat.update({k: result.get(k) for k in ("diverged", "parameters", "test_loss",
                                            "test_accuracy")})
    return flat


def assert_same_numbers(found, expected, label):
    """Equal up to float32 rounding of sums.  A Numba kernel freshly compiled in this process
    and the same kernel loaded from the on-disk cache by a worker may vectorise a reduction
    (``reassoc``) in a different order: on a cold cache the losses then differ in the 9th
    digit (seen in CI), so exact equality would test the compiler, not the sweep."""
    assert found.keys() == expected.keys(), label
    for key, value in expected.items():
        if isinstance(value, float):
            assert found[key] == pytest.approx(value, rel=1e-6, abs=0), f"{label}: {key}"
        else:
            assert found[key] == value, f"{label}: {key}"


def points(folder):
    return {p.stem: json.loads(p.read_text())["result"] for p in (folder / "points").glob("*.json")}


@needs_mnist
def test_two_workers_give_the_sequential_numbers_and_a_rerun_skips(tmp_path, monkeypatch):
    grid = ["--lr", "0.1,0.03", "--filters", "2", "--seeds", "0,1", "--epochs", "2",
            "--train-limit", "100", "--batch-size", "30", "--backend", "numba", "--workers", "2",
            "--out", str(tmp_path)]
    result = run_cli(*grid)
    assert result.returncode == 0, result.stderr
    assert "2 CPU worker(s)" in result.stdout and "[4/4]" in result.stdout
    assert "ETA" in result.stdout and "all done" in result.stdout
    found = points(tmp_path)
    assert len(found) == 4
    assert len({r["placement"]["worker"] for r in found.values()}) == 2     # both were used
    # the sequential run: each trial in this process, one after the other
    monkeypatch.setenv("MINICNN_DATA", REAL_ROOT)
    for key, spec, label in grid_trials(grid):
        assert_same_numbers(numbers(found[key]), numbers(run_trial(spec)), label)
    rows = (tmp_path / "sweep.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("lr,filters,batch_size,seed,backend")
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "points").iterdir()}
    again = run_cli(*grid)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("reusing the finished point") == 4
    assert "trial(s) to run" not in again.stdout                  # no cluster was started
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "points").iterdir()} == stamps


def grid_trials(argv):
    """The sweep's (key, trial, label) for a command line."""
    args = sweep.parse_args(argv)
    args.backends = args.backend
    return list(sweep._grid(args))


@needs_mnist
def test_a_killed_worker_loses_only_its_trial_which_is_retried(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", REAL_ROOT)
    tasks = [(f"s{seed}", trial(0.1, 4, 50, seed, "numba", epochs=2, train_limit=1500,
                                      test=False), f"seed {seed}") for seed in range(4)]
    store = Points(tmp_path, {"test": 1})
    cluster = Cluster(workers=2, threads=1)
    try:
        pids = cluster.client.run(os.getpid)                     # worker address -> pid
        done = {}
        runner = threading.Thread(target=lambda: done.update(
            run_points(cluster, store, tasks)), daemon=True)
        runner.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:                       # both workers busy
            busy = [a for a, keys in cluster.client.processing().items() if keys]
            if len(busy) == 2:
                break
            time.sleep(0.05)
        killed = {k.split("-")[1] for k in cluster.client.processing()[busy[0]]}
        victim = pids[busy[0]]
        os.kill(victim, signal.SIGKILL)
        runner.join(timeout=120)
        assert not runner.is_alive()
    finally:
        cluster.close()
    assert sorted(done) == ["s0", "s1", "s2", "s3"]
    assert sorted(p.stem for p in (tmp_path / "points").glob("*.json")) == sorted(done)
    assert killed and all(done[k]["placement"]["pid"] != victim for k in killed)


def test_an_unreachable_scheduler_fails_fast_in_one_line():
    with socket.socket() as s:                       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("--scheduler", f"tcp://127.0.0.1:{port}", "--epochs", "1", timeout=60,
                     data=False)
    assert_one_line_error(result, "cannot reach the Dask scheduler")


@pytest.mark.parametrize("args,match", [
    (["--seeds", "0,-1"], "is not a comma-separated list of seeds"),
    (["--lr", "0"], "every value must be positive"),
    (["--backend", "tpu"], "unknown backend 'tpu'"),
])
def test_bad_flags_are_one_line(args, match):
    assert_one_line_error(run_cli(*args, timeout=60, data=False), re.escape(match))


@needs_mnist
@pytest.mark.parametrize("backend", gpu_params("cupy"))
def test_gpu_sweep_one_gpu_per_worker(tmp_path, backend):
    result = run_cli("--backend", backend, "--lr", "0.1,0.01", "--filters", "4", "--epochs", "1",
                     "--train-limit", "200", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "GPU worker(s), one GPU each" in result.stdout
    assert all(r["placement"]["worker"].startswith("gpu-") for r in points(tmp_path).values())


def test_a_trial_warms_up_before_its_clock_starts(tmp_path, monkeypatch):
    """The first point a process times must not carry the one-time costs (compilation,
    start-up): the trial runs a throwaway warm-up first."""
    from conftest import fake_mnist
    from minicnn.nn import fit as fit_module
    fake_mnist(tmp_path, n_train=5100, n_test=10, monkeypatch=monkeypatch)
    calls = []
    real_warm, real_fit = trial_module._warm_up, fit_module.fit
    monkeypatch.setattr(trial_module, "_warm_up", lambda *a: calls.append("warm") or real_warm(*a))
    monkeypatch.setattr(fit_module, "fit", lambda *a, **k: calls.append("fit") or real_fit(*a, **k))
    trial_module._dataset.cache_clear()
    spec = trial(filters=4, epochs=1, batch_size=20, backend="numpy", data_dir=str(tmp_path),
                       train_limit=60,
                       test=False)
    run_trial(spec)
    trial_module._dataset.cache_clear()
    assert calls == ["warm", "fit"]


def test_every_point_of_the_grid_has_its_own_key_and_its_own_settings():
    """A sweep over seeds (and every other axis) makes one trial per point, each under a key
    of its own carrying that point's values: were two seeds to share a key, the points store
    would report one run for both."""
    points = grid_trials(["--lr", "0.1,0.01", "--filters", "4,8", "--batch-size", "20,50",
                          "--seeds", "0,1,2", "--backend", "numpy,numba"])
    assert len(points) == 2 * 2 * 2 * 3 * 2
    assert len({key for key, _, _ in points}) == len(points)
    for key, spec, label in points:
        values = (spec["lr"], spec["filters"], spec["batch_size"], spec["seed"],
                  spec["backend"])
        assert key == "lr{:g}_f{}_b{}_s{}_{}".format(*values)
        assert label == "lr {:g} filters {} batch {} seed {} {}".format(*values)
    assert {spec["seed"] for _, spec, _ in points} == {0, 1, 2}
