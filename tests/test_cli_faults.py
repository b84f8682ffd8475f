"""Nothing silent: each fault a user hit on v0.1 now stops early, in one line, with a non-zero
exit; most of these need no data (they are checked before the data is read)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from conftest import REAL_ROOT, fake_mnist, needs_mnist

NO_DATA = {"MINICNN_DATA": "/nonexistent-minicnn-data"}    # any data access would fail


def run(*args, env=None, module="minicnn.train"):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=600)


def one_line(result, code=2):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("make,match", [
    (lambda p: (p / "f").write_text("x") and p / "f", "is a file, not a folder"),
    (lambda p: (p / "f").write_text("x") and p / "f" / "sub", "is a file, so no folder can be made"),
    (lambda p: "/sys/minicnn-out", "is not writable"),
])
def test_bad_output_folders_fail_before_training(tmp_path, make, match):
    line = one_line(run("--out", str(make(tmp_path)), env=NO_DATA))
    assert match in line


def test_an_output_folder_with_results_is_not_overwritten_silently(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    line = one_line(run("--out", str(tmp_path), env=NO_DATA))
    assert "already holds results (metrics.json); add --overwrite" in line
    # with --overwrite the folder is accepted and the run goes on to the data (absent here)
    result = run("--out", str(tmp_path), "--overwrite", env=NO_DATA)
    assert "cannot read mnist" in result.stderr and "already holds" not in result.stderr
    assert (tmp_path / "metrics.json").read_text() == "{}"          # nothing half-written


@pytest.mark.parametrize("args", [["--filters", "100000"], ["--units", "1000000000"]])
def test_impossible_sizes_are_refused_with_the_estimate(args):
    line = one_line(run(*args, env=NO_DATA))
    assert "needs about" in line and "GiB of memory" in line and "are available" in line


def test_a_model_too_large_is_refused_before_allocating():
    with pytest.raises(MemoryError, match="a model of 90,628,301,418 parameters needs about"):
        minicnn.lab_model(100000)


@pytest.mark.parametrize("args,match", [
    (["--arch", "conv:3:40"], "window 40 is larger than the padded input 28"),
    (["--arch", "conv:3:3,dense:7"], "must end in 10 outputs"),
    (["--conv-algo", "winograd", "--arch", "conv:4:5,relu,dense:10"],
     "algorithm 'winograd' cannot run this layer"),
])
def test_arch_problems_are_found_without_the_data(args, match):
    assert match in one_line(run(*args, env=NO_DATA))


@needs_mnist
def test_divergence_stops_with_advice_and_exit_1():
    result = run("--lr", "1000", "--train-limit", "1000", "--epochs", "2", "--quiet",
                 env={"MINICNN_DATA": REAL_ROOT})
    assert result.returncode == 1
    assert "the loss grew from" in result.stderr and "try --lr 100" in result.stderr
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr


@needs_mnist
def test_a_train_limit_beyond_the_data_is_said(tmp_path):
    result = run("--train-limit", "10000000", "--epochs", "1", "--arch",
                 "conv:2:3,relu,pool,dense:10", "--quiet", env={"MINICNN_DATA": REAL_ROOT})
    assert result.returncode == 0, result.stderr
    assert "training images  55,000 (--train-limit 10,000,000 asked for more)" in result.stdout


def test_evaluate_scores_a_model_on_the_dataset_it_was_trained_on(tmp_path, monkeypatch, capsys):
    from minicnn import evaluate
    from minicnn.data import mnist
    fake_mnist(tmp_path, n_train=30, n_test=12, monkeypatch=monkeypatch)
    (tmp_path / "mnist").rename(tmp_path / "fashion-mnist")
    monkeypatch.setitem(mnist.DATASETS, "fashion-mnist", mnist.DATASETS["mnist"])
    model = minicnn.lab_model(4)
    model.save(tmp_path / "m.npz", dataset="fashion-mnist")
    assert minicnn.load(tmp_path / "m.npz").metadata == {"dataset": "fashion-mnist"}
    assert evaluate.main([str(tmp_path / "m.npz"), "--data-dir", str(tmp_path),
                          "--backend", "numpy"]) == 0
    assert capsys.readouterr().out.startswith("fashion-mnist test accuracy")
    with pytest.raises(SystemExit) as exc:   # told otherwise, it uses mnist (absent here)
        evaluate.main([str(tmp_path / "m.npz"), "--data-dir", str(tmp_path),
                       "--dataset", "mnist", "--backend", "numpy"])
    assert exc.value.code == 2 and "cannot read mnist" in capsys.readouterr().err


def test_loading_a_pickle_says_not_a_model_and_nothing_about_pickles(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, architecture=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError) as err:
        minicnn.load(path)
    message = str(err.value).replace(str(path), "")
    assert "not a minicnn model file" in message and "pickle" not in message


def test_python_m_minicnn_lists_the_commands():
    result = run(module="minicnn")
    assert result.returncode == 0
    for command in ("python -m minicnn.train", "python -m minicnn.evaluate",
                    "python -m minicnn.sweep", "benchmarks/epoch.py"):
        assert command in result.stdout


def test_help_has_no_restructuredtext_markup():
    result = run("--help")
    assert result.returncode == 0 and "``" not in result.stdout and "algo=A" in result.stdout


def test_learning_curve_ticks_are_whole_epochs(tmp_path, monkeypatch):
    from minicnn.results import figures
    seen = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: seen.update(fig=fig))
    history = [dict(epoch=1, train_accuracy=.9, val_accuracy=.91, train_loss=.3, val_loss=.25)]
    monkeypatch.setattr("matplotlib.pyplot.close", lambda fig: None)
    figures.plot_learning_curve(history, tmp_path / "c.png", "t")
    for ax in seen["fig"].axes:
        assert list(ax.get_xticks()) == [1]
    assert seen["fig"].get_layout_engine() is not None        # labels cannot crowd
