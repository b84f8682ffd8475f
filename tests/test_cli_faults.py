"""Command-line faults: a bad flag, an impossible model, unusable data, a model file or a
backend that cannot be used, an output folder that cannot take the results.  Each stops
early with one line on stderr and a non-zero exit status (2: bad input, 1: the run itself
failed), and leaves nothing half-written; a flag that asks for more than there is is said,
not silently cut.  Most need no data: they are found before the data is read (data=False
points the commands at a data root that does not exist).  The same mistakes made through the
Python API: test_api_errors.py."""
import re

import pytest

from conftest import assert_one_line_error, call_main, needs_mnist, run_module


def train(*args, **kwargs):
    return run_module("minicnn.train", *args, **kwargs)


# -- flags and models refused before the data is read ------------------------------------
@pytest.mark.parametrize("args,match", [
    (["--epochs", "0"], "--epochs: must be a positive int, got 0"),
    (["--batch-size", "-5"], "--batch-size: must be a positive int, got -5"),
    (["--threads", "two"], "--threads: 'two' is not an integer"),
    (["--conv-algo", "fft"], "--conv-algo: invalid choice: 'fft'"),
    (["--lr", "0"], "--lr: must be a positive finite number"),
    (["--lr", "nan"], "--lr: must be a positive finite number"),
    (["--backend", "tpu"], "--backend: unknown backend 'tpu'; choose from auto, numpy"),
    (["--dataset", "cifar"], "--dataset: invalid choice: 'cifar'"),
])
def test_bad_flags_one_line_exit_2(args, match):
    assert_one_line_error(train(*args, data=False), re.escape(match))


@pytest.mark.parametrize("args,match", [
    (["--arch", "conv:3:3,bogus"], "unknown layer 'bogus'"),
    (["--arch", "conv:3:40"], "window 40 is larger than the padded input 28"),
    (["--arch", "conv:3:3,dense:7"], "must end in 10 outputs"),
    (["--conv-algo", "winograd", "--arch", "conv:4:7,relu,dense:10"],
     "algorithm 'winograd' cannot run this layer"),
    (["--arch", "conv:3:3,relu,dropout:1.5,dense:10"],
     "--arch: the dropout rate must be in [0, 1) in 'dropout:1.5', got '1.5'"),
    (["--arch", "conv:3:3,relu,dropout:1,dense:10"], "the dropout rate must be in [0, 1)"),
    (["--arch", "conv:8:3,lrn:-1,dense:10"],
     "--arch: the lrn depth radius must be an int >= 0 in 'lrn:-1', got '-1'"),
    (["--arch", "conv:8:3,bn,relu,dense:10", "--batch-size", "1"],
     "--batch-size 1 with batch norm"),
    (["--arch", "dense:32,bn,relu,dense:10", "--train-limit", "101"],
     "leave a last batch of one sample"),
    (["--lr-schedule", "sawtooth"], "--lr-schedule: unknown schedule 'sawtooth'"),
    (["--lr-schedule", "staircase:0.1"], "write it as staircase:RATE:EPOCHS"),
    (["--lr-schedule", "step:a,b:0.1"], "each epoch must be a positive number, got 'a'"),
    (["--ema", "1.5"], "--ema: decay must be in (0, 1), got 1.5"),
    (["--crop", "40"], "--crop 40 is larger than the 28x28 images; give at most 28"),
    (["--threads", "2", "--shards", "1"],
     "--shards: 1 shards leave some of the 2 threads idle; use at least 2 shards"),
    (["--arch", "conv:8:3,bn,relu,dense:10", "--threads", "2", "--shards", "4"],
     "--shards: a model with batch norm needs one shard per thread, 2, got 4"),
    (["--arch", "cifar10-tutorial", "--crop", "40"], "--crop 40 is larger than the 32x32"),
])
def test_arch_problems_are_found_without_the_data(args, match):
    assert_one_line_error(train(*args, data=False), re.escape(match))


@pytest.mark.parametrize("args", [["--filters", "100000"], ["--units", "1000000000"]])
def test_impossible_sizes_are_refused_with_the_estimate(args):
    assert_one_line_error(train(*args, data=False),
                          r"needs about .* GiB of memory.* are available")


def test_unavailable_gpu_backend_is_one_line_and_auto_falls_back():
    from minicnn.backend import AUTO_ORDER, backend_class, get_backend
    if backend_class("cupy").is_available():
        pytest.skip("a GPU is visible here; the fallback cannot be observed")
    assert_one_line_error(train("--backend", "cupy", data=False),
                          "backend 'cupy' is not available")
    first_available = next(n for n in AUTO_ORDER if backend_class(n).is_available())
    assert get_backend("auto").name == first_available != "cupy"


# -- output folders ------------------------------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda p: (p / "f").write_text("x") and p / "f", "is a file, not a folder"),
    (lambda p: (p / "f").write_text("x") and p / "f" / "sub", "is a file, so no folder can be made"),
    (lambda p: "/sys/minicnn-out", "is not writable"),
])
def test_bad_output_folders_fail_before_training(tmp_path, make, match):
    assert_one_line_error(train("--out", str(make(tmp_path)), data=False), re.escape(match))


def test_an_output_folder_with_results_is_not_overwritten_silently(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    assert_one_line_error(train("--out", str(tmp_path), data=False),
                          re.escape("already holds results (metrics.json); add --overwrite"))
    # with --overwrite the folder is accepted and the run goes on to the data (absent here;
    # the failed download attempts are reported before the error)
    result = train("--out", str(tmp_path), "--overwrite", data=False)
    assert result.returncode == 2
    assert "cannot read mnist" in result.stderr and "already holds" not in result.stderr
    assert (tmp_path / "metrics.json").read_text() == "{}"          # nothing half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_an_unwritable_default_results_folder_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "runs").write_text("a file where the folder should be")
    monkeypatch.setenv("MINICNN_RUNS", str(tmp_path / "runs"))
    from minicnn import train as train_command
    assert_one_line_error(call_main(train_command.main, ["--epochs", "1", "--backend", "numpy"],
                                    capsys), "pass --out DIR")


# -- data and model files that cannot be used -----------------------------------------------
def test_unreadable_data_one_line_exit_2(tmp_path):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "mnist" / name).write_bytes(b"\0\0\x08\x01\0\0\0\0")
    assert_one_line_error(train("--data-dir", str(tmp_path), "--backend", "numpy"),
                          "cannot read mnist")


def test_evaluate_rejects_a_file_that_is_not_a_model(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_text("nope")
    result = run_module("minicnn.evaluate", str(bad), "--backend", "numpy", data=False)
    assert_one_line_error(result, "not a minicnn model file")


# -- a run that fails: exit 1 ---------------------------------------------------------------
@needs_mnist
@pytest.mark.parametrize("lr,shown,advice,args", [
    ("1000", "1000.0", "100", ["--train-limit", "1000", "--epochs", "2"]),
    ("1e6", "1000000.0", "100000", ["--train-limit", "500", "--epochs", "1", "--backend", "numpy"]),
])
def test_divergence_stops_with_advice_and_exit_1(lr, shown, advice, args):
    """Stopped by the growth rule, in one line: no NumPy warning, no traceback."""
    result = train(*args, "--lr", lr, "--quiet")
    assert_one_line_error(result, rf"stopped: the loss grew from .* the learning rate "
                                  rf"{re.escape(shown)} is too high for this model, try --lr "
                                  rf"{advice}$", code=1)


@needs_mnist
def test_a_train_limit_beyond_the_data_is_said():
    result = train("--train-limit", "10000000", "--epochs", "1", "--arch",
                   "conv:2:3,relu,pool,dense:10", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "training images  55,000 (--train-limit 10,000,000 asked for more)" in result.stdout
