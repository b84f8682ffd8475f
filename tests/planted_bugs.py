"""Plant each bug that issue 21 found no test for, one at a time, and run the tests that
should catch it, without real MNIST (docs/testing.md).  Not collected by pytest.

    git clone . /tmp/planted && python tests/planted_bugs.py /tmp/planted

The clone must have no ../shared beside it.  The bugs go into the clone's files (each
restored after its run); PYTHONPATH points at the clone so that the subprocesses the tests
start (mpiexec's ranks, Dask's workers) import the planted copy, not an installed one.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PLANTS = [
    ("validation numbers on the test split", "minicnn/nn/fit.py",
     "model.evaluate(data.val.x, data.val.y)", "model.evaluate(data.test.x, data.test.y)"),
    ("CLI test numbers on the validation split", "minicnn/train.py",
     "model.evaluate(data.test.x, data.test.y)", "model.evaluate(data.val.x, data.val.y)"),
    ("sweep points of different seeds share one key", "minicnn/sweep.py",
     'key = f"lr{lr:g}_f{filters}_b{batch}_s{seed}_{backend}"',
     'key = f"lr{lr:g}_f{filters}_b{batch}_{backend}"'),
    ("learning-rate study pairs curves with the wrong rates", "benchmarks/learning_rate.py",
     "zip(tasks, args.rates)", "zip(tasks, reversed(args.rates))"),
    ("plan fuses any max-pool", "minicnn/nn/plan.py",
     "return (isinstance(layer, MaxPool2D) and layer.pool_size == (2, 2)",
     "return (isinstance(layer, MaxPool2D) or layer.pool_size == (2, 2)"),
    ("auto picks direct for a stride it cannot run", "minicnn/ops/algorithms.py",
     'channels <= DIRECT_MAX_CHANNELS and not why_not("direct", conv.g)',
     "channels <= DIRECT_MAX_CHANNELS"),
    ("MPI weight broadcast does not reach the other ranks", "minicnn/nn/model.py",
     "self.flat_params = self.comm.broadcast(self.backend.asarray(self._params.initial,\n"
     "                                                                    dtype=self.dtype))",
     "self.flat_params = self.backend.asarray(self._params.initial, dtype=self.dtype)"),
]
TESTS = ["test_training.py", "test_cli.py", "test_sweep.py", "test_benchmarks.py",
         "test_plan_fusion.py", "test_algorithms.py", "test_distributed.py", "test_model.py"]


def main(clone):
    clone = Path(clone).resolve()
    if (clone.parent / "shared").exists():
        sys.exit(f"planted_bugs.py: {clone.parent / 'shared'} exists; clone elsewhere")
    env = {k: v for k, v in os.environ.items() if k != "MINICNN_DATA"}
    env.update(HOME=tempfile.mkdtemp(prefix="planted-home-"), PYTHONPATH=str(clone))
    caught = 0
    for name, path, old, new in PLANTS:
        source = (clone / path).read_text()
        if source.count(old) != 1:
            sys.exit(f"planted_bugs.py: {path} no longer has the line to plant {name!r} in")
        (clone / path).write_text(source.replace(old, new))
        try:
            result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2",
                                     "-p", "no:cacheprovider", "-k", "not cupy",
                                     *[f"tests/{t}" for t in TESTS]],
                                    cwd=clone, env=env, capture_output=True, text=True)
        finally:
            (clone / path).write_text(source)
        failed = [line.split(" ")[1] for line in result.stdout.splitlines()
                  if line.startswith("FAILED")]
        caught += bool(failed)
        print(f"{name}: {len(failed)} failed ({result.stdout.strip().splitlines()[-1]})")
        for test in failed:
            print("   ", test, flush=True)
    print(f"caught {caught} of {len(PLANTS)}")
    return 0 if caught == len(PLANTS) else 1


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    sys.exit(main(sys.argv[1]))
