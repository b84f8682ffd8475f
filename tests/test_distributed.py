"""Data-parallel training over MPI (parallel/mpi.py): mpiexec -n 2 gives the single-process
numbers, only rank 0 of python -m minicnn.train prints and writes, a launch without mpi4py
is one line, and without a launcher nothing changes."""
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn.parallel import mpi
from minicnn.parallel.shards import SingleProcess

from conftest import REAL_ROOT, assert_one_line_error, needs_mnist, run_python


def _mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    return found


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec or no mpi4py here: "
                               "pip install 'minicnn[mpi]' (mpi4py and the MPICH wheel)")

# Trains a small float64 model with uneven global batches (29 samples in batches of 7: 4+3 per
# rank, then a last batch of 1, so rank 1 has no sample and joins with zero gradients and,
# in the "norm" variant, zero batch-norm sums) and evaluates 13 samples split across the
# ranks.  Run in this process (SingleProcess) and under mpiexec (each rank saves what it
# ended with).  Each rank builds its model from its own seed (3 + rank): the weights that
# train are rank 0's only if the broadcast reached the others.
SCRIPT = '''
import sys
import numpy as np
import minicnn
from minicnn.nn.fit import train_epoch
from minicnn.nn.regularization import BatchNorm, Dropout
from minicnn.parallel import mpi

def layers(variant):
    head = [minicnn.Conv2D(3, 3, padding="same")]
    if variant == "norm":
        head += [BatchNorm(momentum=0.9)]
    head += [minicnn.ReLU(), minicnn.MaxPool2D(2), minicnn.Flatten()]
    if variant == "norm":
        head += [Dropout(0.3)]
    return head + [minicnn.Dense(10)]

def train(comm, threads, variant="plain"):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((29, 1, 8, 8))
    y = rng.integers(0, 10, 29)
    model = minicnn.Sequential(layers(variant), (1, 8, 8), backend="numpy", dtype="float64",
                               seed=3 + comm.rank, threads=threads, comm=comm)
    opt = minicnn.SGD(0.1, momentum=0.9)
    losses = []
    for epoch in range(3):
        order = rng.permutation(29)
        losses += list(train_epoch(model, opt, x, y, 7, order))
    losses += list(model.evaluate(x[:13], y[:13], batch_size=4))
    state = model.flat_state.copy()
    return np.concatenate([model.flat_params, state]), np.array(losses)

if __name__ == "__main__":
    comm = mpi.communicator()
    params, losses = train(comm, int(sys.argv[2]), sys.argv[3])
    np.savez(f"{sys.argv[1]}.rank{comm.rank}.npz", params=params, losses=losses, size=comm.size)
'''


@needs_mpi
@pytest.mark.parametrize("variant", ["plain", "norm"])
def test_two_ranks_equal_one_process_in_float64(tmp_path, variant):
    """Also with batch norm (its statistics summed over both ranks and both threads of
    each) and dropout (each sample's mask the same whichever rank trains it)."""
    script = tmp_path / "train_mpi.py"
    script.write_text(SCRIPT)
    result = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(script),
                             str(tmp_path / "out"), "2", variant], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ranks = [np.load(tmp_path / f"out.rank{r}.npz") for r in (0, 1)]
    assert [int(r["size"]) for r in ranks] == [2, 2]
    # every rank applied the same updates: bit-identical parameters and reported losses
    assert np.array_equal(ranks[0]["params"], ranks[1]["params"])
    assert np.array_equal(ranks[0]["losses"], ranks[1]["losses"])
    params, losses = runpy.run_path(str(script))["train"](SingleProcess(), 1, variant)
    assert np.abs(ranks[0]["params"] - params).max() < 1e-10
    assert np.abs(ranks[0]["losses"] - losses).max() < 1e-10


def test_the_broadcast_is_what_makes_the_ranks_agree(tmp_path):
    """The script's ranks draw from different seeds (3 + rank): the test above could not pass
    if the broadcast did not overwrite rank 1's weights with rank 0's."""
    layers = runpy.run_path(str(_write(tmp_path)))["layers"]
    models = [minicnn.Sequential(layers("norm"), (1, 8, 8), dtype="float64", seed=s)
              for s in (3, 4)]
    assert not np.allclose(models[0].flat_params, models[1].flat_params)


def _write(tmp_path):
    script = tmp_path / "train_mpi.py"
    script.write_text(SCRIPT)
    return script


@needs_mpi
@needs_mnist
def test_cli_under_mpiexec_only_rank_0_prints_and_writes(tmp_path):
    rank0, rank1 = tmp_path / "rank0", tmp_path / "rank1"
    rank0.mkdir()
    rank1.mkdir()
    train = [sys.executable, "-m", "minicnn.train", "--epochs", "1", "--train-limit", "100",
             "--backend", "numba", "--filters", "2", "--threads", "1", "--out", "run"]
    env = dict(os.environ, MINICNN_DATA=REAL_ROOT)
    # one rank per working directory: a rank that wrote --out would leave rank1/run
    result = subprocess.run([MPIEXEC, "-n", "1", "-wdir", str(rank0), *train, ":",
                             "-n", "1", "-wdir", str(rank1), *train], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (rank0 / "run").iterdir()) == [
        "learning_curve.png", "metrics.csv", "metrics.json", "model.npz"]
    assert not (rank1 / "run").exists()
    assert result.stdout.count("epochs           1/1") == 1
    assert result.stdout.count('Model: "sequential"') == 1
    assert "numba (2 processes x 1 thread)" in result.stdout


def test_launch_without_mpi4py_is_one_line():
    code = ("import sys; sys.modules['mpi4py'] = None; from minicnn.train import main; "
            "sys.exit(main(['--epochs', '1']))")
    result = run_python("-c", code, env={"PMI_SIZE": "2", "PMI_RANK": "0"}, data=False,
                        timeout=60)
    line = assert_one_line_error(result, "mpi4py")
    assert "PMI_SIZE=2" in line and "minicnn[mpi]" in line


def test_without_a_launcher_nothing_changes(monkeypatch):
    for name in mpi.LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert isinstance(mpi.communicator(), SingleProcess)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")         # mpiexec -n 1: one process
    assert isinstance(mpi.communicator(), SingleProcess)
