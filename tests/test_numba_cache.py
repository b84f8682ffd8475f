"""The numba kernels' on-disk cache can never run code that no longer exists: its folder is
keyed by a hash of every source file of backend/numba_kernels/ (Numba itself checks only a
kernel's own file, and our kernels inline helpers from other files).  In a copy of the
package, a helper that other modules inline (``relu`` in numba_kernels/__init__.py) is
changed after its callers were cached: the next run must compute with the new helper."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
