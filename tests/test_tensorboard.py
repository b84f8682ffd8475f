"""TensorBoard logs of a run (minicnn/results/tensorboard.py), read back with TensorBoard's own
EventAccumulator: the tags its docstring lists, the training scalars every --log-every steps
(their means agree with the epoch's), the epoch scalars equal to metrics.json, histograms of
every parameter and gradient of the model file, each step's sparsity equal to the fraction of
zeros of that step's output recomputed from the saved model, the input images once and the
text summaries.  A sweep writes one sub-folder per trial; a --tensorboard path under a regular
file is one line, exit 2, and leaves no run folder behind."""
import json
import math
import re

import numpy as np
import pytest

from conftest import assert_one_line_error, fake_mnist, needs_mnist, run_module

EventAccumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the tensorboard package (pip install tensorboard) reads the event files back"
).EventAccumulator

ARCH = "conv:4:3:same,relu,pool,dense:10"
LOG_EVERY = 5
BATCH, TRAIN = 20, 300            # 15 steps an epoch: the scalars' windows fit the epochs
EPOCHS = 2


def events(folder):
    """Everything the event files in ``folder`` hold (size_guidance 0: no sampling)."""
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0,
                                                       "images": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One short run in this process on fake MNIST: (events, metrics, out folder, data)."""
    from minicnn import train
    from minicnn.data import load_dataset
    tmp = tmp_path_factory.mktemp("tensorboard")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINICNN_RUNS", str(tmp / "runs"))
        fake_mnist(tmp / "data", n_train=5000 + TRAIN, n_test=20, monkeypatch=mp)
        out, board = tmp / "run", tmp / "tb"
        code = train.main(["--data-dir", str(tmp / "data"), "--arch", ARCH, "--backend", "numpy",
                           "--epochs", str(EPOCHS), "--batch-size", str(BATCH),
                           "--lr-schedule", "staircase:0.5:1", "--tensorboard", str(board),
                           "--log-every", str(LOG_EVERY), "--out", str(out), "--quiet"])
        assert code == 0
        data = load_dataset("mnist", tmp / "data", progress=False)
    return events(board), json.loads((out / "metrics.json").read_text()), out, data


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def f32(v):
    return float(np.float32(v))


def test_the_documented_tags_are_written(logged):
    acc, *_ = logged
    tags = acc.Tags()
    for tag in ("train/loss", "train/accuracy", "train/learning_rate", "epoch/train_loss",
                "epoch/train_accuracy", "epoch/val_loss", "epoch/val_accuracy", "epoch/seconds",
                "epoch/images_per_second"):
        assert tag in tags["scalars"], tag
    for prefix in ("weights/", "gradients/", "activations/"):
        assert any(t.startswith(prefix) for t in tags["histograms"]), prefix
    assert any(t.startswith("sparsity/") for t in tags["scalars"])
    assert tags["images"] == ["input/images"]
    assert {t.split("/text_summary")[0] for t in tags["tensors"]} == {"model/summary",
                                                                       "run/command"}


def test_training_scalars_every_log_every_steps(logged):
    acc, metrics, _, _ = logged
    steps_per_epoch = math.ceil(TRAIN / BATCH)
    expected = list(range(LOG_EVERY, EPOCHS * steps_per_epoch + 1, LOG_EVERY))
    for tag in ("train/loss", "train/accuracy", "train/learning_rate"):
        assert [s for s, _ in scalars(acc, tag)] == expected, tag
    # each window's mean lies within one epoch here: their mean is the epoch's mean
    windows = steps_per_epoch // LOG_EVERY
    losses = [v for _, v in scalars(acc, "train/loss")]
    accuracies = [v for _, v in scalars(acc, "train/accuracy")]
    for e, epoch in enumerate(metrics["epochs"]):
        part = slice(e * windows, (e + 1) * windows)
        assert np.mean(losses[part]) == pytest.approx(epoch["train_loss"], rel=1e-5)
        assert np.mean(accuracies[part]) == pytest.approx(epoch["train_accuracy"], abs=1e-6)
    # the step's own rate: halved after the first epoch (staircase:0.5:1)
    for step, lr in scalars(acc, "train/learning_rate"):
        epoch = metrics["epochs"][(step - 1) // steps_per_epoch]
        assert lr == f32(epoch["lr"])
    assert [e["lr"] for e in metrics["epochs"]] == [0.1, 0.05]


def test_epoch_scalars_equal_metrics_json(logged):
    acc, metrics, _, _ = logged
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"):
        assert scalars(acc, f"epoch/{name}") == [(e["epoch"], f32(e[name]))
                                                 for e in metrics["epochs"]], name
    rates = scalars(acc, "epoch/images_per_second")
    assert [s for s, _ in rates] == [1, 2]
    for (_, rate), e in zip(rates, metrics["epochs"]):
        assert rate == pytest.approx(TRAIN / e["train_seconds"], rel=1e-6)


def saved_model(out):
    import minicnn
    return minicnn.load(out / "model.npz", backend="numpy")


def test_histograms_of_every_parameter_and_gradient(logged):
    acc, _, out, _ = logged
    model = saved_model(out)
    names = [name for name, _ in model.params()]
    assert names == ["conv2d.w", "conv2d.b", "dense.w", "dense.b"]
    histograms = set(acc.Tags()["histograms"])
    for name, w in model.params():
        for kind in ("weights", "gradients"):
            assert f"{kind}/{name}" in histograms
            assert [h.step for h in acc.Histograms(f"{kind}/{name}")] == [1, 2]
        last = acc.Histograms(f"weights/{name}")[-1].histogram_value    # the saved weights
        assert last.num == w.size
        assert last.min == pytest.approx(float(w.min())) and last.max == pytest.approx(
            float(w.max()))
        assert last.sum == pytest.approx(float(w.astype(np.float64).sum()), rel=1e-5,
                                         abs=1e-6)
    # the gradients are not the weights
    g = acc.Histograms("gradients/dense.w")[-1].histogram_value
    assert g.num == model.params()[2][1].size and g.sum != last.sum


def tag(name):
    """A step's name as a tag: tensorboardX replaces what TensorFlow's tag names may not hold
    (the '+' of a fused step such as conv2d+relu+maxpool2d) by '_'."""
    return re.sub(r"[^-/\w.]", "_", name)


def test_sparsity_is_the_fraction_of_zeros_of_each_steps_output(logged):
    """Recomputed from model.npz (the last epoch's weights) on the same 64 validation
    images; the activations' histograms hold those outputs."""
    from minicnn.results.tensorboard import SAMPLE
    acc, _, out, data = logged
    model = saved_model(out)
    outputs = model.activations(model.backend.asarray(data.val.x[:SAMPLE], dtype=model.dtype))
    tags = set(acc.Tags()["scalars"])
    assert {t for t in tags if t.startswith("sparsity/")} == {
        f"sparsity/{tag(n)}" for n, _ in outputs}
    for name, a in outputs:
        values = scalars(acc, f"sparsity/{tag(name)}")
        assert [s for s, _ in values] == [1, 2]
        assert all(0 <= v <= 1 for _, v in values)
        assert values[-1][1] == pytest.approx(float(np.mean(a == 0)), abs=1e-7), name
        h = acc.Histograms(f"activations/{tag(name)}")[-1].histogram_value
        assert h.num == a.size == SAMPLE * np.prod(a.shape[1:])
        assert h.sum == pytest.approx(float(a.astype(np.float64).sum()), rel=1e-5, abs=1e-5)
    relu = [v for n, _ in outputs for _, v in scalars(acc, f"sparsity/{tag(n)}") if "relu" in n]
    assert relu and max(relu) > 0                # the ReLU's zeros are counted


def test_input_images_once_and_the_text_summaries(logged):
    acc, metrics, _, _ = logged
    shown = acc.Images("input/images")
    assert len(shown) == 1 and shown[0].step == 0
    assert shown[0].encoded_image_string[:4] == b"\x89PNG"
    assert shown[0].width % 28 == 0 and shown[0].height % 28 == 0
    assert (shown[0].width // 28) * (shown[0].height // 28) >= 8
    text = {t.split("/text_summary")[0]: acc.Tensors(t)[0].tensor_proto.string_val[0].decode()
            for t in acc.Tags()["tensors"]}
    assert "conv2d" in text["model/summary"] and "dense" in text["model/summary"]
    assert f"{metrics['parameters']:,}" in text["model/summary"]
    assert "python -m minicnn.train" in text["run/command"]
    assert f"--log-every {LOG_EVERY}" in text["run/command"]


@needs_mnist
def test_a_sweep_writes_one_folder_per_trial(tmp_path):
    board = tmp_path / "tb"
    result = run_module("minicnn.sweep", "--filters", "2", "--epochs", "1", "--train-limit",
                        "200", "--seeds", "0,1", "--workers", "1", "--out", tmp_path / "sweep",
                        "--tensorboard", board)
    assert result.returncode == 0, result.stderr
    trials = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["trials"]
    keys = sorted(t["key"] for t in trials)
    assert len(keys) == 2 and sorted(p.name for p in board.iterdir()) == keys
    for t in trials:
        acc = events(board / t["key"])
        assert scalars(acc, "epoch/val_accuracy") == [
            (1, f32(t["result"]["epochs"][0]["val_accuracy"]))]
        assert "weights/conv2d.w" in acc.Tags()["histograms"]
        assert acc.Tags()["images"] == ["input/images"]


def train_subprocess(*args, **kwargs):
    return run_module("minicnn.train", *args, **kwargs)


@pytest.mark.parametrize("out", [False, True])
def test_a_log_folder_under_a_regular_file_is_one_line(tmp_path, out):
    (tmp_path / "file").write_text("not a folder")
    extra = ["--out", tmp_path / "new"] if out else []
    result = train_subprocess("--tensorboard", tmp_path / "file" / "tb", "--epochs", "1",
                              *extra, data=False)
    assert_one_line_error(result, r"--tensorboard .*file is a file, not a folder")


@pytest.mark.parametrize("out", [False, True])
def test_a_log_folder_under_a_regular_file_leaves_no_run_folder(tmp_path, out):
    runs = tmp_path / "runs"
    (tmp_path / "file").write_text("not a folder")
    extra = ["--out", tmp_path / "new"] if out else []
    result = train_subprocess("--tensorboard", tmp_path / "file" / "tb", "--epochs", "1",
                              *extra, data=False, env={"MINICNN_RUNS": str(runs)})
    assert result.returncode == 2
    assert not (tmp_path / "new").exists()
    assert not runs.exists() or list(runs.iterdir()) == []

