"""python -m minicnn: what the package offers, and how to run each part."""
import sys

from . import __version__

USAGE = f"""minicnn {__version__}: a from-scratch convolutional neural network engine you can read.

  python -m minicnn.train [--epochs 10 --lr 0.1 --arch NAME|SPEC --out DIR ...]
        train a CNN on MNIST, Fashion-MNIST or CIFAR-10; prints each epoch, the test
        error, the runtime and the parameter count; keeps the learning curve and the
        model; --arch list shows the presets; --tensorboard DIR, --report
  python -m minicnn.evaluate MODEL.npz
        the test accuracy of a model saved by a run
  python -m minicnn.report RUN_DIR
        a run's report page: curves, confusion matrix, mistakes, filters, saliency
  python -m minicnn.sweep ...
        a grid of training runs (learning rate x filters x batch x seed x backend)
  python benchmarks/epoch.py          one epoch beside PyTorch and TensorFlow
  python benchmarks/learning_rate.py  study 1: learning rate vs learning curve
  python benchmarks/runtime.py        study 2: runtime vs number of filters
  python benchmarks/architectures.py  study 3: architectures side by side

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
