"""The numba kernels' on-disk cache changes nothing but the start-up time.

It can never run code that no longer exists: its folder is keyed by a hash of every source
file of backend/numba_kernels/ (Numba itself checks only a kernel's own file, and our
kernels inline helpers from other files).  In a copy of the package, a helper that other
modules inline (``relu`` in numba_kernels/__init__.py) is changed after its callers were
cached: the next run must compute with the new helper.

And a run computes the same bits with a cold cache (every kernel compiled in this process)
as with a warm one (loaded): before ``ordered_sum``, the fused pool's bias sum differed in
the last bit, and a first run after an install ended at another test error."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import needs_mnist, run_module

ROOT = Path(__file__).resolve().parents[1]

RUN = """
import numpy as np
from minicnn import ops
from minicnn.backend import get_backend
from minicnn.ops.geometry import window
b = get_backend("numba")
x = np.linspace(-1, 1, 2 * 3 * 8 * 8).reshape(2, 3, 8, 8).astype(np.float32)
w = np.full((4, 2, 3, 3), 0.25, np.float32)
g, pool = window(8, 8, (3, 3), (1, 1), "same"), window(8, 8, (2, 2), (2, 2), "valid")
y, _ = b.fused["conv_relu_pool/direct"].forward(x, w, np.zeros(4, np.float32), g, pool, b)
print(repr(float(np.abs(y).sum())))
"""


def run(copy, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(copy))
    out = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, env=env,
                         cwd=copy, timeout=600)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]


def test_an_edited_helper_takes_effect_with_a_warm_cache(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "minicnn", copy / "minicnn",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    shutil.copytree(ROOT / "kernels", copy / "kernels")
    cache = tmp_path / "cache"
    first = run(copy, cache)
    assert run(copy, cache) == first                 # warm: the same code
    helpers = copy / "minicnn" / "backend" / "numba_kernels" / "__init__.py"
    text = helpers.read_text()
    old = "    return zero if value < zero else value"
    assert old in text
    helpers.write_text(text.replace(old, "    return zero if value < zero else value + value"))
    assert run(copy, cache) != first                 # the edit is seen through the warm cache
    assert len(list(cache.glob("numba-*"))) == 2     # one folder per version of the sources


# Three SGD steps of every preset on one and two threads, on random images.
EVERY_PRESET = """
import hashlib
import numpy as np
import minicnn
from minicnn.nn.presets import PRESETS
rng = np.random.default_rng(0)
for name, preset in PRESETS.items():
    for threads in (1, 2):
        model = minicnn.Sequential(preset.layers(), preset.input_shape, backend="numba",
                                   threads=threads, seed=1)
        opt = minicnn.SGD(0.05, momentum=0.9)
        x = rng.standard_normal((96, *preset.input_shape)).astype(np.float32)
        y = rng.integers(0, 10, 96)
        losses = [model.train_step(x[i:i + 32], y[i:i + 32], opt) for i in range(0, 96, 32)]
        digest = hashlib.sha256(np.asarray(model.flat_params).tobytes() + repr(losses).encode())
        print(name, threads, digest.hexdigest())
"""


def test_every_preset_trains_to_the_same_bits_with_a_cold_or_a_warm_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    runs = [subprocess.run([sys.executable, "-c", EVERY_PRESET], capture_output=True,
                           text=True, env=env, timeout=900) for _ in ("cold", "warm")]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr + runs[1].stderr
    cold, warm = (r.stdout.splitlines() for r in runs)
    assert len(cold) == 14 and cold == warm


@needs_mnist
def test_the_main_job_reports_the_same_numbers_with_a_cold_or_a_warm_cache(tmp_path):
    numbers = []
    for run_name in ("cold", "warm"):
        result = run_module("minicnn.train", "--epochs", "1", "--train-limit", "1000",
                            "--out", str(tmp_path / run_name),
                            env={"NUMBA_CACHE_DIR": str(tmp_path / "cache")})
        assert result.returncode == 0, result.stderr
        metrics = json.loads((tmp_path / run_name / "metrics.json").read_text())
        numbers.append(([{k: v for k, v in e.items() if "seconds" not in k and k != "elapsed"}
                         for e in metrics["epochs"]], metrics["test_loss"],
                        metrics["test_accuracy"]))
    assert numbers[0] == numbers[1]
