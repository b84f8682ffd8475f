"""The commands working, end to end: python -m minicnn.train writes its outputs and learns,
python -m minicnn.evaluate scores what it wrote (on the dataset the model was trained on),
python -m minicnn lists the commands.  How they fail: test_cli_faults.py."""
import csv
import json

import pytest

import minicnn
from conftest import assert_one_line_error, call_main, fake_mnist, needs_mnist, run_module


@needs_mnist
def test_train_on_a_subset_writes_outputs_and_learns(tmp_path):
    out = tmp_path / "run"
    # batch 10: 200 steps, enough for one epoch of 2,000 images to pass 80% (batch 50: ~63%)
    result = run_module("minicnn.train", "--train-limit", "2000", "--epochs", "1", "--out",
                        str(out), "--batch-size", "10", "--backend", "numba")
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

    evaluated = run_module("minicnn.evaluate", str(out / "model.npz"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test error {100 * metrics['test_error']:.2f}%" in evaluated.stdout


@needs_mnist
def test_custom_arch_trains(tmp_path):
    result = run_module("minicnn.train", "--train-limit", "300", "--epochs", "1", "--quiet",
                        "--arch", "conv:4:4:stride=2,relu,pool:2,dense:10", "--backend", "numpy")
    assert result.returncode == 0, result.stderr
    assert "val accuracy" in result.stdout
    assert "architecture     conv:4:4:stride=2,relu,pool:2,dense:10" in result.stdout
    assert "filters   " not in result.stdout  # --filters only shapes the lab model


@needs_mnist
def test_cudasim_backend_trains_from_the_cli():
    result = run_module("minicnn.train", "--backend", "cudasim", "--train-limit", "500",
                        "--epochs", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "backend          cudasim" in result.stdout


def test_a_run_without_out_saves_its_results_in_a_fresh_numbered_folder(tmp_path, monkeypatch,
                                                                        capsys):
    """The main job saves its learning curve even when given no --out: runs/train-001, then
    train-002 (never over an earlier run's results), named in the summary."""
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


def test_evaluate_scores_a_model_on_the_dataset_it_was_trained_on(tmp_path, monkeypatch, capsys):
    from minicnn import evaluate
    from minicnn.data import files, mnist

    def offline(*args, **kwargs):
        raise OSError("network unreachable")
    fake_mnist(tmp_path, n_train=30, n_test=12, monkeypatch=monkeypatch)
    (tmp_path / "mnist").rename(tmp_path / "fashion-mnist")
    monkeypatch.setitem(mnist.DATASETS, "fashion-mnist", mnist.DATASETS["mnist"])
    model = minicnn.lab_model(4)
    model.save(tmp_path / "m.npz", dataset="fashion-mnist")
    assert minicnn.load(tmp_path / "m.npz").metadata == {"dataset": "fashion-mnist"}
    assert evaluate.main([str(tmp_path / "m.npz"), "--data-dir", str(tmp_path),
                          "--backend", "numpy"]) == 0
    assert capsys.readouterr().out.startswith("fashion-mnist test accuracy")
    # told otherwise, it uses mnist: absent here, and not downloaded (no network in a test)
    monkeypatch.setattr(files.urllib.request, "urlopen", offline)
    result = call_main(evaluate.main, [str(tmp_path / "m.npz"), "--data-dir", str(tmp_path),
                                       "--dataset", "mnist", "--backend", "numpy"], capsys)
    assert_one_line_error(result, "cannot read mnist")


def test_python_m_minicnn_lists_the_commands():
    result = run_module("minicnn")
    assert result.returncode == 0
    for command in ("python -m minicnn.train", "python -m minicnn.evaluate",
                    "python -m minicnn.sweep", "benchmarks/epoch.py"):
        assert command in result.stdout


def test_help_has_no_restructuredtext_markup():
    result = run_module("minicnn.train", "--help")
    assert result.returncode == 0 and "``" not in result.stdout and "algo=A" in result.stdout


def test_the_summary_tests_on_the_test_split_and_validates_on_the_validation_split(
        tmp_path, monkeypatch, capsys):
    """Three splits of different images: metrics.json's test numbers are the saved model's on
    the test split, the last epoch's validation numbers its numbers on the validation split,
    and the two differ (so a swap would show)."""
    import json
    import numpy as np
    import minicnn
    from minicnn import run_setup, train
    from minicnn.data import Dataset, Split
    rng = np.random.default_rng(5)

    def split(n):
        return Split(rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n))
    data = Dataset(split(120), split(37), split(53))
    monkeypatch.setattr(run_setup, "load_data", lambda prog, args, progress=False: data)
    out = tmp_path / "run"
    result = call_main(train.main, ["--epochs", "2", "--backend", "numpy", "--threads", "1",
                                    "--filters", "2", "--out", str(out), "--quiet"], capsys)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    model = minicnn.load(out / "model.npz")
    test, val = model.evaluate(data.test.x, data.test.y), model.evaluate(data.val.x, data.val.y)
    assert (metrics["test_loss"], metrics["test_accuracy"]) == pytest.approx(test, rel=1e-6)
    last = metrics["epochs"][-1]
    assert (last["val_loss"], last["val_accuracy"]) == pytest.approx(val, rel=1e-6)
    assert test[0] != pytest.approx(val[0], rel=1e-4)
    assert metrics["training_images"] == 120


def test_shards_train_the_numbers_of_their_count_on_any_threads(tmp_path, monkeypatch, capsys):
    """--shards 3 on one thread and on two: the same metrics, and metrics.json says how the
    batches were cut."""
    import json
    import numpy as np
    from minicnn import run_setup, train
    from minicnn.data import Dataset, Split
    rng = np.random.default_rng(6)

    def split(n):
        return Split(rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n))
    data = Dataset(split(90), split(20), split(30))
    monkeypatch.setattr(run_setup, "load_data", lambda prog, args, progress=False: data)
    runs = []
    for threads in ("1", "2"):
        out = tmp_path / f"run{threads}"
        result = call_main(train.main, ["--epochs", "1", "--backend", "numba", "--threads",
                                        threads, "--shards", "3", "--filters", "2", "--out",
                                        str(out), "--quiet"], capsys)
        assert result.returncode == 0, result.stderr
        runs.append(json.loads((out / "metrics.json").read_text()))
    assert [(r["threads"], r["shards"]) for r in runs] == [(1, 3), (2, 3)]
    assert runs[0]["test_loss"] == runs[1]["test_loss"]
    assert runs[0]["epochs"][0]["train_loss"] == runs[1]["epochs"][0]["train_loss"]
