"""The benchmark scripts (benchmarks/) run end to end on a tiny subset and write consistent
files; a bad flag is one line."""
import csv
import json
import os
import re
from pathlib import Path

import pytest

import minicnn
from minicnn.sweeps import trial as trial_module
from minicnn.sweeps.trial import run_trial

from conftest import assert_one_line_error, fake_mnist, needs_mnist, run_python

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
PNG = b"\x89PNG\r\n\x1a\n"


def run(script, *args, data=True):
    return run_python(BENCH / script, *args, data=data, timeout=900)


def read_csv(path):
    return list(csv.DictReader(path.read_text().splitlines()))


@needs_mnist
def test_learning_rate_study(tmp_path):
    args = ("--rates", "0.1,0.01", "--epochs", "1", "--train-limit", "300", "--backend", "numba",
            "--out", str(tmp_path))
    result = run("learning_rate.py", *args)
    assert result.returncode == 0, result.stderr
    assert "best learning rate" in result.stdout
    rows = read_csv(tmp_path / "learning_curves.csv")
    data = json.loads((tmp_path / "learning_rate.json").read_text())
    assert [float(r["lr"]) for r in rows] == [0.1, 0.01]
    # each curve is its own rate's: the trials ran with it, and the rates learn differently
    assert [res["lr"] for res in data["results"]] == [0.1, 0.01]
    trials = {json.loads((tmp_path / "trials" / f"lr_{lr:g}" / "metrics.json").read_text())[
        "config"]["lr"]: lr for lr in (0.1, 0.01)}
    assert trials == {0.1: 0.1, 0.01: 0.01}
    for res in data["results"]:
        kept = json.loads((tmp_path / "trials" / f"lr_{res['lr']:g}" / "metrics.json").read_text())
        assert [e["val_loss"] for e in kept["epochs"]] == [e["val_loss"] for e in res["epochs"]]
    assert data["results"][0]["epochs"][-1]["val_loss"] != data["results"][1]["epochs"][-1][
        "val_loss"]
    for row, res in zip(rows, data["results"]):
        assert float(row["val_accuracy"]) == pytest.approx(res["epochs"][-1]["val_accuracy"])
        assert float(row["val_error"]) == pytest.approx(1 - float(row["val_accuracy"]))
        assert 0 < res["test_accuracy"] <= 1
    assert (tmp_path / "learning_curves.png").read_bytes()[:8] == PNG
    # the rates ran as Dask trials, packed one per core, and say where
    assert "[2/2]" in result.stdout and "one trial at a time each" in result.stdout
    assert all(len(res["placement"]["cores"]) >= 1 for res in data["results"])
    again = run("learning_rate.py", *args)     # a re-run reuses the finished points
    assert again.returncode == 0 and again.stdout.count("reusing the finished run") == 2



class InProcessCluster:
    """A stand-in for the Dask cluster: runs each trial here, one after the other."""
    describe = "in this process"

    def __init__(self, *args, **kwargs):
        pass

    def run(self, tasks, on_result, total=None, done=0):
        for key, spec, _ in tasks:
            on_result(key, run_trial(spec))

    def close(self):
        pass


def test_learning_rate_study_pairs_each_curve_with_its_own_rate(tmp_path, monkeypatch, capsys):
    """Without MNIST: fake images and the trials run in this process.  Each rate's curve
    in the table, the CSV and the JSON must be the one its own trial trained."""
    import importlib
    monkeypatch.syspath_prepend(str(BENCH))
    study = importlib.import_module("learning_rate")
    fake_mnist(tmp_path / "data", n_train=5120, n_test=10, monkeypatch=monkeypatch)
    monkeypatch.setattr(study, "Cluster", InProcessCluster)
    trial_module._dataset.cache_clear()
    out = tmp_path / "study"
    rates = [0.5, 0.05, 0.005]
    assert study.main(["--rates", ",".join(map(str, rates)), "--epochs", "2", "--filters", "2",
                       "--backend", "numpy", "--data-dir", str(tmp_path / "data"),
                       "--out", str(out)]) == 0
    trial_module._dataset.cache_clear()
    data = json.loads((out / "learning_rate.json").read_text())
    rows = read_csv(out / "learning_curves.csv")
    assert [res["lr"] for res in data["results"]] == rates
    for res in data["results"]:
        kept = json.loads((out / "trials" / f"lr_{res['lr']:g}" / "metrics.json").read_text())
        assert kept["config"]["lr"] == res["lr"]
        assert [e["val_loss"] for e in kept["epochs"]] == [e["val_loss"] for e in res["epochs"]]
        assert [float(r["val_loss"]) for r in rows if float(r["lr"]) == res["lr"]] == \
            pytest.approx([e["val_loss"] for e in res["epochs"]])
    curves = [tuple(e["val_loss"] for e in res["epochs"]) for res in data["results"]]
    assert len(set(curves)) == len(rates)       # the rates learn differently


@needs_mnist
def test_runtime_study_cpu_only(tmp_path):
    result = run("runtime.py", "--devices", "cpu", "--cpu-filters", "4,8", "--epochs", "1",
                 "--train-limit", "300", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "runtime.csv")
    data = json.loads((tmp_path / "runtime.json").read_text())
    assert [int(r["filters"]) for r in rows] == [4, 8]
    assert [int(r["parameters"]) for r in rows] == [26_694, 52_258]
    for row, res in zip(rows, data["rows"]):
        assert float(row["seconds"]) == pytest.approx(res["seconds"]) and res["seconds"] > 0
        assert float(row["images_per_second"]) == pytest.approx(300 / res["seconds"])
    assert (tmp_path / "runtime.png").read_bytes()[:8] == PNG
    # timing trials own all the cores of their worker: on the default local cluster,
    # one at a time, and each point records where it ran
    assert "so no two share a core: one at a time" in result.stdout
    assert [r["placement"]["cores"] for r in data["rows"]] == [sorted(os.sched_getaffinity(0))] * 2


@needs_mnist
def test_runtime_study_says_why_the_gpu_series_is_missing(tmp_path):
    result = run("runtime.py", "--devices", "cpu,gpu", "--gpu-backend", "cupy", "--cpu-filters",
                 "4", "--gpu-filters", "4", "--epochs", "1", "--train-limit", "100",
                 "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    from minicnn.backend import backend_class
    if not backend_class("cupy").is_available():
        assert "GPU series (minicnn-cupy) skipped" in result.stdout


@pytest.mark.parametrize("script,args,match", [
    ("learning_rate.py", ["--rates", "0.1,-1"], "every value must be positive"),
    ("learning_rate.py", ["--epochs", "0"], "must be a positive int"),
    ("runtime.py", ["--cpu-filters", "a,b"], "is not a comma-separated list"),
    ("runtime.py", ["--devices", "tpu"], "--devices: use cpu, gpu"),
    ("epoch.py", ["--repeats", "0"], "must be a positive int"),
    ("epoch.py", ["--shards-per-thread", "1,0"],
     "--shards-per-thread: '1,0': every value must be positive"),
    ("epoch.py", ["--frameworks", "mxnet"],
     "--frameworks: use pytorch, pytorch-compile, tensorflow, jax"),
])
def test_bad_flags_are_one_line(script, args, match):
    assert_one_line_error(run(script, *args, data=False), re.escape(match))


def test_epoch_benchmark_runs(tmp_path):
    result = run("epoch.py", "--images", "200", "--repeats", "2", "--frameworks", "",
                 "--backends", "numpy,numba", "--threads", "1,2", "--breakdown-steps", "2",
                 "--no-subprocess", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "epoch.json").read_text())
    assert [(r["contender"], r["threads"]) for r in data["epochs"]] == [
        ("minicnn-numpy", 1), ("minicnn-numpy", 2), ("minicnn-numba", 1), ("minicnn-numba", 2)]
    assert all(len(r["runs"]) == 2 and r["min_s"] <= r["median_s"] <= r["max_s"]
               for r in data["epochs"])
    found = data["breakdown"]["numba"]
    parts = found["parts"]
    assert sum(p["share"] for p in parts) == pytest.approx(1.0)
    steps = [step.name for step in minicnn.lab_model(16, backend="numba").plan]
    assert [p["part"].split(" [")[0].rsplit(" ", 1)[0] for p in parts[:len(steps)]] == steps
    assert "conv2d+relu+maxpool2d [" in result.stdout
    # the steps that multiply report their rate, beside the GEMM peak the benchmark measured;
    # every step of the plan its bytes and GB/s, beside the copy peak
    assert found["gemm_peak_gflops"] > 0 and found["copy_peak_gbs"] > 0
    rated = {p["part"] for p in parts if p.get("gflops", 0) > 0}
    assert {p["part"] for p in parts if p["part"].startswith(("conv2d", "dense"))} == rated
    moving = {p["part"] for p in parts if p.get("gbs", 0) > 0 and p["mbytes"] > 0}
    assert moving == {p["part"] for p in parts if p["part"].endswith(("forward", "backward"))}
    assert "GFLOP/s" in result.stdout and "GB/s" in result.stdout


def test_touched_bytes_count_each_array_once(monkeypatch):
    """A step's cache often holds its input again: the same memory is counted once."""
    import numpy as np
    monkeypatch.syspath_prepend(str(BENCH))
    from minicnn_contender import touched_bytes
    a, b = np.zeros(100, np.float32), np.zeros((3, 5), np.float64)
    assert touched_bytes(a, (a, [b, {"again": b}]), 7, None) == 400 + 120
    assert touched_bytes(a[:10], a) == 40 + 400          # a view is its own traffic
    assert touched_bytes() == 0


def test_epoch_benchmark_times_more_shards_beside_a_busy_neighbour(tmp_path):
    result = run("epoch.py", "--images", "100", "--repeats", "1", "--frameworks", "",
                 "--backends", "numba", "--threads", "2", "--shards-per-thread", "1,3",
                 "--neighbour", "--breakdown-steps", "0", "--no-subprocess", "--out",
                 str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "epoch.json").read_text())
    assert [r["contender"] for r in data["epochs"]] == ["minicnn-numba", "minicnn-numba x3 shards"]
    assert data["config"]["neighbour"] is True
    assert re.search(r"a busy process shares core \d+ during the timed epochs", result.stdout)


def test_two_cores_benchmark_sets_the_model_beside_two_processes(tmp_path):
    result = run("two_cores.py", "--steps", "3", "--repeats", "2", "--batch-size", "10",
                 "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "two_cores.json").read_text())
    (found,) = data["results"]
    rows = found["rows"]
    assert list(rows) == ["1 thread, batch B", "1 thread, batch B/2", "model, 2 threads",
                          "2 models, 2 threads", "2 processes"]
    for name, row in rows.items():
        assert len(row["runs_ms"]) == 2 and row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert row["min_ms"] > 0
        # the speed-ups are over one thread on the whole batch, for the two-core rows only
        if name.startswith(("model", "2 ")):
            assert row["speedup"] == pytest.approx(
                rows["1 thread, batch B"]["median_ms"] / row["median_ms"])
        else:
            assert "speedup" not in row
    timeline = found["timeline_ms"]
    if timeline:        # empty where one thread took both shards in all but one step
        assert timeline["step"] >= timeline["a shard (caller's thread)"] > 0
    assert "2 processes" in result.stdout and "BLAS core type" in result.stdout
    assert data["blas"]["blas"] == 1         # recorded as the trainers ran: one thread a call


def test_two_cores_timeline_reads_the_steps_marks(monkeypatch):
    """Made-up timestamps (ms) of four steps; in the second, one thread ran both shards: it
    is left out, and so are the gaps beside it."""
    monkeypatch.syspath_prepend(str(BENCH))
    from two_cores import step_timeline
    caller, worker = 1, 2

    def step(t0, both_on_caller=False):
        second = caller if both_on_caller else worker
        return [("step in", caller, t0), ("map in", caller, t0 + 1),
                ("shard in", caller, t0 + 2), ("shard in", second, t0 + 3),
                ("shard out", second, t0 + 9), ("shard out", caller, t0 + 10),
                ("map out", caller, t0 + 12), ("step out", caller, t0 + 15)]
    marks = [(name, thread, t / 1e3) for name, thread, t in
             step(0) + step(20, both_on_caller=True) + step(40) + step(57)]
    found = step_timeline(marks, caller)
    assert found == pytest.approx({
        "before the shards (checks, cutting, waking the worker)": 2,
        "the worker's shard starts after the caller's": 1,
        "a shard (caller's thread)": 8, "a shard (worker's thread)": 6,
        "the later shard's end to the shards' results": 2, "gradient sum and update": 3,
        "step": 15, "between steps (the next batch, the loss check)": 2})
    assert step_timeline(marks[:16], caller) == {}    # one usable step: no medians


def test_two_cores_benchmark_wants_an_even_batch():
    assert_one_line_error(run("two_cores.py", "--batch-size", "5", data=False),
                          re.escape("--batch-size must be even (two halves), got 5"))


def test_step_flops_count_the_lab_models_multiply_adds(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    from minicnn_contender import step_flops
    plan = minicnn.lab_model(16, backend="numpy").plan
    conv1, conv2, dense = plan[0], plan[1], plan[3]
    assert step_flops(conv1, 50, first=True) == (2 * 50 * 16 * 9 * 28 * 28,) * 2  # no dx
    assert step_flops(conv2, 50, first=False) == (2 * 50 * 16 * 16 * 9 * 14 * 14,
                                                  2 * 2 * 50 * 16 * 16 * 9 * 14 * 14)
    assert step_flops(dense, 50, first=False) == (2 * 50 * 784 * 128, 4 * 50 * 784 * 128)
    assert step_flops(plan[2], 50, first=False) == (0, 0)                         # flatten


def test_epoch_benchmark_measures_compile_time_and_peak_memory(tmp_path):
    result = run("epoch.py", "--images", "100", "--repeats", "1", "--frameworks", "",
                 "--backends", "numba", "--threads", "1", "--breakdown-steps", "0",
                 "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    costs = json.loads((tmp_path / "epoch.json").read_text())["one_time"]["numba"]
    # the child's own peak (VmHWM), not this test process's, which Linux would hand down
    assert 20 < costs["peak_rss_mib"] < 1024
    # empty caches: the first step compiles the Numba kernels, the second runs them
    assert costs["first_step_s"] > 5 * costs["second_step_s"] and costs["compile_s"] > 0.1


@pytest.mark.parametrize("r", [3, 5])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("size", [(14, 14), (7, 9), (5, 6)])
def test_winograd_transforms_are_exact_in_float64(monkeypatch, m, size, r):
    """The study's F(2x2) and F(4x4) matrices compute the convolution (tiles at odd edges
    included): their float32 error is rounding, not a wrong matrix."""
    import numpy as np
    monkeypatch.syspath_prepend(str(BENCH))
    import winograd_error as study
    rng = np.random.default_rng(m)
    x, w = rng.standard_normal((2, 3, *size)), rng.standard_normal((4, 3, r, r))
    exact = study.direct_conv(x, w, np.float64)
    assert np.abs(study.winograd_conv(x, w, m, np.float64) - exact).max() < 1e-12 * np.abs(
        exact).max()
    # the naive sum, loop by loop, for the direct convolution itself
    padded = np.pad(x, ((0, 0), (0, 0), (r // 2, r // 2), (r // 2, r // 2)))
    naive = np.zeros_like(exact)
    for i in range(r):
        for j in range(r):
            naive += np.einsum("fc,nchw->nfhw", w[:, :, i, j],
                               padded[:, :, i:i + size[0], j:j + size[1]])
    np.testing.assert_allclose(exact, naive, rtol=1e-12, atol=1e-12)


def test_winograd_error_study_runs(tmp_path):
    result = run("winograd_error.py", "--filters", "3", "--batch-size", "2", "--size", "6",
                 "--out", str(tmp_path), data=False)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "winograd_error.json").read_text())["results"]
    assert [r["algorithm"] for r in rows] == ["minicnn winograd F(2x2,3x3), numba",
                                              "F(2x2,3x3), NumPy", "F(4x4,3x3), NumPy",
                                              "direct (im2col), NumPy"]
    assert all(0 < r["rms_rel"] < 1e-4 and 0 < r["max_rel"] < 1e-4 for r in rows)  # rounding
    assert "max err / max |y|" in result.stdout
    result = run("winograd_error.py", "--kernel", "5", "--filters", "3", "--batch-size", "2",
                 "--size", "7", "--out", str(tmp_path), data=False)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "winograd_error.json").read_text())["results"]
    assert [r["algorithm"] for r in rows] == ["minicnn winograd F(4x4,5x5), numba",
                                              "F(2x2,5x5), NumPy", "F(4x4,5x5), NumPy",
                                              "direct (im2col), NumPy"]
    assert all(0 < r["rms_rel"] < 1e-4 and 0 < r["max_rel"] < 1e-4 for r in rows)
    assert "5x5 'same'" in result.stdout
