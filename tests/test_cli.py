"""python -m minicnn.train and python -m minicnn.evaluate, end to end."""
import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import REAL_ROOT, needs_mnist


def run(module, *args, data=True):
    env = dict(os.environ)
    if data and REAL_ROOT:
        env["MINICNN_DATA"] = REAL_ROOT
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=env, timeout=600)


@needs_mnist
def test_train_on_a_subset_writes_outputs_and_learns(tmp_path):
    out = tmp_path / "run"
    # batch 10: 200 steps, enough for one epoch of 2,000 images to pass 80% (batch 50: ~63%)
    result = run("minicnn.train", "--train-limit", "2000", "--epochs", "1", "--out", str(out),
                 "--batch-size", "10", "--backend", "numba")
    assert result.returncode == 0, result.stderr
    assert "epoch  1/1" in result.stdout and "test error" in result.stdout
    assert "parameters       104,250" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["completed"] and metrics["parameters"] == 104_250
    assert metrics["epochs"][0]["val_accuracy"] > 0.80
    assert 0 < metrics["test_error"] < 0.2 and metrics["runtime_seconds"] > 0
    assert metrics["config"]["train_limit"] == 2000 and metrics["system"]["numpy"]
    rows = list(csv.DictReader((out / "metrics.csv").read_text().splitlines()))
    assert len(rows) == 1 and float(rows[0]["val_accuracy"]) == pytest.approx(
        metrics["epochs"][0]["val_accuracy"])
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*part"))

    evaluated = run("minicnn.evaluate", str(out / "model.npz"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test error {100 * metrics['test_error']:.2f}%" in evaluated.stdout


@needs_mnist
def test_custom_arch_trains(tmp_path):
    result = run("minicnn.train", "--train-limit", "300", "--epochs", "1", "--quiet",
                 "--arch", "conv:4:4:stride=2,relu,pool:2,dense:10", "--backend", "numpy")
    assert result.returncode == 0, result.stderr
    assert "val accuracy" in result.stdout


@needs_mnist
def test_non_finite_loss_stops_with_advice():
    result = run("minicnn.train", "--train-limit", "500", "--epochs", "1", "--quiet",
                 "--lr", "1e6", "--backend", "numpy")
    assert result.returncode == 1
    assert "try --lr" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args,match", [
    (["--epochs", "0"], "--epochs: must be a positive int, got 0"),
    (["--batch-size", "-5"], "--batch-size: must be a positive int, got -5"),
    (["--threads", "two"], "--threads: 'two' is not an integer"),
    (["--conv-algo", "fft"], "--conv-algo: invalid choice: 'fft'"),
    (["--lr", "0"], "--lr: must be a positive finite number"),
    (["--lr", "nan"], "--lr: must be a positive finite number"),
    (["--backend", "tpu"], "--backend: unknown backend 'tpu'; choose from auto, numpy"),
    (["--dataset", "cifar"], "--dataset: invalid choice: 'cifar'"),
    (["--arch", "conv:3:3,bogus"], "unknown layer 'bogus'"),
    (["--arch", "conv:3:40"], "window 40 is larger than the padded input 28"),
    (["--arch", "conv:3:3,dense:7"], "must end in 10 outputs"),
])
def test_bad_flags_one_line_exit_2(args, match):
    result = run("minicnn.train", *args)
    assert result.returncode == 2
    assert match in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unreadable_data_one_line_exit_2(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "mnist" / name).write_bytes(b"\0\0\x08\x01\0\0\0\0")
    result = run("minicnn.train", "--data-dir", str(tmp_path), "--backend", "numpy")
    assert result.returncode == 2 and "cannot read mnist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_evaluate_rejects_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_text("nope")
    result = run("minicnn.evaluate", str(bad), "--backend", "numpy")
    assert result.returncode == 2 and "not a minicnn model file" in result.stderr


@needs_mnist
def test_cudasim_backend_trains_from_the_cli():
    result = run("minicnn.train", "--backend", "cudasim", "--train-limit", "500", "--epochs", "1",
                 "--quiet")
    assert result.returncode == 0, result.stderr
    assert "backend          cudasim" in result.stdout


def test_unavailable_gpu_backend_is_one_line_and_auto_falls_back():
    from minicnn.backend import backend_class, get_backend
    if backend_class("cupy").is_available():
        pytest.skip("a GPU is visible here; the fallback cannot be observed")
    result = run("minicnn.train", "--backend", "cupy", data=False)
    assert result.returncode == 2 and "backend 'cupy' is not available" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    from minicnn.backend import AUTO_ORDER
    first_available = next(n for n in AUTO_ORDER if backend_class(n).is_available())
    assert get_backend("auto").name == first_available != "cupy"


def test_a_run_without_out_saves_its_results_in_a_fresh_numbered_folder(tmp_path, monkeypatch,
                                                                        capsys):
    """The main job saves its learning curve even when given no --out: runs/train-001, then
    train-002 (never over an earlier run's results), named in the summary."""
    from conftest import fake_mnist
    from minicnn import train
    fake_mnist(tmp_path / "data", n_train=5_030, n_test=10, monkeypatch=monkeypatch)  # 5,000 val
    runs = tmp_path / "runs"
    monkeypatch.setenv("MINICNN_RUNS", str(runs))
    argv = ["--data-dir", str(tmp_path / "data"), "--epochs", "1", "--quiet", "--backend",
            "numpy", "--filters", "2"]
    for number in (1, 2):
        assert train.main(argv) == 0
        folder = runs / f"train-{number:03d}"
        assert f"outputs          {folder}" in capsys.readouterr().out
        assert (folder / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["completed"] and metrics["system"]["blas"]     # the BLAS that ran


def test_an_unwritable_default_results_folder_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").write_text("a file where the folder should be")
    monkeypatch.setenv("MINICNN_RUNS", str(tmp_path / "runs"))
    from minicnn import train
    with pytest.raises(SystemExit) as exc:
        train.main(["--epochs", "1", "--backend", "numpy"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pass --out DIR" in err
