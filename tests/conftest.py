"""Fixtures and helpers shared by the tests: the backends to run on, real and fake MNIST, the
layout swap, a fake network, commands run in a subprocess with the check of a one-line
failure (run_python, run_module, call_main, assert_one_line_error), and traced_peak for the
promise that a call allocates nothing."""
import email.message
import gzip
import hashlib
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from minicnn.backend import backend_class, get_backend
from minicnn.data import FILES, encode_idx, mnist

# CPU backends always run: if one cannot, that is a failure, not a skip.
CPU_BACKENDS = ["numpy", "numba", "cudasim"]


def gpu_params(*ids):
    """pytest params for the cupy backend: marked gpu, skipped with the reason where it cannot run."""
    cls = backend_class("cupy")
    marks = [pytest.mark.gpu]
    if not cls.is_available():
        marks.append(pytest.mark.skip(reason=f"cupy: {cls.unavailable_reason}"))
    return [pytest.param(i, marks=marks) for i in ids]


ALL_BACKENDS = CPU_BACKENDS + gpu_params("cupy")


@pytest.fixture(params=ALL_BACKENDS)
def backend(request):
    return get_backend(request.param)


@pytest.fixture(autouse=True)
def runs_folder(tmp_path_factory, monkeypatch):
    """Runs given no --out make runs/train-NNN: in the tests, under a temporary folder."""
    monkeypatch.setenv("MINICNN_RUNS", str(tmp_path_factory.mktemp("runs")))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# -- real and fake MNIST ---------------------------------------------------------
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_ROOT = os.environ.get("MINICNN_DATA") or (str(SHARED) if SHARED.is_dir() else None)
needs_mnist = pytest.mark.skipif(
    not REAL_ROOT or not (Path(REAL_ROOT) / "mnist" / FILES[0]).exists(),
    reason="real MNIST not found: set MINICNN_DATA to a folder with mnist/*-ubyte.gz")


def fake_mnist(root, n_train=20, n_test=7, n_labels=None, compress=True, monkeypatch=None):
    """Random MNIST-shaped IDX files in root/mnist/; returns the four uint8 arrays.  With
    ``monkeypatch``, their checksums replace MNIST's for the test, so that loading them
    passes the verification real files get."""
    rng = np.random.default_rng(0)
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    arrays = [rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_labels or n_train, dtype=np.uint8),
              rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              rng.integers(0, 10, n_test, dtype=np.uint8)]
    sums = {}
    for name, a in zip(FILES, arrays):
        data = encode_idx(a)
        sums[name] = hashlib.sha256(data).hexdigest()
        if compress:
            (folder / name).write_bytes(gzip.compress(data))
        else:
            (folder / name[:-3]).write_bytes(data)
    if monkeypatch is not None:
        monkeypatch.setitem(mnist.DATASETS, "mnist", mnist.DATASETS["mnist"]._replace(
            sha256=sums))
    return arrays


# -- commands in a subprocess ----------------------------------------------------------
NO_DATA = "/nonexistent-minicnn-data"     # a data root where any read of the data fails


def run_python(*argv, data=True, env=None, timeout=600):
    """``python *argv`` in a fresh process: a CompletedProcess with its exit status and text
    stdout and stderr.  ``data=True`` points MINICNN_DATA at the real MNIST where there is
    one; ``data=False`` at a folder that does not exist, so a command that reads the data
    fails.  ``env`` is applied last.  A Dask scheduler named in the environment is never
    used: the tests start their own clusters."""
    full = dict(os.environ)
    full.pop("DASK_SCHEDULER_ADDRESS", None)
    if not data:
        full["MINICNN_DATA"] = NO_DATA
    elif REAL_ROOT:
        full["MINICNN_DATA"] = REAL_ROOT
    full.update(env or {})
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True,
                          env=full, timeout=timeout)


def run_module(module, *args, **kwargs):
    """``python -m module *args`` (keywords as for run_python)."""
    return run_python("-m", module, *args, **kwargs)


def call_main(main, argv, capsys):
    """A command's ``main(argv)`` run in this process, as a CompletedProcess: its return value
    or SystemExit code, and what it printed (read from capsys)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def assert_one_line_error(result, match, code=2):
    """A command that failed as it should: exit status ``code`` and exactly one non-empty line
    on stderr (no traceback, no warning before it) in which the regex ``match`` is found.
    Returns that line."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, (f"exit status {result.returncode}, expected {code}; "
                                       f"stderr:\n{result.stderr}")
    assert len(lines) == 1, f"{len(lines)} lines on stderr, expected one:\n{result.stderr}"
    assert re.search(match, lines[0]), f"{match!r} not found in {lines[0]!r}"
    return lines[0]


# -- layout ------------------------------------------------------------------------
def cnhw(a):
    """An NCHW test array in minicnn's internal (C, N, H, W) layout."""
    return np.ascontiguousarray(np.swapaxes(a, 0, 1))


nchw = cnhw      # the swap is its own inverse


# -- a fake network ------------------------------------------------------------------
CHUNK = 50_000          # what one read of the fake network returns at most


class Response:
    """A urlopen response: case-insensitive headers, at most CHUNK bytes per read."""

    def __init__(self, data, length=True):
        self.data, self.headers = data, email.message.Message()
        if length:
            self.headers["Content-Length"] = str(len(data))

    def read(self, n=-1):
        n = len(self.data) if n is None or n < 0 else min(n, CHUNK)
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# What a call that "allocates nothing" may still show to traced_peak: NumPy's own casting
# buffers (8192 elements) stay under it; a full-size temporary of the tests' arrays is far above.
NO_ALLOCATION = 64 * 1024


def traced_peak(fn):
    """(peak bytes NumPy and Python allocated while fn ran, fn's result).  Numba's runtime
    allocates with malloc, unseen here: this checks the Python-level buffers only."""
    tracemalloc.start()
    try:
        result = fn()
        return tracemalloc.get_traced_memory()[1], result
    finally:
        tracemalloc.stop()
