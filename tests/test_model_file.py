"""Model files (nn/model_file.py, the codec) and ``minicnn.load`` (nn/loading.py): what
Sequential.save writes loads back into the same model on every backend; a file written
before the layout change (by the old minicnn.saving, here by np.savez by hand) still loads;
and every file that cannot be used is refused in one line, a ModelFileError (a ValueError)
whose message says why, before anything is allocated; python -m minicnn.evaluate turns it
into one line on stderr and exit status 2."""
import json
import os
import re

import numpy as np
import pytest

import minicnn
from conftest import assert_one_line_error, call_main, run_module, traced_peak
from minicnn import SGD, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid
from minicnn.nn import model_file
from minicnn.nn.model_file import ModelFileError

NOT_OURS = ("not a minicnn model file (one written by Sequential.save() or python -m "
            "minicnn.train --out)")


def small_model(backend="numpy", dtype="float32", seed=0):
    return Sequential([Conv2D(4, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(6, 3, stride=2),
                       Sigmoid(), Flatten(), Dense(16), ReLU(), Dense(10)],
                      input_shape=(1, 12, 11), backend=backend, dtype=dtype, seed=seed)


# -- what the writer writes -----------------------------------------------------------------
def test_save_load_round_trip_gives_identical_predictions(backend, tmp_path):
    model = small_model(backend.name)
    x = np.random.default_rng(0).random((7, 1, 12, 11)).astype(np.float32)
    model.train_step(backend.asarray(x), backend.asarray(np.arange(7)), SGD(0.1))
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = minicnn.load(path, backend=backend.name)
    assert loaded.architecture() == model.architecture()
    a = backend.to_numpy(model.forward(backend.asarray(x)))
    b = backend.to_numpy(loaded.forward(backend.asarray(x)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]   # no temporary left behind


def test_the_writer_writes_the_documented_format(tmp_path):
    """One "architecture" JSON string (format marker, version 1, the model's architecture and
    the metadata: saved ones merged over the model's own) and one "param:<name>" array per
    parameter, nothing else: the layout the old minicnn.saving wrote, so files stay
    readable both ways."""
    model = small_model(seed=3)
    model.metadata = {"dataset": "mnist", "epochs": 2}
    path = tmp_path / "m.npz"
    model.save(path, epochs=5, note="x")
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == sorted(["architecture"] + [f"param:{n}" for n, _ in
                                                                model.params()])
        arch = json.loads(str(data["architecture"]))
        for name, p in model.params():
            np.testing.assert_array_equal(data[f"param:{name}"], p)
    assert arch == {"format": "minicnn-model", "version": 1, **model.architecture(),
                    "metadata": {"dataset": "mnist", "epochs": 5, "note": "x"}}
    assert minicnn.load(path).metadata == {"dataset": "mnist", "epochs": 5, "note": "x"}


def test_the_codec_round_trips_parameters_state_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    params = {"conv2d.w": rng.standard_normal((2, 1, 3, 3)), "dense.b": np.arange(3.0)}
    state = {"batchnorm.moving_mean": rng.standard_normal(4).astype(np.float32)}
    path = tmp_path / "m.npz"
    model_file.write(path, {"input_shape": [1, 5, 5], "layers": []}, {"k": [1, 2]}, params,
                     state)
    arch, got_params, got_state = model_file.read(path)
    assert arch == {"format": "minicnn-model", "version": 1, "input_shape": [1, 5, 5],
                    "layers": [], "metadata": {"k": [1, 2]}}
    assert got_params.keys() == params.keys() and got_state.keys() == state.keys()
    for want, got in [(params[k], got_params[k]) for k in params] + [
            (state[k], got_state[k]) for k in state]:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_saved_files_get_the_usual_permissions(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# -- a file of the old writer ---------------------------------------------------------------
# The architecture as minicnn.saving.save wrote it before the layout change (git show
# 4dce264:minicnn/saving.py): each layer's type and its config() of that version.
OLD_LAYERS = [
    {"type": "Conv2D", "filters": 4, "kernel_size": [3, 3], "stride": [1, 1], "padding": "same",
     "algorithm": "auto"},
    {"type": "ReLU"},
    {"type": "MaxPool2D", "pool_size": [2, 2], "stride": [2, 2], "padding": "valid"},
    {"type": "Conv2D", "filters": 3, "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1],
     "algorithm": "im2col"},
    {"type": "Sigmoid"},
    {"type": "Flatten"},
    {"type": "Dense", "units": 16},
    {"type": "ReLU"},
    {"type": "Dense", "units": 10},
]
OLD_SHAPES = {"conv2d.w": (4, 1, 3, 3), "conv2d.b": (4,), "conv2d_1.w": (3, 4, 3, 3),
              "conv2d_1.b": (3,), "dense.w": (147, 16), "dense.b": (16,), "dense_1.w": (16, 10),
              "dense_1.b": (10,)}


def test_a_model_file_written_before_the_layout_change_loads(tmp_path):
    rng = np.random.default_rng(7)
    weights = {name: (0.5 * rng.standard_normal(shape)).astype(np.float32)
               for name, shape in OLD_SHAPES.items()}
    arch = {"format": "minicnn-model", "version": 1, "input_shape": [1, 28, 28],
            "dtype": "float32", "seed": 0, "layers": OLD_LAYERS,
            "metadata": {"dataset": "mnist"}}
    path = tmp_path / "old.npz"
    np.savez(path, **{f"param:{name}": w for name, w in weights.items()},
             architecture=np.array(json.dumps(arch)))
    loaded = minicnn.load(path)
    # the same network built by hand, given the same weights
    same = Sequential([Conv2D(4, 3, padding="same"), ReLU(), MaxPool2D(2),
                       Conv2D(3, 3, stride=2, padding=1, algorithm="im2col"), Sigmoid(),
                       Flatten(), Dense(16), ReLU(), Dense(10)], (1, 28, 28))
    assert [name for name, _ in same.params()] == list(OLD_SHAPES)
    for name, p in same.params():
        p[...] = weights[name]
    assert loaded.metadata == {"dataset": "mnist"}
    assert loaded.architecture()["layers"] == OLD_LAYERS
    assert (loaded.input_shape, loaded.dtype, loaded.seed) == ((1, 28, 28), np.float32, 0)
    x = np.random.default_rng(0).random((20, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(loaded.forward(x), same.forward(x))
    predictions = loaded.predict(x)
    np.testing.assert_array_equal(predictions, same.predict(x))
    assert len(set(predictions.tolist())) > 1         # the weights matter: not one class


# -- files that are not model files ---------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"hello", b"PK\x03\x04garbage"])
def test_loading_a_file_that_is_not_ours(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=f"^{re.escape(f'{path}: {NOT_OURS}')}$"):
        minicnn.load(path)


@pytest.mark.parametrize("arrays,message", [
    ({"weights": np.zeros(3)}, NOT_OURS),
    ({"architecture": np.array("not json")}, NOT_OURS),
    ({"architecture": np.array(json.dumps([1, 2]))},
     "not a minicnn model file (no minicnn format marker)"),
    ({"architecture": np.array(json.dumps({"format": "keras", "version": 1}))},
     "not a minicnn model file (no minicnn format marker)"),
    ({"architecture": np.array(json.dumps({"format": "minicnn-model", "version": 2}))},
     "not a usable minicnn model file: format version 2 is not supported (this minicnn reads "
     "version 1)"),
], ids=["no architecture", "not json", "json not an object", "another format", "version 2"])
def test_loading_an_npz_that_is_not_ours(tmp_path, arrays, message):
    path = tmp_path / "other.npz"
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match=f"^{re.escape(f'{path}: {message}')}$"):
        minicnn.load(path)


def test_loading_a_pickle_says_not_a_model_and_nothing_about_pickles(tmp_path):
    path = tmp_path / "p.npz"
    np.savez(path, architecture=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError) as err:
        minicnn.load(path)
    message = str(err.value).replace(str(path), "")
    assert "not a minicnn model file" in message and "pickle" not in message


def test_a_folder_or_a_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match=f"^{re.escape(str(tmp_path))} is a folder, "
                                             "not a model file$"):
        minicnn.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        minicnn.load(tmp_path / "absent.npz")


# -- model files that cannot be used: refused at load time ----------------------------------
DENSE = [{"type": "Flatten"}, {"type": "Dense", "units": 10}]
DENSE_WEIGHTS = {"dense.w": np.zeros((784, 10), np.float32), "dense.b": np.zeros(10, np.float32)}
DROP = object()         # a field left out of the file


def hand_written(path, layers=DENSE, weights=DENSE_WEIGHTS, **fields):
    """A model file written with np.savez, not minicnn's writer, as one edited by hand could
    be: the architecture of the documented format with ``fields`` changed (DROP: left out)."""
    arch = {"format": "minicnn-model", "version": 1, "input_shape": [1, 28, 28],
            "dtype": "float32", "seed": 0, "layers": layers, "metadata": {"dataset": "mnist"}}
    arch.update(fields)
    arch = {k: v for k, v in arch.items() if v is not DROP}
    np.savez(path, architecture=np.array(json.dumps(arch)),
             **{f"param:{name}": w for name, w in weights.items()})
    return path


UNUSABLE = {   # id -> (hand_written arguments, what the message says after the prefix)
    "huge dense": (dict(layers=[{"type": "Flatten"}, {"type": "Dense", "units": 2_000_000_000}],
                        weights={}),
                   "Sequential: a model of 1,570,000,000,000 parameters needs about "),
    "units abc": (dict(layers=[{"type": "Flatten"}, {"type": "Dense", "units": "abc"}]),
                  "Dense: units must be a positive int, got 'abc'"),
    "unknown key": (dict(layers=[{"type": "Flatten"},
                                 {"type": "Dense", "units": 10, "activation": "softmax"}]),
                    "layer 1 (Dense) has the unknown argument(s) activation; Dense takes "),
    "no input_shape": (dict(input_shape=DROP), "the architecture has no input_shape"),
    "input_shape 28": (dict(input_shape=28), "input_shape must be a list of positive ints, "
                                             "got 28"),
    "no layers": (dict(layers=DROP), "the architecture has no list of layers"),
    "seed -1": (dict(seed=-1), "seed must be a non-negative int, got -1"),
    "unknown type": (dict(layers=[{"type": "Flatten"}, {"type": "Softmax"}]),
                     "layer 1 has the unknown type 'Softmax'; minicnn knows Conv2D, "),
    "wrong weight shape": (dict(weights={**DENSE_WEIGHTS, "dense.w": np.zeros((10, 784))}),
                           "the weights of dense.w are shaped (10, 784), the architecture "
                           "needs (784, 10)"),
    "missing weights": (dict(weights={"dense.w": DENSE_WEIGHTS["dense.w"]}),
                        "the weights of dense.b are missing, the architecture needs (10,)"),
    "layer not a dict": (dict(layers=[{"type": "Flatten"}, "relu", {"type": "Dense",
                                                                     "units": 10}]),
                         "layer 1 is 'relu', not a {\"type\": ...} object"),
}


def test_a_hand_written_file_of_the_right_format_loads(tmp_path):
    """The files below differ from this one in one field each."""
    model = minicnn.load(hand_written(tmp_path / "m.npz"))
    assert model.output_shape == (10,) and model.metadata == {"dataset": "mnist"}


@pytest.mark.parametrize("case", UNUSABLE)
def test_an_unusable_model_file_is_refused_in_one_line(tmp_path, case):
    fields, says = UNUSABLE[case]
    path = hand_written(tmp_path / "m.npz", **fields)

    def refused():
        with pytest.raises(ModelFileError) as err:
            minicnn.load(path)
        return str(err.value)
    peak, message = traced_peak(refused)
    assert message.startswith(f"{path}: not a usable minicnn model file: {says}"), message
    assert "\n" not in message
    # refused before the parameters are allocated (the huge Dense would need 5.7 TiB)
    assert peak < 32 * 2**20


def test_weights_that_are_not_numbers_are_refused_in_one_line(tmp_path):
    path = hand_written(tmp_path / "m.npz", weights={**DENSE_WEIGHTS,
                                                     "dense.w": np.full((784, 10), "a")})
    with pytest.raises(ModelFileError, match=f"^{re.escape(str(path))}: not a usable minicnn "
                                             "model file: the weights of dense.w "):
        minicnn.load(path)


@pytest.mark.parametrize("case", UNUSABLE)
def test_evaluate_refuses_an_unusable_model_file_in_one_line(tmp_path, capsys, case):
    from minicnn import evaluate
    fields, says = UNUSABLE[case]
    path = hand_written(tmp_path / "m.npz", **fields)
    result = call_main(evaluate.main, [str(path), "--backend", "numpy"], capsys)
    assert_one_line_error(result, "^" + re.escape(f"python -m minicnn.evaluate: error: {path}: "
                                                  f"not a usable minicnn model file: {says}"))


def test_evaluate_in_a_process_of_its_own_refuses_an_unusable_file(tmp_path):
    path = hand_written(tmp_path / "m.npz", layers=[{"type": "Flatten"}, {"type": "Softmax"}])
    result = run_module("minicnn.evaluate", str(path), "--backend", "numpy", data=False)
    assert_one_line_error(result, re.escape(f"{path}: not a usable minicnn model file: layer 1 "
                                            "has the unknown type 'Softmax'"))
