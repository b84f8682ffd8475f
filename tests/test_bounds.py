"""No Numba kernel reads or writes outside an array: the kernel tests of the numba backend
run again in a fresh process with Numba's bounds checking on (NUMBA_BOUNDSCHECK=1, a cache
folder of their own), where any index outside an array raises IndexError.  Kernels are
compiled without the checks otherwise (they cost speed); the inputs are checked where they
enter (docs/errors.md), so this proves the index arithmetic."""
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FILES = ["test_reference.py", "test_properties.py", "test_fused.py", "test_algorithms.py",
         "test_winograd.py", "test_normalization.py", "test_kernels.py"]


def test_numba_kernels_stay_inside_their_arrays(tmp_path):
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                             "-k", "numba", *(str(TESTS / f) for f in FILES)],
                            capture_output=True, text=True, env=env, timeout=1200, cwd=TESTS.parent)
    tail = "\n".join(result.stdout.splitlines()[-15:])
    assert result.returncode == 0, f"under NUMBA_BOUNDSCHECK=1:\n{tail}\n{result.stderr[-2000:]}"
    assert " passed" in tail
