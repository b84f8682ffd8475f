"""python -m minicnn: what the package offers, and how to run each part."""
import sys

from . import __version__

USAGE = f"""minicnn {__version__}: a from-scratch convolutional neural network engine you can read.

  python -m minicnn.train [--epochs 10 --lr 0.1 --filters 16 --out DIR ...]
        train a CNN on MNIST (or Fashion-MNIST); prints each epoch, the test error,
        the runtime and the parameter count; --out keeps the learning curve
  python -m minicnn.evaluate MODEL.npz
        the test accuracy of a model saved by --out
  python -m minicnn.sweep ...
        a grid of training runs (learning rate x filters x batch x seed x backend)
  python benchmarks/epoch.py          one epoch beside PyTorch and TensorFlow
  python benchmarks/learning_rate.py  study 1: learning rate vs learning curve
  python benchmarks/runtime.py        study 2: runtime vs number of filters

Each takes --help.  The Python API: import minicnn; help(minicnn).
"""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] not in ("-h", "--help"):
        print(f"python -m minicnn: unknown command {argv[0]!r}; the commands are modules: "
              f"python -m minicnn.train, python -m minicnn.evaluate, ...", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    print(USAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
